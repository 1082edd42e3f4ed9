using Keyway.Access;
using Keyway.Audit;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Secrets;

/// <summary><c>/api/v1/operator</c>: maintenance calls for whoever runs Keyway (admins only).</summary>
internal static class OperatorEndpoints
{
    public static RouteGroupBuilder MapOperator(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/operator").WithTags("Operator");

        group.MapPost("/rekey", async Task<Accepted<RekeyStatus>> (RekeyJob job, HttpContext http, CancellationToken ct) =>
                TypedResults.Accepted("/api/v1/operator/rekey", await job.StartAsync(Caller.From(http.User), ct)))
            .Requires(Permission.Admin)
            .WithSummary("Start a rekey: re-wrap data keys under the primary master key, rotate the data key, re-encrypt every stored secret and credential token. 409 while one runs.");

        group.MapGet("/rekey", async (RekeyJob job, CancellationToken ct) => TypedResults.Ok(await job.GetStatusAsync(ct)))
            .Requires(Permission.Admin)
            .WithSummary("The rekey's progress: state (idle, running, completed, failed), total, done, dates and error.");

        return api;
    }
}

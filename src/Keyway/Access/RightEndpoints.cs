using Keyway.Api;
using Keyway.Audit;
using Keyway.Environments;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Access;

/// <summary>
/// <c>/api/v1/rights</c>: who may create resources (<c>build</c>) and who may attach which secret
/// variable to a resource definition (<c>attach</c>). Admins manage them, and hold both without a row.
/// </summary>
internal static class RightEndpoints
{
    internal sealed record RightRequest(string? Right, string? Variable, string? User, string? Group, bool Everyone = false);

    internal sealed record RightList(IReadOnlyList<RightInfo> Rights);

    public static RouteGroupBuilder MapRights(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/rights").WithTags("Rights");

        group.MapGet("/", async (string? right, string? variable, RightStore rights, CancellationToken ct) =>
                TypedResults.Ok(new RightList(await rights.ListAsync(
                    string.IsNullOrEmpty(right) ? null : Rights.Check(right), string.IsNullOrEmpty(variable) ? null : variable, ct))))
            .Requires(Permission.Admin)
            .WithSummary("List who may create resources (build) and attach secret variables (attach); ?right= and ?variable= filter.");

        group.MapPost("/", async Task<Results<Created<RightInfo>, Ok<RightInfo>, ProblemHttpResult>> (
                RightRequest? body, HttpContext http, UserStore users, VariableService variables, RightStore rights, IAuditLog audit,
                CancellationToken ct) =>
            {
                if (body is null || !Principals.NamesOne(body.User, body.Group, body.Everyone))
                {
                    return Problems.BadRequest("Name the right and exactly one principal: {\"right\": \"build\", \"user\": \"alice\"}, " +
                        "{\"right\": \"attach\", \"variable\": \"GITHUB_TOKEN\", \"group\": \"platform\"} or {\"right\": \"build\", \"everyone\": true}.");
                }

                var right = Rights.Check(body.Right);
                string target;
                if (right == Rights.Build)
                {
                    if (body.Variable is not null)
                    {
                        return Problems.BadRequest("The build right is not about a variable; leave out 'variable'.");
                    }

                    target = Rights.Any;
                }
                else
                {
                    target = body.Variable?.Trim() ?? "";
                    if (target.Length == 0)
                    {
                        return Problems.BadRequest("Name the secret variable the attach right is for: {\"right\": \"attach\", \"variable\": \"GITHUB_TOKEN\", ...} ('*' for every variable).");
                    }

                    if (target != Rights.Any && Names.CheckVariable(target) is { } error)
                    {
                        return Problems.BadRequest(error);
                    }
                }

                if (await Principals.ResolveAsync(body.User, body.Group, body.Everyone, users, ct) is not var (kind, principal, shown))
                {
                    return Problems.NotFound(Principals.NotFoundMessage(body.User, body.Group));
                }

                var caller = Caller.From(http.User)!;
                var (info, created) = await rights.AddAsync(right, target, kind, principal, caller.UserId, ct, (transaction, added) => audit.StageAsync(transaction,
                    new AuditEntry("right.add")
                    {
                        Actor = caller,
                        Target = shown,
                        Detail = new Dictionary<string, object?> { ["right"] = right, ["variable"] = right == Rights.Attach ? target : null, ["principalKind"] = kind, ["id"] = added.Id },
                    }, ct));
                if (!created)
                {
                    return TypedResults.Ok(info);
                }

                audit.NotifyStaged();
                return TypedResults.Created($"/api/v1/rights/{info.Id}", info);
            })
            .Requires(Permission.Admin)
            .WithSummary("Give a user, a group or everyone the right to create resources (build) or to attach a secret variable (attach). Giving what exists already answers 200 with it.");

        group.MapDelete("/{id}", async Task<Results<NoContent, ProblemHttpResult>> (
                string id, HttpContext http, RightStore rights, IAuditLog audit, CancellationToken ct) =>
            {
                if (await rights.GetAsync(id, ct) is not { } info || !await rights.RemoveAsync(id, ct, transaction => audit.StageAsync(transaction,
                        new AuditEntry("right.remove")
                        {
                            Actor = Caller.From(http.User),
                            Target = info.PrincipalName,
                            Detail = new Dictionary<string, object?> { ["right"] = info.Right, ["variable"] = info.Right == Rights.Attach ? info.Target : null, ["principalKind"] = info.PrincipalKind, ["id"] = info.Id },
                        }, ct)))
                {
                    return Problems.NotFound($"There is no right '{id}'. List them with 'keyway right list'.");
                }

                audit.NotifyStaged();
                return TypedResults.NoContent();
            })
            .Requires(Permission.Admin)
            .WithSummary("Take a right back. Resources saved with it keep working; the next save of a definition checks again.");

        return api;
    }
}

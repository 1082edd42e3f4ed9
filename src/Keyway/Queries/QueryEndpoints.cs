using System.Text.Json;
using Keyway.Access;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Environments;
using Keyway.Resources;
using Keyway.Runs;
using Keyway.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Queries;

internal static class QueryEndpoints
{
    public static RouteGroupBuilder MapQueries(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/queries").WithTags("Queries");

        group.MapGet("/", async (string? resource, HttpContext http, QueryService queries, AccessPolicy access, CancellationToken ct) =>
            {
                // A query is visible to whoever may see its resource.
                var caller = Caller.From(http.User)!;
                var visible = (await queries.ListAsync(resource, ct)).Where(q => access.Allows(caller, Permission.Read, q.Definition.Resource ?? "", null));
                return TypedResults.Ok(new QueryList(visible));
            })
            .Requires(Permission.Read)
            .WithSummary("List saved queries, optionally of one resource (?resource=).");

        group.MapPut("/{name}", async Task<Results<Ok<QueryRecord>, Created<QueryRecord>>> (
                string name, HttpRequest request, HttpContext http, QueryService queries, AccessPolicy access, IAuditLog audit, CancellationToken ct) =>
            {
                QueryDefinition definition;
                try
                {
                    definition = await JsonSerializer.DeserializeAsync<QueryDefinition>(request.Body, ConfigJson.Options, ct)
                        ?? throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config", "The body is empty; send the query as JSON.");
                }
                catch (JsonException e)
                {
                    throw ConfigJsonErrors.Invalid(e, "query");
                }

                // Writing a query against a resource needs the right to use it: a query can do nothing an ad-hoc run could not.
                if (string.IsNullOrWhiteSpace(definition.Resource))
                {
                    throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config", "Name the resource the query runs against: {\"resource\": \"billing\", ...}.");
                }

                var caller = Caller.From(http.User)!;
                // A saved query runs in every environment: writing one needs use in every environment, not in some.
                access.Demand(caller, Permission.Use, definition.Resource, GrantStore.Any);
                if (await queries.GetAsync(name, ct) is { } existing && existing.Definition.Resource != definition.Resource)
                {
                    // Replacing a query moves it off its resource: that needs the right to use the old one too.
                    access.Demand(caller, Permission.Use, existing.Definition.Resource ?? "", GrantStore.Any);
                }
                var (record, created) = await queries.PutAsync(name, definition, ct, (transaction, isNew) => audit.StageAsync(transaction,
                    new AuditEntry("query.put")
                    {
                        Actor = Caller.From(http.User),
                        Resource = definition.Resource,
                        Target = name,
                        Detail = new Dictionary<string, object?> { ["created"] = isNew },
                    }, ct));
                audit.NotifyStaged();
                return created ? TypedResults.Created($"/api/v1/queries/{name}", record) : TypedResults.Ok(record);
            })
            .Requires(Permission.Read)
            .Accepts<QueryDefinition>("application/json")
            .WithSummary("Create or replace a saved query.");

        group.MapGet("/{name}", async Task<Results<Ok<QueryRecord>, ProblemHttpResult>> (
                string name, HttpContext http, QueryService queries, AccessPolicy access, CancellationToken ct) =>
            {
                if (await queries.GetAsync(name, ct) is not { } record)
                {
                    return Problems.NotFound($"There is no query named '{name}'. List them with 'keyway query list'.");
                }

                access.Demand(Caller.From(http.User)!, Permission.Read, record.Definition.Resource ?? "", null);
                return TypedResults.Ok(record);
            })
            .Requires(Permission.Read)
            .WithSummary("Get a saved query.");

        group.MapDelete("/{name}", async Task<Results<NoContent, ProblemHttpResult>> (
                string name, HttpContext http, QueryService queries, AccessPolicy access, IAuditLog audit, CancellationToken ct) =>
            {
                if (await queries.GetAsync(name, ct) is not { } record)
                {
                    return Problems.NotFound($"There is no query named '{name}'. List them with 'keyway query list'.");
                }

                access.Demand(Caller.From(http.User)!, Permission.Use, record.Definition.Resource ?? "", GrantStore.Any);
                await queries.DeleteAsync(name, ct, transaction => audit.StageAsync(transaction,
                    new AuditEntry("query.delete") { Actor = Caller.From(http.User), Resource = record.Definition.Resource, Target = name }, ct));
                audit.NotifyStaged();
                return TypedResults.NoContent();
            })
            .Requires(Permission.Read)
            .WithSummary("Delete a saved query.");

        group.MapPost("/{name}/run", async Task<Ok<RunResult>> (
                string name, QueryRunRequest? request, HttpContext http, QueryRunner runner, CancellationToken ct) =>
                TypedResults.Ok(await runner.RunAsync(name, request?.Environment ?? VariableService.Production, request?.Inputs, Caller.From(http.User)!, ct)))
            .Requires(Permission.Use, environment: EnvironmentSource.Body)
            .WithSummary("Run a saved query with inputs. 200 carries the upstream's status; Keyway's own failures are problem+json.");

        return api;
    }
}

/// <summary>The body of <c>GET /api/v1/queries</c>.</summary>
internal sealed record QueryList(IEnumerable<QueryRecord> Queries);

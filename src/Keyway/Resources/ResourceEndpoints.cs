using System.Text.Json;
using Keyway.Access;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Environments;
using Keyway.Runs;
using Keyway.Storage;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Resources;

/// <summary>A resource as the API shows it: its configuration as written (templates, never secret values).</summary>
/// <remarks>
/// <c>UnboundSecrets</c>, in the answer to a save: the secrets it sends that are bound to no origin, for
/// clients to offer binding them (<c>keyway var bind</c>).
/// </remarks>
internal sealed record ResourceView(string Name, long Version, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, ResourceDefinition Definition)
{
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<UnboundSecret>? UnboundSecrets { get; init; }

    public static ResourceView From(ResourceRecord record) => new(record.Name, record.Version, record.CreatedAt, record.UpdatedAt, record.Definition);
}

internal static class ResourceEndpoints
{
    public static RouteGroupBuilder MapResources(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/resources").WithTags("Resources");

        group.MapGet("/", async (HttpContext http, ResourceService service, AccessPolicy access, CancellationToken ct) =>
            {
                // Members see the resources they hold some grant on (and a key only those in its scope).
                var caller = Caller.From(http.User)!;
                var visible = (await service.ListAsync(ct)).Where(r => access.Allows(caller, Permission.Read, r.Name, null));
                return TypedResults.Ok(new ResourceList(visible.Select(ResourceView.From)));
            })
            .Requires(Permission.Read)
            .WithSummary("List the resources the caller holds a permission on (admins: all).");

        group.MapPut("/{name}", async Task<Results<Ok<ResourceView>, Created<ResourceView>, ProblemHttpResult>> (
                string name, HttpRequest request, HttpContext http, ResourceService service, ResourceAuthoring authoring, AccessPolicy access,
                GrantStore grants, IAuditLog audit, VariableService variables, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                var definition = await ReadDefinitionAsync(request, ct);
                var existing = await service.GetAsync(name, ct);
                if (existing is not null)
                {
                    // The filter let a caller without edit through only because the resource did not exist.
                    access.Demand(caller, Permission.Edit, name, null);
                }

                // An invalid definition is reported field by field before anything is judged about who may save it.
                ResourceCompiler.Compile(name, 0, definition);
                var attached = await authoring.CheckAsync(caller, name, existing, definition, ct);
                // A client certificate or key the variables already hold is read now: one that does not read is refused with its field.
                await CompiledTls.CheckValuesAsync(variables, name, definition, attached, ct);
                // Whoever creates a resource owns it: the grant is written in the transaction that creates it.
                GrantInfo? creatorGrant = null;
                var put = await service.PutAsync(name, definition, existing?.Version ?? 0, attached, createdBy: caller.UserId,
                    async (connection, transaction) => creatorGrant = await grants.AddCreatorAsync(connection, transaction, name, caller.UserId), ct,
                    replacing: existing?.Definition,
                    audit: async (transaction, version, isNew) =>
                    {
                        await audit.StageAsync(transaction, new AuditEntry("resource.put")
                        {
                            Actor = caller,
                            Resource = name,
                            Detail = new Dictionary<string, object?> { ["created"] = isNew, ["version"] = version, ["kind"] = definition.Kind },
                        }, ct);
                        if (isNew && creatorGrant is { } grant)
                        {
                            await audit.StageAsync(transaction, new AuditEntry("grant.add")
                            {
                                Actor = caller,
                                Resource = name,
                                Target = caller.UserName,
                                Detail = new Dictionary<string, object?> { ["grant"] = grant.Id, ["permission"] = "own", ["environment"] = GrantStore.Any, ["reason"] = "creator" },
                            }, ct);
                        }
                    });
                if (put is not var (record, created))
                {
                    // Checked against one version, written over another: the checks would not hold.
                    return Problems.Create(StatusCodes.Status409Conflict, "conflict",
                        $"The resource '{name}' was changed by someone else while this was saved. Read it again and retry.");
                }

                audit.NotifyStaged();
                if (created && creatorGrant is not null)
                {
                    await grants.PublishAsync(access, name);
                }

                var view = ResourceView.From(record) with
                {
                    UnboundSecrets = await authoring.UnboundAsync(await service.GetCompiledAsync(name, ct), ct),
                };
                return created ? TypedResults.Created($"/api/v1/resources/{name}", view) : TypedResults.Ok(view);
            })
            .Requires(Permission.Edit, "name", EnvironmentSource.None, createsResource: true)
            .Accepts<ResourceDefinition>("application/json")
            .WithSummary("Create or replace a resource. Every error is reported with its field.");

        group.MapGet("/{name}", async Task<Results<Ok<ResourceView>, ProblemHttpResult>> (string name, ResourceService service, CancellationToken ct) =>
                await service.GetAsync(name, ct) is { } record ? TypedResults.Ok(ResourceView.From(record)) : Problems.NotFound($"There is no resource named '{name}'. List them with 'keyway resource list'."))
            .Requires(Permission.Read, "name")
            .WithSummary("Get a resource's configuration (templates as written; never a secret value).");

        group.MapDelete("/{name}", async Task<Results<NoContent, ProblemHttpResult>> (
                string name, ResourceService service, AccessPolicy access, HttpContext http, IAuditLog audit, CancellationToken ct) =>
            {
                var deleted = await service.DeleteAsync(name, ct, transaction => audit.StageAsync(transaction,
                    new AuditEntry("resource.delete") { Actor = Caller.From(http.User), Resource = name }, ct));
                await access.ReloadAsync(ct);
                if (!deleted)
                {
                    return Problems.NotFound($"There is no resource named '{name}'.");
                }

                audit.NotifyStaged();
                return TypedResults.NoContent();
            })
            .Requires(Permission.Own, "name", EnvironmentSource.None)
            .WithSummary("Delete a resource.");

        group.MapPost("/{name}/run", async Task<Ok<RunResult>> (
                string name, RunRequest request, HttpContext http, ResourceService resources, ResourceResolver resolver,
                RunExecutor executor, AccessPolicy access, TrafficAudit traffic, TimeProvider time, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                var environment = request.Environment ?? VariableService.Production;
                access.Demand(caller, Permission.Use, name, environment);
                if (traffic.IsStalled)
                {
                    // A run is recorded, and the record could not be queued until the store is back.
                    throw StoreFailure.Unavailable();
                }

                var started = time.GetTimestamp();
                var path = AuditRedaction.PathWithQuery(request.Path, request.Query);
                TrafficMode? mode = null;
                try
                {
                    var compiled = await resources.GetCompiledAsync(name, ct);
                    var resolved = await resolver.ResolveAsync(compiled, environment, caller, ct);
                    mode = resolved.TrafficMode;
                    var call = RunCalls.FromRequest(request);
                    var result = await executor.ExecuteAsync(resolved, call, caller, ct);
                    await traffic.RecordRunAsync(mode, "run", caller, name, environment, call.Method.Method, path,
                        result.Status, result.DurationMs, result.Refreshed, null, bytesOut: AccessLog.BodyBytes(result));
                    return TypedResults.Ok(result);
                }
                catch (KeywayException e)
                {
                    await traffic.RecordRunAsync(mode, "run", caller, name, environment, request.Method, path,
                        null, (long)time.GetElapsedTime(started).TotalMilliseconds, false, e.Code);
                    throw;
                }
            })
            .Requires(Permission.Use, "name", EnvironmentSource.Body)
            .WithSummary("Send an ad-hoc request through the resource. 200 carries the upstream's status; Keyway's own failures are problem+json.");

        return api;
    }

    private static async Task<ResourceDefinition> ReadDefinitionAsync(HttpRequest request, CancellationToken ct)
    {
        try
        {
            return await JsonSerializer.DeserializeAsync<ResourceDefinition>(request.Body, ConfigJson.Options, ct)
                ?? throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config", "The body is empty; send the resource as JSON.");
        }
        catch (JsonException e)
        {
            throw ConfigJsonErrors.Invalid(e, "resource");
        }
    }
}

/// <summary>The body of <c>GET /api/v1/resources</c>.</summary>
internal sealed record ResourceList(IEnumerable<ResourceView> Resources);

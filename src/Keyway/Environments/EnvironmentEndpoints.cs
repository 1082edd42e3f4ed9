using Keyway.Access;
using Keyway.Api;
using Keyway.Audit;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Environments;

internal static class EnvironmentEndpoints
{
    /// <summary>The body of <c>PUT /api/v1/environments/{env}/variables/{name}</c>.</summary>
    /// <remarks><c>Origins</c>: where a secret may be sent; left out, a secret keeps its binding; <c>[]</c> unbinds it.</remarks>
    /// <remarks>
    /// <c>KeepVersions</c>, <c>RotateEvery</c>, <c>ExpiredPolicy</c>: left out, the variable keeps what it had;
    /// <c>keepVersions</c> 0 is the server's default, <c>rotateEvery</c> "" removes the policy.
    /// </remarks>
    internal sealed record SetVariableRequest(
        string? Value, bool Secret = false, DateTimeOffset? ExpiresAt = null, List<string>? Origins = null,
        int? KeepVersions = null, string? RotateEvery = null, string? ExpiredPolicy = null);

    /// <summary>The body of <c>POST /api/v1/environments/{env}/variables/{name}/rollback</c>.</summary>
    internal sealed record RollbackRequest(long? Version);

    /// <summary>The body of <c>PUT /api/v1/environments/{env}/variables/{name}/origins</c>.</summary>
    internal sealed record SetOriginsRequest(List<string>? Origins);

    internal sealed record PutEnvironmentRequest(string? Description);

    /// <summary>
    /// The body of <c>PATCH /api/v1/environments/{env}/variables/{name}</c>: metadata alone, never a value.
    /// Left out, a field keeps what it had; <c>origins</c> [] unbinds, <c>rotateEvery</c> "" removes the policy.
    /// </summary>
    internal sealed record VariableMetadataRequest(List<string>? Origins = null, int? KeepVersions = null, string? RotateEvery = null, string? ExpiredPolicy = null);

    public static RouteGroupBuilder MapEnvironments(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/environments").WithTags("Environments");

        group.MapGet("/", async (VariableService service, HttpContext http, AccessPolicy access, CancellationToken ct) =>
            {
                // A key scoped to some environments sees those alone.
                var caller = Caller.From(http.User)!;
                var visible = (await service.ListEnvironmentsAsync(ct)).Where(e => access.Allows(caller, Permission.Read, null, e.Name)).ToList();
                return TypedResults.Ok(new EnvironmentList(visible));
            })
            .Requires(Permission.Read)
            .WithSummary("List environments (a key scoped to some environments sees those).");

        group.MapPut("/{env}", async Task<Results<Ok<EnvironmentInfo>, Created<EnvironmentInfo>>> (
                string env, PutEnvironmentRequest? body, VariableService service, HttpContext http, IAuditLog audit, CancellationToken ct) =>
            {
                var (info, created) = await service.PutEnvironmentAsync(env, body?.Description, ct, (transaction, isNew) => audit.StageAsync(transaction,
                    new AuditEntry("environment.put") { Actor = Caller.From(http.User), Environment = env, Detail = new Dictionary<string, object?> { ["created"] = isNew } }, ct));
                audit.NotifyStaged();
                return created ? TypedResults.Created($"/api/v1/environments/{env}", info) : TypedResults.Ok(info);
            })
            .Requires(Permission.Admin)
            .WithSummary("Create an environment (or update its description).");

        group.MapGet("/{env}", async Task<Results<Ok<EnvironmentInfo>, ProblemHttpResult>> (string env, VariableService service, HttpContext http, AccessPolicy access, CancellationToken ct) =>
            {
                access.Demand(Caller.From(http.User)!, Permission.Read, null, env);
                return await service.GetEnvironmentAsync(env, ct) is { } info ? TypedResults.Ok(info) : Problems.NotFound($"There is no environment named '{env}'.");
            })
            .Requires(Permission.Read)
            .WithSummary("Get an environment.");

        group.MapDelete("/{env}", async Task<Results<NoContent, ProblemHttpResult>> (string env, VariableService service, HttpContext http, IAuditLog audit, CancellationToken ct) =>
            {
                if (!await service.DeleteEnvironmentAsync(env, ct, transaction => audit.StageAsync(transaction,
                        new AuditEntry("environment.delete") { Actor = Caller.From(http.User), Environment = env }, ct)))
                {
                    return Problems.NotFound($"There is no environment named '{env}'.");
                }

                audit.NotifyStaged();
                return TypedResults.NoContent();
            })
            .Requires(Permission.Admin)
            .WithSummary("Delete an environment and its variables ('production' cannot be deleted).");

        group.MapGet("/{env}/variables", async Task<Results<Ok<VariableList>, ProblemHttpResult>> (string env, VariableService service, CancellationToken ct) =>
                await service.GetEnvironmentAsync(env, ct) is null
                    ? Problems.NotFound($"There is no environment named '{env}'.")
                    : TypedResults.Ok(new VariableList(await service.ListAsync(env, ct))))
            .Requires(Permission.Admin)
            .WithSummary("List an environment's variables. A secret's value is always null.");

        group.MapGet("/{env}/variables/{name}", async Task<Results<Ok<VariableInfo>, ProblemHttpResult>> (
                string env, string name, VariableService service, CancellationToken ct) =>
                await service.GetAsync(env, name, ct) is { } info ? TypedResults.Ok(info) : Problems.NotFound($"There is no variable '{name}' in environment '{env}'."))
            .Requires(Permission.Admin)
            .WithSummary("Get a variable. A secret's value is always null; its version and dates are shown.");

        group.MapPut("/{env}/variables/{name}", async Task<Results<Ok<VariableInfo>, ProblemHttpResult>> (
                string env, string name, SetVariableRequest? body, VariableService service, HttpContext http, IAuditLog audit, CancellationToken ct) =>
            {
                if (body?.Value is null)
                {
                    return Problems.BadRequest("Send the value as JSON: {\"value\": \"...\", \"secret\": true}.");
                }

                if (body.Secret && body.Value.Length == 0)
                {
                    // An empty secret is always a mistake (an empty pipe, a variable that was not set) and would fail later, at a run.
                    return Problems.Create(StatusCodes.Status400BadRequest, "empty_secret", "A secret cannot be empty: send its value.");
                }

                // The name, the secret flag and the version: never the value.
                var caller = Caller.From(http.User)!;
                var info = await service.SetAsync(env, name, body.Value, body.Secret, body.ExpiresAt, ct, body.Origins, (transaction, written) => audit.StageAsync(transaction,
                    new AuditEntry("variable.set")
                    {
                        Actor = caller,
                        Environment = env,
                        Target = name,
                        Detail = new Dictionary<string, object?>
                        {
                            ["secret"] = written.Secret,
                            ["version"] = written.Version,
                            ["expiresAt"] = written.ExpiresAt,
                            ["expiresFrom"] = written.ExpiresFrom,
                            ["origins"] = written.Origins,
                            ["keepVersions"] = written.KeepVersions,
                            ["rotateEvery"] = written.RotateEvery,
                            ["expiredPolicy"] = written.ExpiredPolicy,
                        },
                    }, ct),
                    new VariablePolicy(body.KeepVersions, body.RotateEvery, body.ExpiredPolicy), new VersionAuthor(caller.UserName, caller.ApiKeyId));
                audit.NotifyStaged();
                return TypedResults.Ok(info);
            })
            .Requires(Permission.Admin)
            .WithSummary("Set a variable. A secret gets a new version each time; its value is never returned. 'origins' binds a secret to where it may be sent.");

        group.MapGet("/{env}/variables/{name}/versions", async Task<Results<Ok<VersionList>, ProblemHttpResult>> (
                string env, string name, VariableService service, CancellationToken ct) =>
                await service.ListVersionsAsync(env, name, ct) is { } versions
                    ? TypedResults.Ok(new VersionList(env, name, versions))
                    : Problems.NotFound($"There is no variable '{name}' in environment '{env}'."))
            .Requires(Permission.Admin)
            .WithSummary("List a variable's stored versions, newest first: number, state, who set it, when, expiry. Never a value.");

        group.MapPost("/{env}/variables/{name}/rollback", async Task<Results<Ok<VariableInfo>, ProblemHttpResult>> (
                string env, string name, RollbackRequest? body, VariableService service, HttpContext http, IAuditLog audit, CancellationToken ct) =>
            {
                if (body?.Version is not { } version)
                {
                    return Problems.BadRequest("Send the version to roll back to as JSON: {\"version\": 3}. See them: keyway var versions NAME --env ENV");
                }

                var caller = Caller.From(http.User)!;
                var rolled = await service.RollbackAsync(env, name, version, new VersionAuthor(caller.UserName, caller.ApiKeyId), ct, (transaction, written) => audit.StageAsync(transaction,
                    new AuditEntry("variable.rollback")
                    {
                        Actor = caller,
                        Environment = env,
                        Target = name,
                        Detail = new Dictionary<string, object?> { ["secret"] = written.Secret, ["version"] = written.Version, ["restoredFrom"] = version, ["expiresAt"] = written.ExpiresAt },
                    }, ct));
                if (rolled is not { } info)
                {
                    return Problems.NotFound($"There is no variable '{name}' in environment '{env}'.");
                }

                audit.NotifyStaged();
                return TypedResults.Ok(info);
            })
            .Requires(Permission.Admin)
            .WithSummary("Make an earlier version's value current again, as a new version (restoredFrom names the one copied).");

        group.MapPut("/{env}/variables/{name}/origins", async Task<Results<Ok<VariableInfo>, ProblemHttpResult>> (
                string env, string name, SetOriginsRequest? body, VariableService service, HttpContext http, IAuditLog audit, CancellationToken ct) =>
            {
                if (body?.Origins is null)
                {
                    return Problems.BadRequest("Send the origins as JSON: {\"origins\": [\"https://api.example.com\", \"https://*.example.com\"]} ([] unbinds).");
                }

                var bound = await service.SetOriginsAsync(env, name, body.Origins, ct, (transaction, written) => audit.StageAsync(transaction,
                    new AuditEntry("variable.bind")
                    {
                        Actor = Caller.From(http.User),
                        Environment = env,
                        Target = name,
                        Detail = new Dictionary<string, object?> { ["origins"] = written.Origins },
                    }, ct));
                if (bound is not { } info)
                {
                    return Problems.NotFound($"There is no variable '{name}' in environment '{env}'.");
                }

                audit.NotifyStaged();
                return TypedResults.Ok(info);
            })
            .Requires(Permission.Admin)
            .WithSummary("Bind a secret to the origins its value may be sent to (checked on every request Keyway sends); [] unbinds it.");

        group.MapPatch("/{env}/variables/{name}", async Task<Results<Ok<VariableInfo>, ProblemHttpResult>> (
                string env, string name, VariableMetadataRequest? body, VariableService service, HttpContext http, IAuditLog audit, CancellationToken ct) =>
            {
                if (body is null)
                {
                    return Problems.BadRequest("Send what changes: {\"origins\": [\"https://api.example.com\"]}, {\"rotateEvery\": \"90d\"}, {\"expiredPolicy\": \"block\"} or {\"keepVersions\": 5}.");
                }

                var changed = await service.SetMetadataAsync(env, name, body.Origins, new VariablePolicy(body.KeepVersions, body.RotateEvery, body.ExpiredPolicy), ct,
                    (transaction, written) => audit.StageAsync(transaction, new AuditEntry("variable.metadata")
                    {
                        Actor = Caller.From(http.User),
                        Environment = env,
                        Target = name,
                        Detail = new Dictionary<string, object?>
                        {
                            ["origins"] = written.Origins,
                            ["keepVersions"] = written.KeepVersions,
                            ["rotateEvery"] = written.RotateEvery,
                            ["expiredPolicy"] = written.ExpiredPolicy,
                        },
                    }, ct));
                if (changed is not { } info)
                {
                    return Problems.NotFound($"There is no variable '{name}' in environment '{env}'.");
                }

                audit.NotifyStaged();
                return TypedResults.Ok(info);
            })
            .Requires(Permission.Admin)
            .WithSummary("Change a variable's origin binding and policies without a new version (its value is left alone).");

        group.MapDelete("/{env}/variables/{name}", async Task<Results<NoContent, ProblemHttpResult>> (
                string env, string name, VariableService service, HttpContext http, IAuditLog audit, CancellationToken ct) =>
            {
                if (!await service.DeleteAsync(env, name, ct, transaction => audit.StageAsync(transaction,
                        new AuditEntry("variable.delete") { Actor = Caller.From(http.User), Environment = env, Target = name }, ct)))
                {
                    return Problems.NotFound($"There is no variable '{name}' in environment '{env}'.");
                }

                audit.NotifyStaged();
                return TypedResults.NoContent();
            })
            .Requires(Permission.Admin)
            .WithSummary("Delete a variable and all its versions.");

        return api;
    }

    internal sealed record VariableList(IReadOnlyList<VariableInfo> Variables);

    internal sealed record VersionList(string Environment, string Name, IReadOnlyList<VariableVersionInfo> Versions);
}

/// <summary>The body of <c>GET /api/v1/environments</c>.</summary>
internal sealed record EnvironmentList(IReadOnlyList<EnvironmentInfo> Environments);

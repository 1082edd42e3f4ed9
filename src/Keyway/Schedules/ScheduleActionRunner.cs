using Keyway.Access;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Credentials;
using Keyway.Queries;
using Keyway.Rotations;

namespace Keyway.Schedules;

/// <summary>Does what a schedule says, once (the runner retries). Throws a <see cref="KeywayException"/> whose code history records.</summary>
internal interface IScheduleActions
{
    /// <summary>Runs <paramref name="schedule"/>'s action; returns the upstream status of a <c>run</c>, else null.</summary>
    Task<int?> ExecuteAsync(StoredSchedule schedule, CancellationToken cancellationToken);
}

/// <summary>Error codes a schedule run records beyond the ones the actions' own paths raise.</summary>
internal static class ScheduleErrors
{
    /// <summary>The schedule's owner is deleted or disabled: it runs as nobody, so it does not run.</summary>
    public const string OwnerUnavailable = "schedule_owner_unavailable";

    /// <summary>
    /// The API key the schedule was saved with is revoked, expired or deleted: a schedule does not
    /// outlive the key that saved it (a key is revoked to take away what it could do).
    /// </summary>
    public const string KeyUnavailable = "schedule_key_unavailable";

    /// <summary>The schedule's owner (or the key scope it was saved with) no longer allows its action.</summary>
    public const string OwnerForbidden = "schedule_owner_forbidden";

    /// <summary>
    /// A <c>run</c> whose saved query changed after the schedule was saved: anyone who may use its resource
    /// may rewrite a query, and the schedule would send their request as its owner.
    /// </summary>
    public const string QueryChanged = "schedule_query_changed";

    /// <summary>A <c>run</c> whose upstream answered 4xx or 5xx.</summary>
    public const string UpstreamStatus = "upstream_error_status";

    /// <summary>A <c>verify</c> that found the audit chain broken.</summary>
    public const string AuditChainBroken = "audit_chain_broken";

    /// <summary>The run did not finish within its time limit.</summary>
    public const string Timeout = "schedule_timeout";

    /// <summary>Something other than a Keyway failure (a bug): logged by type, recorded under this code.</summary>
    public const string Internal = "internal_error";

    /// <summary>Codes that another attempt cannot change: not retried.</summary>
    public static bool IsPermanent(string code) => code is OwnerUnavailable or KeyUnavailable or OwnerForbidden or QueryChanged or "forbidden" or "not_found" or "invalid_config"
        or "template_error" or "bad_request" or AuditChainBroken
        // A rotation that failed or rolled back is not minted again and again; one that found another under way may run later.
        or "rotation_not_defined" or "not_secret" || (code.StartsWith("rotation_", StringComparison.Ordinal) && code != "rotation_in_progress");
}

/// <summary>
/// The actions, each through the path a person would take, as the schedule's owner: <c>refresh</c>
/// through the engine's forced refresh, <c>rotate</c> a new grant from the provider (not a refresh),
/// <c>run</c> through <see cref="QueryRunner"/>, <c>verify</c> through <see cref="AuditVerifier"/>.
/// </summary>
internal sealed class ScheduleActionRunner(
    UserStore users, ApiKeyService keys, AccessPolicy access, CredentialService credentials, CredentialEngine engine, QueryRunner queries,
    QueryService savedQueries, AuditVerifier verifier, RotationEngine rotations, TimeProvider time) : IScheduleActions
{
    public async Task<int?> ExecuteAsync(StoredSchedule schedule, CancellationToken cancellationToken)
    {
        var compiled = schedule.Compiled;
        var definition = compiled.Definition;
        var owner = await users.LoadCallerAsync(schedule.OwnerId, schedule.OwnerKeyId, schedule.OwnerScope, cancellationToken)
            ?? throw new KeywayException(StatusCodes.Status403Forbidden, ScheduleErrors.OwnerUnavailable,
                $"Schedule '{schedule.Name}' runs as a user who is deleted or disabled. Save it again as someone who may run it.");
        if (schedule.OwnerKeyId is { } keyId && KeyProblem(await keys.GetAsync(keyId, cancellationToken), time.GetUtcNow()) is { } problem)
        {
            throw new KeywayException(StatusCodes.Status403Forbidden, ScheduleErrors.KeyUnavailable,
                $"Schedule '{schedule.Name}' was saved with API key {keyId}, which {problem}; it does not run without it. " +
                "Save the schedule again with a key in force, or signed in to the console.");
        }

        switch (compiled.Action)
        {
            case ScheduleActions.Refresh:
                {
                    DemandOwner(access, owner, schedule, Permission.Use, definition.Resource!, compiled.Environment);
                    var (_, binding) = await credentials.BindingAsync(definition.Resource!, compiled.Environment, owner, cancellationToken);
                    await engine.RefreshAsync(CredentialService.KeyFor(binding, definition.Resource!, compiled.Environment, owner, null), binding.Provider, cancellationToken);
                    return null;
                }

            case ScheduleActions.Rotate when definition.Variable is { } variable:
                {
                    // Variables are admin's: so is rotating one, as the owner, checked again at every run.
                    DemandOwner(access, owner, schedule, Permission.Admin, null, compiled.Environment);
                    var rotation = await rotations.RotateAsync(compiled.Environment, variable, new RotationTrigger("schedule:" + schedule.Name, owner), cancellationToken);
                    return rotation.State is RotationStates.Failed or RotationStates.RolledBack
                        ? throw new KeywayException(StatusCodes.Status502BadGateway, rotation.ErrorCode ?? "rotation_failed",
                            $"The rotation of '{variable}' ended {rotation.State}: {rotation.Error}", new Dictionary<string, object?> { ["rotation"] = rotation.Id })
                        : null;
                }

            case ScheduleActions.Rotate:
                {
                    DemandOwner(access, owner, schedule, Permission.Edit, definition.Resource!, compiled.Environment);
                    var (_, binding) = await credentials.BindingAsync(definition.Resource!, compiled.Environment, owner, cancellationToken);
                    if (!binding.Provider.CanAcquire)
                    {
                        throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request",
                            $"Resource '{definition.Resource}' gets its credential when a person connects: there is no new grant to obtain without them.");
                    }

                    // A new grant, not a refresh: the provider issues tokens that share nothing with the old ones.
                    var key = CredentialService.KeyFor(binding, definition.Resource!, compiled.Environment, owner, null);
                    var result = await binding.Provider.AcquireAsync(key, cancellationToken);
                    if (result.Tokens is not { } tokens)
                    {
                        throw new KeywayException(StatusCodes.Status502BadGateway, "credential_failed",
                            $"The provider refused a new credential for '{definition.Resource}' ({result.Failure}); the current one stays in use.");
                    }

                    await engine.StoreAsync(key, binding.Provider, tokens, cancellationToken);
                    return null;
                }

            case ScheduleActions.Run:
                {
                    // QueryRunner demands use as the owner too; checked first here for the clearer code.
                    var (_, resource) = await savedQueries.GetCompiledAsync(definition.Query!, cancellationToken);
                    DemandOwner(access, owner, schedule, Permission.Use, resource.Name, compiled.Environment);
                    // The owner agreed to run the query as it was when they saved the schedule, not as someone rewrote it since.
                    if (await savedQueries.GetAsync(definition.Query!, cancellationToken) is { } saved && QueryChanged(schedule, saved))
                    {
                        throw new KeywayException(StatusCodes.Status409Conflict, ScheduleErrors.QueryChanged,
                            $"The query '{definition.Query}' changed after schedule '{schedule.Name}' was saved, and the schedule runs as '{owner.UserName}'. " +
                            "Check the query, then save the schedule again (as its owner) to run it as it is now.");
                    }

                    var result = await queries.RunAsync(definition.Query!, compiled.Environment, definition.Inputs, owner, cancellationToken);
                    return result.Status >= 400
                        ? throw new KeywayException(StatusCodes.Status502BadGateway, ScheduleErrors.UpstreamStatus,
                            $"The upstream answered {result.Status}.", new Dictionary<string, object?> { ["status"] = result.Status })
                        : result.Status;
                }

            case ScheduleActions.Verify:
                {
                    DemandOwner(access, owner, schedule, Permission.Admin, null, null);
                    var verification = await verifier.VerifyAsync(cancellationToken);
                    if (!verification.Ok)
                    {
                        // The verifier itself raises audit.verify_failed, whoever asked it.
                        throw new KeywayException(StatusCodes.Status409Conflict, ScheduleErrors.AuditChainBroken,
                            $"The audit chain is broken at seq {verification.FirstBroken?.Seq} ({verification.FirstBroken?.Kind}). Run 'keyway audit verify'.");
                    }

                    return null;
                }

            default:
                throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config", $"Schedule '{schedule.Name}' has an unknown action.");
        }
    }

    /// <summary>
    /// Whether the saved query differs from the one the schedule was saved against: a hash of its
    /// definition, recorded with the schedule, not a timestamp (two writes in one millisecond compare
    /// equal, and a query deleted and made again starts its version over). A schedule saved before hashes
    /// were recorded compares its query's time of change, as it always did.
    /// </summary>
    internal static bool QueryChanged(StoredSchedule schedule, QueryRecord query) =>
        schedule.QueryHash is { } saved ? saved != QueryHash(query) : query.UpdatedAt > schedule.UpdatedAt;

    /// <summary>SHA-256 of a saved query's definition (resource, method, path, inputs, body…) as stored: what a <c>run</c> schedule sends.</summary>
    internal static string QueryHash(QueryRecord query) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
            System.Text.Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(query.Definition, Resources.ConfigJson.Options))));

    /// <summary>Why the key a schedule was saved with no longer stands for its owner, or null when it does.</summary>
    internal static string? KeyProblem(ApiKeyInfo? key, DateTimeOffset now) =>
        key is null ? "is deleted"
        : key.RevokedAt is not null ? "is revoked"
        : key.ExpiresAt is { } expires && expires <= now ? "has expired"
        : null;

    /// <summary>
    /// What saving the schedule needs, asked again as its owner when it runs: a schedule keeps no
    /// right its owner lost, and never exceeds the scope of the key it was saved with.
    /// </summary>
    private static void DemandOwner(AccessPolicy access, Caller owner, StoredSchedule schedule, Permission permission, string? resource, string? environment)
    {
        if (!access.Allows(owner, permission, resource, environment))
        {
            throw new KeywayException(StatusCodes.Status403Forbidden, ScheduleErrors.OwnerForbidden,
                $"Schedule '{schedule.Name}' runs as '{owner.UserName}', who may no longer {permission.ToString().ToLowerInvariant()}" +
                $"{(resource is null ? "" : $" resource '{resource}'")}{(environment is null ? "" : $" in environment '{environment}'")}. " +
                "Grant it back, or save the schedule again as someone who may.");
        }
    }

    /// <summary>The permission saving (and running) a schedule with this action needs, and on what (rotating a variable: admin, as variables are).</summary>
    public static (Permission Permission, string? Resource, string? Environment) Requirement(CompiledSchedule schedule, string? queryResource) =>
        schedule.Action switch
        {
            ScheduleActions.Refresh => (Permission.Use, schedule.Definition.Resource, schedule.Environment),
            ScheduleActions.Rotate when schedule.Definition.Variable is not null => (Permission.Admin, null, schedule.Environment),
            ScheduleActions.Rotate => (Permission.Edit, schedule.Definition.Resource, schedule.Environment),
            ScheduleActions.Run => (Permission.Use, queryResource, schedule.Environment),
            _ => (Permission.Admin, null, null),
        };
}

using System.Text.Json;
using Keyway.Access;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Credentials;
using Keyway.Environments;
using Keyway.Queries;
using Keyway.Resources;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Schedules;

/// <summary>A schedule as the API shows it: its definition, who it runs as, when it runs next (in UTC and in its zone) and how it last went.</summary>
internal sealed record ScheduleView(
    string Name, ScheduleDefinition Schedule, string Owner, long Version, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt,
    DateTimeOffset? NextRunAt, string? NextRunLocal, ScheduleRun? LastRun);

internal sealed record ScheduleList(IReadOnlyList<ScheduleView> Schedules);

internal sealed record ScheduleHistory(string Schedule, IReadOnlyList<ScheduleRun> Runs);

/// <summary>
/// <c>/api/v1/schedules</c>. The route asks for a signed-in caller only; each handler demands what
/// the schedule's action needs on its target (docs/permissions.md, "Schedules"), with the caller's
/// key scope, so a schedule is never a way around a grant or a scope.
/// </summary>
internal static class ScheduleEndpoints
{
    public static RouteGroupBuilder MapSchedules(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/schedules").WithTags("Schedules");

        group.MapGet("/", async (HttpContext http, ScheduleStore store, ScheduleTargets targets, TimeProvider time, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                var last = await store.LastRunsAsync(ct);
                var views = new List<ScheduleView>();
                foreach (var schedule in await store.ListAsync(ct))
                {
                    if (await targets.MaySeeAsync(caller, schedule.Compiled, ct))
                    {
                        views.Add(await targets.ViewAsync(schedule, last.GetValueOrDefault(schedule.Name), time.GetUtcNow(), ct));
                    }
                }

                return TypedResults.Ok(new ScheduleList(views));
            })
            .Requires(Permission.Read)
            .WithSummary("List the schedules whose targets the caller may see, with their next run (UTC and local to each schedule's zone) and last outcome.");

        group.MapGet("/{name}", async Task<Results<Ok<ScheduleView>, ProblemHttpResult>> (
                string name, HttpContext http, ScheduleStore store, ScheduleTargets targets, TimeProvider time, CancellationToken ct) =>
            {
                var schedule = await targets.VisibleAsync(Caller.From(http.User)!, name, ct);
                var last = (await store.HistoryAsync(name, 1, ct)) is [var run] ? run : null;
                return TypedResults.Ok(await targets.ViewAsync(schedule, last, time.GetUtcNow(), ct));
            })
            .Requires(Permission.Read)
            .WithSummary("Get a schedule.");

        group.MapPut("/{name}", async Task<Results<Ok<ScheduleView>, Created<ScheduleView>>> (
                string name, HttpRequest request, HttpContext http, ScheduleStore store, ScheduleTargets targets, QueryService queries, IAuditLog audit,
                TimeProvider time, CancellationToken ct) =>
            {
                var definition = await ReadAsync(request, ct);
                var compiled = CompiledSchedule.Compile(name, definition);
                var caller = Caller.From(http.User)!;
                if (await store.GetAsync(name, ct) is { } existing)
                {
                    // Replacing a schedule takes it over: that needs what it needs now, on its old target.
                    await targets.DemandAsync(caller, existing.Compiled, existing.OwnerId, ct);
                }

                await targets.DemandAsync(caller, compiled, null, ct);
                await targets.CheckExistsAsync(caller, compiled, ct);
                // Read before the write: a query rewritten in between is hashed as it was, and the first run refuses it.
                var queryHash = compiled.Action == ScheduleActions.Run && await queries.GetAsync(definition.Query!, ct) is { } query
                    ? ScheduleActionRunner.QueryHash(query)
                    : null;
                var (schedule, created) = await store.PutAsync(compiled, caller.UserId, caller.Scope, time.GetUtcNow(), ct,
                    (transaction, isNew) => audit.StageAsync(transaction, new AuditEntry("schedule.put")
                    {
                        Actor = caller,
                        Resource = definition.Resource,
                        Environment = compiled.Action == ScheduleActions.Verify ? null : compiled.Environment,
                        Target = name,
                        Detail = new Dictionary<string, object?>
                        {
                            ["created"] = isNew,
                            ["action"] = compiled.Action,
                            ["target"] = compiled.Target,
                            ["cron"] = definition.Cron,
                            ["timeZone"] = compiled.Zone.Id,
                            ["enabled"] = compiled.Enabled,
                            ["ownerKey"] = caller.ApiKeyId,
                        },
                    }, ct), caller.ApiKeyId, queryHash);
                audit.NotifyStaged();
                var view = await targets.ViewAsync(schedule, null, time.GetUtcNow(), ct);
                return created ? TypedResults.Created($"/api/v1/schedules/{name}", view) : TypedResults.Ok(view);
            })
            .Requires(Permission.Read)
            .Accepts<ScheduleDefinition>("application/json")
            .WithSummary("Create or replace a schedule. It runs as the caller (narrowed by the caller's key scope), who needs what its action needs on its target.");

        group.MapDelete("/{name}", async Task<Results<NoContent, ProblemHttpResult>> (
                string name, HttpContext http, ScheduleStore store, ScheduleTargets targets, IAuditLog audit, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                var schedule = await targets.VisibleAsync(caller, name, ct);
                await targets.DemandAsync(caller, schedule.Compiled, schedule.OwnerId, ct);
                await store.DeleteAsync(name, ct, transaction => audit.StageAsync(transaction,
                    new AuditEntry("schedule.delete") { Actor = caller, Resource = schedule.Compiled.Definition.Resource, Target = name }, ct));
                audit.NotifyStaged();
                return TypedResults.NoContent();
            })
            .Requires(Permission.Read)
            .WithSummary("Delete a schedule and its history.");

        group.MapPost("/{name}/run", async Task<Results<Ok<ScheduleRun>, Accepted<ScheduleRun>>> (
                string name, HttpContext http, ScheduleTargets targets, ScheduleRunner runner, IHostApplicationLifetime lifetime, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                var schedule = await targets.VisibleAsync(caller, name, ct);
                await targets.DemandAsync(caller, schedule.Compiled, schedule.OwnerId, ct);
                await targets.DemandRunNowAsync(caller, schedule, ct);
                // The run is the schedule's (as its owner, recorded in its history): it finishes even if the caller hangs up.
                // A run whose first attempt succeeds or fails for good is answered in this request; one that goes to retry
                // is answered 202 with where to follow it, so no request waits through the backoff.
                var retrying = new TaskCompletionSource<ScheduleRun>(TaskCreationOptions.RunContinuationsAsynchronously);
                var run = runner.RunNowAsync(schedule, lifetime.ApplicationStopping, pending => retrying.TrySetResult(pending));
                if (await Task.WhenAny(run, retrying.Task) == run)
                {
                    return TypedResults.Ok(await run);
                }

                // The run goes on without this request; a failure to record it is the runner's to log.
                _ = run.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                var pending = await retrying.Task;
                return TypedResults.Accepted($"/api/v1/schedules/{Uri.EscapeDataString(name)}/runs/{pending.Id}", pending);
            })
            .Requires(Permission.Read)
            .WithSummary("Run a schedule now, as its owner, with its retries: 200 with the run when its first attempt decides it, else 202 with the run so far and a Location to follow it.");

        group.MapGet("/{name}/runs/{id}", async Task<Ok<ScheduleRun>> (
                string name, string id, HttpContext http, ScheduleStore store, ScheduleTargets targets, CancellationToken ct) =>
            {
                // Visibility first: someone who may not see the schedule learns nothing from how an id is written.
                await targets.VisibleAsync(Caller.From(http.User)!, name, ct);
                return TypedResults.Ok((long.TryParse(id, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var runId)
                        ? await store.GetRunAsync(name, runId, ct)
                        : null)
                    ?? throw new KeywayException(StatusCodes.Status404NotFound, "not_found",
                        $"Schedule '{name}' has no run {id} (the last 100 are kept). See them: keyway schedule history {name}"));
            })
            .Requires(Permission.Read)
            .WithSummary("One run of a schedule, by the id 'run now' answers: its outcome (running while it retries), attempts and error code.");

        group.MapGet("/{name}/history", async Task<Ok<ScheduleHistory>> (
                string name, int? limit, HttpContext http, ScheduleStore store, ScheduleTargets targets, CancellationToken ct) =>
            {
                await targets.VisibleAsync(Caller.From(http.User)!, name, ct);
                return TypedResults.Ok(new ScheduleHistory(name, await store.HistoryAsync(name, limit ?? ScheduleStore.HistoryLimit, ct)));
            })
            .Requires(Permission.Read)
            .WithSummary($"A schedule's runs, newest first (the last 100 are kept): scheduled time, start, end, outcome, attempts, duration, error code.");

        return api;
    }

    private static async Task<ScheduleDefinition> ReadAsync(HttpRequest request, CancellationToken ct)
    {
        try
        {
            return await JsonSerializer.DeserializeAsync<ScheduleDefinition>(request.Body, ConfigJson.Options, ct)
                ?? throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config", "The body is empty; send the schedule as JSON.");
        }
        catch (JsonException e)
        {
            throw ConfigJsonErrors.Invalid(e, "schedule");
        }
    }
}

/// <summary>What a schedule acts on, and who may see, save, delete or run it (docs/permissions.md, "Schedules").</summary>
internal sealed class ScheduleTargets(
    ScheduleStore store, AccessPolicy access, ResourceService resources, QueryService queries, VariableService variables,
    CredentialService credentials, UserStore users)
{
    /// <summary>The schedule, if the caller may see it: 404 when there is none, 403 (saying what is missing) when they may not.</summary>
    public async Task<StoredSchedule> VisibleAsync(Caller caller, string name, CancellationToken ct)
    {
        var schedule = await store.GetAsync(name, ct)
            ?? throw new KeywayException(StatusCodes.Status404NotFound, "not_found", $"There is no schedule named '{name}'. List them with 'keyway schedule list'.");
        if (!await MaySeeAsync(caller, schedule.Compiled, ct) && !(caller.UserId == schedule.OwnerId && await QueryResourceAsync(schedule.Compiled, ct) is null && schedule.Compiled.Action == ScheduleActions.Run))
        {
            var (permission, resource, environment) = ScheduleActionRunner.Requirement(schedule.Compiled, await QueryResourceAsync(schedule.Compiled, ct));
            access.Demand(caller, permission == Permission.Admin || resource is null ? Permission.Admin : Permission.Read, resource, environment);
        }

        return schedule;
    }

    /// <summary>Seeing a schedule needs read on its target's resource; a <c>verify</c> schedule is admin's.</summary>
    public async Task<bool> MaySeeAsync(Caller caller, CompiledSchedule schedule, CancellationToken ct)
    {
        var (permission, resource, environment) = ScheduleActionRunner.Requirement(schedule, await QueryResourceAsync(schedule, ct));
        return permission == Permission.Admin
            ? access.Allows(caller, Permission.Admin, null, null)
            : resource is not null && access.Allows(caller, Permission.Read, resource, environment);
    }

    /// <summary>Saving, deleting or running a schedule needs what its action needs (refresh, run: use; rotate: edit; verify: admin).</summary>
    public async Task DemandAsync(Caller caller, CompiledSchedule schedule, string? ownerId, CancellationToken ct)
    {
        var queryResource = await QueryResourceAsync(schedule, ct);
        if (schedule.Action == ScheduleActions.Run && queryResource is null)
        {
            // Its query is gone: the schedule can run nothing. Its owner may still clean it up, and an admin.
            if (caller.UserId != ownerId)
            {
                access.Demand(caller, Permission.Admin, null, null);
            }

            return;
        }

        var (permission, resource, environment) = ScheduleActionRunner.Requirement(schedule, queryResource);
        access.Demand(caller, permission, resource, environment);
    }

    /// <summary>
    /// "Run now" of a <c>refresh</c> or <c>rotate</c> schedule on a per-person credential acts on its owner's own
    /// credential: only that owner or an admin of the environment may trigger it (as for <c>GET …/credential?user=</c>).
    /// </summary>
    public async Task DemandRunNowAsync(Caller caller, StoredSchedule schedule, CancellationToken ct)
    {
        var compiled = schedule.Compiled;
        if (compiled.Action is not (ScheduleActions.Refresh or ScheduleActions.Rotate) || caller.UserId == schedule.OwnerId ||
            await resources.GetAsync(compiled.Definition.Resource!, ct) is not { Definition.ShareCredentials: false })
        {
            return;
        }

        if (!access.Allows(caller, Permission.Admin, compiled.Definition.Resource, compiled.Environment))
        {
            throw new KeywayException(StatusCodes.Status403Forbidden, "forbidden",
                $"Schedule '{schedule.Name}' acts on the personal credential of its owner in '{compiled.Environment}'; only its owner or an admin may run it now.");
        }
    }

    /// <summary>Per-field errors for a target that does not exist or cannot be acted on.</summary>
    public async Task CheckExistsAsync(Caller caller, CompiledSchedule schedule, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        var definition = schedule.Definition;
        if (schedule.Action != ScheduleActions.Verify && await variables.GetEnvironmentAsync(schedule.Environment, ct) is null)
        {
            errors.Add(new FieldError("environment", $"There is no environment '{schedule.Environment}'."));
        }

        if (schedule.Action == ScheduleActions.Run && await queries.GetAsync(definition.Query!, ct) is null)
        {
            errors.Add(new FieldError("query", $"There is no saved query '{definition.Query}'. List them with 'keyway query list'."));
        }

        if (schedule.Action == ScheduleActions.Rotate && definition.Variable is { } variable && errors.Count == 0)
        {
            var rotation = await variables.GetRotationAsync(schedule.Environment, variable, ct);
            if (rotation is null)
            {
                errors.Add(new FieldError("variable", $"There is no variable '{variable}' in '{schedule.Environment}'."));
            }
            else if (rotation.Value.Rotation is null)
            {
                errors.Add(new FieldError("variable",
                    $"'{variable}' in '{schedule.Environment}' has no rotation flow to run. Define one first: keyway var rotation set {variable} --env {schedule.Environment} -f rotation.json"));
            }
        }

        if (definition.Resource is { } resource)
        {
            if (await resources.GetAsync(resource, ct) is null)
            {
                errors.Add(new FieldError("resource", $"There is no resource '{resource}'."));
            }
            else if (errors.Count == 0)
            {
                try
                {
                    var (_, binding) = await credentials.BindingAsync(resource, schedule.Environment, caller, ct);
                    if (schedule.Action == ScheduleActions.Rotate && !binding.Provider.CanAcquire)
                    {
                        errors.Add(new FieldError("resource",
                            $"Resource '{resource}' gets its credential when a person connects (authorization code): a schedule cannot obtain a new one. " +
                            "Schedule 'refresh' instead."));
                    }
                }
                catch (KeywayException e)
                {
                    errors.Add(new FieldError("resource", e.Message));
                }
            }
        }

        if (errors.Count > 0)
        {
            throw CompiledSchedule.Invalid(schedule.Name, errors);
        }
    }

    public async Task<ScheduleView> ViewAsync(StoredSchedule schedule, ScheduleRun? last, DateTimeOffset now, CancellationToken ct)
    {
        var compiled = schedule.Compiled;
        var next = compiled.Enabled ? compiled.NextAfter(now) : null;
        var owner = (await users.FindByIdAsync(schedule.OwnerId, ct))?.Name ?? schedule.OwnerId;
        return new ScheduleView(schedule.Name, compiled.Definition, owner, schedule.Version, schedule.CreatedAt, schedule.UpdatedAt, next,
            next is { } at ? TimeZoneInfo.ConvertTime(at, compiled.Zone).ToString("yyyy-MM-dd HH:mm:ss zzz", System.Globalization.CultureInfo.InvariantCulture) + $" ({compiled.Zone.Id})" : null,
            last);
    }

    private async Task<string?> QueryResourceAsync(CompiledSchedule schedule, CancellationToken ct) =>
        schedule.Action == ScheduleActions.Run ? (await queries.GetAsync(schedule.Definition.Query!, ct))?.Definition.Resource : null;
}

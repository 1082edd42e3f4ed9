using System.Globalization;
using Keyway.Alerts;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Storage;

namespace Keyway.Schedules;

/// <summary>
/// Runs one occurrence of a schedule: claims it (one replica wins), attempts the action with
/// exponential backoff between attempts, records the outcome with its audit event in one
/// transaction, and raises <c>schedule.failed</c> when the last attempt fails.
/// </summary>
internal sealed partial class ScheduleRunner(
    ScheduleStore store, IScheduleActions actions, IAuditLog audit, IAlertSink alerts, TimeProvider time, string replica, ILogger<ScheduleRunner> logger)
{
    public string Replica => replica;

    /// <summary>
    /// Runs <paramref name="scheduledAt"/>'s occurrence if this replica claims it; null when another replica did.
    /// Before each wait for a retry, the history entry records the attempts so far and the last error code, and
    /// <paramref name="retrying"/> hears of it (what "run now" answers 202 on).
    /// </summary>
    public async Task<ScheduleRun?> RunAsync(
        StoredSchedule schedule, DateTimeOffset scheduledAt, string kind, CancellationToken cancellationToken, Action<ScheduleRun>? retrying = null)
    {
        var started = time.GetUtcNow();
        if (!await store.TryClaimAsync(schedule.Name, scheduledAt, kind, replica, started, RunKinds.Running, cancellationToken))
        {
            return null;
        }

        var attempts = 0;
        string? code = null;
        int? status = null;
        while (true)
        {
            attempts++;
            try
            {
                status = await actions.ExecuteAsync(schedule, cancellationToken);
                code = null;
                break;
            }
            catch (KeywayException e)
            {
                // Only the code is kept: a message may quote a provider or an upstream.
                code = e.Code;
                status = e.Extensions?.TryGetValue("status", out var s) == true && s is int value ? value : null;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                code = "interrupted";
                break;
            }
            catch (Exception e)
            {
                code = StoreFailure.IsUnavailable(e) ? "store_unavailable" : ScheduleErrors.Internal;
                Log.ActionFailed(logger, schedule.Name, e.GetType().Name);
            }

            if (attempts >= schedule.Compiled.MaxAttempts || ScheduleErrors.IsPermanent(code))
            {
                break;
            }

            var pending = new ScheduleRun(schedule.Name, scheduledAt, kind, replica, started, null, RunKinds.Running, attempts, code, status);
            await TryRecordProgressAsync(pending, cancellationToken);
            retrying?.Invoke(pending);

            try
            {
                await Task.Delay(schedule.Compiled.BackoffBefore(attempts + 1), time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                code = "interrupted";
                break;
            }
        }

        var run = new ScheduleRun(schedule.Name, scheduledAt, kind, replica, started, time.GetUtcNow(),
            code is null ? RunKinds.Succeeded : RunKinds.Failed, attempts, code, status);
        // Recorded even while stopping: an occurrence claimed is an occurrence accounted for.
        await store.FinishAsync(run, CancellationToken.None, transaction => audit.StageAsync(transaction, Entry(schedule, run), CancellationToken.None));
        audit.NotifyStaged();
        if (code is not null)
        {
            Log.RunFailed(logger, schedule.Name, code, attempts);
            await RaiseAsync(schedule, run);
        }

        return run;
    }

    /// <summary>
    /// Best effort: progress is for whoever follows the run, and the run's end is recorded whatever happens
    /// here. A store that cannot take it, or a stop, must not leave the occurrence <c>running</c> for good.
    /// </summary>
    private async Task TryRecordProgressAsync(ScheduleRun pending, CancellationToken cancellationToken)
    {
        try
        {
            await store.ProgressAsync(pending, cancellationToken);
        }
        catch (Exception e)
        {
            // A stop is seen by the wait that follows; anything else is logged by type (a message could quote SQL).
            if (e is not OperationCanceledException)
            {
                Log.ProgressNotRecorded(logger, pending.Schedule, e.GetType().Name);
            }
        }
    }

    /// <summary>Runs now ("run now"): an occurrence of its own, at the time it was asked for.</summary>
    public async Task<ScheduleRun> RunNowAsync(StoredSchedule schedule, CancellationToken cancellationToken, Action<ScheduleRun>? retrying = null)
    {
        var at = time.GetUtcNow();
        // Two requests in the same millisecond: the second takes the next one.
        for (var i = 0; i < 100; i++, at = at.AddMilliseconds(1))
        {
            if (await RunAsync(schedule, at, RunKinds.Manual, cancellationToken, retrying) is { } run)
            {
                return run;
            }
        }

        throw new KeywayException(StatusCodes.Status409Conflict, "conflict", $"Schedule '{schedule.Name}' is being run now by someone else; try again.");
    }

    /// <summary>Records an occurrence that the misfire policy skips, so history shows it and it is not considered again.</summary>
    public async Task<bool> SkipAsync(StoredSchedule schedule, DateTimeOffset scheduledAt, CancellationToken cancellationToken)
    {
        var claimed = await store.TryClaimAsync(schedule.Name, scheduledAt, RunKinds.CatchUp, replica, time.GetUtcNow(), RunKinds.Skipped, cancellationToken);
        if (claimed)
        {
            Log.Skipped(logger, schedule.Name, scheduledAt);
        }

        return claimed;
    }

    private static AuditEntry Entry(StoredSchedule schedule, ScheduleRun run) =>
        new("schedule.run", run.ErrorCode is null ? AuditOutcome.Success : AuditOutcome.Failure)
        {
            Resource = schedule.Compiled.Definition.Resource,
            Environment = schedule.Compiled.Action == ScheduleActions.Verify ? null : schedule.Compiled.Environment,
            Target = schedule.Name,
            Detail = new Dictionary<string, object?>
            {
                ["action"] = schedule.Compiled.Action,
                ["target"] = schedule.Compiled.Target,
                ["kind"] = run.Kind,
                ["scheduledAt"] = run.ScheduledAt,
                ["attempts"] = run.Attempts,
                ["durationMs"] = run.DurationMs,
                ["errorCode"] = run.ErrorCode,
                ["status"] = run.Status,
                ["owner"] = schedule.OwnerId,
            },
        };

    private async Task RaiseAsync(StoredSchedule schedule, ScheduleRun run)
    {
        try
        {
            await alerts.RaiseAsync(new Alert(AlertTypes.ScheduleFailed, $"schedule:{schedule.Name}", new Dictionary<string, string?>
            {
                ["schedule"] = schedule.Name,
                ["action"] = schedule.Compiled.Action,
                ["target"] = schedule.Compiled.Target,
                ["errorCode"] = run.ErrorCode,
                ["attempts"] = run.Attempts.ToString(CultureInfo.InvariantCulture),
                ["scheduledAt"] = run.ScheduledAt.ToString("O", CultureInfo.InvariantCulture),
            }));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Raising an alert never fails the run's record (the sink's contract); a broken sink is logged.
            Log.AlertFailed(logger, schedule.Name, e.GetType().Name);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(900, LogLevel.Warning, "Schedule {Schedule} failed ({Code}) after {Attempts} attempt(s)")]
        public static partial void RunFailed(ILogger logger, string schedule, string code, int attempts);

        [LoggerMessage(901, LogLevel.Error, "An attempt of schedule {Schedule} failed unexpectedly ({Error})")]
        public static partial void ActionFailed(ILogger logger, string schedule, string error);

        [LoggerMessage(902, LogLevel.Information, "Schedule {Schedule} missed {Occurrence:O}; skipped by its misfire policy")]
        public static partial void Skipped(ILogger logger, string schedule, DateTimeOffset occurrence);

        [LoggerMessage(903, LogLevel.Warning, "Raising schedule.failed for {Schedule} failed ({Error})")]
        public static partial void AlertFailed(ILogger logger, string schedule, string error);

        [LoggerMessage(904, LogLevel.Warning, "The progress of a run of schedule {Schedule} could not be recorded ({Error}); it retries and records its end")]
        public static partial void ProgressNotRecorded(ILogger logger, string schedule, string error);
    }
}

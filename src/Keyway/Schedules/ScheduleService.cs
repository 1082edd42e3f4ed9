using System.Collections.Concurrent;

namespace Keyway.Schedules;

/// <summary>What a schedule's clock says is due now: an occurrence, and whether it runs on time, as a catch-up, or is skipped.</summary>
internal sealed record DueOccurrence(DateTimeOffset At, string Kind);

/// <summary>
/// When schedules are due, and the misfire policy (docs/operations.md, "Schedules"). Pure: the
/// tests drive it with a fake clock.
/// </summary>
internal static class ScheduleClock
{
    /// <summary>An occurrence up to this late still runs as itself (a tick, a busy store, a restart within a minute).</summary>
    public static readonly TimeSpan OnTime = TimeSpan.FromMinutes(1);

    /// <summary><c>fireOnce</c> catches up on what was missed within this bound; anything older is skipped.</summary>
    public static readonly TimeSpan CatchUpWindow = TimeSpan.FromHours(24);

    /// <summary>
    /// What is due at <paramref name="now"/> for a schedule whose occurrences up to
    /// <paramref name="anchor"/> are accounted for (its latest claimed occurrence, or when it was saved).
    /// Only the latest occurrence due counts: several missed ones make at most one run.
    /// </summary>
    public static DueOccurrence? Decide(CompiledSchedule schedule, DateTimeOffset anchor, DateTimeOffset now)
    {
        if (schedule.NextAfter(anchor) is not { } next || next > now || LatestUpTo(schedule, anchor, now) is not { } latest)
        {
            return null;
        }

        if (now - latest <= OnTime)
        {
            return new DueOccurrence(latest, RunKinds.Cron);
        }

        // Missed: no replica was running when it came.
        return schedule.Misfire == MisfirePolicies.Skip || now - latest > CatchUpWindow
            ? new DueOccurrence(latest, RunKinds.Skipped)
            : new DueOccurrence(latest, RunKinds.CatchUp);
    }

    /// <summary>
    /// The latest occurrence in (<paramref name="after"/>, <paramref name="until"/>]. Cronos counts
    /// forward only, so windows that double in length are searched backwards from
    /// <paramref name="until"/>: a second-by-second cron looks at a minute, a yearly one at a few dozen windows.
    /// </summary>
    public static DateTimeOffset? LatestUpTo(CompiledSchedule schedule, DateTimeOffset after, DateTimeOffset until)
    {
        var span = TimeSpan.FromMinutes(1);
        var to = until;
        while (to > after)
        {
            var from = to - span < after ? after : to - span;
            DateTimeOffset? last = null;
            foreach (var occurrence in schedule.Cron.GetOccurrences(from, to, schedule.Zone, fromInclusive: false, toInclusive: true))
            {
                last = occurrence;
            }

            if (last is not null)
            {
                return last;
            }

            to = from;
            span *= 2;
        }

        return null;
    }
}

/// <summary>
/// Fires schedules: every second, each enabled schedule's due occurrence is claimed in the store
/// (<see cref="ScheduleStore.TryClaimAsync"/>) and run by whichever replica claimed it. One run of
/// a schedule at a time per replica; an occurrence that comes meanwhile is left to another replica
/// or, on one replica, folded into the next (only the latest due occurrence runs).
/// </summary>
internal sealed partial class ScheduleService(ScheduleStore store, ScheduleRunner runner, TimeProvider time, ILogger<ScheduleService> logger)
    : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, Task> _running = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            do
            {
                try
                {
                    await TickAsync(stoppingToken);
                }
                catch (Exception e) when (Storage.StoreFailure.IsUnavailable(e))
                {
                    // Nothing is claimed while the store is away; what comes due meanwhile is judged by the misfire policy.
                    Log.TickWaitsForStore(logger, e.GetType().Name);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Log.TickFailed(logger, e.GetType().Name);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping (or never started: see CredentialRefresher).
        }

        await IdleAsync();
    }

    /// <summary>Claims and starts what is due now. Runs go on in the background; <see cref="IdleAsync"/> waits for them.</summary>
    internal async Task TickAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var schedules = await store.ListAsync(cancellationToken);
        var latest = await store.LatestOccurrencesAsync(cancellationToken);
        foreach (var schedule in schedules)
        {
            if (!schedule.Compiled.Enabled || _running.ContainsKey(schedule.Name))
            {
                continue;
            }

            // Occurrences before the schedule was saved (or changed) are not its own.
            var anchor = latest.TryGetValue(schedule.Name, out var claimed) && claimed > schedule.UpdatedAt ? claimed : schedule.UpdatedAt;
            if (ScheduleClock.Decide(schedule.Compiled, anchor, now) is not { } due)
            {
                continue;
            }

            if (due.Kind == RunKinds.Skipped)
            {
                await runner.SkipAsync(schedule, due.At, cancellationToken);
                continue;
            }

            // Registered before it starts, so its own removal when it ends can never come first.
            var go = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _running[schedule.Name] = RunInBackgroundAsync(schedule, due, go.Task, cancellationToken);
            go.SetResult();
        }
    }

    private async Task RunInBackgroundAsync(StoredSchedule schedule, DueOccurrence due, Task go, CancellationToken cancellationToken)
    {
        await go;
        try
        {
            await runner.RunAsync(schedule, due.At, due.Kind, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.RunNotRecorded(logger, schedule.Name, e.GetType().Name);
        }
        catch (OperationCanceledException)
        {
            // Stopping before the run was claimed.
        }
        finally
        {
            _running.TryRemove(schedule.Name, out _);
        }
    }

    /// <summary>Waits for the runs this replica started.</summary>
    internal Task IdleAsync() => Task.WhenAll(_running.Values.ToArray());

    private static partial class Log
    {
        [LoggerMessage(910, LogLevel.Error, "The schedule tick failed ({Error}); it runs again in a second")]
        public static partial void TickFailed(ILogger logger, string error);

        [LoggerMessage(911, LogLevel.Warning, "The schedule tick could not reach the store ({Error}); it runs again in a second")]
        public static partial void TickWaitsForStore(ILogger logger, string error);

        [LoggerMessage(912, LogLevel.Error, "A run of schedule {Schedule} could not be recorded ({Error})")]
        public static partial void RunNotRecorded(ILogger logger, string schedule, string error);
    }
}

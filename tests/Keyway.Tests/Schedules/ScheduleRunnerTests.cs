using Keyway.Alerts;
using Keyway.Api;
using Keyway.Environments;
using Keyway.Schedules;
using Keyway.Storage;
using Keyway.Tests.Alerts;
using Keyway.Tests.Audit;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Schedules;

/// <summary>
/// The runner and the tick on a real store with a fake clock: claims, retries with backoff, the
/// record of a failure, the misfire policy applied on start, one run per occurrence for two replicas.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ScheduleRunnerTests
{
    private static readonly DateTimeOffset Start = new(2026, 5, 1, 9, 0, 0, TimeSpan.Zero);

    [Fact]
    public async Task A_failing_attempt_is_retried_after_a_doubling_backoff_and_the_run_records_its_attempts()
    {
        await using var context = await Context.CreateAsync(StoreKind.Sqlite);
        var schedule = await context.SaveAsync("retry", new ScheduleDefinition { Cron = "@daily", Action = "verify", RetryBackoffSeconds = 10 });
        context.Actions.Fail("upstream_unreachable", times: 2);

        var running = context.Runner("a").RunAsync(schedule, Start, RunKinds.Manual, CancellationToken.None);
        await context.WaitForBackoffAsync(1);
        context.Time.Advance(TimeSpan.FromSeconds(9.9));
        Assert.Equal(1, context.Actions.Calls);  // not before the backoff
        context.Time.Advance(TimeSpan.FromSeconds(0.1));
        await context.WaitForBackoffAsync(2);
        Assert.Equal(2, context.Actions.Calls);
        context.Time.Advance(TimeSpan.FromSeconds(19.9));
        Assert.Equal(2, context.Actions.Calls);  // the second wait is twice the first
        context.Time.Advance(TimeSpan.FromSeconds(0.1));
        var run = (await running)!;

        Assert.Equal((RunKinds.Succeeded, 3, (string?)null), (run.Outcome, run.Attempts, run.ErrorCode));
        Assert.Equal(30_000, run.DurationMs);
        Assert.Empty(context.Alerts.Raised);
        var entry = Assert.Single(context.Audit.Entries);
        Assert.Equal(("schedule.run", "success"), (entry.Action, entry.Outcome));
    }

    [Fact]
    public async Task A_run_that_keeps_failing_records_its_code_and_attempts_audits_and_alerts()
    {
        await using var context = await Context.CreateAsync(StoreKind.Sqlite);
        var schedule = await context.SaveAsync("doomed", new ScheduleDefinition { Cron = "@daily", Action = "verify", MaxAttempts = 2, RetryBackoffSeconds = 1 });
        context.Actions.Fail("upstream_unreachable", times: 100);

        var running = context.Runner("a").RunAsync(schedule, Start, RunKinds.Cron, CancellationToken.None);
        await context.WaitForBackoffAsync(1);
        context.Time.Advance(TimeSpan.FromSeconds(1));
        var run = (await running)!;

        Assert.Equal((RunKinds.Failed, 2, "upstream_unreachable"), (run.Outcome, run.Attempts, run.ErrorCode));
        var stored = Assert.Single(await context.Store.HistoryAsync("doomed", 10, CancellationToken.None));
        Assert.Equal((RunKinds.Failed, 2, "upstream_unreachable", RunKinds.Cron), (stored.Outcome, stored.Attempts, stored.ErrorCode, stored.Kind));
        var alert = Assert.Single(context.Alerts.Raised);
        Assert.Equal((AlertTypes.ScheduleFailed, "schedule:doomed", "upstream_unreachable", "2"), (alert.Type, alert.Subject, alert.Data["errorCode"], alert.Data["attempts"]));
        Assert.Equal(("schedule.run", "failure"), (context.Audit.Entries[0].Action, context.Audit.Entries[0].Outcome));
    }

    [Fact]
    public async Task An_owner_who_lost_access_fails_at_once_without_retries()
    {
        await using var context = await Context.CreateAsync(StoreKind.Sqlite);
        var schedule = await context.SaveAsync("lost", new ScheduleDefinition { Cron = "@daily", Action = "verify" });
        context.Actions.Fail(ScheduleErrors.OwnerForbidden, times: 100);

        var run = (await context.Runner("a").RunAsync(schedule, Start, RunKinds.Cron, CancellationToken.None))!;

        Assert.Equal((RunKinds.Failed, 1, ScheduleErrors.OwnerForbidden), (run.Outcome, run.Attempts, run.ErrorCode));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Two_replicas_ticking_at_the_same_moment_run_each_occurrence_once(StoreKind kind)
    {
        await using var context = await Context.CreateAsync(kind);
        await context.SaveAsync("often", new ScheduleDefinition { Cron = "*/10 * * * * *", Action = "verify" });
        var a = context.Service("a");
        var b = context.Service("b");

        for (var i = 0; i < 5; i++)
        {
            context.Time.Advance(TimeSpan.FromSeconds(10));
            await Task.WhenAll(a.TickAsync(CancellationToken.None), b.TickAsync(CancellationToken.None));
            await Task.WhenAll(a.IdleAsync(), b.IdleAsync());
        }

        var history = await context.Store.HistoryAsync("often", 100, CancellationToken.None);
        Assert.Equal(5, context.Actions.Calls);
        Assert.Equal(5, history.Select(r => r.ScheduledAt).Distinct().Count());
        Assert.All(history, r => Assert.Equal((RunKinds.Cron, RunKinds.Succeeded), (r.Kind, r.Outcome)));
        Assert.Equal(Start.AddSeconds(50), history[0].ScheduledAt);
    }

    [Fact]
    public async Task On_start_after_downtime_fireOnce_catches_up_once_and_skip_records_a_skip()
    {
        await using var context = await Context.CreateAsync(StoreKind.Sqlite);
        await context.SaveAsync("catch-up", new ScheduleDefinition { Cron = "0 * * * *", Action = "verify" });
        await context.SaveAsync("no-catch-up", new ScheduleDefinition { Cron = "0 * * * *", Action = "verify", Misfire = "skip" });

        // Saved at 09:00, down until 12:30: 10:00, 11:00 and 12:00 were missed.
        context.Time.Advance(TimeSpan.FromHours(3.5));
        var service = context.Service("a");
        await service.TickAsync(CancellationToken.None);
        await service.IdleAsync();
        await service.TickAsync(CancellationToken.None);
        await service.IdleAsync();

        var caughtUp = Assert.Single(await context.Store.HistoryAsync("catch-up", 100, CancellationToken.None));
        Assert.Equal((RunKinds.CatchUp, RunKinds.Succeeded, Start.AddHours(3)), (caughtUp.Kind, caughtUp.Outcome, caughtUp.ScheduledAt));
        var skipped = Assert.Single(await context.Store.HistoryAsync("no-catch-up", 100, CancellationToken.None));
        Assert.Equal((RunKinds.Skipped, Start.AddHours(3)), (skipped.Outcome, skipped.ScheduledAt));
        Assert.Equal(1, context.Actions.Calls);

        // Back to normal: 13:00 runs on time, for both.
        context.Time.Advance(TimeSpan.FromMinutes(30));
        await service.TickAsync(CancellationToken.None);
        await service.IdleAsync();
        Assert.Equal(3, context.Actions.Calls);
    }

    [Fact]
    public async Task A_disabled_schedule_does_not_run_and_history_is_kept_bounded()
    {
        await using var context = await Context.CreateAsync(StoreKind.Sqlite);
        await context.SaveAsync("off", new ScheduleDefinition { Cron = "* * * * * *", Action = "verify", Enabled = false });
        var often = await context.SaveAsync("manual", new ScheduleDefinition { Cron = "@yearly", Action = "verify" });
        var service = context.Service("a");
        context.Time.Advance(TimeSpan.FromSeconds(5));
        await service.TickAsync(CancellationToken.None);
        await service.IdleAsync();
        Assert.Empty(await context.Store.HistoryAsync("off", 100, CancellationToken.None));

        for (var i = 0; i < ScheduleStore.HistoryLimit + 5; i++)
        {
            await context.Runner("a").RunNowAsync(often, CancellationToken.None);
            context.Time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(ScheduleStore.HistoryLimit, await context.CountRunsAsync("manual"));
        var history = await context.Store.HistoryAsync("manual", 1000, CancellationToken.None);
        Assert.Equal(context.Time.GetUtcNow().AddSeconds(-1), history[0].ScheduledAt);
    }

    private sealed class Context : IAsyncDisposable
    {
        private readonly ScratchStore _scratch;

        private Context(ScratchStore scratch, CountingTime time)
        {
            _scratch = scratch;
            Time = time;
            Store = new ScheduleStore(scratch.Database, new ChangeFeed());
        }

        public CountingTime Time { get; }

        public ScheduleStore Store { get; }

        public FakeActions Actions { get; } = new();

        public RecordingAlerts Alerts { get; } = new();

        public RecordingAuditLog Audit { get; } = new();

        public static async Task<Context> CreateAsync(StoreKind kind)
        {
            var scratch = await ScratchStore.CreateAsync(kind);
            var time = new CountingTime();
            await new Migrator(scratch.Database, time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
            return new Context(scratch, time);
        }

        public async Task<StoredSchedule> SaveAsync(string name, ScheduleDefinition definition) =>
            (await Store.PutAsync(CompiledSchedule.Compile(name, definition), "usr_owner", null, Time.GetUtcNow(), CancellationToken.None)).Schedule;

        public ScheduleRunner Runner(string replica) =>
            new(Store, Actions, Audit, Alerts, Time, replica, NullLogger<ScheduleRunner>.Instance);

        public ScheduleService Service(string replica) => new(Store, Runner(replica), Time, NullLogger<ScheduleService>.Instance);

        /// <summary>Until the runner waits on its <paramref name="waits"/>th backoff: advancing the clock before would not reach it.</summary>
        public Task WaitForBackoffAsync(int waits) =>
            Poll.UntilAsync(() => Time.Timers >= waits, TimeSpan.FromSeconds(10), $"backoff wait {waits}");

        public async Task<long> CountRunsAsync(string schedule)
        {
            await using var connection = await _scratch.Database.OpenAsync(CancellationToken.None);
            return await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM schedule_runs WHERE schedule = @schedule", new { schedule });
        }

        public ValueTask DisposeAsync() => _scratch.DisposeAsync();
    }

    /// <summary>A fake clock that counts the timers made on it (each backoff wait is one).</summary>
    private sealed class CountingTime() : FakeTimeProvider(ScheduleRunnerTests.Start)
    {
        private int _timers;

        public int Timers => Volatile.Read(ref _timers);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Interlocked.Increment(ref _timers);
            return base.CreateTimer(callback, state, dueTime, period);
        }
    }

    /// <summary>An action that fails with a code a number of times, then succeeds.</summary>
    private sealed class FakeActions : IScheduleActions
    {
        private int _calls;
        private int _failures;
        private string _code = "";

        public int Calls => Volatile.Read(ref _calls);

        public void Fail(string code, int times) => (_code, _failures) = (code, times);

        public Task<int?> ExecuteAsync(StoredSchedule schedule, CancellationToken cancellationToken)
        {
            var call = Interlocked.Increment(ref _calls);
            return call <= _failures
                ? throw new KeywayException(502, _code, "failed on purpose")
                : Task.FromResult<int?>(null);
        }
    }

}

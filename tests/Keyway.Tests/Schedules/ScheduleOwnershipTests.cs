using Keyway.Access;
using Keyway.Environments;
using Keyway.Queries;
using Keyway.Schedules;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Schedules;

/// <summary>
/// What a schedule records about how it was saved, and the checks a run makes with it: the saving
/// key still in force, the saved query still the one the owner saw (by content, not by timestamp).
/// </summary>
[Trait("Category", "Integration")]
public sealed class ScheduleOwnershipTests
{
    private static readonly DateTimeOffset Now = new(2026, 6, 1, 12, 0, 0, TimeSpan.Zero);

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_schedule_keeps_the_key_that_saved_it_and_its_querys_hash_and_a_session_save_clears_the_key(StoreKind kind)
    {
        await using var scratch = await ScratchStore.CreateAsync(kind);
        var time = new FakeTimeProvider(Now);
        await new Migrator(scratch.Database, time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
        var store = new ScheduleStore(scratch.Database, new ChangeFeed());
        var compiled = CompiledSchedule.Compile("nightly", new ScheduleDefinition { Cron = "@daily", Action = "run", Query = "report" });

        var (saved, _) = await store.PutAsync(compiled, "usr_ana", null, Now, CancellationToken.None, ownerKeyId: "key_1", queryHash: "abc");
        Assert.Equal(("key_1", "abc"), (saved.OwnerKeyId, saved.QueryHash));

        var (again, created) = await store.PutAsync(compiled, "usr_ana", null, Now, CancellationToken.None);
        Assert.False(created);
        Assert.Equal(((string?)null, (string?)null), (again.OwnerKeyId, again.QueryHash));
    }

    [Fact]
    public void A_query_rewritten_in_the_same_millisecond_as_the_schedule_was_saved_counts_as_changed()
    {
        var original = Query(new QueryDefinition { Resource = "billing", Method = "GET", Path = "/report" }, Now);
        var schedule = Schedule(Now, ScheduleActionRunner.QueryHash(original));
        // Same timestamp as the schedule: a comparison of times sees nothing.
        var rewritten = Query(new QueryDefinition { Resource = "billing", Method = "POST", Path = "/as/owner" }, Now);

        Assert.False(ScheduleActionRunner.QueryChanged(schedule, original));
        Assert.True(ScheduleActionRunner.QueryChanged(schedule, rewritten));
        // Deleted and made again with the same content: the same query, so it may run.
        Assert.False(ScheduleActionRunner.QueryChanged(schedule, Query(original.Definition, Now.AddMinutes(5), version: 1)));
        // A schedule saved before hashes were kept compares times, as it did.
        Assert.True(ScheduleActionRunner.QueryChanged(Schedule(Now, null), Query(original.Definition, Now.AddMilliseconds(1))));
    }

    [Fact]
    public void A_revoked_expired_or_deleted_key_no_longer_stands_for_the_schedules_owner()
    {
        ApiKeyInfo Key(DateTimeOffset? expires, DateTimeOffset? revoked) => new("key_1", "ci", "usr_ana", "kw_…", Now.AddDays(-1), expires, null, revoked);

        Assert.Null(ScheduleActionRunner.KeyProblem(Key(null, null), Now));
        Assert.Null(ScheduleActionRunner.KeyProblem(Key(Now.AddSeconds(1), null), Now));
        Assert.Equal("has expired", ScheduleActionRunner.KeyProblem(Key(Now, null), Now));
        Assert.Equal("is revoked", ScheduleActionRunner.KeyProblem(Key(null, Now.AddHours(-1)), Now));
        Assert.Equal("is deleted", ScheduleActionRunner.KeyProblem(null, Now));
    }

    private static QueryRecord Query(QueryDefinition definition, DateTimeOffset updatedAt, long version = 2) =>
        new("report", version, Now.AddDays(-1), updatedAt, definition);

    private static StoredSchedule Schedule(DateTimeOffset savedAt, string? queryHash) =>
        new(CompiledSchedule.Compile("nightly", new ScheduleDefinition { Cron = "@daily", Action = "run", Query = "report" }),
            "usr_ana", null, 1, savedAt, savedAt, "key_1", queryHash);
}

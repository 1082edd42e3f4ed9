using Keyway.Access;
using Keyway.Audit;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using TestStore = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Audit;

/// <summary>
/// The audit outbox: a change's event is staged in the change's transaction, so it is chained when the
/// change commits and never when it rolls back; events left by a process that died are chained when
/// the writer starts; and the chain verifies, with staged and queued events interleaved, on both stores.
/// </summary>
public sealed class AuditOutboxTests
{
    private const string Canary = "CANARY-audit-outbox-91c4";

    private static readonly Caller s_alice = new("u_alice", "alice", Caller.AdminRole, "k_alice", null);
    private static readonly Caller s_bob = new("u_bob", "bob", Caller.MemberRole, null, null);

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    [Trait("Category", "Integration")]
    public async Task A_staged_event_is_chained_after_its_change_commits_and_never_after_a_rollback(TestStore store)
    {
        await using var context = await Context.CreateAsync(store);
        using var log = context.NewLog();

        await using (var connection = await context.Database.OpenAsync(CancellationToken.None))
        {
            await using (var rolledBack = await connection.BeginTransactionAsync())
            {
                await connection.ExecuteAsync("INSERT INTO environments (name, description, created_at) VALUES ('gone', NULL, 0)", transaction: rolledBack);
                await log.StageAsync(rolledBack, new AuditEntry("environment.put") { Actor = s_bob, Environment = "gone" }, CancellationToken.None);
                await rolledBack.RollbackAsync();
            }

            await using var committed = await connection.BeginTransactionAsync();
            await connection.ExecuteAsync("INSERT INTO environments (name, description, created_at) VALUES ('staging', NULL, 0)", transaction: committed);
            await log.StageAsync(committed, new AuditEntry("environment.put")
            {
                Actor = s_alice,
                Environment = "staging",
                Detail = new Dictionary<string, object?> { ["note"] = "holds " + Canary, ["created"] = true },
            }, CancellationToken.None);
            await committed.CommitAsync();
        }

        // Staged is durable, and already redacted: the outbox never holds a secret.
        await using (var connection = await context.Database.OpenAsync(CancellationToken.None))
        {
            var waiting = await connection.QueryAsync<string?>("SELECT detail FROM audit_outbox");
            Assert.Equal(["""{"note":"holds [REDACTED]","created":true}"""], waiting);
        }

        log.NotifyStaged();
        await log.WriteAsync([], CancellationToken.None);

        var audit = new AuditStore(context.Database);
        var events = await audit.PageAsync(0, 10, CancellationToken.None);
        var chained = Assert.Single(events);
        Assert.Equal(("environment.put", "staging", "u_alice", "alice", ActorKind.Key, "k_alice", """{"note":"holds [REDACTED]","created":true}"""),
            (chained.Action, chained.Environment, chained.ActorId, chained.ActorName, chained.ActorKind, chained.KeyId, chained.Detail));
        Assert.Equal(context.Now(), chained.At);
        Assert.Equal(0, await context.OutboxCountAsync());
        var result = await new AuditVerifier(audit, TestSeal.Shared).VerifyAsync(CancellationToken.None);
        Assert.True(result.Ok, result.FirstBroken?.Problem);
        Assert.Equal(1, result.Checked);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    [Trait("Category", "Integration")]
    public async Task Events_a_dead_process_left_in_the_outbox_are_chained_when_the_writer_starts(TestStore store)
    {
        await using var context = await Context.CreateAsync(store);
        // A writer that staged and died before chaining: it is never started.
        using (var dead = context.NewLog())
        {
            for (var i = 0; i < 7; i++)
            {
                await dead.RecordDurableAsync(new AuditEntry("variable.set")
                {
                    Actor = i % 2 == 0 ? s_bob : null,
                    Environment = "production",
                    Target = $"v{i}",
                    Detail = new Dictionary<string, object?> { ["version"] = i + 1 },
                }, CancellationToken.None);
            }
        }

        Assert.Equal(7, await context.OutboxCountAsync());
        // A batch of 3 takes the outbox in three batches, with queued runs in between.
        using var log = context.NewLog(batchSize: 3);
        await log.RecordAsync(AuditEntries.Run("proxy", s_alice, "github", "production", "GET", "/a", 200, 1, false, null));
        await log.StartAsync(CancellationToken.None);
        await log.RecordAsync(AuditEntries.Run("proxy", s_alice, "github", "production", "GET", "/b", 200, 1, false, null));
        var audit = new AuditStore(context.Database);
        await Poll.UntilAsync(async () => (await audit.HeadAsync(CancellationToken.None)).Seq == 9, TimeSpan.FromSeconds(30), "9 events chained");
        await log.StopAsync(CancellationToken.None);

        Assert.Equal(0, await context.OutboxCountAsync());
        var events = await audit.PageAsync(0, 20, CancellationToken.None);
        Assert.Equal(Enumerable.Range(0, 7).Select(i => $"v{i}"), events.Where(e => e.Action == "variable.set").Select(e => e.Target));
        Assert.Equal(2, events.Count(e => e.Action == AuditEntries.RunAction));
        Assert.Equal((ActorKind.System, "keyway", ActorKind.System), (events.First(e => e.Target == "v1").ActorId, events.First(e => e.Target == "v1").ActorName, events.First(e => e.Target == "v1").ActorKind));
        Assert.Equal((ActorKind.User, (string?)null), (events.First(e => e.Target == "v0").ActorKind, events.First(e => e.Target == "v0").KeyId));
        var result = await new AuditVerifier(audit, TestSeal.Shared).VerifyAsync(CancellationToken.None);
        Assert.True(result.Ok, result.FirstBroken?.Problem);
        Assert.Equal(9, result.Checked);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    [Trait("Category", "Integration")]
    public async Task A_refused_batch_leaves_staged_events_waiting_and_the_next_batch_chains_them(TestStore store)
    {
        await using var context = await Context.CreateAsync(store);
        using var log = context.NewLog();
        await log.RecordDurableAsync(new AuditEntry("user.create") { Actor = s_alice, Target = "carol" }, CancellationToken.None);

        // Someone holds the next seq: the batch is refused, outbox and all.
        await using (var connection = await context.Database.OpenAsync(CancellationToken.None))
        {
            await connection.ExecuteAsync(
                "INSERT INTO audit_events (seq, id, at, actor_id, actor_name, actor_kind, action, outcome, prev_hash, hash) VALUES (1, 'ev_rogue', 0, 'x', 'x', 'user', 'x', 'success', 'x', 'x')");
        }

        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => log.WriteAsync([], CancellationToken.None));
        Assert.Equal(1, await context.OutboxCountAsync());

        await using (var connection = await context.Database.OpenAsync(CancellationToken.None))
        {
            await connection.ExecuteAsync("DELETE FROM audit_events WHERE id = 'ev_rogue'");
        }

        await log.WriteAsync([], CancellationToken.None);
        Assert.Equal(0, await context.OutboxCountAsync());
        var audit = new AuditStore(context.Database);
        Assert.Equal("carol", (await audit.FindBySeqAsync(1, CancellationToken.None))!.Target);
        Assert.True((await new AuditVerifier(audit, TestSeal.Shared).VerifyAsync(CancellationToken.None)).Ok);
    }

    /// <summary>A migrated store of either kind, dropped on dispose.</summary>
    private sealed class Context : IAsyncDisposable
    {
        private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 3, 2, 9, 0, 0, TimeSpan.Zero));
        private readonly ScratchStore _scratch;

        private Context(ScratchStore scratch) => _scratch = scratch;

        public Database Database => _scratch.Database;

        public static async Task<Context> CreateAsync(TestStore store)
        {
            var context = new Context(await ScratchStore.CreateAsync(store));
            await new Migrator(context.Database, context._time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
            return context;
        }

        public long Now() => _time.GetUtcNow().ToUnixTimeMilliseconds();

        // No linger: the fake clock never moves, and a linger would wait on it for ever.
        public AuditLog NewLog(int batchSize = 500) => new(Database, TestSeal.Shared, _time, _ => Task.FromResult(new Redactor([Canary])),
            new AuditOptions { BatchSize = batchSize, Linger = TimeSpan.Zero }, NullLogger<AuditLog>.Instance);

        public async Task<long> OutboxCountAsync()
        {
            await using var connection = await Database.OpenAsync(CancellationToken.None);
            return await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM audit_outbox");
        }

        public ValueTask DisposeAsync() => _scratch.DisposeAsync();
    }
}

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
/// The audit writer's fast path: a run's typed detail is stored as the text the dictionary form gave,
/// multi-row inserts keep the chain whole across statement boundaries, and the filters still find their
/// events with the indexes migration 0006 leaves, on both stores.
/// </summary>
public sealed class AuditWriteTests
{
    private const string Canary = "CANARY-audit-write-5e2a";

    private static readonly Caller s_alice = new("u_alice", "alice", Caller.AdminRole, "k_alice", null);
    private static readonly Caller s_bob = new("u_bob", "bob", Caller.MemberRole, null, null);

    /// <summary>The dictionary <see cref="AuditEntries.Run"/> built before runs had a typed detail, key for key.</summary>
    private static Dictionary<string, object?> OldRunDetail(
        string kind, string method, string path, int? status, long durationMs, bool refreshed, string? errorCode) =>
        new(8, StringComparer.Ordinal)
        {
            ["kind"] = kind,
            ["method"] = method,
            [AuditRedaction.PathKey] = path,
            ["status"] = status,
            ["durationMs"] = durationMs,
            ["refreshed"] = refreshed,
            ["error"] = errorCode,
        };

    [Theory]
    [InlineData("proxy", "GET", "/repos/keyway/issues?state=open&page=2", 200, 12L, false, null,
        """{"kind":"proxy","method":"GET","path":"/repos/keyway/issues?state=[REDACTED]\u0026page=2","status":200,"durationMs":12,"refreshed":false,"error":null}""")]
    [InlineData("query", "POST", "/v1/items", null, 30_001L, true, "upstream_timeout",
        """{"kind":"query","method":"POST","path":"/v1/items","status":null,"durationMs":30001,"refreshed":true,"error":"upstream_timeout"}""")]
    [InlineData("run", "GET", "/caf\u00e9/<b>'\"\\?q=x+y&access_token=abc", 502, 0L, false, "upstream_unreachable",
        """{"kind":"run","method":"GET","path":"/caf\u00E9/\u003Cb\u003E\u0027\u0022\\?q=x\u002By\u0026access_token=[REDACTED]","status":502,"durationMs":0,"refreshed":false,"error":"upstream_unreachable"}""")]
    [InlineData("proxy", "GET", "/echo?q=CANARY-audit-write-5e2a", -1, -5L, false, null,
        """{"kind":"proxy","method":"GET","path":"/echo?q=[REDACTED]","status":-1,"durationMs":-5,"refreshed":false,"error":null}""")]
    public void A_run_detail_is_stored_as_exactly_the_text_the_dictionary_form_gave(
        string kind, string method, string path, int? status, long durationMs, bool refreshed, string? error, string expected)
    {
        var redactor = new Redactor([Canary]);
        var entry = AuditEntries.Run(kind, s_alice, "github", "production", method, path, status, durationMs, refreshed, error);

        Assert.Equal(expected, AuditRedaction.Serialize(entry.Run!.Value, redactor));
        Assert.Equal(expected, AuditRedaction.Serialize(OldRunDetail(kind, method, path, status, durationMs, refreshed, error), redactor));
        // A reader of Detail still sees the run's facts, in the same order.
        Assert.Equal(OldRunDetail(kind, method, path, status, durationMs, refreshed, error), entry.Detail);
        Assert.Equal(expected, AuditRedaction.Serialize(entry.Detail, redactor));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    [Trait("Category", "Integration")]
    public async Task Batches_across_statement_boundaries_keep_a_chain_that_verifies(TestStore store)
    {
        await using var context = await StoreContext.CreateAsync(store);
        using var log = context.NewLog(batchSize: 1000);
        var sizes = new[] { 1, AuditInsert.PostgresRowsPerStatement - 1, AuditInsert.PostgresRowsPerStatement, AuditInsert.PostgresRowsPerStatement + 1, 500 };
        var written = 0;
        foreach (var size in sizes)
        {
            var batch = new List<AuditLog.Pending>();
            for (var i = 0; i < size; i++)
            {
                var n = written + i;
                var entry = n % 2 == 0
                    ? AuditEntries.Run("proxy", n % 4 == 0 ? s_alice : null, "github", "production", "GET", $"/n/{n}?token=t{n}", 200, n, false, null)
                    : new AuditEntry("resource.put") { Actor = s_bob, Resource = $"res-{n}", Detail = new Dictionary<string, object?> { ["n"] = n } };
                batch.Add(new AuditLog.Pending(entry, context.Now(n)));
            }

            await log.WriteAsync(batch, CancellationToken.None);
            written += size;
        }

        var result = await new AuditVerifier(new AuditStore(context.Database), TestSeal.Shared).VerifyAsync(CancellationToken.None, pageSize: 100);
        Assert.True(result.Ok, result.FirstBroken?.Problem);
        Assert.Equal(written, result.Checked);
        Assert.Equal(written, result.Head.Seq);

        var events = await new AuditStore(context.Database).PageAsync(0, written, CancellationToken.None);
        Assert.Equal(Enumerable.Range(1, written).Select(i => (long)i), events.Select(e => e.Seq));
        Assert.Equal(written, events.Select(e => e.Id).Distinct().Count());
        // Every column of a run by a key, a run by Keyway itself and a change survives the multi-row insert.
        var byKey = events[64];
        Assert.Equal((64L, "u_alice", "alice", ActorKind.Key, "k_alice", "run", AuditOutcome.Success, "github", "production", (string?)null),
            (byKey.Seq - 1, byKey.ActorId, byKey.ActorName, byKey.ActorKind, byKey.KeyId, byKey.Action, byKey.Outcome, byKey.Resource, byKey.Environment, byKey.Target));
        Assert.Equal("""{"kind":"proxy","method":"GET","path":"/n/64?token=[REDACTED]","status":200,"durationMs":64,"refreshed":false,"error":null}""", byKey.Detail);
        Assert.Equal(context.Now(64), byKey.At);
        var bySystem = events[62];
        Assert.Equal((ActorKind.System, "keyway", ActorKind.System, (string?)null), (bySystem.ActorId, bySystem.ActorName, bySystem.ActorKind, bySystem.KeyId));
        var change = events[^2];
        Assert.Equal(("resource.put", "res-691", (string?)null, """{"n":691}""", ActorKind.User), (change.Action, change.Resource, change.Environment, change.Detail, change.ActorKind));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    [Trait("Category", "Integration")]
    public async Task A_column_that_repeats_changes_or_turns_null_is_stored_as_each_event_had_it_within_and_across_batches(TestStore store)
    {
        // On SQLite the writer binds the actor, action, resource, environment and target only when they
        // change from the row before, batch after batch: every kind of change, at a batch's start too.
        await using var context = await StoreContext.CreateAsync(store);
        using var log = context.NewLog(batchSize: 1000);
        string?[] resources = ["github", "github", null, null, "github", "stripe", "stripe", null, "github", "github"];
        Caller?[] actors = [s_alice, s_alice, s_bob, null, null, s_alice, s_bob, s_bob, null, s_alice];
        var entries = resources.Select((resource, i) => new AuditEntry(i % 3 == 0 ? "resource.put" : AuditEntries.RunAction)
        {
            Actor = actors[i],
            Resource = resource,
            Environment = i % 4 < 2 ? "production" : null,
            Target = i is 4 or 5 ? "target" : null,
        }).ToList();
        await log.WriteAsync(entries.Take(4).Select((e, i) => new AuditLog.Pending(e, context.Now(i))).ToList(), CancellationToken.None);
        await log.WriteAsync(entries.Skip(4).Take(3).Select((e, i) => new AuditLog.Pending(e, context.Now(4 + i))).ToList(), CancellationToken.None);
        await log.WriteAsync(entries.Skip(7).Select((e, i) => new AuditLog.Pending(e, context.Now(7 + i))).ToList(), CancellationToken.None);

        var audit = new AuditStore(context.Database);
        var events = await audit.PageAsync(0, 100, CancellationToken.None);
        Assert.Equal(
            entries.Select(e => (e.Action, e.Actor?.UserId ?? ActorKind.System, e.Actor?.UserName ?? "keyway", e.Actor?.ApiKeyId, e.Resource, e.Environment, e.Target)),
            events.Select(e => (e.Action, e.ActorId, e.ActorName, e.KeyId, e.Resource, e.Environment, e.Target)));
        var result = await new AuditVerifier(audit, TestSeal.Shared).VerifyAsync(CancellationToken.None);
        Assert.True(result.Ok, result.FirstBroken?.Problem);
        Assert.Equal(entries.Count, result.Checked);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    [Trait("Category", "Integration")]
    public async Task A_detail_of_any_size_or_character_is_hashed_so_that_the_chain_verifies(TestStore store)
    {
        // The writer escapes a detail for the canonical form by table up to 8 KB and by System.Text.Json
        // beyond; the verifier always by System.Text.Json. Both must give the same hash.
        await using var context = await StoreContext.CreateAsync(store);
        using var log = context.NewLog(batchSize: 1000);
        string[] values = ["small <&> '\"\\ \u0001\u007f", new string('x', 9_000) + "<&>\"", "caf\u00e9 \U0001F600"];
        await log.WriteAsync(values.Select((value, i) => new AuditLog.Pending(
            new AuditEntry("resource.put") { Actor = s_bob, Resource = "r", Detail = new Dictionary<string, object?> { ["v"] = value } },
            context.Now(i))).ToList(), CancellationToken.None);

        var result = await new AuditVerifier(new AuditStore(context.Database), TestSeal.Shared).VerifyAsync(CancellationToken.None);
        Assert.True(result.Ok, result.FirstBroken?.Problem);
        Assert.Equal(values.Length, result.Checked);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    [Trait("Category", "Integration")]
    public async Task Upgrading_from_schema_6_keeps_every_event_and_the_chain_and_drops_only_the_id_uniqueness(TestStore store)
    {
        await using var context = await StoreContext.CreateAsync(store, schema: 6);
        // Today's writer also seals the head (schema 9) and drains the outbox (schema 15): the schema-6 store
        // gets the head's two columns and an empty outbox while it writes, and loses them again before the
        // upgrade, which then adds them back empty.
        await ExecuteAsync(context, "ALTER TABLE audit_head ADD COLUMN seal TEXT NULL; ALTER TABLE audit_head ADD COLUMN seal_key TEXT NULL");
        await ExecuteAsync(context, OutboxTable);
        using (var log = context.NewLog(batchSize: 1000))
        {
            await log.WriteAsync(Enumerable.Range(0, 120).Select(n => new AuditLog.Pending(
                AuditEntries.Run("proxy", s_alice, "github", "production", "GET", $"/n/{n}?token=t{n}", 200, n, false, null), context.Now(n))).ToList(), CancellationToken.None);
        }

        await ExecuteAsync(context, "ALTER TABLE audit_head DROP COLUMN seal; ALTER TABLE audit_head DROP COLUMN seal_key; DROP TABLE audit_outbox");
        var audit = new AuditStore(context.Database);
        var before = await audit.PageAsync(0, 1000, CancellationToken.None);
        Assert.Equal(3, await context.MigrateAsync(through: 9)); // 7, 8 (the audit indexes) and 9 (the seal)
        await context.MigrateAsync(); // the rest, retention's checkpoints (14) among them: verification reads them
        Assert.Equal(BreakKind.Unsealed, (await new AuditVerifier(audit, TestSeal.Shared).VerifyAsync(CancellationToken.None)).FirstBroken?.Kind);

        var after = await audit.PageAsync(0, 1000, CancellationToken.None);
        Assert.Equal(before, after);
        using (var log = context.NewLog(batchSize: 1000))
        {
            await log.WriteAsync([new AuditLog.Pending(new AuditEntry("resource.put") { Actor = s_bob, Resource = "github" }, context.Now(200))], CancellationToken.None);
        }

        var result = await new AuditVerifier(audit, TestSeal.Shared).VerifyAsync(CancellationToken.None, pageSize: 50);
        Assert.True(result.Ok, result.FirstBroken?.Problem);
        Assert.Equal(121, result.Checked);
        Assert.Equal(121, (await audit.QueryAsync(new AuditQuery { Resource = "github", Limit = 1000 }, CancellationToken.None)).Count);

        // The id is still required, no longer unique (7); the time, resource and action indexes are back (8: runs left out of the last).
        await using var connection = await context.Database.OpenAsync(CancellationToken.None);
        var indexes = store == TestStore.Sqlite
            ? await connection.QueryAsync<string>("SELECT name FROM pragma_index_list('audit_events')")
            : await connection.QueryAsync<string>("SELECT indexname FROM pg_indexes WHERE tablename = 'audit_events' AND indexname <> 'audit_events_pkey'");
        Assert.Equal(["audit_events_by_action", "audit_events_by_at", "audit_events_by_resource"], indexes.Order(StringComparer.Ordinal));
        await connection.ExecuteAsync(
            "INSERT INTO audit_events (seq, id, at, actor_id, actor_name, actor_kind, action, outcome, prev_hash, hash) VALUES (1000, @id, 0, 'a', 'a', 'user', 'x', 'success', '', '')",
            new { id = after[0].Id });
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => connection.ExecuteAsync(
            "INSERT INTO audit_events (seq, id, at, actor_id, actor_name, actor_kind, action, outcome, prev_hash, hash) VALUES (1001, NULL, 0, 'a', 'a', 'user', 'x', 'success', '', '')"));
    }

    // The outbox as schema 15 makes it, in SQL both stores take (the test never stages, so n needs no default).
    private const string OutboxTable =
        """
        CREATE TABLE audit_outbox (n BIGINT PRIMARY KEY, id TEXT NOT NULL, at BIGINT NOT NULL, actor_id TEXT NOT NULL, actor_name TEXT NOT NULL,
            actor_kind TEXT NOT NULL, key_id TEXT NULL, action TEXT NOT NULL, outcome TEXT NOT NULL, resource TEXT NULL, environment TEXT NULL,
            target TEXT NULL, detail TEXT NULL)
        """;

    private static async Task ExecuteAsync(StoreContext context, string sql)
    {
        await using var connection = await context.Database.OpenAsync(CancellationToken.None);
        await connection.ExecuteAsync(sql);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    [Trait("Category", "Integration")]
    public async Task A_rare_action_is_found_through_the_action_index_which_leaves_runs_out(TestStore store)
    {
        await using var context = await StoreContext.CreateAsync(store);
        using (var log = context.NewLog(batchSize: 1000))
        {
            await log.WriteAsync(Enumerable.Range(0, 400).Select(n => new AuditLog.Pending(n % 100 == 7
                ? new AuditEntry("key.create") { Actor = s_alice, Target = $"key-{n}" }
                : AuditEntries.Run("proxy", s_alice, "github", "production", "GET", "/x", 200, 1, false, null), context.Now(n))).ToList(), CancellationToken.None);
        }

        var audit = new AuditStore(context.Database);
        Assert.Equal(new long[] { 8, 108, 208, 308 }, (await audit.QueryAsync(new AuditQuery { Action = "key.create", Limit = 10 }, CancellationToken.None)).Select(e => e.Seq));
        Assert.Equal(396, (await audit.QueryAsync(new AuditQuery { Action = AuditEntries.RunAction, Limit = 1000 }, CancellationToken.None)).Count);

        await using var connection = await context.Database.OpenAsync(CancellationToken.None);
        await connection.ExecuteAsync("ANALYZE");
        async Task<string> PlanAsync(AuditQuery query)
        {
            var (sql, parameters) = AuditStore.Select(query);
            if (store == TestStore.Sqlite)
            {
                return string.Join("\n", (await connection.QueryAsync<(long, long, long, string)>("EXPLAIN QUERY PLAN " + sql, parameters)).Select(r => r.Item4));
            }

            // Index scans only, so the plan says which index the planner can use, not which is cheapest on 400 rows.
            await connection.ExecuteAsync("SET enable_seqscan = off");
            return string.Join("\n", await connection.QueryAsync<string>("EXPLAIN " + sql, parameters));
        }

        Assert.Contains("audit_events_by_action", await PlanAsync(new AuditQuery { Action = "key.create" }), StringComparison.Ordinal);
        // A partial index: runs are not in it.
        var definition = store == TestStore.Sqlite
            ? await connection.ExecuteScalarAsync<string?>("SELECT sql FROM sqlite_master WHERE name = 'audit_events_by_action'")
            : await connection.ExecuteScalarAsync<string?>("SELECT indexdef FROM pg_indexes WHERE indexname = 'audit_events_by_action'");
        Assert.Matches("WHERE \\(?action <> 'run'", definition);
        Assert.DoesNotContain("audit_events_by_action", await PlanAsync(new AuditQuery { Action = AuditEntries.RunAction }), StringComparison.Ordinal);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    [Trait("Category", "Integration")]
    public async Task The_filters_find_their_events_with_the_indexes_migration_0006_leaves(TestStore store)
    {
        await using var context = await StoreContext.CreateAsync(store);
        using var log = context.NewLog(batchSize: 1000);
        var batch = new List<AuditLog.Pending>();
        for (var n = 0; n < 300; n++)
        {
            AuditEntry entry = (n % 3) switch
            {
                0 => AuditEntries.Run("proxy", s_alice, "github", "production", "GET", "/x", 200, 1, false, null),
                1 => AuditEntries.Run("run", s_bob, "slack", "staging", "POST", "/y", 500, 2, false, "upstream_error"),
                _ => new AuditEntry(n % 2 == 0 ? "credential.refreshed" : "resource.put") { Resource = "github" },
            };
            batch.Add(new AuditLog.Pending(entry, context.Now(n)));
        }

        await log.WriteAsync(batch, CancellationToken.None);
        var audit = new AuditStore(context.Database);
        async Task<IReadOnlyList<AuditEvent>> QueryAsync(AuditQuery query) => await audit.QueryAsync(query with { Limit = 1000 }, CancellationToken.None);

        Assert.Equal(100, (await QueryAsync(new AuditQuery { Actor = "u_alice" })).Count);
        Assert.Equal(100, (await QueryAsync(new AuditQuery { Actor = "alice" })).Count);
        Assert.Equal(100, (await QueryAsync(new AuditQuery { Actor = "k_alice" })).Count);
        Assert.Equal(100, (await QueryAsync(new AuditQuery { Actor = ActorKind.System })).Count);
        Assert.Equal(200, (await QueryAsync(new AuditQuery { Resource = "github" })).Count);
        Assert.Equal(200, (await QueryAsync(new AuditQuery { Action = "run" })).Count);
        Assert.Equal(50, (await QueryAsync(new AuditQuery { Action = "credential." })).Count);
        Assert.Equal(50, (await QueryAsync(new AuditQuery { Action = "resource.put", Resource = "github" })).Count);
        var window = await QueryAsync(new AuditQuery { Since = DateTimeOffset.FromUnixTimeMilliseconds(context.Now(30)), Until = DateTimeOffset.FromUnixTimeMilliseconds(context.Now(60)) });
        Assert.Equal(Enumerable.Range(31, 30).Select(i => (long)i), window.Select(e => e.Seq));
        var newest = await audit.QueryAsync(new AuditQuery { Actor = "bob", Limit = 5 }, CancellationToken.None);
        Assert.Equal(new long[] { 287, 290, 293, 296, 299 }, newest.Select(e => e.Seq));
        var after = await audit.QueryAsync(new AuditQuery { Resource = "slack", After = 290, Limit = 5 }, CancellationToken.None);
        Assert.Equal(new long[] { 293, 296, 299 }, after.Select(e => e.Seq));
        Assert.Equal(150, (await audit.FindByHashAsync((await audit.FindBySeqAsync(150, CancellationToken.None))!.Hash, CancellationToken.None))!.Seq);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    [Trait("Category", "Integration")]
    public async Task Text_beyond_ascii_is_stored_exactly_and_a_refused_batch_leaves_the_chain_as_it_was(TestStore store)
    {
        await using var context = await StoreContext.CreateAsync(store);
        using var log = context.NewLog(batchSize: 1000);
        const string resource = "caf\u00e9-\u6771\u4eac-\U0001F511";
        const string target = "Z\u00fcrich \u2014 \"quoted\" \\ back";
        await log.WriteAsync([new(new AuditEntry("resource.put") { Actor = s_bob, Resource = resource, Target = target, Detail = new Dictionary<string, object?> { ["note"] = "\u00e9\U0001F511" } }, context.Now(0))],
            CancellationToken.None);

        var audit = new AuditStore(context.Database);
        var stored = (await audit.FindBySeqAsync(1, CancellationToken.None))!;
        Assert.Equal((resource, target), (stored.Resource, stored.Target));
        Assert.Equal("""{"note":"\u00E9\uD83D\uDD11"}""", stored.Detail);

        // Someone holds the next seq: the writer's insert is refused, the whole batch with it.
        await using (var connection = await context.Database.OpenAsync(CancellationToken.None))
        {
            await connection.ExecuteAsync(
                "INSERT INTO audit_events (seq, id, at, actor_id, actor_name, actor_kind, action, outcome, prev_hash, hash) VALUES (2, 'ev_rogue', 0, 'x', 'x', 'user', 'x', 'success', 'x', 'x')");
        }

        List<AuditLog.Pending> batch = [new(AuditEntries.Run("proxy", s_alice, "github", "production", "GET", "/a", 200, 1, false, null), context.Now(1))];
        await Assert.ThrowsAnyAsync<System.Data.Common.DbException>(() => log.WriteAsync(batch, CancellationToken.None));
        Assert.Equal(1, (await audit.HeadAsync(CancellationToken.None)).Seq);

        // Once the seq is free again the same writer appends from where the chain stood.
        await using (var connection = await context.Database.OpenAsync(CancellationToken.None))
        {
            await connection.ExecuteAsync("DELETE FROM audit_events WHERE id = 'ev_rogue'");
        }

        await log.WriteAsync(batch, CancellationToken.None);
        var result = await new AuditVerifier(audit, TestSeal.Shared).VerifyAsync(CancellationToken.None);
        Assert.True(result.Ok, result.FirstBroken?.Problem);
        Assert.Equal(2, result.Checked);
    }

    /// <summary>A migrated store of either kind, dropped on dispose.</summary>
    private sealed class StoreContext : IAsyncDisposable
    {
        private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 5, 9, 0, 0, TimeSpan.Zero));
        private readonly ScratchStore _scratch;

        private StoreContext(ScratchStore scratch) => _scratch = scratch;

        public Database Database => _scratch.Database;

        public static async Task<StoreContext> CreateAsync(TestStore store, long schema = long.MaxValue)
        {
            var context = new StoreContext(await ScratchStore.CreateAsync(store));
            await context.MigrateAsync(schema);
            return context;
        }

        public Task<int> MigrateAsync(long through = long.MaxValue) =>
            new Migrator(Database, _time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None, through);

        /// <summary>The time of the <paramref name="n"/>th event: a second apart.</summary>
        public long Now(int n) => _time.GetUtcNow().AddSeconds(n).ToUnixTimeMilliseconds();

        public AuditLog NewLog(int batchSize) => new(Database, TestSeal.Shared, _time, _ => Task.FromResult(new Redactor([Canary])),
            new AuditOptions { BatchSize = batchSize }, NullLogger<AuditLog>.Instance);

        public ValueTask DisposeAsync() => _scratch.DisposeAsync();
    }
}

using System.Text.Json;
using Keyway.Access;
using Keyway.Audit;
using Keyway.Hosting;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Audit;

/// <summary>
/// Retention on real, migrated SQLite and PostgreSQL stores with a fake clock: a prune cuts the chain
/// behind a sealed checkpoint, keeps the change events still within their retention, archives what it
/// deletes, and verification proves the chain from the checkpoint on.
/// </summary>
[Trait("Category", "Integration")]
public sealed class AuditRetentionTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 5, 9, 0, 0, TimeSpan.Zero);
    private readonly Caller _alice = new("u_alice", "alice", Caller.AdminRole, "k_123", null);

    public static TheoryData<StoreKind> Engines => [StoreKind.Sqlite, StoreKind.Postgres];

    /// <summary>
    /// One store with ten events: on day 0 runs 1, 3, 4, 5 and the change 2; on day 10 run 6, change 7,
    /// run 8; on day 35 runs 9 and 10. With 30 days for traffic and 400 for changes, a prune on day 35
    /// cuts at event 5: it deletes runs 1, 3, 4 and 5 and keeps change 2.
    /// </summary>
    private sealed class Scenario : IAsyncDisposable
    {
        private readonly string _directory = TestDirectories.Create("audit-retention");
        private PostgresCluster? _cluster;
        private string? _postgresDatabase;

        public FakeTimeProvider Time { get; } = new(Start);
        public Database Database { get; private set; } = null!;
        public AuditLog Log { get; private set; } = null!;
        public RecordingAuditLog Recorded { get; } = new();
        public string ArchiveDirectory => Path.Combine(_directory, "archive");

        public static async Task<Scenario> CreateAsync(StoreKind kind, Caller actor)
        {
            var scenario = new Scenario();
            if (kind == StoreKind.Postgres)
            {
                scenario._cluster = await PostgresCluster.GetSharedAsync();
                var database = await scenario._cluster.CreateDatabaseAsync();
                scenario._postgresDatabase = database.Name;
                scenario.Database = Database.Postgres(database.Url);
            }
            else
            {
                scenario.Database = Database.Sqlite(Path.Combine(scenario._directory, "keyway.db"));
            }

            await new Migrator(scenario.Database, scenario.Time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
            scenario.Log = new AuditLog(scenario.Database, TestSeal.Shared, scenario.Time, _ => Task.FromResult(Redactor.None),
                new AuditOptions(), NullLogger<AuditLog>.Instance);
            await scenario.AppendAsync(actor, "run", "resource.put", "run", "run", "run");
            scenario.Time.Advance(TimeSpan.FromDays(10));
            await scenario.AppendAsync(actor, "run", "variable.set", "run");
            scenario.Time.Advance(TimeSpan.FromDays(25));
            await scenario.AppendAsync(actor, "run", "run");
            return scenario;
        }

        public async Task AppendAsync(Caller actor, params string[] actions)
        {
            var batch = new List<AuditLog.Pending>();
            foreach (var action in actions)
            {
                Time.Advance(TimeSpan.FromSeconds(1));
                batch.Add(new AuditLog.Pending(
                    new AuditEntry(action) { Actor = actor, Resource = "github", Detail = new Dictionary<string, object?> { ["n"] = batch.Count } },
                    Time.GetUtcNow().ToUnixTimeMilliseconds()));
            }

            await Log.WriteAsync(batch, CancellationToken.None);
        }

        public AuditStore Store => new(Database);

        public AuditPruner Pruner(AuditRetention? retention = null) => new(Database, Store, TestSeal.Shared,
            retention ?? new AuditRetention { ArchiveDirectory = Directory.CreateDirectory(ArchiveDirectory).FullName, BatchSize = 2 },
            Time, Recorded, NullLogger<AuditPruner>.Instance);

        public Task<AuditVerification> VerifyAsync() => new AuditVerifier(Store, TestSeal.Shared).VerifyAsync(CancellationToken.None, pageSize: 3);

        public async Task ExecuteAsync(string sql, object? parameters = null)
        {
            await using var connection = await Database.OpenAsync(CancellationToken.None);
            await connection.ExecuteAsync(sql, parameters);
        }

        public async Task<List<long>> SeqsAsync()
        {
            await using var connection = await Database.OpenAsync(CancellationToken.None);
            return [.. await connection.QueryAsync<long>("SELECT seq FROM audit_events ORDER BY seq")];
        }

        public async ValueTask DisposeAsync()
        {
            Log.Dispose();
            await Database.DisposeAsync();
            if (_cluster is not null)
            {
                await _cluster.DropDatabaseAsync(_postgresDatabase!);
            }

            TestDirectories.DeleteQuietly(_directory);
        }
    }

    private static async Task<AuditPruneResult> PruneAsync(Scenario scenario, AuditRetention? retention = null) =>
        await scenario.Pruner(retention).PruneAsync(dryRun: false, actor: null, CancellationToken.None) ?? throw new InvalidOperationException("The prune lock was taken.");

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task Prune_deletes_expired_traffic_keeps_young_changes_and_verify_passes_from_the_sealed_checkpoint(StoreKind kind)
    {
        await using var scenario = await Scenario.CreateAsync(kind, _alice);

        var dry = await scenario.Pruner().PruneAsync(dryRun: true, actor: _alice, CancellationToken.None);
        Assert.Equal((4L, 4L, 0L, 1L, (long?)5), (dry!.Pruned, dry.TrafficPruned, dry.ChangesPruned, dry.Kept, dry.CutSeq));
        Assert.Null(dry.Checkpoint);
        Assert.Equal(10, (await scenario.SeqsAsync()).Count);

        var result = await PruneAsync(scenario);
        Assert.Equal((4L, 1L, (long?)5), (result.Pruned, result.Kept, result.CutSeq));
        Assert.Equal(new long[] { 2, 6, 7, 8, 9, 10 }, await scenario.SeqsAsync());
        var checkpoint = Assert.IsType<AuditCheckpoint>(result.Checkpoint);
        Assert.Equal((1L, 5L, 4L, 1L), (checkpoint.Number, checkpoint.Seq, checkpoint.Pruned, checkpoint.Kept));
        Assert.Equal(SealCheck.Valid, TestSeal.Shared.Check(checkpoint));
        var recorded = Assert.Single(scenario.Recorded.Entries);
        Assert.Equal("audit.prune", recorded.Action);

        var verified = await scenario.VerifyAsync();
        Assert.True(verified.Ok, verified.FirstBroken?.Problem);
        Assert.Equal(6L, verified.Checked);
        Assert.Equal(5L, verified.Checkpoint!.Seq);
        Assert.Equal(10L, verified.Head.Seq);

        // Nothing more is past its retention: a second prune changes nothing and writes no checkpoint.
        var again = await PruneAsync(scenario);
        Assert.Equal(0L, again.Pruned);
        Assert.Null(again.Checkpoint);
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task The_archive_holds_exactly_the_pruned_events_in_the_export_format(StoreKind kind)
    {
        await using var scenario = await Scenario.CreateAsync(kind, _alice);
        var before = new Dictionary<long, AuditEvent>();
        foreach (var seq in new long[] { 1, 3, 4, 5 })
        {
            before[seq] = (await scenario.Store.FindBySeqAsync(seq, CancellationToken.None))!;
        }

        var result = await PruneAsync(scenario);

        var file = Assert.Single(Directory.GetFiles(scenario.ArchiveDirectory));
        Assert.Equal(result.Archive, Path.GetFileName(file));
        Assert.Equal(result.Archive, result.Checkpoint!.Archive);
        var lines = await File.ReadAllLinesAsync(file);
        Assert.Equal(new long[] { 1, 3, 4, 5 }, lines.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("seq").GetInt64()));
        foreach (var line in lines)
        {
            var seq = JsonDocument.Parse(line).RootElement.GetProperty("seq").GetInt64();
            Assert.Equal(JsonSerializer.Serialize(AuditEventView.From(before[seq]), JsonSerializerOptions.Web), line);
        }
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task An_edit_or_a_deletion_after_the_checkpoint_is_named(StoreKind kind)
    {
        await using var scenario = await Scenario.CreateAsync(kind, _alice);
        await PruneAsync(scenario);

        await scenario.ExecuteAsync("UPDATE audit_events SET outcome = 'failure' WHERE seq = 8");
        var edited = await scenario.VerifyAsync();
        Assert.False(edited.Ok);
        Assert.Equal((8L, BreakKind.Edited), (edited.FirstBroken!.Seq, edited.FirstBroken.Kind));
        await scenario.ExecuteAsync("UPDATE audit_events SET outcome = 'success' WHERE seq = 8");
        Assert.True((await scenario.VerifyAsync()).Ok);

        // The first event after the cut, the one that links to the checkpoint's hash.
        await scenario.ExecuteAsync("DELETE FROM audit_events WHERE seq = 6");
        var deleted = await scenario.VerifyAsync();
        Assert.False(deleted.Ok);
        Assert.Equal((7L, BreakKind.Deleted), (deleted.FirstBroken!.Seq, deleted.FirstBroken.Kind));
        Assert.Contains("event 6 is missing", deleted.FirstBroken.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task An_edited_or_deleted_change_kept_before_the_checkpoint_is_detected(StoreKind kind)
    {
        await using var scenario = await Scenario.CreateAsync(kind, _alice);
        await PruneAsync(scenario);

        await scenario.ExecuteAsync("UPDATE audit_events SET target = 'someone-else' WHERE seq = 2");
        var edited = await scenario.VerifyAsync();
        Assert.False(edited.Ok);
        Assert.Equal((2L, BreakKind.Edited), (edited.FirstBroken!.Seq, edited.FirstBroken.Kind));

        await scenario.ExecuteAsync("DELETE FROM audit_events WHERE seq = 2");
        var deleted = await scenario.VerifyAsync();
        Assert.False(deleted.Ok);
        Assert.Equal((5L, BreakKind.Deleted), (deleted.FirstBroken!.Seq, deleted.FirstBroken.Kind));
        Assert.Contains("1 of the 1 events kept before the checkpoint", deleted.FirstBroken.Problem, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task An_edited_checkpoint_is_reported_whether_its_hash_or_its_seal_was_changed(StoreKind kind)
    {
        await using var scenario = await Scenario.CreateAsync(kind, _alice);
        var checkpoint = (await PruneAsync(scenario)).Checkpoint!;

        // Pointing the checkpoint at a forged history: the seal no longer matches.
        await scenario.ExecuteAsync("UPDATE audit_checkpoints SET hash = @hash", new { hash = new string('a', 64) });
        var rehashed = await scenario.VerifyAsync();
        Assert.False(rehashed.Ok);
        Assert.Equal((5L, BreakKind.Checkpoint), (rehashed.FirstBroken!.Seq, rehashed.FirstBroken.Kind));

        await scenario.ExecuteAsync("UPDATE audit_checkpoints SET hash = @Hash, seal = @seal", new { checkpoint.Hash, seal = new string('0', 64) });
        var resealed = await scenario.VerifyAsync();
        Assert.False(resealed.Ok);
        Assert.Equal(BreakKind.Checkpoint, resealed.FirstBroken!.Kind);

        // A checkpoint that claims fewer pruned events, sealed by someone without the master key.
        await scenario.ExecuteAsync("UPDATE audit_checkpoints SET seal = @Seal, pruned = 1", new { checkpoint.Seal });
        Assert.Equal(BreakKind.Checkpoint, (await scenario.VerifyAsync()).FirstBroken!.Kind);

        await scenario.ExecuteAsync("UPDATE audit_checkpoints SET pruned = @Pruned", new { checkpoint.Pruned });
        Assert.True((await scenario.VerifyAsync()).Ok);

        // Removing the checkpoint leaves the chain starting at a hole.
        await scenario.ExecuteAsync("DELETE FROM audit_checkpoints");
        var removed = await scenario.VerifyAsync();
        Assert.False(removed.Ok);
        Assert.Equal(BreakKind.Deleted, removed.FirstBroken!.Kind);
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task An_edit_to_an_event_that_is_then_pruned_is_irrelevant_and_leftovers_of_an_unfinished_prune_are_passed_over(StoreKind kind)
    {
        await using var scenario = await Scenario.CreateAsync(kind, _alice);
        var original = (await scenario.Store.FindBySeqAsync(3, CancellationToken.None))!;
        await scenario.ExecuteAsync("UPDATE audit_events SET outcome = 'failure' WHERE seq = 3");
        Assert.False((await scenario.VerifyAsync()).Ok);

        await PruneAsync(scenario);
        var verified = await scenario.VerifyAsync();
        Assert.True(verified.Ok, verified.FirstBroken?.Problem);

        // A prune that stopped after its checkpoint leaves rows the checkpoint already counts as gone.
        await scenario.ExecuteAsync(
            "INSERT INTO audit_events (seq, id, at, actor_id, actor_name, actor_kind, key_id, action, outcome, resource, environment, target, detail, prev_hash, hash) " +
            "VALUES (@Seq, @Id, @At, @ActorId, @ActorName, @ActorKind, @KeyId, @Action, @Outcome, @Resource, @Environment, @Target, @Detail, @PrevHash, @Hash)", original);
        Assert.True((await scenario.VerifyAsync()).Ok);
        Assert.Equal(1L, (await PruneAsync(scenario)).Pruned);
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task A_kept_change_goes_at_a_later_prune_past_its_own_retention_under_a_new_checkpoint(StoreKind kind)
    {
        await using var scenario = await Scenario.CreateAsync(kind, _alice);
        await PruneAsync(scenario);

        scenario.Time.Advance(TimeSpan.FromDays(370));
        await scenario.AppendAsync(_alice, "resource.put");
        var later = await PruneAsync(scenario);

        // Day 405: runs 6, 8, 9, 10 and change 2 (day 0) are past their retention; change 7 (day 10) is not yet.
        Assert.Equal((5L, 4L, 1L), (later.Pruned, later.TrafficPruned, later.ChangesPruned));
        Assert.Equal((2L, (long?)10), (later.Checkpoint!.Number, later.CutSeq));
        Assert.Equal(new long[] { 7, 11 }, await scenario.SeqsAsync());
        var verified = await scenario.VerifyAsync();
        Assert.True(verified.Ok, verified.FirstBroken?.Problem);
        Assert.Equal(2L, verified.Checked);
    }

    [Theory]
    [MemberData(nameof(Engines))]
    public async Task Forever_keeps_a_class_and_the_other_is_still_pruned(StoreKind kind)
    {
        await using var scenario = await Scenario.CreateAsync(kind, _alice);
        var result = await PruneAsync(scenario, new AuditRetention { Traffic = TimeSpan.FromDays(30), Changes = null });
        Assert.Equal(4L, result.Pruned);
        Assert.Null(result.Archive);

        var none = await PruneAsync(scenario, new AuditRetention { Traffic = null, Changes = null });
        Assert.Equal(0L, none.Pruned);
        Assert.True((await scenario.VerifyAsync()).Ok);
    }

    [Fact]
    public async Task On_PostgreSQL_a_prune_while_another_replica_prunes_does_nothing_and_says_so()
    {
        await using var scenario = await Scenario.CreateAsync(StoreKind.Postgres, _alice);
        await using (var other = await scenario.Database.OpenAsync(CancellationToken.None))
        {
            // Another replica's prune holds the lock.
            Assert.True(await other.ExecuteScalarAsync<bool>("SELECT pg_try_advisory_lock(@id)", new { id = AuditPruner.PruneLockId }));
            Assert.Null(await scenario.Pruner().PruneAsync(dryRun: false, actor: null, CancellationToken.None));
            Assert.Equal(10, (await scenario.SeqsAsync()).Count);
            await other.ExecuteAsync("SELECT pg_advisory_unlock(@id)", new { id = AuditPruner.PruneLockId });
        }

        Assert.Equal(4L, (await PruneAsync(scenario)).Pruned);
        // The lock went back with the prune: the next one takes it again.
        Assert.NotNull(await scenario.Pruner().PruneAsync(dryRun: true, actor: null, CancellationToken.None));
    }

    [Fact]
    public async Task The_server_prunes_on_its_own_a_minute_after_start()
    {
        await using var scenario = await Scenario.CreateAsync(StoreKind.Sqlite, _alice);
        var retention = new AuditRetention();
        using var service = new AuditPruneService(scenario.Pruner(retention), retention, scenario.Time, NullLogger<AuditPruneService>.Instance);
        await service.StartAsync(CancellationToken.None);
        try
        {
            // The service waits on the fake clock: move it on until the prune has run.
            await Poll.UntilAsync(async () =>
            {
                scenario.Time.Advance(TimeSpan.FromSeconds(30));
                return await scenario.Store.NewestCheckpointAsync(CancellationToken.None) is not null;
            }, TimeSpan.FromSeconds(30), "the scheduled prune's checkpoint");
            Assert.Equal(new long[] { 2, 6, 7, 8, 9, 10 }, await scenario.SeqsAsync());
            Assert.Null(Assert.Single(scenario.Recorded.Entries).Actor);
        }
        finally
        {
            await service.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public void Retention_settings_have_documented_defaults_and_read_durations_or_forever()
    {
        var defaults = AuditRetention.FromEnvironment(_ => null);
        Assert.Equal((TimeSpan.FromDays(30), TimeSpan.FromDays(400), TimeSpan.FromHours(1)), (defaults.Traffic!.Value, defaults.Changes!.Value, defaults.Interval!.Value));
        Assert.Null(AuditRetention.FromEnvironment(n => n == "KEYWAY_AUDIT_PRUNE_INTERVAL" ? "off" : null).Interval);
        Assert.Null(defaults.ArchiveDirectory);

        var directory = TestDirectories.Create("audit-archive-setting");
        try
        {
            var archive = Path.Combine(directory, "nested", "archive");
            var set = AuditRetention.FromEnvironment(name => name switch
            {
                "KEYWAY_AUDIT_RETAIN_TRAFFIC" => "7d",
                "KEYWAY_AUDIT_RETAIN_CHANGES" => "forever",
                "KEYWAY_AUDIT_PRUNE_INTERVAL" => "15m",
                "KEYWAY_AUDIT_ARCHIVE_DIR" => archive,
                _ => null,
            });
            Assert.Equal((TimeSpan.FromDays(7), (TimeSpan?)null, TimeSpan.FromMinutes(15)), (set.Traffic!.Value, set.Changes, set.Interval!.Value));
            Assert.True(Directory.Exists(archive));
        }
        finally
        {
            TestDirectories.DeleteQuietly(directory);
        }
    }

    [Theory]
    [InlineData("KEYWAY_AUDIT_RETAIN_TRAFFIC", "30 days")]
    [InlineData("KEYWAY_AUDIT_RETAIN_TRAFFIC", "-1d")]
    [InlineData("KEYWAY_AUDIT_RETAIN_CHANGES", "0d")]
    [InlineData("KEYWAY_AUDIT_RETAIN_CHANGES", "never")]
    [InlineData("KEYWAY_AUDIT_PRUNE_INTERVAL", "10s")]
    [InlineData("KEYWAY_AUDIT_PRUNE_INTERVAL", "hourly")]
    public void A_malformed_retention_setting_stops_the_start_naming_the_variable(string name, string value)
    {
        var e = Assert.Throws<StartupException>(() => AuditRetention.FromEnvironment(n => n == name ? value : null));
        Assert.StartsWith(name, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_archive_directory_that_cannot_be_made_stops_the_start()
    {
        var directory = TestDirectories.Create("audit-archive-file");
        try
        {
            var file = Path.Combine(directory, "a-file");
            File.WriteAllText(file, "not a directory");
            var e = Assert.Throws<StartupException>(() => AuditRetention.FromEnvironment(n => n == "KEYWAY_AUDIT_ARCHIVE_DIR" ? file : null));
            Assert.StartsWith("KEYWAY_AUDIT_ARCHIVE_DIR", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            TestDirectories.DeleteQuietly(directory);
        }
    }
}

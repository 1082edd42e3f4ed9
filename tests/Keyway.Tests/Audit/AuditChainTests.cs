using System.Security.Cryptography;
using System.Text;
using Keyway.Access;
using Keyway.Audit;
using Keyway.Hosting;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Keyway.Tests.Audit;

/// <summary>The audit chain on a real, migrated SQLite store: writing, hashing, and finding every kind of tampering.</summary>
public sealed class AuditChainTests : IAsyncLifetime
{
    private const string Canary = "CANARY-audit-unit-9b1f";

    private readonly string _directory = TestDirectories.Create("audit");
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 5, 9, 0, 0, TimeSpan.Zero));
    private readonly Caller _alice = new("u_alice", "alice", Caller.AdminRole, "k_123", null);
    private Database _database = null!;

    public async Task InitializeAsync()
    {
        _database = Database.Sqlite(Path.Combine(_directory, "keyway.db"));
        await new Migrator(_database, _time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _database.DisposeAsync();
        TestDirectories.DeleteQuietly(_directory);
    }

    private AuditLog NewLog(int capacity = 100) => new(_database, TestSeal.Shared, _time, _ => Task.FromResult(new Redactor([Canary])),
        new AuditOptions { QueueCapacity = capacity, BatchSize = 4 }, NullLogger<AuditLog>.Instance);

    private AuditVerifier Verifier => new(new AuditStore(_database), TestSeal.Shared);

    private async Task AppendAsync(AuditLog log, int count)
    {
        var batch = new List<AuditLog.Pending>();
        for (var i = 0; i < count; i++)
        {
            _time.Advance(TimeSpan.FromSeconds(1));
            batch.Add(new AuditLog.Pending(
                new AuditEntry("resource.put") { Actor = _alice, Resource = $"res-{i}", Detail = new Dictionary<string, object?> { ["n"] = i } },
                _time.GetUtcNow().ToUnixTimeMilliseconds()));
        }

        await log.WriteAsync(batch, CancellationToken.None);
    }

    private async Task ExecuteAsync(string sql, object? parameters = null)
    {
        await using var connection = await _database.OpenAsync(CancellationToken.None);
        await connection.ExecuteAsync(sql, parameters);
    }

    private async Task<AuditEvent> EventAsync(long seq) => (await new AuditStore(_database).FindBySeqAsync(seq, CancellationToken.None))!;

    [Fact]
    public void The_writer_escapes_a_detail_for_the_canonical_form_exactly_as_System_Text_Json_does()
    {
        // Every ASCII character alone, between others and all together, and a run's detail: the table
        // the writer escapes with must give the bytes Utf8JsonWriter gives, or its hashes would not verify.
        var details = Enumerable.Range(0, 128).Select(c => ((char)c).ToString())
            .Concat(Enumerable.Range(0, 128).Select(c => "a" + (char)c + "zz" + (char)c))
            .Append(string.Concat(Enumerable.Range(0, 128).Select(c => (char)c)))
            .Append("""{"kind":"proxy","method":"GET","path":"/x?a=1\u0026b=\u003C2\u003E","status":200,"error":null}""")
            .Append("");
        foreach (var detail in details)
        {
            var bytes = Encoding.ASCII.GetBytes(detail);
            var expected = new System.Buffers.ArrayBufferWriter<byte>();
            using (var writer = new System.Text.Json.Utf8JsonWriter(expected))
            {
                writer.WriteStringValue(bytes);
            }

            var escaped = new System.Buffers.ArrayBufferWriter<byte>();
            Assert.True(AuditHash.WriteEscapedString(bytes, escaped));
            Assert.Equal(Encoding.ASCII.GetString(expected.WrittenSpan), Encoding.ASCII.GetString(escaped.WrittenSpan));
        }

        // Not ASCII: refused, and nothing written (the writer then takes System.Text.Json's own path).
        var refused = new System.Buffers.ArrayBufferWriter<byte>();
        Assert.False(AuditHash.WriteEscapedString(Encoding.UTF8.GetBytes("{\"caf\u00e9\":1}"), refused));
        Assert.Equal(0, refused.WrittenCount);
    }

    [Fact]
    public void The_queue_and_the_linger_are_read_from_the_environment_and_bad_values_stop_the_start()
    {
        static Func<string, string?> Env(params (string Name, string Value)[] values) =>
            name => values.FirstOrDefault(v => v.Name == name).Value;

        Assert.Equal(new AuditOptions(), AuditOptions.FromEnvironment(Env()));
        var set = AuditOptions.FromEnvironment(Env(("KEYWAY_AUDIT_QUEUE", "500"), ("KEYWAY_AUDIT_LINGER_MS", "25")));
        Assert.Equal(500, set.QueueCapacity);
        Assert.Equal(TimeSpan.FromMilliseconds(25), set.Linger);
        Assert.NotEqual(set.Linger, new AuditOptions().Linger);
        Assert.Equal(TimeSpan.Zero, AuditOptions.FromEnvironment(Env(("KEYWAY_AUDIT_LINGER_MS", "0"))).Linger);

        Assert.Contains("KEYWAY_AUDIT_QUEUE", Assert.Throws<StartupException>(() => AuditOptions.FromEnvironment(Env(("KEYWAY_AUDIT_QUEUE", "0")))).Message);
        Assert.Contains("0 to 1000", Assert.Throws<StartupException>(() => AuditOptions.FromEnvironment(Env(("KEYWAY_AUDIT_LINGER_MS", "5000")))).Message);
        Assert.Contains("'soon'", Assert.Throws<StartupException>(() => AuditOptions.FromEnvironment(Env(("KEYWAY_AUDIT_LINGER_MS", "soon")))).Message);
    }

    [Fact]
    public void Event_ids_are_version_7_uuids_carrying_their_millisecond()
    {
        var at = new DateTimeOffset(2026, 11, 29, 4, 15, 0, 123, TimeSpan.Zero).ToUnixTimeMilliseconds();

        var ids = Enumerable.Range(0, 1000).Select(_ => AuditLog.NewId(at)).ToList();

        Assert.Equal(1000, ids.Distinct().Count());
        foreach (var id in ids)
        {
            Assert.StartsWith("ev_", id);
            var guid = Guid.ParseExact(id[3..], "N");
            Assert.Equal(7, guid.Version);
            Assert.Equal(0b10, guid.Variant >> 2);
            Assert.Equal(at, Convert.ToInt64(id[3..15], 16));
        }
    }

    [Fact]
    public void The_hash_is_sha256_of_the_documented_canonical_array()
    {
        var e = new AuditEvent
        {
            Seq = 7,
            Id = "ev_1",
            At = 1700000000000,
            ActorId = "u_alice",
            ActorName = "alice",
            ActorKind = "key",
            KeyId = "k_1",
            Action = "run",
            Outcome = "success",
            Resource = "github",
            Environment = "production",
            Target = null,
            Detail = "{\"status\":200}",
            PrevHash = AuditHash.Genesis,
        };
        const string canonical = "[\"keyway.audit.v1\",7,\"ev_1\",1700000000000,\"u_alice\",\"alice\",\"key\",\"k_1\",\"run\",\"success\",\"github\",\"production\",null,\"{\\u0022status\\u0022:200}\",\"0000000000000000000000000000000000000000000000000000000000000000\"]";
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonical))), AuditHash.Compute(e));
        Assert.NotEqual(AuditHash.Compute(e), AuditHash.Compute(e with { Outcome = "failure" }));
        Assert.NotEqual(AuditHash.Compute(e), AuditHash.Compute(e with { PrevHash = new string('1', 64) }));
        Assert.NotEqual(AuditHash.Compute(e), AuditHash.Compute(e with { Seq = 8 }));
    }

    [Theory]
    [InlineData("/users?page=2", "/users?page=2")]
    [InlineData("/users?access_token=abc&page=2", "/users?access_token=[REDACTED]&page=2")]
    [InlineData("/x?api_key=abc", "/x?api_key=[REDACTED]")]
    [InlineData("/x?key=abc&client_secret=s&Password=p&q=ok", "/x?key=[REDACTED]&client_secret=[REDACTED]&Password=[REDACTED]&q=ok")]
    [InlineData("/x?flag&sig=1", "/x?flag&sig=[REDACTED]")]
    [InlineData("/plain", "/plain")]
    public void Secret_bearing_query_values_are_redacted_by_name(string path, string expected) =>
        Assert.Equal(expected, AuditRedaction.RedactPath(path));

    [Fact]
    public void A_detail_is_stored_without_known_secret_values()
    {
        var json = AuditRedaction.Serialize(new Dictionary<string, object?>
        {
            ["path"] = "/echo?q=" + Uri.EscapeDataString(Canary) + "&token=zzz",
            ["error"] = $"upstream said \"{Canary}\"",
            ["secret"] = new Secret("never-this-value"),
            ["status"] = 200,
            ["refreshed"] = false,
        }, new Redactor([Canary]));
        Assert.NotNull(json);
        Assert.DoesNotContain(Canary, json);
        Assert.DoesNotContain("never-this-value", json);
        Assert.DoesNotContain("zzz", json);
        Assert.Contains("\"status\":200", json);
        Assert.Null(AuditRedaction.Serialize(null, Redactor.None));
    }

    [Fact]
    public async Task An_untouched_chain_verifies_across_pages_and_batches_and_restarts()
    {
        await AppendAsync(NewLog(), 5);
        await AppendAsync(NewLog(), 6); // a second writer (a restart, another replica) continues the same chain
        var result = await Verifier.VerifyAsync(CancellationToken.None, pageSize: 3);
        Assert.True(result.Ok, result.FirstBroken?.Problem);
        Assert.Equal(11, result.Checked);
        Assert.Equal(11, result.Head.Seq);
        Assert.Equal((await EventAsync(11)).Hash, result.Head.Hash);
        Assert.Equal(AuditHash.Genesis, (await EventAsync(1)).PrevHash);
        Assert.Equal((await EventAsync(5)).Hash, (await EventAsync(6)).PrevHash);
        var first = await EventAsync(1);
        Assert.Equal(("u_alice", "alice", ActorKind.Key, "k_123"), (first.ActorId, first.ActorName, first.ActorKind, first.KeyId));
    }

    [Fact]
    public async Task An_empty_chain_verifies()
    {
        var result = await Verifier.VerifyAsync(CancellationToken.None);
        Assert.True(result.Ok);
        Assert.Equal(0, result.Checked);
    }

    [Fact]
    public async Task An_edited_field_is_found_at_its_event()
    {
        await AppendAsync(NewLog(), 8);
        await ExecuteAsync("UPDATE audit_events SET outcome = 'failure' WHERE seq = 5");
        await AssertBrokenAsync(5, BreakKind.Edited);
    }

    [Fact]
    public async Task A_broken_chain_raises_one_audit_verify_failed_alert_naming_the_event_and_an_intact_one_none()
    {
        var alerts = new Keyway.Tests.Alerts.RecordingAlerts();
        var verifier = new AuditVerifier(new AuditStore(_database), TestSeal.Shared, alerts);
        await AppendAsync(NewLog(), 8);
        Assert.True((await verifier.VerifyAsync(CancellationToken.None)).Ok);
        Assert.Empty(alerts.Raised);

        await ExecuteAsync("UPDATE audit_events SET outcome = 'failure' WHERE seq = 5");
        Assert.False((await verifier.VerifyAsync(CancellationToken.None)).Ok);

        var alert = Assert.Single(alerts.Raised);
        Assert.Equal((Keyway.Alerts.AlertTypes.AuditVerifyFailed, "5", BreakKind.Edited), (alert.Type, alert.Data["seq"], alert.Data["kind"]));
    }

    [Fact]
    public async Task An_edit_with_a_recomputed_hash_is_found_by_the_next_link()
    {
        await AppendAsync(NewLog(), 8);
        var original = await EventAsync(4);
        var forged = original with { Resource = "elsewhere" };
        await ExecuteAsync("UPDATE audit_events SET resource = @Resource, hash = @Hash WHERE seq = 4", new { forged.Resource, Hash = AuditHash.Compute(forged) });
        await AssertBrokenAsync(4, BreakKind.Edited);
    }

    [Fact]
    public async Task A_deleted_middle_event_is_found()
    {
        await AppendAsync(NewLog(), 8);
        await ExecuteAsync("DELETE FROM audit_events WHERE seq = 3");
        var broken = await AssertBrokenAsync(4, BreakKind.Deleted);
        Assert.Contains("event 3 is missing", broken.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_deleted_newest_event_is_found_by_the_head()
    {
        await AppendAsync(NewLog(), 8);
        var newest = await EventAsync(8);
        await ExecuteAsync("DELETE FROM audit_events WHERE seq = 8");
        var broken = await AssertBrokenAsync(8, BreakKind.Deleted, expectId: false);
        Assert.Equal(newest.Id, broken.Id);
    }

    [Fact]
    public async Task Two_swapped_events_are_found()
    {
        await AppendAsync(NewLog(), 8);
        await ExecuteAsync("UPDATE audit_events SET seq = -1 WHERE seq = 3; UPDATE audit_events SET seq = 3 WHERE seq = 4; UPDATE audit_events SET seq = 4 WHERE seq = -1;");
        await AssertBrokenAsync(3, BreakKind.Reordered);
    }

    [Fact]
    public async Task A_forged_event_after_the_head_is_found()
    {
        await AppendAsync(NewLog(), 5);
        var last = await EventAsync(5);
        var forged = last with { Seq = 6, Id = "ev_forged", Action = "key.revoke", PrevHash = last.Hash };
        await InsertAsync(forged with { Hash = AuditHash.Compute(forged) });
        var broken = await AssertBrokenAsync(6, BreakKind.Inserted);
        Assert.Equal("ev_forged", broken.Id);
    }

    [Fact]
    public async Task A_forged_event_spliced_into_the_middle_is_found()
    {
        await AppendAsync(NewLog(), 6);
        // Make room after event 3, then splice in a well-formed event that links to event 3.
        await ExecuteAsync("UPDATE audit_events SET seq = -(seq + 1) WHERE seq > 3; UPDATE audit_events SET seq = -seq WHERE seq < 0; UPDATE audit_head SET seq = seq + 1");
        var third = await EventAsync(3);
        var forged = third with { Seq = 4, Id = "ev_spliced", PrevHash = third.Hash };
        await InsertAsync(forged with { Hash = AuditHash.Compute(forged) });
        var broken = await AssertBrokenAsync(4, BreakKind.Inserted);
        Assert.Equal("ev_spliced", broken.Id);
    }

    [Fact]
    public async Task A_chain_rewritten_from_an_event_on_with_every_hash_and_the_head_recomputed_is_found_by_the_seal()
    {
        await AppendAsync(NewLog(), 8);
        // What someone with write access to the database but without the master key can do: change
        // event 3, recompute its hash and every later link and hash, and move the head to match.
        var previous = (await EventAsync(2)).Hash;
        for (var seq = 3L; seq <= 8; seq++)
        {
            var e = await EventAsync(seq);
            var rewritten = e with { Resource = seq == 3 ? "covered-up" : e.Resource, PrevHash = previous };
            previous = AuditHash.Compute(rewritten);
            await ExecuteAsync("UPDATE audit_events SET resource = @Resource, prev_hash = @PrevHash, hash = @Hash WHERE seq = @Seq",
                new { rewritten.Resource, rewritten.PrevHash, Hash = previous, rewritten.Seq });
        }

        await ExecuteAsync("UPDATE audit_head SET hash = @previous", new { previous });

        var broken = await AssertBrokenAsync(8, BreakKind.Rewritten);
        Assert.Contains("master key", broken.Problem, StringComparison.Ordinal);
        // A seal made without the key does not help either.
        await ExecuteAsync("UPDATE audit_head SET seal = @seal", new { seal = new string('0', 64) });
        await AssertBrokenAsync(8, BreakKind.Rewritten);
        await ExecuteAsync("UPDATE audit_head SET seal = NULL, seal_key = NULL");
        await AssertBrokenAsync(8, BreakKind.Unsealed);
    }

    [Fact]
    public async Task A_head_sealed_under_a_rotated_out_master_key_is_resealed_at_start_and_the_event_says_why()
    {
        var old = new AuditSeal(MasterKeyRing.FromKeys(RandomNumberGenerator.GetBytes(MasterKeyRing.KeySize)));
        await AppendAsync(new AuditLog(_database, old, _time, _ => Task.FromResult(Redactor.None), new AuditOptions(), NullLogger<AuditLog>.Instance), 3);
        Assert.Equal(old.KeyId, (await new AuditStore(_database).HeadAsync(CancellationToken.None)).SealKey);
        await AssertBrokenAsync(3, BreakKind.Unsealed); // the tests' key cannot check a seal made under another

        using var log = NewLog();
        await log.StartAsync(CancellationToken.None);
        await log.SealAtStartAsync(new AuditStore(_database), CancellationToken.None);
        await log.StopAsync(CancellationToken.None);

        var result = await Verifier.VerifyAsync(CancellationToken.None);
        Assert.True(result.Ok, result.FirstBroken?.Problem);
        Assert.Equal((4, TestSeal.Shared.KeyId), (result.Head.Seq, result.Head.SealKey));
        var seal = await EventAsync(4);
        Assert.Equal("audit.seal", seal.Action);
        Assert.Contains("\"reason\":\"sealed_under_another_master_key\"", seal.Detail, StringComparison.Ordinal);
        Assert.Contains(old.KeyId, seal.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_head_whose_seal_does_not_match_is_not_resealed_at_start()
    {
        await AppendAsync(NewLog(), 3);
        await ExecuteAsync("UPDATE audit_head SET seal = @seal", new { seal = new string('0', 64) });

        using var log = NewLog();
        await log.SealAtStartAsync(new AuditStore(_database), CancellationToken.None);

        Assert.Equal(0, log.QueueDepth);
        await AssertBrokenAsync(3, BreakKind.Rewritten);
    }

    [Fact]
    public async Task Recording_waits_when_the_queue_is_full_and_never_drops()
    {
        var log = NewLog(capacity: 2);
        Assert.True(log.RecordAsync(new AuditEntry("a")).AsTask().IsCompletedSuccessfully);
        Assert.True(log.RecordAsync(new AuditEntry("b")).AsTask().IsCompletedSuccessfully);
        var third = log.RecordAsync(new AuditEntry("c")).AsTask();
        Assert.False(third.IsCompleted); // full: the caller waits instead of losing the event
        Assert.Equal(2, log.QueueDepth);

        await log.StartAsync(CancellationToken.None);
        await third.WaitAsync(TimeSpan.FromSeconds(30));
        await log.StopAsync(CancellationToken.None);
        log.Dispose();

        await using var connection = await _database.OpenAsync(CancellationToken.None);
        Assert.Equal(["a", "b", "c"], await connection.QueryAsync<string>("SELECT action FROM audit_events ORDER BY seq"));
        Assert.True((await Verifier.VerifyAsync(CancellationToken.None)).Ok);
    }

    [Fact]
    public async Task A_trickle_of_events_is_committed_together_after_the_linger()
    {
        using var log = new AuditLog(_database, TestSeal.Shared, _time, _ => Task.FromResult(new Redactor([Canary])),
            new AuditOptions { BatchSize = 100, Linger = TimeSpan.FromMilliseconds(2) }, NullLogger<AuditLog>.Instance);
        await log.StartAsync(CancellationToken.None);
        for (var i = 0; i < 3; i++)
        {
            await log.RecordAsync(new AuditEntry("run") { Actor = _alice });
        }

        // The writer waits on the (fake) clock: nothing is committed until it moves, then all three at once.
        Assert.Equal(0, log.BatchesWritten);
        while (log.BatchesWritten == 0)
        {
            _time.Advance(TimeSpan.FromMilliseconds(1));
            await Task.Yield();
        }

        await log.StopAsync(CancellationToken.None);
        Assert.Equal(1, log.BatchesWritten);
        Assert.Equal(3, (await Verifier.VerifyAsync(CancellationToken.None)).Checked);
    }

    [Fact]
    public async Task The_writer_relaxes_fsync_on_its_own_connection_only()
    {
        using var log = NewLog();
        await log.StartAsync(CancellationToken.None);
        await log.RecordAsync(new AuditEntry("run") { Actor = _alice });
        await log.StopAsync(CancellationToken.None);

        // Every pooled connection (credentials, configuration) still flushes each commit: synchronous=FULL (2).
        for (var i = 0; i < 3; i++)
        {
            await using var connection = await _database.OpenAsync(CancellationToken.None);
            Assert.Equal(2, await connection.ExecuteScalarAsync<int>("PRAGMA synchronous"));
        }
    }

    [Fact]
    public async Task Stopping_flushes_everything_queued_and_later_events_are_still_written()
    {
        var log = NewLog(capacity: 1000);
        await log.StartAsync(CancellationToken.None);
        for (var i = 0; i < 200; i++)
        {
            await log.RecordAsync(new AuditEntry("run") { Actor = _alice, Detail = new Dictionary<string, object?> { ["i"] = i } });
        }

        await log.StopAsync(CancellationToken.None);
        await log.RecordAsync(new AuditEntry("late")); // a request still finishing while the host stops
        log.Dispose();

        var result = await Verifier.VerifyAsync(CancellationToken.None);
        Assert.True(result.Ok, result.FirstBroken?.Problem);
        Assert.Equal(201, result.Checked);
        Assert.Equal("late", (await EventAsync(201)).Action);
    }

    private async Task<BrokenEvent> AssertBrokenAsync(long seq, string kind, bool expectId = true)
    {
        var result = await Verifier.VerifyAsync(CancellationToken.None, pageSize: 3);
        Assert.False(result.Ok);
        var broken = result.FirstBroken!;
        Assert.True(seq == broken.Seq && kind == broken.Kind, $"expected {kind} at {seq}, got {broken.Kind} at {broken.Seq}: {broken.Problem}");
        if (expectId)
        {
            Assert.Equal((await EventAsync(seq)).Id, broken.Id);
        }

        Assert.Contains(seq.ToString(System.Globalization.CultureInfo.InvariantCulture), broken.Problem, StringComparison.Ordinal);
        return broken;
    }

    private async Task InsertAsync(AuditEvent e) => await ExecuteAsync(
        """
        INSERT INTO audit_events (seq, id, at, actor_id, actor_name, actor_kind, key_id, action, outcome, resource, environment, target, detail, prev_hash, hash)
        VALUES (@Seq, @Id, @At, @ActorId, @ActorName, @ActorKind, @KeyId, @Action, @Outcome, @Resource, @Environment, @Target, @Detail, @PrevHash, @Hash)
        """, e);
}

using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// The audit log of a real <c>keyway serve</c>, on SQLite and PostgreSQL: what is recorded, how it is
/// read and exported, that secrets stay out of it, and that tampering in the database is found.
/// </summary>
[Trait("Category", "Integration")]
public abstract class AuditTests<TFixture>(TFixture fixture) : IClassFixture<TFixture>
    where TFixture : KeywayFixture
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(30);

    private HttpClient Admin => fixture.Admin;

    /// <summary>
    /// These tests read runs one by one (their paths, their order, the CLI's lines), so their resources
    /// record each run as its own event rather than in the default rollups (TrafficModeTests covers those).
    /// </summary>
    private static readonly object OneByOne = new { audit = new { traffic = "each" } };

    [Fact]
    public async Task Every_change_credential_event_and_run_is_recorded_with_its_actor()
    {
        var env = KeywayFixture.Unique("env");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/environments/{env}", new { description = "audit" }));
        var (resource, token) = await fixture.BearerResourceAsync(OneByOne);
        var query = KeywayFixture.Unique("q");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/queries/{query}", new { resource, method = "GET", path = "/items" }));
        await Expect.SuccessAsync(await Admin.PostAsJsonAsync($"/api/v1/queries/{query}/run", new { }));
        await Expect.SuccessAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/users", query = new { page = "2" } }));
        var created = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "audit-app" }), 201);
        var keyId = (string)created["key"]!["id"]!;
        using (var app = fixture.Keyway.CreateClient((string)created["token"]!))
        {
            using var proxied = await app.GetAsync($"/proxy/{resource}/things?page=3");
            Assert.Equal(200, (int)proxied.StatusCode);
        }

        await Expect.StatusAsync(await Admin.DeleteAsync($"/api/v1/keys/{keyId}"), 204);
        var oauth = KeywayFixture.Unique("oauth");
        await fixture.SetVariableAsync("AUDIT_CLIENT_SECRET", "s3cr3t-client", secret: true);
        await fixture.PutResourceAsync(oauth, new
        {
            baseUrl = fixture.Upstream.BaseUrl,
            auth = new { type = "oauth2", grant = "client_credentials", tokenUrl = fixture.Upstream.BaseUrl + "/token", clientId = "keyway", clientSecret = "{{ environment.variables.AUDIT_CLIENT_SECRET }}" },
        });
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/resources/{oauth}/credential", new { accessToken = "imported-" + Guid.NewGuid().ToString("N"), expiresIn = 3600 }));
        await Expect.StatusAsync(await Admin.DeleteAsync($"/api/v1/queries/{query}"), 204);
        await Expect.StatusAsync(await Admin.DeleteAsync($"/api/v1/resources/{oauth}"), 204);

        var events = await WaitForAsync($"?resource={oauth}", e => e.Any(x => (string?)x["action"] == "resource.delete"));
        var actions = events.Select(e => (string)e["action"]!).ToList();
        Assert.True(actions.IndexOf("resource.put") < actions.IndexOf("credential.connected") && actions.IndexOf("credential.connected") < actions.IndexOf("resource.delete"),
            string.Join(", ", actions));
        var connected = events.First(e => (string?)e["action"] == "credential.connected");
        Assert.Equal("shared", (string?)connected["target"]);
        Assert.Equal("system", (string?)connected["actor"]!["kind"]);

        var mine = await WaitForAsync($"?resource={resource}", e => e.Count(x => (string?)x["action"] == "run") == 3);
        var runs = mine.Where(e => (string?)e["action"] == "run").ToList();
        Assert.Equal(["query", "run", "proxy"], runs.Select(r => (string)r["detail"]!["kind"]!).ToArray());
        Assert.Equal(query, (string?)runs[0]["target"]);
        Assert.Equal("/items", (string?)runs[0]["detail"]!["path"]);
        Assert.Equal("/users?page=2", (string?)runs[1]["detail"]!["path"]);
        Assert.Equal("/things?page=3", (string?)runs[2]["detail"]!["path"]);
        Assert.All(runs, r =>
        {
            Assert.Equal(200, (int)r["detail"]!["status"]!);
            Assert.Equal("production", (string?)r["environment"]);
            Assert.False((bool)r["detail"]!["refreshed"]!);
            Assert.NotNull(r["detail"]!["durationMs"]);
            Assert.Equal("success", (string?)r["outcome"]);
        });
        // The proxied request is a key use: its actor carries the key.
        Assert.Equal(("key", keyId), ((string)runs[2]["actor"]!["kind"]!, (string)runs[2]["actor"]!["keyId"]!));
        Assert.Equal("admin", (string?)runs[1]["actor"]!["name"]);
        Assert.NotEqual(keyId, (string?)runs[1]["actor"]!["keyId"]); // the admin's own key
        Assert.Contains(mine, e => (string?)e["action"] == "query.put" && (string?)e["target"] == query);
        Assert.Contains(mine, e => (string?)e["action"] == "query.delete" && (string?)e["target"] == query);

        var byKey = await WaitForAsync($"?actor={keyId}", e => e.Count > 0);
        Assert.All(byKey, e => Assert.Equal(keyId, (string?)e["actor"]!["keyId"]));
        var keys = await WaitForAsync("?action=key.&limit=1000", e => e.Any(x => (string?)x["target"] == keyId && (string?)x["action"] == "key.revoke"));
        Assert.Contains(keys, e => (string?)e["action"] == "key.create" && (string?)e["target"] == keyId && (string?)e["detail"]!["name"] == "audit-app");

        var variables = await WaitForAsync("?action=variable.&limit=1000", e => e.Count > 0);
        var secrets = variables.Where(e => (bool?)e["detail"]!["secret"] == true).ToList();
        Assert.NotEmpty(secrets);
        Assert.All(secrets, e => Assert.Equal(["secret", "version", "expiresAt", "expiresFrom", "origins", "keepVersions", "rotateEvery", "expiredPolicy"], ((JsonObject)e["detail"]!).Select(kv => kv.Key).ToArray()));
        Assert.DoesNotContain(token, (await Admin.GetStringAsync("/api/v1/audit?limit=1000")));
        var environments = await WaitForAsync($"?action=environment.put&limit=1000", e => e.Any(x => (string?)x["environment"] == env));
        Assert.True((bool)environments.Single(x => (string?)x["environment"] == env)["detail"]!["created"]!);

        await Expect.StatusAsync(await Admin.PostAsync("/api/v1/operator/rekey", null), 202);
        await WaitForAsync("?action=operator.rekey", e => e.Count > 0);
    }

    [Fact]
    public async Task The_list_pages_with_a_cursor_filters_by_time_and_the_export_streams_json_lines()
    {
        var (resource, _) = await fixture.BearerResourceAsync(OneByOne);
        for (var i = 0; i < 3; i++)
        {
            await Expect.SuccessAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = $"/page/{i}" }));
        }

        // resource.put, grant.add (the creator owns it), three runs.
        var all = await WaitForAsync($"?resource={resource}", e => e.Count == 5);
        var first = (long)all[0]["seq"]!;
        var page = await Expect.SuccessAsync(await Admin.GetAsync($"/api/v1/audit?resource={resource}&after={first}&limit=2"));
        var seqs = ((JsonArray)page["events"]!).Select(e => (long)e!["seq"]!).ToArray();
        Assert.Equal(all.Skip(1).Take(2).Select(e => (long)e["seq"]!).ToArray(), seqs);
        Assert.Equal(seqs[^1], (long)page["next"]!);
        // Paging back: the newest two before the last event, oldest first.
        var last = (long)all[^1]["seq"]!;
        var back = await Expect.SuccessAsync(await Admin.GetAsync($"/api/v1/audit?resource={resource}&before={last}&limit=2"));
        Assert.Equal(all.Skip(2).Take(2).Select(e => (long)e["seq"]!), ((JsonArray)back["events"]!).Select(e => (long)e!["seq"]!));

        var future = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(1).ToString("O"));
        var none = await Expect.SuccessAsync(await Admin.GetAsync($"/api/v1/audit?resource={resource}&since={future}"));
        Assert.Empty((JsonArray)none["events"]!);
        var past = Uri.EscapeDataString(DateTimeOffset.UtcNow.AddHours(-1).ToString("O"));
        var some = await Expect.SuccessAsync(await Admin.GetAsync($"/api/v1/audit?resource={resource}&since={past}&until={future}"));
        Assert.Equal(5, ((JsonArray)some["events"]!).Count);
        await Expect.ProblemAsync(await Admin.GetAsync("/api/v1/audit?since=yesterday"), 400, "bad_request");

        using var export = await Admin.GetAsync($"/api/v1/audit/export?resource={resource}");
        Assert.Equal("application/x-ndjson", export.Content.Headers.ContentType?.MediaType);
        var lines = (await export.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(all.Select(e => (string)e["hash"]!), lines.Select(l => (string)JsonNode.Parse(l)!["hash"]!));

        using var anonymous = fixture.Keyway.CreateClient();
        Assert.Equal(401, (int)(await anonymous.GetAsync("/api/v1/audit")).StatusCode);
    }

    [Fact]
    public async Task The_cli_lists_follows_and_exports()
    {
        var (resource, _) = await fixture.BearerResourceAsync(OneByOne);
        await Expect.SuccessAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/cli" }));
        await WaitForAsync($"?resource={resource}", e => e.Count == 3);
        var env = fixture.Keyway.CliEnvironment(fixture.Keyway.AdminToken);

        var list = await KeywayProcess.RunCliAsync(["audit", "list", "--resource", resource, "--since", "1h"], env);
        Assert.True(list.ExitCode == 0, list.Output);
        Assert.Contains("resource.put", list.StandardOutput);
        Assert.Contains("path=/cli", list.StandardOutput);

        var tail = await KeywayProcess.RunCliAsync(["audit", "tail", "--resource", resource, "--last", "5", "--max", "3", "--json"], env);
        Assert.True(tail.ExitCode == 0, tail.Output);
        var followed = tail.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(["resource.put", "grant.add", "run"], followed.Select(e => (string)e["action"]!).ToArray());

        var file = Path.Combine(fixture.Keyway.DataDirectory, "export-" + Guid.NewGuid().ToString("N") + ".jsonl");
        var export = await KeywayProcess.RunCliAsync(["audit", "export", "--resource", resource, "--output", file], env);
        Assert.True(export.ExitCode == 0, export.Output);
        Assert.Contains("Exported 3 events", export.StandardOutput);
        Assert.Equal(3, (await File.ReadAllLinesAsync(file)).Length);

        var denied = await KeywayProcess.RunCliAsync(["audit", "list"], fixture.Keyway.CliEnvironment("kw_not_a_key"));
        Assert.Equal(4, denied.ExitCode);
    }

    [Fact]
    public async Task A_planted_secret_appears_in_no_audit_output_even_when_echoed_or_in_a_query_string()
    {
        var canary = "CANARY-audit-" + Guid.NewGuid().ToString("N");
        var variable = "AUDIT_CANARY_" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        await fixture.SetVariableAsync(variable, canary, secret: true);
        var resource = KeywayFixture.Unique("canary");
        await fixture.PutResourceAsync(resource, new
        {
            baseUrl = fixture.Upstream.BaseUrl,
            auth = new { type = "bearer", token = $"{{{{ environment.variables.{variable} }}}}" },
            audit = new { traffic = "each" },
        });

        // The caller sends it in query strings (by a harmless name and by a secret-bearing one); the upstream echoes it all back.
        var run = await Expect.SuccessAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run",
            new { path = "/echo", query = new Dictionary<string, string> { ["q"] = canary, ["access_token"] = "other-" + canary } }));
        Assert.DoesNotContain(canary, run.ToJsonString());
        using (var proxied = await Admin.GetAsync($"/proxy/{resource}/echo?q={canary}&api_key={canary}"))
        {
            Assert.DoesNotContain(canary, await proxied.Content.ReadAsStringAsync());
        }

        await Expect.SuccessAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/echo-header/Authorization" }));
        Assert.Contains(fixture.Upstream.Requests, r => r.Query.TryGetValue("q", out var q) && q == canary);

        var events = await WaitForAsync($"?resource={resource}", e => e.Count(x => (string?)x["action"] == "run") == 3);
        var paths = events.Where(e => (string?)e["action"] == "run").Select(e => (string)e["detail"]!["path"]!).ToList();
        Assert.Contains(paths, p => p.Contains("q=[REDACTED]", StringComparison.Ordinal) && p.Contains("access_token=[REDACTED]", StringComparison.Ordinal));
        Assert.Contains(paths, p => p.Contains("api_key=[REDACTED]", StringComparison.Ordinal));

        var outputs = new List<string>
        {
            await Admin.GetStringAsync("/api/v1/audit?limit=1000"),
            await Admin.GetStringAsync("/api/v1/audit/export"),
        };
        var env = fixture.Keyway.CliEnvironment(fixture.Keyway.AdminToken);
        foreach (var args in new[] { new[] { "audit", "list", "--limit", "1000" }, ["audit", "list", "--json"], ["audit", "export"], ["audit", "tail", "--max", "5"] })
        {
            var result = await KeywayProcess.RunCliAsync(args, env);
            Assert.True(result.ExitCode == 0, result.Output);
            outputs.Add(result.Output);
        }

        await using var store = OpenStore();
        await using var connection = await store.OpenAsync(CancellationToken.None);
        outputs.AddRange(await connection.QueryAsync<string>("SELECT COALESCE(detail, '') || ' ' || COALESCE(target, '') FROM audit_events"));
        Assert.All(outputs, o => Assert.DoesNotContain(canary, o));
    }

    [Fact]
    public async Task Verify_passes_untouched_and_names_the_event_after_each_kind_of_tampering_in_the_database()
    {
        for (var i = 0; i < 6; i++)
        {
            await fixture.SetVariableAsync("AUDIT_TAMPER_" + i, "v" + i, secret: false);
        }

        await WaitForAsync("?action=variable.set&limit=1000", e => e.Count(x => ((string?)x["target"])?.StartsWith("AUDIT_TAMPER_", StringComparison.Ordinal) == true) == 6);
        // The checks below use a key of their own: its first use is recorded now (key.use), the next not
        // within a minute, so nothing is appended to the chain while this test tampers with it.
        var created = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "tamper-check" }), 201);
        var checkKey = (string)created["token"]!;
        using var checker = fixture.Keyway.CreateClient(checkKey);
        _checker = checker;
        var env = fixture.Keyway.CliEnvironment(checkKey);
        await VerifyAsync();
        await WaitForAsync("?action=key.use&limit=1000", e => e.Any(x => (string?)x["target"] == (string?)created["key"]!["id"]));
        var intact = await VerifyAsync();
        Assert.True((bool)intact["ok"]!, intact.ToJsonString());
        var head = (long)intact["head"]!["seq"]!;
        Assert.True(head >= 6);
        var ok = await KeywayProcess.RunCliAsync(["audit", "verify"], env);
        Assert.True(ok.ExitCode == 0, ok.Output);
        Assert.Contains("verifies", ok.StandardOutput);

        await using var store = OpenStore();
        await using var db = await store.OpenAsync(CancellationToken.None);
        var middle = head - 2;
        var row = await db.QuerySingleAsync<Row>("SELECT * FROM audit_events WHERE seq = @middle", new { middle });
        var newest = await db.QuerySingleAsync<Row>("SELECT * FROM audit_events WHERE seq = @head", new { head });

        // 1. Edit a field.
        await db.ExecuteAsync("UPDATE audit_events SET outcome = 'failure' WHERE seq = @middle", new { middle });
        await AssertBrokenAsync(middle, row.id, "edited");
        var cli = await KeywayProcess.RunCliAsync(["audit", "verify"], env);
        Assert.Equal(8, cli.ExitCode);
        Assert.Contains($"seq {middle}", cli.StandardError);
        Assert.Contains(row.id, cli.StandardError);
        await db.ExecuteAsync("UPDATE audit_events SET outcome = @outcome WHERE seq = @middle", new { row.outcome, middle });
        Assert.True((bool)(await VerifyAsync())["ok"]!);

        // 2. Delete an event in the middle.
        await db.ExecuteAsync("DELETE FROM audit_events WHERE seq = @middle", new { middle });
        var after = await db.QuerySingleAsync<string>("SELECT id FROM audit_events WHERE seq = @next", new { next = middle + 1 });
        var deleted = await AssertBrokenAsync(middle + 1, after, "deleted");
        Assert.Contains($"event {middle} is missing", (string)deleted["problem"]!);
        await InsertAsync(db, row);
        Assert.True((bool)(await VerifyAsync())["ok"]!);

        // 3. Delete the newest event: only the chain head knows it existed.
        await db.ExecuteAsync("DELETE FROM audit_events WHERE seq = @head", new { head });
        await AssertBrokenAsync(head, newest.id, "deleted");
        await InsertAsync(db, newest);
        Assert.True((bool)(await VerifyAsync())["ok"]!);

        // 4. Swap two events.
        await db.ExecuteAsync("UPDATE audit_events SET seq = -1 WHERE seq = @middle", new { middle });
        await db.ExecuteAsync("UPDATE audit_events SET seq = @middle WHERE seq = @next", new { middle, next = middle + 1 });
        await db.ExecuteAsync("UPDATE audit_events SET seq = @next WHERE seq = -1", new { next = middle + 1 });
        var swapped = await db.QuerySingleAsync<string>("SELECT id FROM audit_events WHERE seq = @middle", new { middle });
        await AssertBrokenAsync(middle, swapped, "reordered");
        await db.ExecuteAsync("UPDATE audit_events SET seq = -1 WHERE seq = @middle", new { middle });
        await db.ExecuteAsync("UPDATE audit_events SET seq = @middle WHERE seq = @next", new { middle, next = middle + 1 });
        await db.ExecuteAsync("UPDATE audit_events SET seq = @next WHERE seq = -1", new { next = middle + 1 });
        Assert.True((bool)(await VerifyAsync())["ok"]!);

        // 5. Insert a forged event after the newest, well-formed and linked: the head does not know it.
        var forged = newest with { seq = head + 1, id = "ev_forged_" + Guid.NewGuid().ToString("N"), prev_hash = newest.hash, hash = new string('f', 64) };
        await InsertAsync(db, forged);
        await AssertBrokenAsync(head + 1, forged.id, "inserted");
        await db.ExecuteAsync("DELETE FROM audit_events WHERE id = @id", new { forged.id });

        // 6. Rewrite the newest event and recompute its hash and the head's, as someone with the database but without the master key can.
        var stored = (await new Keyway.Audit.AuditStore(store).FindBySeqAsync(head, CancellationToken.None))!;
        var rewritten = stored with { Outcome = "failure" };
        var rewrittenHash = Keyway.Audit.AuditHash.Compute(rewritten);
        await db.ExecuteAsync("UPDATE audit_events SET outcome = 'failure', hash = @rewrittenHash WHERE seq = @head", new { rewrittenHash, head });
        await db.ExecuteAsync("UPDATE audit_head SET hash = @rewrittenHash", new { rewrittenHash });
        var sealBroken = await AssertBrokenAsync(head, newest.id, "rewritten");
        Assert.Contains("master key", (string)sealBroken["problem"]!, StringComparison.Ordinal);
        var rewrittenCli = await KeywayProcess.RunCliAsync(["audit", "verify"], env);
        Assert.Equal(8, rewrittenCli.ExitCode);
        Assert.Contains("rewritten", rewrittenCli.StandardError, StringComparison.Ordinal);
        await db.ExecuteAsync("UPDATE audit_events SET outcome = @outcome, hash = @hash WHERE seq = @head", new { newest.outcome, newest.hash, head });
        await db.ExecuteAsync("UPDATE audit_head SET hash = @hash", new { newest.hash });

        var restored = await VerifyAsync();
        Assert.True((bool)restored["ok"]!, restored.ToJsonString());
    }

    [Fact]
    public async Task A_store_from_before_seals_is_sealed_at_the_next_start_by_an_audit_seal_event_that_says_so()
    {
        await using var keyway = await KeywayProcess.StartAsync(fixture.Store, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_test_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_ADMIN_PASSWORD"] = "admin-password-" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
        });
        using (var admin = keyway.CreateAdminClient())
        {
            await Poll.UntilAsync(async () => (long)(await Expect.SuccessAsync(await admin.PostAsync("/api/v1/audit/verify", null)))["head"]!["seq"]! > 0,
                s_wait, "the first start's events");
        }

        await keyway.StopAsync();
        await using (var store = Open(keyway))
        await using (var db = await store.OpenAsync(CancellationToken.None))
        {
            // What a store written before seals looks like.
            await db.ExecuteAsync("UPDATE audit_head SET seal = NULL, seal_key = NULL");
        }

        await keyway.RestartAsync();
        using var again = keyway.CreateAdminClient();
        JsonNode? seal = null;
        await Poll.UntilAsync(async () =>
        {
            var page = await Expect.SuccessAsync(await again.GetAsync("/api/v1/audit?action=audit.seal"));
            seal = ((JsonArray)page["events"]!).SingleOrDefault();
            return seal is not null;
        }, s_wait, "the audit.seal event");
        Assert.Equal("unsealed", (string?)seal!["detail"]!["reason"]);
        Assert.Equal("system", (string?)seal["actor"]!["kind"]);
        var verified = await Expect.SuccessAsync(await again.PostAsync("/api/v1/audit/verify", null));
        Assert.True((bool)verified["ok"]!, verified.ToJsonString());
        Assert.Contains("has no seal this server can check", keyway.AllOutput, StringComparison.Ordinal);
    }

    // The client the tampering test verifies with (see there); other tests use the admin's.
    private HttpClient? _checker;

    private async Task<JsonNode> VerifyAsync() => await Expect.SuccessAsync(await (_checker ?? Admin).PostAsync("/api/v1/audit/verify", null));

    private async Task<JsonNode> AssertBrokenAsync(long seq, string id, string problem)
    {
        var result = await VerifyAsync();
        Assert.False((bool)result["ok"]!, result.ToJsonString());
        var broken = result["firstBroken"]!;
        Assert.True((long)broken["seq"]! == seq && (string?)broken["id"] == id && ((string)broken["problem"]!).StartsWith(problem, StringComparison.Ordinal),
            $"expected {problem} at {seq} ({id}): {result.ToJsonString()}");
        return broken;
    }

    /// <summary>Polls the audit list (events are written off the request path) until <paramref name="done"/> holds.</summary>
    private async Task<List<JsonNode>> WaitForAsync(string query, Func<List<JsonNode>, bool> done)
    {
        List<JsonNode> events = [];
        await Poll.UntilAsync(async () =>
        {
            var page = await Expect.SuccessAsync(await Admin.GetAsync("/api/v1/audit" + query));
            events = ((JsonArray)page["events"]!).Select(e => e!).ToList();
            return done(events);
        }, s_wait, $"audit events {query}");
        return events;
    }

    private Keyway.Storage.Database OpenStore() => Open(fixture.Keyway);

    private static Keyway.Storage.Database Open(KeywayProcess keyway) => keyway.DatabaseUrl is { } url
        ? Keyway.Storage.Database.Postgres(url)
        : Keyway.Storage.Database.Sqlite(Path.Combine(keyway.DataDirectory, "keyway.db"));

    private static Task<int> InsertAsync(System.Data.Common.DbConnection db, Row row) => db.ExecuteAsync(
        """
        INSERT INTO audit_events (seq, id, at, actor_id, actor_name, actor_kind, key_id, action, outcome, resource, environment, target, detail, prev_hash, hash)
        VALUES (@seq, @id, @at, @actor_id, @actor_name, @actor_kind, @key_id, @action, @outcome, @resource, @environment, @target, @detail, @prev_hash, @hash)
        """, row);

    // Column names as they are: this is the database, not the API.
#pragma warning disable IDE1006, SA1300
    private sealed record Row(
        long seq, string id, long at, string actor_id, string actor_name, string actor_kind, string? key_id, string action, string outcome,
        string? resource, string? environment, string? target, string? detail, string prev_hash, string hash);
#pragma warning restore IDE1006, SA1300
}

public sealed class SqliteAuditTests(SqliteKeyway fixture) : AuditTests<SqliteKeyway>(fixture);

public sealed class PostgresAuditTests(PostgresKeyway fixture) : AuditTests<PostgresKeyway>(fixture);

using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// Traffic modes through a real <c>keyway serve</c>: rollup counts equal the requests sent once the
/// process stops gracefully; after SIGKILL only the open interval is lost; a resource in <c>each</c>
/// mode has exactly one <c>run</c> event per request; <c>off</c> is refused for a resource that sends a secret.
/// </summary>
[Trait("Category", "Integration")]
public sealed class TrafficModeTests
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(30);

    private static async Task<(KeywayProcess Keyway, HttpClient Admin, HttpClient App, string KeyId)> StartAsync(
        StoreKind store, UpstreamServer upstream, string interval)
    {
        var keyway = await KeywayProcess.StartAsync(store, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_traffic_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_ADMIN_PASSWORD"] = "pw-" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
            ["KEYWAY_AUDIT_ROLLUP_INTERVAL"] = interval,
        });
        var admin = keyway.CreateAdminClient();
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/rolled", new { baseUrl = upstream.BaseUrl }));
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/each-one", new { baseUrl = upstream.BaseUrl, audit = new { traffic = "each" } }));
        var created = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/keys", new { name = "traffic-app" }), 201);
        return (keyway, admin, keyway.CreateClient((string)created["token"]!), (string)created["key"]!["id"]!);
    }

    private static async Task<List<JsonNode>> EventsAsync(HttpClient admin, string query)
    {
        var page = await Expect.SuccessAsync(await admin.GetAsync("/api/v1/audit?limit=1000&" + query));
        return ((JsonArray)page["events"]!).Select(e => e!).ToList();
    }

    private static long Count(IEnumerable<JsonNode> rollups, string statusClass) =>
        rollups.Where(e => (string?)e["detail"]!["statusClass"] == statusClass).Sum(e => (long)e["detail"]!["count"]!);

    private static async Task SendAsync(HttpClient app, string path, int times)
    {
        for (var i = 0; i < times; i++)
        {
            using var response = await app.GetAsync(path);
            Assert.True(response.StatusCode is System.Net.HttpStatusCode.OK or System.Net.HttpStatusCode.NotFound, $"{path}: {(int)response.StatusCode}");
        }
    }

    [Theory]
    [InlineData(StoreKind.Sqlite)]
    [InlineData(StoreKind.Postgres)]
    public async Task After_a_graceful_stop_rollup_counts_equal_the_requests_sent_and_an_each_resource_has_one_event_per_request(StoreKind store)
    {
        await using var upstream = await UpstreamServer.StartAsync();
        // An hour: nothing closes on the clock during the test (or once, at an hour's turn; the sums hold either way).
        var (keyway, admin, app, keyId) = await StartAsync(store, upstream, "1h");
        await using (keyway)
        using (admin)
        using (app)
        {
            await SendAsync(app, "/proxy/rolled/anything", 23);
            await SendAsync(app, "/proxy/rolled/status/404", 9);
            await SendAsync(app, "/proxy/each-one/anything", 11);
            await Expect.SuccessAsync(await app.PostAsJsonAsync("/api/v1/resources/rolled/run", new { path = "/anything" }));
            // Nothing of the rolled-up traffic is written before the interval closes.
            Assert.Empty(await EventsAsync(admin, "action=traffic.rollup"));

            await keyway.RestartAsync();
            using var after = keyway.CreateAdminClient();
            var rollups = await EventsAsync(after, "action=traffic.rollup&resource=rolled");
            Assert.All(rollups, e => Assert.Equal(keyId, (string?)e["actor"]!["keyId"]));
            Assert.All(rollups, e => Assert.Equal("production", (string?)e["environment"]));
            var proxied = rollups.Where(e => (string?)e["detail"]!["kind"] == "proxy").ToList();
            Assert.Equal(23, Count(proxied, "2xx"));
            Assert.Equal(9, Count(proxied, "4xx"));
            Assert.Equal(32, proxied.Sum(e => (long)e["detail"]!["count"]!));
            Assert.Equal(1, rollups.Where(e => (string?)e["detail"]!["kind"] == "run").Sum(e => (long)e["detail"]!["count"]!));
            Assert.Empty(await EventsAsync(after, "action=run&resource=rolled"));

            var each = await EventsAsync(after, "action=run&resource=each-one");
            Assert.Equal(11, each.Count);
            Assert.All(each, e => Assert.Equal("/anything", (string?)e["detail"]!["path"]));
            Assert.Empty(await EventsAsync(after, "action=traffic.rollup&resource=each-one"));

            // The CLI shows a rollup in one line.
            var listed = await KeywayProcess.RunCliAsync(["audit", "list", "--action", "traffic.rollup", "--resource", "rolled"], keyway.CliEnvironment(keyway.AdminToken));
            Assert.True(listed.ExitCode == 0, listed.Output);
            Assert.Matches(@"proxy GET 4xx count=\d+ slowest=\d+ms in=\d+B out=\d+B \d\d:\d\d:\d\dZ-\d\d:\d\d:\d\dZ", listed.StandardOutput);

            // The chain with the rollups in it verifies.
            Assert.True((bool)(await Expect.SuccessAsync(await after.PostAsync("/api/v1/audit/verify", null)))["ok"]!);
        }
    }

    [Fact]
    public async Task After_SIGKILL_only_the_open_interval_is_lost()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        var (keyway, admin, app, _) = await StartAsync(StoreKind.Sqlite, upstream, "2s");
        await using (keyway)
        using (admin)
        using (app)
        {
            await SendAsync(app, "/proxy/rolled/anything", 15);
            List<JsonNode> before = [];
            await Poll.UntilAsync(async () =>
            {
                before = await EventsAsync(admin, "action=traffic.rollup&resource=rolled");
                return Count(before, "2xx") == 15;
            }, s_wait, "the first requests' interval to close");

            // These fall in the open interval (or one that closes just before the kill).
            await SendAsync(app, "/proxy/rolled/anything", 7);
            await keyway.KillAsync();
            await keyway.RestartAsync();

            using var after = keyway.CreateAdminClient();
            var rollups = await EventsAsync(after, "action=traffic.rollup&resource=rolled");
            var counted = Count(rollups, "2xx");
            Assert.InRange(counted, 15, 22);
            // Everything recorded before the kill is still there, unchanged.
            Assert.All(before, e => Assert.Contains(rollups, r => (string?)r["id"] == (string?)e["id"] && (string?)r["hash"] == (string?)e["hash"]));
        }
    }

    [Fact]
    public async Task Off_is_refused_for_a_resource_that_reads_a_secret_variable_and_leaves_a_plain_one_out_of_the_audit_log()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        var (keyway, admin, app, _) = await StartAsync(StoreKind.Sqlite, upstream, "1h");
        await using (keyway)
        using (admin)
        using (app)
        {
            await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/environments/production/variables/TRAFFIC_SECRET", new { value = "s3cret-traffic-value", secret = true }));
            await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/environments/production/variables/TRAFFIC_REGION", new { value = "eu", secret = false }));
            var refused = await Expect.ProblemAsync(await admin.PutAsJsonAsync("/api/v1/resources/secretive", new
            {
                baseUrl = upstream.BaseUrl,
                headers = new Dictionary<string, string> { ["X-Token"] = "{{ environment.variables.TRAFFIC_SECRET }}" },
                audit = new { traffic = "off" },
            }), 400, "invalid_config");
            var error = Assert.Single((JsonArray)refused["errors"]!)!;
            Assert.Equal("audit.traffic", (string?)error["field"]);
            Assert.Contains("TRAFFIC_SECRET", (string?)error["message"], StringComparison.Ordinal);

            await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/quiet", new
            {
                baseUrl = upstream.BaseUrl,
                headers = new Dictionary<string, string> { ["X-Region"] = "{{ environment.variables.TRAFFIC_REGION }}" },
                audit = new { traffic = "off" },
            }));
            await SendAsync(app, "/proxy/quiet/anything", 3);
            await keyway.RestartAsync();
            using var after = keyway.CreateAdminClient();
            Assert.DoesNotContain(await EventsAsync(after, "resource=quiet"), e => (string?)e["action"] is "run" or "traffic.rollup");
        }
    }
}

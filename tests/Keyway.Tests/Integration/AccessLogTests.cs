using System.Net.Http.Json;
using System.Text.Json;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// The access log stream through a real <c>keyway serve</c>: one <c>Keyway.Access</c> JSON line per proxied request
/// and per run, no secret in it, drops counted when its queue is full, and none when it is off.
/// </summary>
[Trait("Category", "Integration")]
public sealed class AccessLogTests
{
    private const string Planted = "PLANTED-41b7e0-access-value";

    private static async Task<(KeywayProcess Keyway, HttpClient Admin, HttpClient App, string KeyId)> StartAsync(
        UpstreamServer upstream, Dictionary<string, string>? extra = null)
    {
        var environment = new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_access_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_ADMIN_PASSWORD"] = "pw-" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
            ["KEYWAY_LOG_FORMAT"] = "json",
        };
        foreach (var (name, value) in extra ?? [])
        {
            environment[name] = value;
        }

        var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, environment);
        var admin = keyway.CreateAdminClient();
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/environments/production/variables/PLANTED", new { value = Planted, secret = true }));
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/acc", new
        {
            baseUrl = upstream.BaseUrl,
            auth = new { type = "bearer", token = "{{ environment.variables.PLANTED }}" },
        }));
        var created = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/keys", new { name = "access-app" }), 201);
        return (keyway, admin, keyway.CreateClient((string)created["token"]!), (string)created["key"]!["id"]!);
    }

    private static List<JsonElement> AccessLines(KeywayProcess keyway) =>
    [
        .. keyway.OutputLines
            .Where(l => l.Contains("\"Category\":\"Keyway.Access\"", StringComparison.Ordinal))
            .Select(l => JsonDocument.Parse(l).RootElement.GetProperty("State").Clone()),
    ];

    [Fact]
    public async Task A_proxied_request_and_a_run_each_write_one_line_and_a_planted_secret_never_appears()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        var (keyway, admin, app, keyId) = await StartAsync(upstream);
        await using (keyway)
        using (admin)
        using (app)
        {
            // The caller sends the secret's value as a query parameter; the upstream echoes the request back.
            using (var proxied = await app.GetAsync($"/proxy/acc/anything?q={Planted}&page=3"))
            {
                Assert.Equal(200, (int)proxied.StatusCode);
                Assert.DoesNotContain(Planted, await proxied.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }

            await Expect.SuccessAsync(await admin.PostAsJsonAsync("/api/v1/resources/acc/run", new
            {
                path = "/anything",
                query = new Dictionary<string, string> { ["q"] = Planted, ["api_key"] = "plain-but-secret-looking" },
            }));
            Assert.Equal(2, upstream.Requests.Count(r => r.Query.TryGetValue("q", out var q) && q == Planted));

            await Poll.UntilAsync(() => AccessLines(keyway).Count >= 2, TimeSpan.FromSeconds(15), "two access lines");
            await keyway.StopAsync();

            var lines = AccessLines(keyway);
            Assert.Equal(2, lines.Count);
            var proxy = Assert.Single(lines, l => l.GetProperty("Kind").GetString() == "proxy");
            Assert.Equal(keyId, proxy.GetProperty("Caller").GetString());
            Assert.Equal("acc", proxy.GetProperty("Resource").GetString());
            Assert.Equal("production", proxy.GetProperty("Environment").GetString());
            Assert.Equal("GET", proxy.GetProperty("Method").GetString());
            Assert.Equal("/anything?q=[REDACTED]&page=3", proxy.GetProperty("Path").GetString());
            Assert.Equal("200", proxy.GetProperty("Status").ToString());
            Assert.True(long.Parse(proxy.GetProperty("DurationMs").ToString(), System.Globalization.CultureInfo.InvariantCulture) >= 0);
            Assert.True(proxy.TryGetProperty("Refreshed", out _));
            Assert.True(proxy.TryGetProperty("Error", out _));
            Assert.True(DateTimeOffset.TryParse(proxy.GetProperty("Time").GetString(), out _));

            var run = Assert.Single(lines, l => l.GetProperty("Kind").GetString() == "run");
            Assert.False(string.IsNullOrEmpty(run.GetProperty("Caller").GetString()));
            Assert.Equal("GET", run.GetProperty("Method").GetString());
            Assert.DoesNotContain("plain-but-secret-looking", run.GetProperty("Path").GetString(), StringComparison.Ordinal);
            Assert.StartsWith("/anything?", run.GetProperty("Path").GetString(), StringComparison.Ordinal);
            Assert.True(long.Parse(run.GetProperty("BytesOut").ToString(), System.Globalization.CultureInfo.InvariantCulture) > 0);

            Assert.DoesNotContain(Planted, keyway.AllOutput, StringComparison.Ordinal);
            Assert.DoesNotContain("plain-but-secret-looking", keyway.AllOutput, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_full_queue_drops_lines_and_counts_them_on_metrics()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        var (keyway, admin, app, _) = await StartAsync(upstream, new() { ["KEYWAY_ACCESS_LOG_QUEUE"] = "1" });
        await using (keyway)
        using (admin)
        using (app)
        {
            // Bursts until one overflows the one-line queue: each proxied request still answers.
            await Poll.UntilAsync(async () =>
            {
                var burst = await Task.WhenAll(Enumerable.Range(0, 64).Select(async _ =>
                {
                    using var response = await app.GetAsync("/proxy/acc/anything");
                    return (int)response.StatusCode;
                }));
                Assert.All(burst, status => Assert.Equal(200, status));
                return Dropped(await admin.GetStringAsync("/metrics")) > 0;
            }, TimeSpan.FromSeconds(60), "a dropped access line on /metrics");
        }
    }

    private static double Dropped(string metrics) =>
        metrics.Split('\n')
            .Where(l => l.StartsWith("keyway_access_log_dropped_total", StringComparison.Ordinal))
            .Select(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture))
            .Sum();

    [Theory]
    [InlineData("KEYWAY_ACCESS_LOG", "off")]
    [InlineData("Logging__LogLevel__Keyway.Access", "Warning")]
    public async Task Off_or_filtered_out_writes_no_access_line(string name, string value)
    {
        await using var upstream = await UpstreamServer.StartAsync();
        var (keyway, admin, app, _) = await StartAsync(upstream, new() { [name] = value });
        await using (keyway)
        using (admin)
        using (app)
        {
            using (var proxied = await app.GetAsync("/proxy/acc/anything"))
            {
                Assert.Equal(200, (int)proxied.StatusCode);
            }

            await Expect.SuccessAsync(await admin.PostAsJsonAsync("/api/v1/resources/acc/run", new { path = "/anything" }));
            // Stopping drains whatever was queued, so any line would be out by now.
            await keyway.StopAsync();

            Assert.Contains(keyway.OutputLines, l => l.Contains("\"Category\":", StringComparison.Ordinal));
            Assert.Empty(AccessLines(keyway));
        }
    }

    [Fact]
    public async Task An_invalid_setting_stops_startup()
    {
        var e = await Assert.ThrowsAnyAsync<Exception>(() => KeywayProcess.StartAsync(StoreKind.Sqlite, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_access_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_ACCESS_LOG"] = "sometimes",
        }));
        Assert.Contains("KEYWAY_ACCESS_LOG", e.Message, StringComparison.Ordinal);
    }
}

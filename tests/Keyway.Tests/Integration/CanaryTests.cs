using System.Net.Http.Json;
using System.Text;
using Keyway.Tests.Infrastructure;
using Npgsql;

namespace Keyway.Tests.Integration;

/// <summary>
/// A canary secret planted through the API must never come back out: not in an HTTP response,
/// a log line, the CLI's output, or the database in plain text, whatever the upstream echoes.
/// </summary>
[Trait("Category", "Integration")]
public sealed class CanaryTests
{
    private const string Canary = "CANARY-7f3a9c1e-secret-value";

    [Theory]
    [MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_planted_secret_never_appears_in_any_output(StoreKind store)
    {
        await using var upstream = await UpstreamServer.StartAsync();
        var adminToken = "kw_canary_admin_" + Guid.NewGuid().ToString("N");
        await using var keyway = await KeywayProcess.StartAsync(store, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = adminToken,
            ["KEYWAY_ADMIN_PASSWORD"] = "pw-" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
        });
        using var admin = keyway.CreateAdminClient();
        var outputs = new List<string>();

        async Task Capture(Task<HttpResponseMessage> call)
        {
            using var response = await call;
            outputs.Add(response.ToString());
            outputs.Add(await response.Content.ReadAsStringAsync());
        }

        // Plant it, then use it every way there is.
        await Capture(admin.PutAsJsonAsync("/api/v1/environments/production/variables/CANARY", new { value = Canary, secret = true }));
        await Capture(admin.PutAsJsonAsync("/api/v1/resources/canary", new
        {
            baseUrl = upstream.BaseUrl,
            headers = new Dictionary<string, string> { ["X-Echo"] = "{{ environment.variables.CANARY }}" },
            auth = new { type = "bearer", token = "{{ environment.variables.CANARY }}" },
            timeouts = new { requestMs = 200 },
        }));
        await Capture(admin.PutAsJsonAsync("/api/v1/resources/canary-query", new
        {
            baseUrl = upstream.BaseUrl,
            auth = new { type = "apiKey", @in = "query", name = "key", value = "{{ environment.variables.CANARY }}" },
        }));
        await Capture(admin.PutAsJsonAsync("/api/v1/resources/canary-broken", new
        {
            baseUrl = upstream.BaseUrl,
            auth = new { type = "bearer", token = "{{ environment.variables.CANARY.foo.bar }}" },
        }));
        await Capture(admin.PostAsJsonAsync("/api/v1/resources/canary/run", new { path = "/echo-header/Authorization" }));
        await Capture(admin.PostAsJsonAsync("/api/v1/resources/canary/run", new { path = "/echo-header/X-Echo" }));
        await Capture(admin.PostAsJsonAsync("/api/v1/resources/canary/run", new { path = "/anything" }));
        await Capture(admin.PostAsJsonAsync("/api/v1/resources/canary-query/run", new { path = "/anything" }));
        await Capture(admin.PostAsJsonAsync("/api/v1/resources/canary/run", new { path = "/slow" }));
        await Capture(admin.PostAsJsonAsync("/api/v1/resources/canary/run", new { path = "/../escape" }));
        await Capture(admin.PostAsJsonAsync("/api/v1/resources/canary-broken/run", new { path = "/" }));
        await Capture(admin.GetAsync("/proxy/canary/echo-header/Authorization"));
        await Capture(admin.GetAsync("/proxy/canary/anything"));
        await Capture(admin.GetAsync("/proxy/canary-query/anything"));
        await Capture(admin.GetAsync("/api/v1/resources/canary"));
        await Capture(admin.GetAsync("/api/v1/resources"));
        await Capture(admin.GetAsync("/api/v1/environments/production/variables"));
        await Capture(admin.GetAsync("/api/v1/environments/production/variables/CANARY"));
        await Capture(admin.GetAsync("/openapi/v1.json"));
        await Capture(admin.GetAsync("/metrics"));
        var cliEnv = keyway.CliEnvironment(adminToken);
        foreach (var args in new[]
        {
            new[] { "var", "list" }, ["var", "get", "CANARY"], ["var", "list", "--json"], ["resource", "get", "canary"],
            ["resource", "list"], ["run", "canary", "/echo-header/Authorization"], ["run", "canary", "/anything", "--json"],
        })
        {
            var result = await KeywayProcess.RunCliAsync(args, cliEnv);
            outputs.Add(result.StandardOutput);
            outputs.Add(result.StandardError);
        }

        // The upstream really received it: the test would prove nothing otherwise.
        Assert.Contains(upstream.Requests, r => r.Headers.TryGetValue("Authorization", out var value) && value == "Bearer " + Canary);
        Assert.Contains(upstream.Requests, r => r.Query.TryGetValue("key", out var value) && value == Canary);

        await keyway.StopAsync();
        Assert.All(outputs, output => Assert.DoesNotContain(Canary, output));
        Assert.DoesNotContain(Canary, keyway.AllOutput);
        // Nor in any form it can be written in (JSON escapes, percent, base64, HTML references, UTF-16): RedactionEncodingTests
        // has the upstream echo each of them.
        foreach (var (name, form) in SecretForms.Of(Canary))
        {
            Assert.All(outputs, output => Assert.False(output.Contains(form, StringComparison.Ordinal), $"The {name} form of the canary was output."));
            Assert.False(keyway.AllOutput.Contains(form, StringComparison.Ordinal), $"The {name} form of the canary was logged.");
        }

        Assert.DoesNotContain(Convert.ToBase64String(Encoding.UTF8.GetBytes("Bearer " + Canary)), keyway.AllOutput);
        foreach (var dump in await DumpStoreAsync(keyway))
        {
            Assert.DoesNotContain(Canary, dump);
            Assert.DoesNotContain(Convert.ToHexString(Encoding.UTF8.GetBytes(Canary)), dump, StringComparison.OrdinalIgnoreCase);
        }
    }

    /// <summary>Everything the store holds, as text: the SQLite files byte for byte, or every PostgreSQL row.</summary>
    private static async Task<List<string>> DumpStoreAsync(KeywayProcess keyway)
    {
        var dumps = new List<string>();
        if (keyway.DatabaseUrl is null)
        {
            foreach (var file in Directory.GetFiles(keyway.DataDirectory, "keyway.db*"))
            {
                var bytes = await File.ReadAllBytesAsync(file);
                dumps.Add(Encoding.Latin1.GetString(bytes));
                dumps.Add(Encoding.Unicode.GetString(bytes));
            }

            Assert.NotEmpty(dumps);
            return dumps;
        }

        var uri = new Uri(keyway.DatabaseUrl);
        await using var connection = new NpgsqlConnection(
            $"Host={uri.Host};Port={uri.Port};Username={uri.UserInfo};Database={uri.AbsolutePath.TrimStart('/')};Pooling=false");
        await connection.OpenAsync();
        var tables = new List<string>();
        await using (var list = new NpgsqlCommand("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", connection))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }

        Assert.Contains("variable_versions", tables);
        foreach (var table in tables)
        {
            await using var dump = new NpgsqlCommand($"SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"{table}\" t", connection);
            dumps.Add((string)(await dump.ExecuteScalarAsync())!);
        }

        return dumps;
    }
}

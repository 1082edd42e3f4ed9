using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Integration;

/// <summary>
/// A change and its audit event commit together: a real <c>keyway serve</c> killed with SIGKILL in the
/// middle of concurrent changes, started again on the same store, has an event for every change it
/// acknowledged, and the chain verifies.
/// </summary>
[Trait("Category", "Integration")]
public sealed class AuditDurabilityTests
{
    private const int Clients = 4;
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(60);

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Sigkill_during_concurrent_changes_leaves_an_event_for_every_acknowledged_change_and_a_chain_that_verifies(StoreKind store)
    {
        await using var keyway = await KeywayProcess.StartAsync(store, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_test_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_ADMIN_PASSWORD"] = "admin-password-" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
            // The writer waits a second for more before each batch: an event that had to wait in memory for
            // the writer would be lost to the kill, one committed with its change is not.
            ["KEYWAY_AUDIT_LINGER_MS"] = "1000",
        });

        // What the server answered 2xx to: (action, resource or variable, version).
        var acknowledged = new ConcurrentBag<(string Action, string Name, long Version)>();
        var loops = Enumerable.Range(0, Clients).Select(c => Task.Run(() => ChangeLoopAsync(keyway, c, acknowledged))).ToList();

        // Kill mid-loop, once every client has had some changes acknowledged and while they keep sending.
        await Poll.UntilAsync(() => acknowledged.Count >= 60 && Enumerable.Range(0, Clients).All(c => acknowledged.Any(a => a.Name.EndsWith($"c{c}", StringComparison.Ordinal))),
            s_wait, "changes acknowledged by every client");
        Assert.Equal(137, await keyway.KillAsync());
        var failures = await Task.WhenAll(loops);
        Assert.All(failures, f => Assert.True(f is null, f));

        await keyway.RestartAsync();
        await using var database = keyway.DatabaseUrl is { } url ? Database.Postgres(url) : Database.Sqlite(Path.Combine(keyway.DataDirectory, "keyway.db"));
        await Poll.UntilAsync(async () => await CountAsync(database, "SELECT COUNT(*) FROM audit_outbox") == 0, s_wait, "the outbox to be chained");

        IReadOnlyList<(string Action, string? Resource, string? Target, string? Detail)> events;
        await using (var connection = await database.OpenAsync(CancellationToken.None))
        {
            events = await connection.QueryAsync<(string, string?, string?, string?)>(
                "SELECT action, resource, target, detail FROM audit_events WHERE action IN ('variable.set', 'resource.put')");
        }

        var recorded = events.Select(e => (e.Action, e.Resource ?? e.Target!, (long)JsonNode.Parse(e.Detail!)!["version"]!)).ToHashSet();
        var missing = acknowledged.Where(a => !recorded.Contains(a)).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} of {acknowledged.Count} acknowledged changes have no event, e.g. {string.Join(", ", missing.Take(5))}");

        var verified = await KeywayProcess.RunCliAsync(["audit", "verify"], keyway.CliEnvironment(keyway.AdminToken));
        Assert.True(verified.ExitCode == 0, verified.Output);
    }

    /// <summary>Sets variables and saves a resource, over and over, until the server is killed; returns what went wrong otherwise.</summary>
    private static async Task<string?> ChangeLoopAsync(KeywayProcess keyway, int client, ConcurrentBag<(string, string, long)> acknowledged)
    {
        using var admin = keyway.CreateAdminClient();
        var resource = $"res-c{client}";
        for (var i = 0; ; i++)
        {
            try
            {
                var variable = $"v{i % 5}_c{client}";
                var set = await admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{variable}", new { value = $"value {i}", secret = i % 2 == 0 });
                if (!set.IsSuccessStatusCode)
                {
                    return $"PUT {variable}: {(int)set.StatusCode} {await set.Content.ReadAsStringAsync()}";
                }

                acknowledged.Add(("variable.set", variable, (long)(await set.Content.ReadFromJsonAsync<JsonNode>())!["version"]!));
                if (i % 3 == 0)
                {
                    var put = await admin.PutAsJsonAsync($"/api/v1/resources/{resource}", new { baseUrl = $"https://api.example.com/{i}" });
                    if (!put.IsSuccessStatusCode)
                    {
                        return $"PUT {resource}: {(int)put.StatusCode} {await put.Content.ReadAsStringAsync()}";
                    }

                    acknowledged.Add(("resource.put", resource, (long)(await put.Content.ReadFromJsonAsync<JsonNode>())!["version"]!));
                }
            }
            catch (Exception e) when (e is HttpRequestException or IOException or TaskCanceledException)
            {
                // The server was killed: an answer not received was not acknowledged.
                return null;
            }
        }
    }

    private static async Task<long> CountAsync(Database database, string sql)
    {
        await using var connection = await database.OpenAsync(CancellationToken.None);
        return await connection.ExecuteScalarAsync<long>(sql);
    }
}

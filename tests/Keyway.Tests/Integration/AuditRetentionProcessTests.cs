using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Integration;

/// <summary>
/// Retention in a real <c>keyway serve</c>, driven through the CLI: <c>keyway audit prune</c> archives
/// and deletes what is past its retention behind a checkpoint, and <c>keyway audit verify</c> proves the
/// chain from it and still names an event tampered with after it.
/// </summary>
[Trait("Category", "Integration")]
public sealed class AuditRetentionProcessTests
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Cli_prune_archives_and_cuts_the_chain_and_verify_passes_from_the_checkpoint_then_names_a_later_edit()
    {
        var archive = TestDirectories.Create("audit-archive");
        try
        {
            await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, new Dictionary<string, string>
            {
                ["KEYWAY_ADMIN_TOKEN"] = "kw_test_" + Guid.NewGuid().ToString("N"),
                ["KEYWAY_ADMIN_PASSWORD"] = "admin-password-" + Guid.NewGuid().ToString("N"),
                ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
                // Everything a second old is past its retention; only the CLI prunes.
                ["KEYWAY_AUDIT_RETAIN_TRAFFIC"] = "1s",
                ["KEYWAY_AUDIT_RETAIN_CHANGES"] = "1s",
                ["KEYWAY_AUDIT_PRUNE_INTERVAL"] = "off",
                ["KEYWAY_AUDIT_ARCHIVE_DIR"] = archive,
            });
            using var admin = keyway.CreateAdminClient();
            var env = keyway.CliEnvironment(keyway.AdminToken);
            for (var i = 0; i < 3; i++)
            {
                Assert.True((await admin.PutAsJsonAsync($"/api/v1/environments/production/variables/RETAIN_{i}", new { value = "v" + i, secret = false })).IsSuccessStatusCode);
            }

            long head = 0;
            await Poll.UntilAsync(async () => (head = (long)(await VerifyAsync(admin))["head"]!["seq"]!) >= 3, s_wait, "the variables' events");
            await Poll.UntilAsync(async () =>
            {
                var dry = await Expect.SuccessAsync(await admin.PostAsync("/api/v1/audit/prune?dryRun=true", null));
                return (long?)dry["cutSeq"] >= head;
            }, s_wait, "the events to be a second old");

            var dryCli = await KeywayProcess.RunCliAsync(["audit", "prune", "--dry-run"], env);
            Assert.True(dryCli.ExitCode == 0, dryCli.Output);
            Assert.Contains("Dry run", dryCli.StandardOutput, StringComparison.Ordinal);
            Assert.Empty(Directory.GetFiles(archive));

            var pruneCli = await KeywayProcess.RunCliAsync(["audit", "prune", "--json"], env);
            Assert.True(pruneCli.ExitCode == 0, pruneCli.Output);
            var pruned = JsonNode.Parse(pruneCli.StandardOutput)!;
            var cut = (long)pruned["cutSeq"]!;
            Assert.True(cut >= head, pruneCli.StandardOutput);
            Assert.Equal(cut, (long)pruned["pruned"]!);
            Assert.Equal(cut, (long)pruned["checkpoint"]!["seq"]!);

            // The archive holds exactly the pruned events, and the store none of them.
            var file = Assert.Single(Directory.GetFiles(archive));
            Assert.Equal((string?)pruned["archive"], Path.GetFileName(file));
            var archived = (await File.ReadAllLinesAsync(file)).Select(l => (long)JsonNode.Parse(l)!["seq"]!).ToList();
            Assert.Equal(Enumerable.Range(1, (int)cut).Select(n => (long)n), archived);
            await using var store = Database.Sqlite(Path.Combine(keyway.DataDirectory, "keyway.db"));
            await using (var db = await store.OpenAsync(CancellationToken.None))
            {
                Assert.Equal(0L, await db.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM audit_events WHERE seq <= @cut", new { cut }));
            }

            var verified = await KeywayProcess.RunCliAsync(["audit", "verify"], env);
            Assert.True(verified.ExitCode == 0, verified.Output);
            Assert.Contains($"from checkpoint 1 at seq {cut}", verified.StandardOutput, StringComparison.Ordinal);

            // Events after the checkpoint: the prune's own, and one more change.
            Assert.True((await admin.PutAsJsonAsync("/api/v1/environments/production/variables/RETAIN_LATER", new { value = "later", secret = false })).IsSuccessStatusCode);
            await Poll.UntilAsync(async () => (long)(await VerifyAsync(admin))["head"]!["seq"]! >= cut + 2, s_wait, "events after the checkpoint");

            await using (var db = await store.OpenAsync(CancellationToken.None))
            {
                var edited = cut + 1;
                var outcome = await db.ExecuteScalarAsync<string>("SELECT outcome FROM audit_events WHERE seq = @edited", new { edited });
                await db.ExecuteAsync("UPDATE audit_events SET outcome = 'denied' WHERE seq = @edited", new { edited });
                var broken = await KeywayProcess.RunCliAsync(["audit", "verify"], env);
                Assert.True(broken.ExitCode == 8, broken.Output);
                Assert.Contains($"seq {edited}", broken.StandardError, StringComparison.Ordinal);
                Assert.Contains("edited", broken.StandardError, StringComparison.Ordinal);
                await db.ExecuteAsync("UPDATE audit_events SET outcome = @outcome WHERE seq = @edited", new { outcome, edited });

                await db.ExecuteAsync("UPDATE audit_checkpoints SET kept = kept + 1");
                var forged = await KeywayProcess.RunCliAsync(["audit", "verify"], env);
                Assert.True(forged.ExitCode == 8, forged.Output);
                Assert.Contains("checkpoint: the retention checkpoint 1", forged.StandardError, StringComparison.Ordinal);
                await db.ExecuteAsync("UPDATE audit_checkpoints SET kept = kept - 1");
            }

            var restored = await KeywayProcess.RunCliAsync(["audit", "verify"], env);
            Assert.True(restored.ExitCode == 0, restored.Output);
        }
        finally
        {
            TestDirectories.DeleteQuietly(archive);
        }
    }

    private static async Task<JsonNode> VerifyAsync(HttpClient admin) => await Expect.SuccessAsync(await admin.PostAsync("/api/v1/audit/verify", null));
}

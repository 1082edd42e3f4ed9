using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Packaging;

/// <summary>
/// <c>keyway operator backup</c> while a real <c>keyway serve</c> keeps writing, then <c>restore</c> into a
/// data directory a second Keyway starts on with the same master key: everything acknowledged before the
/// backup is there, the audit chain verifies, and the file holds no secret in the clear.
/// </summary>
[Trait("Category", "Integration")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class BackupTests
{
    private const string Canary = "canary-backup-5f1e2d3c4b5a";

    [Fact]
    public async Task A_backup_taken_under_writes_restores_into_a_store_that_serves_and_verifies()
    {
        var masterKey = KeywayProcess.NewMasterKey();
        var token = "kw_test_" + Guid.NewGuid().ToString("N");
        var environment = new Dictionary<string, string> { ["KEYWAY_ADMIN_TOKEN"] = token, ["KEYWAY_MASTER_KEY"] = masterKey };
        var work = TestDirectories.Create("backup");
        try
        {
            await using var source = await KeywayProcess.StartAsync(StoreKind.Sqlite, environment);
            using var client = source.CreateClient(token);
            await PutAsync(client, "api/v1/environments/production/variables/API_TOKEN", new { value = Canary, secret = true });
            await PutAsync(client, "api/v1/resources/billing", new { baseUrl = "https://billing.example.com", auth = new { type = "bearer", token = "{{ environment.variables.API_TOKEN }}" } });

            // Writes go on while the backup runs: the copy is one consistent snapshot, whatever it catches of them.
            using var stop = new CancellationTokenSource();
            var writes = Task.Run(async () =>
            {
                var n = 0;
                while (!stop.IsCancellationRequested)
                    await PutAsync(client, $"api/v1/environments/production/variables/LOAD_{n++ % 20}", new { value = $"v{n}" });
                return n;
            });
            var file = Path.Combine(work, "keyway-backup.db");
            var backup = await KeywayProcess.RunCliAsync(["operator", "backup", "--data-dir", source.DataDirectory, file, "--json"]);
            await stop.CancelAsync();
            Assert.True(await writes > 0);
            Assert.True(backup.ExitCode == 0, backup.Output);
            var summary = JsonNode.Parse(backup.StandardOutput)!;
            Assert.True((long)summary["resources"]! >= 1 && (long)summary["variables"]! >= 1, backup.StandardOutput);
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
            Assert.DoesNotContain(Canary, await File.ReadAllTextAsync(file), StringComparison.Ordinal);
            Assert.DoesNotContain(masterKey, await File.ReadAllTextAsync(file), StringComparison.Ordinal);

            // A second backup to the same file is refused; the first is untouched.
            var again = await KeywayProcess.RunCliAsync(["operator", "backup", "--data-dir", source.DataDirectory, file]);
            Assert.Equal(1, again.ExitCode);
            Assert.Contains("already exists", again.StandardError, StringComparison.Ordinal);

            var target = Path.Combine(work, "restored");
            var restore = await KeywayProcess.RunCliAsync(["operator", "restore", file, "--data-dir", target]);
            Assert.True(restore.ExitCode == 0, restore.Output);
            Assert.Contains("keyway audit verify", restore.StandardOutput, StringComparison.Ordinal);

            // Restoring over a store is refused without --replace, and with it the old store is kept aside.
            var over = await KeywayProcess.RunCliAsync(["operator", "restore", file, "--data-dir", target]);
            Assert.Equal(1, over.ExitCode);
            Assert.Contains("--replace", over.StandardError, StringComparison.Ordinal);
            var replaced = await KeywayProcess.RunCliAsync(["operator", "restore", file, "--data-dir", target, "--replace", "--json"]);
            Assert.True(replaced.ExitCode == 0, replaced.Output);
            var setAside = (string)JsonNode.Parse(replaced.StandardOutput)!["setAside"]!;
            Assert.True(File.Exists(setAside), setAside);

            await using var restored = await KeywayProcess.StartAsync(new KeywayProcessOptions { DataDirectory = target, Environment = environment });
            using var restoredClient = restored.CreateClient(token);
            var variable = await restoredClient.GetFromJsonAsync<JsonObject>("api/v1/environments/production/variables/API_TOKEN");
            Assert.True((bool)variable!["secret"]!);
            Assert.Equal(System.Net.HttpStatusCode.OK, (await restoredClient.GetAsync("api/v1/resources/billing")).StatusCode);
            var verified = await KeywayProcess.RunCliAsync(["audit", "verify"], restored.CliEnvironment(token));
            Assert.True(verified.ExitCode == 0, verified.Output);
        }
        finally
        {
            TestDirectories.DeleteQuietly(work);
        }
    }

    [Fact]
    public async Task A_file_that_is_not_a_Keyway_store_is_refused_and_nothing_is_written()
    {
        var work = TestDirectories.Create("restore-bad");
        try
        {
            var notAStore = Path.Combine(work, "notes.db");
            await File.WriteAllTextAsync(notAStore, "not a database");
            var target = Path.Combine(work, "data");
            var restore = await KeywayProcess.RunCliAsync(["operator", "restore", notAStore, "--data-dir", target]);
            Assert.Equal(1, restore.ExitCode);
            Assert.Contains("cannot be read as a Keyway store", restore.StandardError, StringComparison.Ordinal);
            Assert.False(File.Exists(Path.Combine(target, "keyway.db")));

            var noStore = await KeywayProcess.RunCliAsync(["operator", "backup", "--data-dir", Path.Combine(work, "empty"), Path.Combine(work, "b.db")]);
            Assert.Equal(1, noStore.ExitCode);
            Assert.Contains("There is no Keyway store", noStore.StandardError, StringComparison.Ordinal);
            Assert.False(File.Exists(Path.Combine(work, "b.db")));

            var postgres = await KeywayProcess.RunCliAsync(["operator", "backup", Path.Combine(work, "c.db")],
                new Dictionary<string, string> { ["KEYWAY_DATABASE_URL"] = "postgres://keyway@localhost/keyway" });
            Assert.Equal(2, postgres.ExitCode);
            Assert.Contains("pg_dump", postgres.StandardError, StringComparison.Ordinal);
        }
        finally
        {
            TestDirectories.DeleteQuietly(work);
        }
    }

    private static async Task PutAsync(HttpClient client, string path, object body)
    {
        using var response = await client.PutAsJsonAsync(path, body);
        Assert.True(response.IsSuccessStatusCode, $"PUT {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }
}

using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Database = Keyway.Storage.Database;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Integration;

/// <summary>Rotating the master key end to end: real processes, the real CLI, both stores.</summary>
[Trait("Category", "Integration")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class RekeyTests
{
    private readonly string _token = "kw_rekey_" + Guid.NewGuid().ToString("N");
    private readonly string _password = "rekey-password-" + Guid.NewGuid().ToString("N");

    [Theory]
    [MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Operator_rekey_moves_every_secret_and_token_to_the_new_master_key_and_the_old_one_can_be_dropped(StoreKind store)
    {
        await using var upstream = await UpstreamServer.StartAsync();
        var keyA = KeywayProcess.NewMasterKey();
        var keyB = KeywayProcess.NewMasterKey();
        var secrets = new Dictionary<string, string>
        {
            ["ONE"] = "one-" + Guid.NewGuid().ToString("N"),
            ["TWO"] = "two-" + Guid.NewGuid().ToString("N"),
            ["THREE"] = "three-" + Guid.NewGuid().ToString("N"),
        };
        // An imported OAuth token set: its tokens are encrypted too. The token URL is never called
        // (the access token is valid for an hour).
        var accessToken = "access-" + Guid.NewGuid().ToString("N");
        var refreshToken = "refresh-" + Guid.NewGuid().ToString("N");
        var dataDirectory = TestDirectories.Create("rekey");
        var database = store == StoreKind.Postgres ? await (await PostgresCluster.GetSharedAsync()).CreateDatabaseAsync() : null;
        var outputs = new List<string>();
        try
        {
            Task<KeywayProcess> StartAsync(string masterKey) => KeywayProcess.StartAsync(new KeywayProcessOptions
            {
                Store = store,
                DataDirectory = dataDirectory,
                DatabaseUrl = database?.Url,
                Environment = new Dictionary<string, string>
                {
                    ["KEYWAY_ADMIN_TOKEN"] = _token,
                    ["KEYWAY_ADMIN_PASSWORD"] = _password,
                    ["KEYWAY_MASTER_KEY"] = masterKey,
                },
            });

            await using (var underA = await StartAsync(keyA))
            {
                using var admin = underA.CreateAdminClient();
                await SetSecretAsync(admin, "ONE", "an-older-version");
                foreach (var (name, value) in secrets)
                {
                    await SetSecretAsync(admin, name, value);
                }

                await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/rekeyed", new
                {
                    kind = "rest",
                    baseUrl = upstream.BaseUrl,
                    auth = new { type = "bearer", token = "{{ environment.variables.ONE }}" },
                    headers = new Dictionary<string, string>
                    {
                        ["X-Two"] = "{{ environment.variables.TWO }}",
                        ["X-Three"] = "{{ environment.variables.THREE }}",
                    },
                }));
                await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/tokens", new
                {
                    kind = "rest",
                    baseUrl = upstream.BaseUrl,
                    auth = new { type = "oauth2", grant = "refresh_token", tokenUrl = upstream.BaseUrl + "/token", clientId = "keyway", clientSecret = "{{ environment.variables.TWO }}" },
                }));
                await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/tokens/credential", new { accessToken, refreshToken, expiresIn = 3600 }));
                await AssertSecretsReachTheUpstreamAsync(admin, upstream, "/under-a", secrets);
                await AssertTokenReachesTheUpstreamAsync(admin, upstream, "/token-under-a", accessToken);
                // A console sign-in: the session cookie is the first thing that needs a Data Protection key.
                using var browser = underA.CreateClient();
                await Expect.StatusAsync(await browser.PostAsJsonAsync("/api/v1/auth/login", new { name = "admin", password = _password }), 200);
                Assert.Equal(0, await underA.StopAsync());
                outputs.Add(underA.AllOutput);
            }

            await using (var rolling = await StartAsync($"{keyB},{keyA}"))
            {
                var rekey = await KeywayProcess.RunCliAsync(["operator", "rekey"], rolling.CliEnvironment(_token));

                Assert.True(rekey.ExitCode == 0, $"keyway operator rekey exited {rekey.ExitCode}:\n{rekey.Output}");
                Assert.True(rekey.StandardOutput.Contains("Rekey completed: 7 secrets checked, 7 re-encrypted", StringComparison.Ordinal), rekey.StandardOutput);
                outputs.Add(rekey.Output);
                using var admin = rolling.CreateAdminClient();
                var status = await Expect.StatusAsync(await admin.GetAsync("/api/v1/operator/rekey"), 200);
                Assert.Equal("completed", (string?)status["state"]);
                // 4 secret versions, the access token, the refresh token and the Data Protection key
                // (made at the first sign-in; it protects console session cookies).
                Assert.Equal(7, (long)status["total"]!);
                Assert.Equal(7, (long)status["done"]!);
                Assert.NotNull((string?)status["finishedAt"]);
                await AssertSecretsReachTheUpstreamAsync(admin, upstream, "/during-roll", secrets);

                // Scripts get the final status as JSON.
                var again = await KeywayProcess.RunCliAsync(["operator", "rekey", "--json"], rolling.CliEnvironment(_token));
                Assert.True(again.ExitCode == 0, again.Output);
                Assert.Equal("completed", (string?)JsonNode.Parse(again.StandardOutput)!["state"]);
                outputs.Add(again.Output);
                Assert.Equal(0, await rolling.StopAsync());
                outputs.Add(rolling.AllOutput);
            }

            await AssertEverythingIsUnderAsync(store == StoreKind.Postgres ? Database.Postgres(database!.Url) : Database.Sqlite(Path.Combine(dataDirectory, "keyway.db")), keyB);

            await using (var underB = await StartAsync(keyB))
            {
                using var admin = underB.CreateAdminClient();
                await AssertSecretsReachTheUpstreamAsync(admin, upstream, "/under-b", secrets);
                await AssertTokenReachesTheUpstreamAsync(admin, upstream, "/token-under-b", accessToken);
                Assert.Equal(0, await underB.StopAsync());
                outputs.Add(underB.AllOutput);
            }

            var serve = new List<string> { "serve", "--data-dir", dataDirectory, "--urls", $"http://127.0.0.1:{FreePort.Next()}" };
            if (database is not null)
            {
                serve.AddRange(["--database", database.Url]);
            }

            var underOldKey = await KeywayProcess.RunCliAsync(serve, new Dictionary<string, string> { ["KEYWAY_MASTER_KEY"] = keyA });
            Assert.NotEqual(0, underOldKey.ExitCode);
            Assert.Contains("master key does not match", underOldKey.StandardError);
            outputs.Add(underOldKey.Output);

            var everything = string.Join('\n', outputs);
            foreach (var secret in secrets.Values.Append("an-older-version").Append(accessToken).Append(refreshToken).Append(keyA).Append(keyB))
            {
                Assert.DoesNotContain(secret, everything);
            }
        }
        finally
        {
            if (database is not null)
            {
                await (await PostgresCluster.GetSharedAsync()).DropDatabaseAsync(database.Name);
            }

            TestDirectories.DeleteQuietly(dataDirectory);
        }
    }

    [Fact]
    public async Task The_rekey_calls_need_an_admin_key()
    {
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, new Dictionary<string, string> { ["KEYWAY_ADMIN_TOKEN"] = _token });
        using var anonymous = keyway.CreateClient();

        await Expect.ProblemAsync(await anonymous.PostAsync("/api/v1/operator/rekey", null), 401, "unauthorized");
        await Expect.ProblemAsync(await anonymous.GetAsync("/api/v1/operator/rekey"), 401, "unauthorized");
        using var admin = keyway.CreateAdminClient();
        Assert.Equal("idle", (string?)(await Expect.StatusAsync(await admin.GetAsync("/api/v1/operator/rekey"), 200))["state"]);
        var started = await Expect.StatusAsync(await admin.PostAsync("/api/v1/operator/rekey", null), 202);
        Assert.Equal("running", (string?)started["state"]);
        await Poll.UntilAsync(async () => (string?)(await Expect.StatusAsync(await admin.GetAsync("/api/v1/operator/rekey"), 200))["state"] == "completed",
            TimeSpan.FromSeconds(30), "the rekey to complete");
    }

    [Fact]
    public async Task New_master_key_prints_a_fresh_key_and_how_to_roll_it_out()
    {
        var first = await KeywayProcess.RunCliAsync(["operator", "new-master-key"]);
        var second = await KeywayProcess.RunCliAsync(["operator", "new-master-key"]);

        Assert.Equal(0, first.ExitCode);
        var key = first.StandardOutput.Trim();
        Assert.Equal(32, Convert.FromBase64String(key).Length);
        Assert.NotEqual(key, second.StandardOutput.Trim());
        Assert.Contains("KEYWAY_MASTER_KEY=<new>,<old>", first.StandardError);
        Assert.Contains("keyway operator rekey", first.StandardError);
        Assert.DoesNotContain(key, first.StandardError);
    }

    private static async Task SetSecretAsync(HttpClient admin, string name, string value) =>
        await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{name}", new { value, secret = true }), 200);

    private static async Task AssertSecretsReachTheUpstreamAsync(HttpClient admin, UpstreamServer upstream, string path, Dictionary<string, string> secrets)
    {
        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/rekeyed/run", new { path }), 200);
        Assert.Equal(200, (int)run["status"]!);
        var seen = upstream.Requests.Single(r => r.Path == path);
        Assert.Equal("Bearer " + secrets["ONE"], seen.Headers["Authorization"]);
        Assert.Equal(secrets["TWO"], seen.Headers["X-Two"]);
        Assert.Equal(secrets["THREE"], seen.Headers["X-Three"]);
    }

    private static async Task AssertTokenReachesTheUpstreamAsync(HttpClient admin, UpstreamServer upstream, string path, string accessToken)
    {
        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/tokens/run", new { path }), 200);
        Assert.Equal(200, (int)run["status"]!);
        Assert.Equal("Bearer " + accessToken, upstream.Requests.Single(r => r.Path == path).Headers["Authorization"]);
    }

    /// <summary>Every data key is wrapped by <paramref name="masterKey"/> and every ciphertext is under the active data key.</summary>
    private static async Task AssertEverythingIsUnderAsync(Database database, string masterKey)
    {
        await using (database)
        {
            await using var connection = await database.OpenAsync(CancellationToken.None);
            var wrappedBy = (await connection.QueryAsync<string>("SELECT DISTINCT master_key_id FROM data_keys")).ToList();
            Assert.Equal([MasterKeyRing.FromKeys(Convert.FromBase64String(masterKey)).PrimaryKeyId], wrappedBy);
            var active = await connection.QuerySingleAsync<string>("SELECT id FROM data_keys WHERE active <> 0");
            var ciphertexts = (await connection.QueryAsync<byte[]>(
                """
                SELECT ciphertext FROM variable_versions WHERE ciphertext IS NOT NULL
                UNION ALL SELECT access_token FROM credentials WHERE access_token IS NOT NULL
                UNION ALL SELECT refresh_token FROM credentials WHERE refresh_token IS NOT NULL
                UNION ALL SELECT xml FROM dataprotection_keys
                """)).ToList();
            Assert.Equal(7, ciphertexts.Count);
            Assert.All(ciphertexts, c => Assert.Equal(active, Convert.ToHexStringLower(c.AsSpan(1, 8))));
        }
    }
}

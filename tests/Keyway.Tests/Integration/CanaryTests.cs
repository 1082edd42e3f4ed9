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
        // A Digest server whose password is the canary: Keyway answers its challenges with it.
        var digest = new DigestVerifier("svc", Canary, "MD5");
        await using var digestUpstream = await UpstreamServer.StartAsync(digest.Install);
        await using var signing = await AssertionServer.StartAsync();
        using var appKey = System.Security.Cryptography.RSA.Create(2048);
        signing.Trust("4242", appKey);
        signing.Trust("canary-client", appKey);
        var keyPem = appKey.ExportRSAPrivateKeyPem();
        // Any leak of the key carries its base64 body: a line from its middle stands for it.
        var keyCanary = keyPem.Split('\n', StringSplitOptions.RemoveEmptyEntries)[3].Trim();
        // A client certificate's key and a PKCS#12 file's password (mutual TLS), against an API that requires the certificate.
        await using var mtls = await MtlsServer.StartAsync();
        var tlsClient = mtls.Certificates.IssueClient("canary-client");
        var tlsKeyCanary = TestCertificates.KeyPem(tlsClient).Split('\n', StringSplitOptions.RemoveEmptyEntries)[3].Trim();
        const string P12Password = "CANARY-p12-password-4b2e9a";
        var p12 = TestCertificates.Pkcs12Base64(tlsClient, P12Password);
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
        // A credential placed in the body (auth.apply.body), which the upstream echoes back; an AWS key that signs only an AssumeRole request.
        await Capture(admin.PutAsJsonAsync("/api/v1/resources/canary-body", new
        {
            baseUrl = upstream.BaseUrl,
            auth = new
            {
                type = "custom",
                steps = new object[] { new { type = "variable", name = "TOKEN", value = "{{ environment.variables.CANARY }}" } },
                apply = new { body = new Dictionary<string, string> { ["token"] = "{{ TOKEN }}" } },
                lifetimeSeconds = 3600,
            },
        }));
        await Capture(admin.PutAsJsonAsync("/api/v1/resources/canary-role", new
        {
            baseUrl = upstream.BaseUrl,
            auth = new
            {
                type = "awsSigV4",
                accessKeyId = "AKIACANARY0000000001",
                secretAccessKey = "{{ environment.variables.CANARY }}",
                region = "us-east-1",
                service = "execute-api",
                assumeRole = new { roleArn = "arn:aws:iam::123456789012:role/canary", stsUrl = upstream.BaseUrl + "/sts" },
            },
        }));
        // Private keys that sign: a GitHub App's, private_key_jwt's (a wrong client too, so an error is written), a service account's JSON.
        await Capture(admin.PutAsJsonAsync("/api/v1/environments/production/variables/CANARY_KEY", new { value = keyPem, secret = true }));
        await Capture(admin.PutAsJsonAsync("/api/v1/environments/production/variables/CANARY_SA", new
        {
            value = new System.Text.Json.Nodes.JsonObject { ["type"] = "service_account", ["client_email"] = "4242", ["private_key"] = keyPem, ["token_uri"] = signing.TokenEndpoint }.ToJsonString(),
            secret = true,
        }));
        await Capture(admin.PutAsJsonAsync("/api/v1/resources/canary-app", new
        {
            baseUrl = signing.BaseUrl,
            auth = new { type = "githubApp", appId = "4242", installationId = "1", privateKey = "{{ environment.variables.CANARY_KEY }}", apiUrl = signing.BaseUrl },
        }));
        foreach (var (name, client) in new[] { ("canary-pkjwt", "canary-client"), ("canary-pkjwt-wrong", "stranger") })
        {
            await Capture(admin.PutAsJsonAsync($"/api/v1/resources/{name}", new
            {
                baseUrl = signing.BaseUrl,
                auth = new { type = "oauth2", tokenUrl = signing.TokenEndpoint, clientId = client, clientAuth = "private_key_jwt", privateKey = "{{ environment.variables.CANARY_KEY }}" },
            }));
        }

        await Capture(admin.PutAsJsonAsync("/api/v1/resources/canary-sa", new
        {
            baseUrl = signing.BaseUrl,
            auth = new { type = "oauth2", grant = "jwt_bearer", serviceAccountKey = "{{ environment.variables.CANARY_SA }}", scope = "api" },
        }));
        await Capture(admin.PostAsJsonAsync("/api/v1/resources/canary-body/run", new { method = "POST", path = "/anything", body = new { a = 1 } }));
        await Capture(admin.PostAsync("/proxy/canary-body/anything", JsonContent.Create(new { a = 1 })));
        await Capture(admin.PostAsync("/proxy/canary-body/anything", new FormUrlEncodedContent([new("a", "1")])));
        await Capture(admin.GetAsync("/proxy/canary-body/anything"));
        foreach (var name in new[] { "canary-app", "canary-pkjwt", "canary-pkjwt-wrong", "canary-sa", "canary-role" })
        {
            await Capture(admin.PostAsJsonAsync($"/api/v1/resources/{name}/run", new { path = "/api/me" }));
            await Capture(admin.GetAsync($"/proxy/{name}/api/me"));
            await Capture(admin.GetAsync($"/api/v1/resources/{name}/credential"));
            await Capture(admin.PostAsync($"/api/v1/resources/{name}/credential/refresh", null));
        }

        // Digest's password and OAuth 1.0a's consumer and token secrets and RSA key: each request answers or signs with them.
        await Capture(admin.PutAsJsonAsync("/api/v1/resources/canary-digest", new
        {
            baseUrl = digestUpstream.BaseUrl,
            auth = new { type = "digest", username = "svc", password = "{{ environment.variables.CANARY }}" },
        }));
        await Capture(admin.PutAsJsonAsync("/api/v1/resources/canary-oauth1", new
        {
            baseUrl = upstream.BaseUrl,
            auth = new { type = "oauth1", consumerKey = "ck", consumerSecret = "{{ environment.variables.CANARY }}", token = "t", tokenSecret = "{{ environment.variables.CANARY }}" },
        }));
        await Capture(admin.PutAsJsonAsync("/api/v1/resources/canary-oauth1-rsa", new
        {
            baseUrl = upstream.BaseUrl,
            auth = new { type = "oauth1", signatureMethod = "RSA-SHA1", consumerKey = "ck", privateKey = "{{ environment.variables.CANARY_KEY }}", @in = "query" },
        }));
        foreach (var name in new[] { "canary-digest", "canary-oauth1", "canary-oauth1-rsa" })
        {
            await Capture(admin.PostAsJsonAsync($"/api/v1/resources/{name}/run", new { path = "/echo-header/Authorization" }));
            await Capture(admin.PostAsJsonAsync($"/api/v1/resources/{name}/run", new { method = "POST", path = "/anything", query = new { q = "1" }, body = new { a = 1 } }));
            await Capture(admin.GetAsync($"/proxy/{name}/echo-header/Authorization"));
            await Capture(admin.PostAsync($"/proxy/{name}/anything?q=2", new FormUrlEncodedContent(new Dictionary<string, string> { ["a"] = "1" })));
            await Capture(admin.PostAsJsonAsync($"/api/v1/resources/{name}/test", new { path = "/anything" }));
            await Capture(admin.GetAsync($"/api/v1/resources/{name}"));
        }

        await Capture(admin.PutAsJsonAsync("/api/v1/environments/production/variables/CANARY_TLS_CERT", new { value = TestCertificates.CertificatePem(tlsClient), secret = false }));
        await Capture(admin.PutAsJsonAsync("/api/v1/environments/production/variables/CANARY_TLS_KEY", new { value = TestCertificates.KeyPem(tlsClient), secret = true }));
        await Capture(admin.PutAsJsonAsync("/api/v1/environments/production/variables/CANARY_P12", new { value = p12, secret = true }));
        await Capture(admin.PutAsJsonAsync("/api/v1/environments/production/variables/CANARY_P12_PASSWORD", new { value = P12Password, secret = true }));
        foreach (var (name, tls) in new (string, object)[]
        {
            ("canary-mtls", new { clientCertificate = "{{ environment.variables.CANARY_TLS_CERT }}", clientKey = "{{ environment.variables.CANARY_TLS_KEY }}", caCertificate = mtls.Certificates.AuthorityPem }),
            ("canary-mtls-p12", new { pkcs12 = "{{ environment.variables.CANARY_P12 }}", pkcs12Password = "{{ environment.variables.CANARY_P12_PASSWORD }}", caCertificate = mtls.Certificates.AuthorityPem }),
            // A wrong password (another secret) and a key that is not the certificate's: errors are written.
            ("canary-mtls-wrong", new { pkcs12 = "{{ environment.variables.CANARY_P12 }}", pkcs12Password = "{{ environment.variables.CANARY }}", caCertificate = mtls.Certificates.AuthorityPem }),
            ("canary-mtls-mismatch", new { clientCertificate = "{{ environment.variables.CANARY_TLS_CERT }}", clientKey = "{{ environment.variables.CANARY_KEY }}", caCertificate = mtls.Certificates.AuthorityPem }),
            ("canary-mtls-untrusted", new { pkcs12 = "{{ environment.variables.CANARY_P12 }}", pkcs12Password = "{{ environment.variables.CANARY_P12_PASSWORD }}" }),
        })
        {
            await Capture(admin.PutAsJsonAsync($"/api/v1/resources/{name}", new { baseUrl = mtls.BaseUrl, tls }));
            await Capture(admin.PostAsJsonAsync($"/api/v1/resources/{name}/run", new { path = "/whoami" }));
            await Capture(admin.GetAsync($"/proxy/{name}/whoami"));
            await Capture(admin.GetAsync($"/api/v1/resources/{name}"));
            await Capture(admin.PostAsJsonAsync($"/api/v1/resources/{name}/test", new { path = "/whoami" }));
        }

        await Capture(admin.GetAsync("/api/v1/audit"));
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
        Assert.Equal(3, upstream.Requests.Count(r => r.Path == "/anything" && r.Body.Contains(Canary, StringComparison.Ordinal)));
        Assert.Contains(upstream.Requests, r => r.Path == "/sts" && r.Headers.TryGetValue("Authorization", out var value) && value.Contains("AKIACANARY0000000001/"));
        Assert.True(digest.Accepted >= 5, "The Digest upstream accepted the canary password's answers.");
        Assert.Contains(upstream.Requests, r => r.Headers.TryGetValue("Authorization", out var value) && value.StartsWith("OAuth ", StringComparison.Ordinal));
        Assert.Contains(upstream.Requests, r => r.Query.ContainsKey("oauth_signature"));

        Assert.True(signing.Requests.Count(r => r.Error is null) >= 3, "The signed credentials were obtained.");
        Assert.Contains(signing.Requests, r => r.Error is not null);

        // The certificate was presented: the API saw it (from the PEM and from the PKCS#12 file).
        Assert.True(mtls.Requests.Count(r => r.Thumbprint == TestCertificates.Thumbprint(tlsClient)) >= 4, "The client certificate was presented.");

        await keyway.StopAsync();
        foreach (var tlsSecret in new[] { tlsKeyCanary, P12Password, p12[..48], p12[^48..] })
        {
            Assert.All(outputs, output => Assert.DoesNotContain(tlsSecret, output));
            Assert.DoesNotContain(tlsSecret, keyway.AllOutput);
        }

        Assert.All(outputs, output => Assert.DoesNotContain(keyCanary, output));
        Assert.DoesNotContain(keyCanary, keyway.AllOutput);
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
            Assert.DoesNotContain(keyCanary, dump);
            Assert.DoesNotContain(tlsKeyCanary, dump);
            Assert.DoesNotContain(P12Password, dump);
            Assert.DoesNotContain(Convert.ToHexString(Encoding.UTF8.GetBytes(Canary)), dump, StringComparison.OrdinalIgnoreCase);
        }
    }

    /// <summary>
    /// The private key of a DPoP-bound credential, which Keyway generated and stores encrypted, never comes out either: not its
    /// <c>d</c>, not its PKCS#8 form, through an answer (runs, the proxy, the credential, the resource test, the audit log), the
    /// CLI, a log line, or the store in plain text. The key is read back from the store with the master key once Keyway has stopped.
    /// </summary>
    [Theory]
    [MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_DPoP_private_key_never_appears_in_any_output(StoreKind store)
    {
        await using var server = await DPoPServer.StartAsync();
        var masterKey = KeywayProcess.NewMasterKey();
        var adminToken = "kw_canary_admin_" + Guid.NewGuid().ToString("N");
        await using var keyway = await KeywayProcess.StartAsync(store, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = adminToken,
            ["KEYWAY_MASTER_KEY"] = masterKey,
        });
        using var admin = keyway.CreateAdminClient();
        var outputs = new List<string>();

        async Task Capture(Task<HttpResponseMessage> call)
        {
            using var response = await call;
            outputs.Add(response.ToString());
            outputs.Add(await response.Content.ReadAsStringAsync());
        }

        await Capture(admin.PutAsJsonAsync("/api/v1/environments/production/variables/DPOP_CLIENT_SECRET", new { value = server.ClientSecret, secret = true }));
        await Capture(admin.PutAsJsonAsync("/api/v1/resources/bound", DPoPTests.Definition(server, true)));
        await server.RequireNoncesAsync(authorizationServer: true, resourceServer: true);
        await Capture(admin.PostAsJsonAsync("/api/v1/resources/bound/run", new { path = "/api/me" }));
        await Capture(admin.PostAsJsonAsync("/api/v1/resources/bound/run", new { method = "POST", path = "/api/me", body = new { a = 1 } }));
        await Capture(admin.GetAsync("/proxy/bound/api/me"));
        await Capture(admin.PostAsync("/proxy/bound/api/me", JsonContent.Create(new { a = 1 })));
        await Capture(admin.GetAsync("/api/v1/resources/bound/credential"));
        await Capture(admin.PostAsync("/api/v1/resources/bound/credential/refresh", null));
        await Capture(admin.PostAsJsonAsync("/api/v1/resources/bound/test", new { }));
        await Capture(admin.GetAsync("/api/v1/resources/bound"));
        await Capture(admin.GetAsync("/api/v1/status/credentials"));
        await Capture(admin.GetAsync("/api/v1/config/export"));
        await Capture(admin.GetAsync("/api/v1/audit"));
        await Capture(admin.GetAsync("/metrics"));
        foreach (var args in new[] { new[] { "run", "bound", "/api/me", "--json" }, ["resource", "get", "bound"], ["credential", "status", "bound"] })
        {
            var result = await KeywayProcess.RunCliAsync(args, keyway.CliEnvironment(adminToken));
            outputs.Add(result.StandardOutput);
            outputs.Add(result.StandardError);
        }

        var stats = await server.StatsAsync();
        Assert.True((int)stats["accepted"]! >= 3, "The DPoP-bound credential was used: " + stats.ToJsonString());
        await keyway.StopAsync();

        var (d, pkcs8) = await StoredDPoPKeyAsync(keyway, masterKey, new Keyway.Credentials.CredentialKey("bound", "production", "shared"));
        var raw = System.Buffers.Text.Base64Url.DecodeFromChars(d);
        var forms = new[] { d, Convert.ToBase64String(raw), Convert.ToHexString(raw), Convert.ToHexStringLower(raw), pkcs8 };
        foreach (var form in forms)
        {
            Assert.All(outputs, output => Assert.DoesNotContain(form, output));
            Assert.DoesNotContain(form, keyway.AllOutput);
            foreach (var dump in await DumpStoreAsync(keyway))
            {
                Assert.DoesNotContain(form, dump);
            }
        }
    }

    /// <summary>The DPoP key of <paramref name="key"/>'s credential as the store holds it, decrypted: its <c>d</c> (base64url) and its PKCS#8 (base64).</summary>
    private static async Task<(string D, string Pkcs8)> StoredDPoPKeyAsync(KeywayProcess keyway, string masterKey, Keyway.Credentials.CredentialKey key)
    {
        await using var database = keyway.DatabaseUrl is { } url
            ? Keyway.Storage.Database.Postgres(url)
            : Keyway.Storage.Database.Sqlite(Path.Combine(keyway.DataDirectory, "keyway.db"));
        var ring = await Keyway.Secrets.KeyRing.OpenAsync(Keyway.Secrets.MasterKeyRing.FromKeys(Convert.FromBase64String(masterKey)),
            new Keyway.Storage.DataKeyStore(database), TimeProvider.System, CancellationToken.None);
        var keys = new Keyway.Credentials.DPoPKeyStore(database, ring, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<Keyway.Credentials.DPoPKeyStore>.Instance);
        await using (var connection = await database.OpenAsync(CancellationToken.None))
        {
            Assert.Equal(1L, await Keyway.Storage.Sql.ExecuteScalarAsync<long>(connection, "SELECT COUNT(*) FROM dpop_keys", null));
        }

        using var stored = await keys.GetAsync(key, "ES256", CancellationToken.None);
        var pkcs8 = stored.ExportForStore();
        using var ec = System.Security.Cryptography.ECDsa.Create();
        ec.ImportPkcs8PrivateKey(pkcs8, out _);
        return (System.Buffers.Text.Base64Url.EncodeToString(ec.ExportParameters(true).D), Convert.ToBase64String(pkcs8));
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

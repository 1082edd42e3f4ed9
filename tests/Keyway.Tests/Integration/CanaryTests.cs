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
        foreach (var name in new[] { "canary-app", "canary-pkjwt", "canary-pkjwt-wrong", "canary-sa" })
        {
            await Capture(admin.PostAsJsonAsync($"/api/v1/resources/{name}/run", new { path = "/api/me" }));
            await Capture(admin.GetAsync($"/proxy/{name}/api/me"));
            await Capture(admin.GetAsync($"/api/v1/resources/{name}/credential"));
            await Capture(admin.PostAsync($"/api/v1/resources/{name}/credential/refresh", null));
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

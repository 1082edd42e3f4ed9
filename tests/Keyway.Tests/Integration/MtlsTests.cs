using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// Client certificates (mutual TLS) through a real <c>keyway serve</c>, against a Kestrel API that requires one from
/// its own CA (<see cref="MtlsServer"/>): without a certificate, or with one from another CA, the handshake is refused
/// and reported as such; with the right one (PEM, a combined PEM or PKCS#12) <c>/run</c> and <c>/proxy</c> get through.
/// The private key and the PKCS#12 password never come back out.
/// </summary>
[Trait("Category", "Integration")]
public sealed class MtlsTests
{
    [Fact]
    public async Task A_resource_presents_its_client_certificate_through_run_and_proxy_and_the_server_refuses_it_without()
    {
        await using var server = await MtlsServer.StartAsync();
        var client = server.Certificates.IssueClient("keyway-client");
        var ecClient = server.Certificates.IssueClient("keyway-ec-client", ec: true);
        var rotated = server.Certificates.IssueClient("keyway-client-rotated");
        var stranger = TestCertificates.Create("Stranger").IssueClient("stranger");
        const string password = "p12-PASSWORD-canary-5d1e";
        var keyPem = TestCertificates.KeyPem(client);
        // Any leak of a key carries its base64 body: a line from its middle stands for it.
        var keyCanary = keyPem.Split('\n', StringSplitOptions.RemoveEmptyEntries)[3].Trim();
        var pkcs12 = TestCertificates.Pkcs12Base64(ecClient, password);
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_mtls_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
        });
        using var admin = keyway.CreateAdminClient();
        await SetAsync(admin, "CLIENT_CERT", TestCertificates.CertificatePem(client), secret: false);
        await SetAsync(admin, "CLIENT_KEY", keyPem);
        await SetAsync(admin, "COMBINED", TestCertificates.CertificatePem(client) + keyPem);
        await SetAsync(admin, "CLIENT_P12", pkcs12);
        await SetAsync(admin, "CLIENT_P12_PASSWORD", password);
        await SetAsync(admin, "STRANGER_CERT", TestCertificates.CertificatePem(stranger), secret: false);
        await SetAsync(admin, "STRANGER_KEY", TestCertificates.KeyPem(stranger));
        var ca = server.Certificates.AuthorityPem;
        await PutAsync(admin, "mtls-none", server, new { caCertificate = ca });
        await PutAsync(admin, "mtls-pem", server, new { clientCertificate = "{{ environment.variables.CLIENT_CERT }}", clientKey = "{{ environment.variables.CLIENT_KEY }}", caCertificate = ca });
        await PutAsync(admin, "mtls-combined", server, new { clientCertificate = "{{ environment.variables.COMBINED }}", caCertificate = ca });
        await PutAsync(admin, "mtls-p12", server, new { pkcs12 = "{{ environment.variables.CLIENT_P12 }}", pkcs12Password = "{{ environment.variables.CLIENT_P12_PASSWORD }}", caCertificate = ca });
        await PutAsync(admin, "mtls-stranger", server, new { clientCertificate = "{{ environment.variables.STRANGER_CERT }}", clientKey = "{{ environment.variables.STRANGER_KEY }}", caCertificate = ca });
        await PutAsync(admin, "mtls-untrusted", server, new { clientCertificate = "{{ environment.variables.CLIENT_CERT }}", clientKey = "{{ environment.variables.CLIENT_KEY }}" });
        var outputs = new List<string>();

        async Task<JsonNode> RunAsync(string resource, int status, string? code = null)
        {
            using var response = await admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/hello" });
            var body = await response.Content.ReadAsStringAsync();
            outputs.Add(body);
            return code is null ? await Expect.StatusAsync(response, status) : await Expect.ProblemAsync(response, status, code);
        }

        async Task<JsonNode> ProxyAsync(string resource, int status, string? code = null)
        {
            using var response = await admin.GetAsync($"/proxy/{resource}/hello");
            outputs.Add(await response.Content.ReadAsStringAsync());
            return code is null ? await Expect.StatusAsync(response, status) : await Expect.ProblemAsync(response, status, code);
        }

        // With the certificate, in each of its forms: the server saw it.
        foreach (var (resource, subject) in new[] { ("mtls-pem", "CN=keyway-client"), ("mtls-combined", "CN=keyway-client"), ("mtls-p12", "CN=keyway-ec-client") })
        {
            var run = await RunAsync(resource, 200);
            Assert.Equal(200, (int)run["status"]!);
            Assert.Equal(subject, (string?)run["body"]!["subject"]);
            var proxied = await ProxyAsync(resource, 200);
            Assert.Equal(subject, (string?)proxied["subject"]);
        }

        Assert.Contains(server.Requests, r => r.Thumbprint == TestCertificates.Thumbprint(client));
        Assert.Contains(server.Requests, r => r.Thumbprint == TestCertificates.Thumbprint(ecClient));

        // The resource test names the certificate presented and when it expires.
        var test = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/mtls-pem/test", new { path = "/hello" }), 200);
        outputs.Add(test.ToJsonString());
        Assert.True((bool)test["ok"]!, test.ToJsonString());
        var certificateStep = test["steps"]!.AsArray().Single(step => (string?)step!["step"] == "client certificate")!;
        Assert.Equal($"CN=keyway-client, valid until {client.NotAfter.ToUniversalTime():yyyy-MM-dd HH:mm}Z", (string?)certificateStep["detail"]);

        // Without one, or with one from another CA: refused in the handshake, and said so.
        foreach (var resource in new[] { "mtls-none", "mtls-stranger" })
        {
            var refused = await RunAsync(resource, 502, "upstream_tls_failed");
            Assert.Contains($"The TLS connection to resource '{resource}' failed", (string?)refused["detail"]);
            Assert.Contains(resource == "mtls-none" ? "presents none" : "CN=stranger", (string?)refused["detail"]);
            var proxied = await ProxyAsync(resource, 502, "upstream_tls_failed");
            Assert.Contains("client certificate", (string?)proxied["detail"]);
        }

        Assert.DoesNotContain(server.Requests, r => r.Thumbprint == TestCertificates.Thumbprint(stranger));

        // A server certificate from a private CA is trusted only through tls.caCertificate.
        var untrusted = await RunAsync("mtls-untrusted", 502, "upstream_tls_failed");
        Assert.Contains("tls.caCertificate", (string?)untrusted["detail"]);

        // A new certificate in the variables: the next request presents it (a new pool for the new version).
        await SetAsync(admin, "CLIENT_CERT", TestCertificates.CertificatePem(rotated), secret: false);
        await SetAsync(admin, "CLIENT_KEY", TestCertificates.KeyPem(rotated));
        Assert.Equal("CN=keyway-client-rotated", (string?)(await RunAsync("mtls-pem", 200))["body"]!["subject"]);
        Assert.Equal("CN=keyway-client-rotated", (string?)(await ProxyAsync("mtls-pem", 200))["subject"]);

        // A key that is not the certificate's: refused by name and field, the key never quoted.
        await SetAsync(admin, "CLIENT_KEY", TestCertificates.KeyPem(stranger));
        var mismatched = await RunAsync("mtls-pem", 400, "invalid_config");
        Assert.Contains("The resource 'mtls-pem': tls.clientKey does not match the certificate", (string?)mismatched["detail"]);
        await SetAsync(admin, "CLIENT_P12_PASSWORD", "not-the-password");
        var wrongPassword = await RunAsync("mtls-p12", 400, "invalid_config");
        Assert.Contains("tls.pkcs12 cannot be opened with tls.pkcs12Password", (string?)wrongPassword["detail"]);

        using (var audit = await admin.GetAsync("/api/v1/audit"))
            outputs.Add(await audit.Content.ReadAsStringAsync());
        using (var get = await admin.GetAsync("/api/v1/resources/mtls-p12"))
            outputs.Add(await get.Content.ReadAsStringAsync());
        await keyway.StopAsync();
        foreach (var secret in new[] { keyCanary, password, pkcs12[..40], pkcs12[^40..] })
        {
            Assert.All(outputs, output => Assert.DoesNotContain(secret, output));
            Assert.DoesNotContain(secret, keyway.AllOutput);
        }
    }

    [Fact]
    public async Task A_private_key_written_into_the_definition_or_a_certificate_that_does_not_read_is_refused_when_saved()
    {
        var certificates = TestCertificates.Create();
        var client = certificates.IssueClient("inline");
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_mtls_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
        });
        using var admin = keyway.CreateAdminClient();
        await SetAsync(admin, "KEY", TestCertificates.KeyPem(client));
        async Task<JsonNode> RefusedAsync(object tls, object? auth = null)
        {
            using var response = await admin.PutAsJsonAsync("/api/v1/resources/bad", new { baseUrl = "https://api.example.com", tls, auth });
            var body = await Expect.ProblemAsync(response, 400, "invalid_config");
            Assert.DoesNotContain("PRIVATE KEY-----", body.ToJsonString());
            return body;
        }

        var inline = await RefusedAsync(new { clientCertificate = TestCertificates.CertificatePem(client), clientKey = TestCertificates.KeyPem(client) });
        Assert.Equal("tls.clientKey", (string?)inline["errors"]![0]!["field"]);
        var combined = await RefusedAsync(new { clientCertificate = TestCertificates.CertificatePem(client) + TestCertificates.KeyPem(client) });
        Assert.Equal("tls.clientCertificate", (string?)combined["errors"]![0]!["field"]);
        var notPem = await RefusedAsync(new { clientCertificate = "not a certificate", clientKey = "{{ environment.variables.KEY }}" });
        Assert.Contains("not a PEM certificate", (string?)notPem["detail"]);
        var bound = await RefusedAsync(new { caCertificate = certificates.AuthorityPem },
            new { type = "oauth2", tokenUrl = "https://login.example.com/token", clientId = "c", clientSecret = "{{ environment.variables.KEY }}", certificateBoundTokens = true });
        Assert.Contains(bound["errors"]!.AsArray(), e => (string?)e!["field"] == "auth.certificateBoundTokens");
        var mutual = await RefusedAsync(new { caCertificate = certificates.AuthorityPem },
            new { type = "oauth2", tokenUrl = "https://login.example.com/token", clientId = "c", clientAuth = "tls_client_auth" });
        Assert.Contains(mutual["errors"]!.AsArray(), e => (string?)e!["field"] == "auth.clientAuth");

        // A key the variables hold that is not the certificate's: refused when saved, by field and environment.
        await SetAsync(admin, "CERT", TestCertificates.CertificatePem(certificates.IssueClient("another")), secret: false);
        var mismatched = await RefusedAsync(new { clientCertificate = "{{ environment.variables.CERT }}", clientKey = "{{ environment.variables.KEY }}" });
        Assert.Equal("tls.clientKey", (string?)mismatched["errors"]![0]!["field"]);
        Assert.Contains("In 'production': The resource 'bad': tls.clientKey does not match the certificate", (string?)mismatched["detail"]);

        // The same, well formed, is saved.
        using var saved = await admin.PutAsJsonAsync("/api/v1/resources/good", new
        {
            baseUrl = "https://api.example.com",
            tls = new { clientCertificate = TestCertificates.CertificatePem(client), clientKey = "{{ environment.variables.KEY }}", caCertificate = certificates.AuthorityPem },
        });
        await Expect.StatusAsync(saved, 201);
    }

    private static async Task SetAsync(HttpClient admin, string name, string value, bool secret = true) =>
        await Expect.SuccessAsync(await admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{name}", new { value, secret }));

    private static async Task PutAsync(HttpClient admin, string name, MtlsServer server, object tls) =>
        await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/resources/{name}", new { baseUrl = server.BaseUrl, tls }), 201);
}

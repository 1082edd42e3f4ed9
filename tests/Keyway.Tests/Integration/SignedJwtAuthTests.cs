using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// The auth methods that sign a JWT with a private key, through a real <c>keyway serve</c>, against a
/// stand-in (<see cref="AssertionServer"/>) that verifies each signature with the public key and refuses a
/// wrong one: the RFC 7523 <c>jwt_bearer</c> grant (RS256 with a <c>kid</c>, ES256, a Google service account's
/// JSON key file), <c>private_key_jwt</c> client authentication, and GitHub App installation tokens. The keys
/// never reach an answer, a log line or the audit log.
/// </summary>
[Trait("Category", "Integration")]
public sealed class SignedJwtAuthTests
{
    private static Dictionary<string, string> Environment() => new()
    {
        ["KEYWAY_ADMIN_TOKEN"] = "kw_jwt_" + Guid.NewGuid().ToString("N"),
        ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
    };

    [Fact]
    public async Task Signed_assertions_get_tokens_from_a_provider_that_verifies_them_and_a_wrong_key_is_refused()
    {
        await using var server = await AssertionServer.StartAsync();
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Environment());
        using var admin = keyway.CreateAdminClient();
        using var rsa = RSA.Create(2048);
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        using var stranger = RSA.Create(2048);
        using var google = RSA.Create(2048);
        server.Trust("svc-rs", rsa);
        server.Trust("svc-ec", ec);
        server.Trust("keyway-client", rsa);
        server.Trust("robot@keyway-tests.iam.gserviceaccount.com", google);
        var rsaPem = rsa.ExportPkcs8PrivateKeyPem();
        var ecPem = ec.ExportECPrivateKeyPem();
        var strangerPem = stranger.ExportRSAPrivateKeyPem();
        var googleJson = new JsonObject
        {
            ["type"] = "service_account",
            ["project_id"] = "keyway-tests",
            ["private_key_id"] = "0123456789abcdef",
            ["private_key"] = google.ExportPkcs8PrivateKeyPem(),
            ["client_email"] = "robot@keyway-tests.iam.gserviceaccount.com",
            ["client_id"] = "1234567890",
            ["token_uri"] = server.TokenEndpoint,
        }.ToJsonString();
        await SetAsync(admin, "KEY_RS", rsaPem);
        await SetAsync(admin, "KEY_EC", ecPem);
        await SetAsync(admin, "KEY_STRANGER", strangerPem);
        await SetAsync(admin, "GOOGLE_KEY", googleJson);

        object JwtBearer(string issuer, string key) => new
        {
            type = "oauth2",
            grant = "jwt_bearer",
            tokenUrl = server.TokenEndpoint,
            scope = "api",
            keyId = "key-1",
            privateKey = $"{{{{ environment.variables.{key} }}}}",
            assertion = new { issuer, subject = "robot" },
        };
        object PrivateKeyJwt(string key) => new
        {
            type = "oauth2",
            grant = "client_credentials",
            tokenUrl = server.TokenEndpoint,
            clientId = "keyway-client",
            clientAuth = "private_key_jwt",
            privateKey = $"{{{{ environment.variables.{key} }}}}",
            scope = "api",
        };
        await PutAsync(admin, "jwt-rs", server, JwtBearer("svc-rs", "KEY_RS"));
        await PutAsync(admin, "jwt-ec", server, JwtBearer("svc-ec", "KEY_EC"));
        await PutAsync(admin, "jwt-wrong", server, JwtBearer("svc-rs", "KEY_STRANGER"));
        await PutAsync(admin, "google", server, new
        {
            type = "oauth2",
            grant = "jwt_bearer",
            serviceAccountKey = "{{ environment.variables.GOOGLE_KEY }}",
            scope = "https://www.googleapis.com/auth/cloud-platform",
        });
        await PutAsync(admin, "pkjwt", server, PrivateKeyJwt("KEY_RS"));
        await PutAsync(admin, "pkjwt-wrong", server, PrivateKeyJwt("KEY_STRANGER"));

        // Accepted: each token works at the API, which knows whom it was issued for.
        var outputs = new List<string>();
        async Task<JsonNode> RunAsync(string resource)
        {
            using var response = await admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/api/me" });
            var body = await response.Content.ReadAsStringAsync();
            outputs.Add(body);
            return JsonNode.Parse(body)!;
        }

        Assert.Equal("robot", (string?)(await RunAsync("jwt-rs"))["body"]!["subject"]);
        Assert.Equal("robot", (string?)(await RunAsync("jwt-ec"))["body"]!["subject"]);
        Assert.Equal("robot@keyway-tests.iam.gserviceaccount.com", (string?)(await RunAsync("google"))["body"]!["subject"]);
        Assert.Equal("keyway-client", (string?)(await RunAsync("pkjwt"))["body"]!["subject"]);
        using (var proxied = await admin.GetAsync("/proxy/jwt-ec/api/me"))
        {
            Assert.Equal(200, (int)proxied.StatusCode);
        }

        // Google's assertion carries the scope as a claim, as Google wants it.
        Assert.Contains(server.Requests, r => r.Issuer == "robot@keyway-tests.iam.gserviceaccount.com" && r.Error is null &&
                                              r.Scope == "https://www.googleapis.com/auth/cloud-platform");
        // Each credential was obtained once and then served from the cache.
        Assert.Equal(1, server.Requests.Count(r => r.Issuer == "svc-ec" && r.Error is null));

        // Refused: a key the provider does not trust gets no token, and the run says why without a word of the key.
        var wrong = await RunAsync("jwt-wrong");
        var wrongClient = await RunAsync("pkjwt-wrong");
        Assert.Contains(server.Requests, r => r.Grant.EndsWith("jwt-bearer", StringComparison.Ordinal) && r.Issuer == "svc-rs" && r.Error is not null);
        Assert.Contains(server.Requests, r => r.Grant == "client_credentials" && r.Error is not null);
        Assert.Contains("invalid_grant", wrong.ToJsonString());
        Assert.Contains("invalid_client", wrongClient.ToJsonString());
        var status = await admin.GetStringAsync("/api/v1/resources/pkjwt-wrong/credential");
        Assert.Contains("failed", status);

        outputs.Add(await admin.GetStringAsync("/api/v1/resources/google"));
        outputs.Add(await admin.GetStringAsync("/api/v1/audit"));
        outputs.Add(status);
        await keyway.StopAsync();
        foreach (var pem in new[] { rsaPem, ecPem, strangerPem, google.ExportPkcs8PrivateKeyPem() })
        {
            var body = KeyBody(pem);
            Assert.All(outputs, output => Assert.DoesNotContain(body, output));
            Assert.DoesNotContain(body, keyway.AllOutput);
        }
    }

    [Fact]
    public async Task A_GitHub_App_gets_an_installation_token_with_its_app_JWT_and_a_wrong_key_is_refused()
    {
        await using var server = await AssertionServer.StartAsync();
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Environment());
        using var admin = keyway.CreateAdminClient();
        using var app = RSA.Create(2048);
        using var stranger = RSA.Create(2048);
        server.Trust("12345", app);
        // GitHub hands out PKCS#1 keys (BEGIN RSA PRIVATE KEY).
        var appPem = app.ExportRSAPrivateKeyPem();
        await SetAsync(admin, "GITHUB_APP_KEY", appPem);
        await SetAsync(admin, "STRANGER_KEY", stranger.ExportRSAPrivateKeyPem());
        object GitHubApp(string key) => new
        {
            type = "githubApp",
            appId = "12345",
            installationId = "678",
            privateKey = $"{{{{ environment.variables.{key} }}}}",
            apiUrl = server.BaseUrl,
        };
        await PutAsync(admin, "github", server, GitHubApp("GITHUB_APP_KEY"));
        await PutAsync(admin, "github-wrong", server, GitHubApp("STRANGER_KEY"));

        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/github/run", new { path = "/api/me" }), 200);
        Assert.Equal(200, (int)run["status"]!);
        Assert.Equal("installation 678 of app 12345", (string?)run["body"]!["subject"]);
        using (var proxied = await admin.GetAsync("/proxy/github/api/me"))
        {
            Assert.Equal(200, (int)proxied.StatusCode);
        }

        Assert.Equal(1, server.Requests.Count(r => r.Grant == "github_app" && r.Error is null));
        var credential = await Expect.StatusAsync(await admin.GetAsync("/api/v1/resources/github/credential"), 200);
        Assert.Equal("valid", (string?)credential["state"]);
        var expiresIn = DateTimeOffset.Parse((string)credential["expiresAt"]!, System.Globalization.CultureInfo.InvariantCulture) - DateTimeOffset.UtcNow;
        Assert.InRange(expiresIn, TimeSpan.FromMinutes(55), TimeSpan.FromMinutes(61));
        Assert.True(DateTimeOffset.Parse((string)credential["nextRefreshAt"]!, System.Globalization.CultureInfo.InvariantCulture) <
                    DateTimeOffset.Parse((string)credential["expiresAt"]!, System.Globalization.CultureInfo.InvariantCulture));

        var refused = await admin.PostAsJsonAsync("/api/v1/resources/github-wrong/run", new { path = "/api/me" });
        var refusal = await refused.Content.ReadAsStringAsync();
        Assert.NotEqual(200, (int)refused.StatusCode);
        Assert.Contains("401", refusal);
        Assert.Contains(server.Requests, r => r.Grant == "github_app" && r.Error is not null);

        // The installation token goes to the GitHub API it came from, never to another base URL, and none is minted for one.
        var minted = server.Requests.Count(r => r.Grant == "github_app");
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/resources/github-elsewhere", new { baseUrl = "https://collector.example", auth = GitHubApp("GITHUB_APP_KEY") }), 201);
        var elsewhere = await Expect.ProblemAsync(await admin.PostAsJsonAsync("/api/v1/resources/github-elsewhere/run", new { path = "/api/me" }), 400, "invalid_config");
        Assert.Contains("goes only to the GitHub API", (string?)elsewhere["detail"], StringComparison.Ordinal);
        Assert.Equal(minted, server.Requests.Count(r => r.Grant == "github_app"));

        await keyway.StopAsync();
        Assert.DoesNotContain(KeyBody(appPem), keyway.AllOutput + refusal + run.ToJsonString());
    }

    [Fact]
    public async Task Definitions_are_checked_field_by_field_and_a_key_written_in_plain_text_is_refused()
    {
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Environment());
        using var admin = keyway.CreateAdminClient();
        async Task<List<string>> FieldsAsync(object auth)
        {
            var problem = await Expect.ProblemAsync(await admin.PutAsJsonAsync("/api/v1/resources/bad", new { baseUrl = "https://example.com", auth }), 400, "invalid_config");
            return problem["errors"]!.AsArray().Select(e => (string)e!["field"]!).ToList();
        }

        Assert.Contains("auth.privateKey", await FieldsAsync(new { type = "oauth2", grant = "jwt_bearer", tokenUrl = "https://idp.example.com/token" }));
        Assert.Contains("auth.privateKey", await FieldsAsync(new
        {
            type = "oauth2",
            grant = "jwt_bearer",
            tokenUrl = "https://idp.example.com/token",
            privateKey = "-----BEGIN PRIVATE KEY-----",
            assertion = new { issuer = "me" },
        }));
        Assert.Contains("auth.clientSecret", await FieldsAsync(new
        {
            type = "oauth2",
            grant = "client_credentials",
            tokenUrl = "https://idp.example.com/token",
            clientId = "c",
            clientAuth = "private_key_jwt",
            privateKey = "{{ environment.variables.K }}",
            clientSecret = "{{ environment.variables.S }}",
        }));
        var gitHub = await FieldsAsync(new { type = "githubApp", appId = "my-app", privateKey = "{{ environment.variables.K }}", apiUrl = "ftp://x" });
        Assert.Contains("auth.appId", gitHub);
        Assert.Contains("auth.installationId", gitHub);
        Assert.Contains("auth.apiUrl", gitHub);
        Assert.Contains("auth.appId", await FieldsAsync(new { type = "bearer", token = "{{ environment.variables.T }}", appId = "1" }));

        // The URLs a credential comes from are named in errors and traces: none may be built from a secret, not even by an admin.
        await SetAsync(admin, "K", "a-secret-that-must-not-shape-a-url");
        Assert.Contains("auth.tokenUrl", await FieldsAsync(new
        {
            type = "oauth2",
            grant = "client_credentials",
            tokenUrl = "https://{{ environment.variables.K.substring(0, 4) }}.idp.example.com/token",
            clientId = "c",
            clientSecret = "{{ environment.variables.K }}",
        }));
        Assert.Contains("auth.apiUrl", await FieldsAsync(new
        {
            type = "githubApp",
            appId = "1",
            installationId = "2",
            privateKey = "{{ environment.variables.K }}",
            apiUrl = "https://{{ environment.variables.K.split('').reverse().join('') }}.example.com",
        }));
    }

    /// <summary>A line from the middle of a PEM key's base64 body: what any leak of the key would carry.</summary>
    private static string KeyBody(string pem) => pem.Split('\n', StringSplitOptions.RemoveEmptyEntries)[3].Trim();

    private static async Task SetAsync(HttpClient admin, string name, string value) =>
        await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{name}", new { value, secret = true }), 200);

    private static async Task PutAsync(HttpClient admin, string name, AssertionServer server, object auth) =>
        await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/resources/{name}", new { baseUrl = server.BaseUrl, auth }), 201);
}

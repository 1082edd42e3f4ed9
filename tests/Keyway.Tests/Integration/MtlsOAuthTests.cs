using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography.X509Certificates;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// RFC 8705 through a real <c>keyway serve</c> and a real authorization server (OpenIddict, <see cref="AuthServer"/> over
/// HTTPS): the client authenticates with its self-signed certificate (<c>self_signed_tls_client_auth</c>, no secret), the
/// access token is bound to that certificate (<c>cnf.x5t#S256</c>), and the resource server accepts the token only on a
/// connection presenting the same certificate, which Keyway's requests of that resource do.
/// </summary>
[Trait("Category", "Integration")]
public sealed class MtlsOAuthTests
{
    [Fact]
    public async Task A_certificate_bound_token_is_obtained_and_used_with_the_same_certificate_and_refused_without_it()
    {
        var certificates = TestCertificates.Create("AuthServer");
        var clientCertificate = TestCertificates.SelfSignedClient("keyway-mtls-client");
        var other = TestCertificates.SelfSignedClient("someone-else");
        await using var auth = await AuthServer.StartAsync(new AuthServerOptions
        {
            ServerCertificate = certificates.IssueServer(),
            Clients =
            [
                AuthServerClient.Default,
                new AuthServerClient { ClientId = "mtls-client", Certificate = clientCertificate },
                // A client with a secret whose certificate is registered too: OpenIddict binds its tokens to the certificate it checked.
                new AuthServerClient { ClientId = "secret-client", ClientSecret = "secret-client-secret", Certificate = clientCertificate },
            ],
        });
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_rfc8705_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
        });
        using var admin = keyway.CreateAdminClient();
        await SetAsync(admin, "MTLS_CERT", TestCertificates.CertificatePem(clientCertificate), secret: false);
        await SetAsync(admin, "MTLS_KEY", TestCertificates.KeyPem(clientCertificate));
        await SetAsync(admin, "OTHER_CERT", TestCertificates.CertificatePem(other), secret: false);
        await SetAsync(admin, "OTHER_KEY", TestCertificates.KeyPem(other));
        object Tls(string prefix) => new
        {
            clientCertificate = $"{{{{ environment.variables.{prefix}_CERT }}}}",
            clientKey = $"{{{{ environment.variables.{prefix}_KEY }}}}",
            caCertificate = certificates.AuthorityPem,
        };
        object MutualTlsAuth() => new { type = "oauth2", tokenUrl = auth.TokenEndpoint, clientId = "mtls-client", clientAuth = "self_signed_tls_client_auth", scope = "api" };
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/resources/bound", new { baseUrl = auth.BaseUrl, tls = Tls("MTLS"), auth = MutualTlsAuth() }), 201);
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/resources/impostor", new { baseUrl = auth.BaseUrl, tls = Tls("OTHER"), auth = MutualTlsAuth() }), 201);

        // Token request and resource requests with the same certificate: accepted, through /run and /proxy.
        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/bound/run", new { path = "/api/bound" }), 200);
        Assert.True(200 == (int)run["status"]!, run.ToJsonString());
        Assert.Equal("mtls-client", (string?)run["body"]!["clientId"]);
        using (var proxied = await admin.GetAsync("/proxy/bound/api/bound"))
            Assert.Equal(HttpStatusCode.OK, proxied.StatusCode);
        Assert.Contains(auth.TokenRequests, r => r.ClientId == "mtls-client" && r.StatusCode == 200);

        // The token is bound to the certificate, and good only on a connection that presents it.
        var token = auth.BoundApiTokens[^1];
        Assert.Equal(TestCertificates.Thumbprint(clientCertificate), AuthServer.Confirmation(token));
        Assert.Equal(HttpStatusCode.Unauthorized, await CallAsync(auth, certificates, token, certificate: null));
        Assert.Equal(HttpStatusCode.Unauthorized, await CallAsync(auth, certificates, token, other));
        Assert.Equal(HttpStatusCode.OK, await CallAsync(auth, certificates, token, clientCertificate));

        // A client that authenticates with its secret and has its tokens bound (certificateBoundTokens): the same certificate goes with both.
        await SetAsync(admin, "CLIENT_SECRET", "secret-client-secret");
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/resources/bound-secret", new
        {
            baseUrl = auth.BaseUrl,
            tls = Tls("MTLS"),
            auth = new { type = "oauth2", tokenUrl = auth.TokenEndpoint, clientId = "secret-client", clientSecret = "{{ environment.variables.CLIENT_SECRET }}", certificateBoundTokens = true, scope = "api" },
        }), 201);
        var withSecret = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/bound-secret/run", new { path = "/api/bound" }), 200);
        Assert.True(200 == (int)withSecret["status"]!, withSecret.ToJsonString());
        Assert.Equal(TestCertificates.Thumbprint(clientCertificate), AuthServer.Confirmation(auth.BoundApiTokens[^1]));

        // A certificate the provider does not know for the client: no token, and nothing sent to the API.
        var presented = auth.BoundApiTokens.Count;
        using var refused = await admin.PostAsJsonAsync("/api/v1/resources/impostor/run", new { path = "/api/bound" });
        Assert.False(refused.IsSuccessStatusCode, await refused.Content.ReadAsStringAsync());
        Assert.Contains(auth.TokenRequests, r => r.ClientId == "mtls-client" && r.StatusCode is 400 or 401);
        Assert.Equal(presented, auth.BoundApiTokens.Count);

        await keyway.StopAsync();
        var keyLine = TestCertificates.KeyPem(clientCertificate).Split('\n', StringSplitOptions.RemoveEmptyEntries)[3].Trim();
        Assert.DoesNotContain(keyLine, keyway.AllOutput);
        Assert.DoesNotContain(token, keyway.AllOutput);
    }

    /// <summary>The bound API called directly with <paramref name="token"/>, on a connection presenting <paramref name="certificate"/> (or none).</summary>
    private static async Task<HttpStatusCode> CallAsync(AuthServer auth, TestCertificates certificates, string token, X509Certificate2? certificate)
    {
        using var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, presented, _, _) =>
            presented is not null && MtlsServer.ChainsTo(X509CertificateLoader.LoadCertificate(presented.GetRawCertData()), certificates.Authority);
        if (certificate is not null)
            handler.SslOptions.ClientCertificates = new X509CertificateCollection { certificate };
        using var client = new HttpClient(handler);
        using var request = new HttpRequestMessage(HttpMethod.Get, auth.BoundApiEndpoint);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await client.SendAsync(request);
        return response.StatusCode;
    }

    private static async Task SetAsync(HttpClient admin, string name, string value, bool secret = true) =>
        await Expect.SuccessAsync(await admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{name}", new { value, secret }));
}

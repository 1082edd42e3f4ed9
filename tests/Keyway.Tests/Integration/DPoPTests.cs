using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Credentials;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// DPoP (RFC 9449) from a real <c>keyway serve</c> against servers that enforce it (tests/dpop-server): node's
/// oidc-provider, which issues only DPoP-bound tokens to the client, and a resource server that checks every proof
/// (signature, htm, htu, ath, jti replay, the token's key binding) with jose and can demand nonces.
/// </summary>
[Trait("Category", "Integration")]
public sealed class DPoPTests
{
    private static async Task<(KeywayProcess Keyway, HttpClient Admin)> StartAsync(StoreKind store, DPoPServer server, string? masterKey = null)
    {
        var keyway = await KeywayProcess.StartAsync(store, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_dpop_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = masterKey ?? KeywayProcess.NewMasterKey(),
        });
        var admin = keyway.CreateAdminClient();
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/environments/production/variables/DPOP_CLIENT_SECRET",
            new { value = server.ClientSecret, secret = true }), 200);
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/bound", Definition(server, new { algorithm = "ES256" })));
        return (keyway, admin);
    }

    internal static object Definition(DPoPServer server, object dpop) => new
    {
        baseUrl = server.ResourceUrl,
        auth = new
        {
            type = "oauth2",
            grant = "client_credentials",
            tokenUrl = server.TokenEndpoint,
            clientId = DPoPServer.ClientId,
            clientSecret = "{{ environment.variables.DPOP_CLIENT_SECRET }}",
            dpop,
        },
    };

    private static async Task<string> RunAsync(HttpClient admin, object call)
    {
        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/bound/run", call), 200);
        Assert.True((int)run["status"]! == 200, "The resource server refused the run: " + run.ToJsonString());
        var outbound = run["outbound"]!["headers"]!;
        // The request as sent shows neither the token nor the proof.
        Assert.StartsWith("«withheld", (string?)outbound["Authorization"]);
        Assert.StartsWith("«withheld", (string?)outbound["DPoP"]);
        return (string)run["body"]!["jkt"]!;
    }

    [Theory]
    [MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Runs_and_the_proxy_send_proofs_that_a_DPoP_enforcing_server_accepts_and_the_key_survives_a_restart(StoreKind store)
    {
        await using var server = await DPoPServer.StartAsync();
        var (keyway, admin) = await StartAsync(store, server);
        await using var _ = keyway;
        using var __ = admin;

        var jkt = await RunAsync(admin, new { path = "/things", query = new { color = "blue" } });
        Assert.Equal(jkt, await RunAsync(admin, new { method = "POST", path = "/things", body = new { name = "widget" } }));
        using (var proxied = await admin.GetAsync("/proxy/bound/things?page=2"))
        {
            Assert.True(proxied.StatusCode == HttpStatusCode.OK, await proxied.Content.ReadAsStringAsync() + server.Output);
            Assert.Equal(jkt, (string)(await proxied.Content.ReadFromJsonAsync<JsonObject>())!["jkt"]!);
        }

        using (var posted = await admin.PostAsync("/proxy/bound/things", JsonContent.Create(new { name = "streamed" })))
        {
            Assert.Equal(HttpStatusCode.OK, posted.StatusCode);
        }

        var stats = await server.StatsAsync();
        Assert.Equal(1, (int)stats["tokensIssued"]!);
        Assert.Equal(4, (int)stats["accepted"]!);

        // Same key after a restart: the stored token still works, and a new token is bound to the same key.
        await keyway.RestartAsync();
        using var again = keyway.CreateAdminClient();
        Assert.Equal(jkt, await RunAsync(again, new { path = "/after-restart" }));
        await Expect.SuccessAsync(await again.PostAsync("/api/v1/resources/bound/credential/refresh", null));
        Assert.Equal(jkt, await RunAsync(again, new { path = "/after-refresh" }));
        stats = await server.StatsAsync();
        Assert.Equal(2, (int)stats["tokensIssued"]!);
        Assert.Empty(stats["refused"]!.AsArray());
        Assert.DoesNotContain(server.ClientSecret, keyway.AllOutput);
    }

    [Fact]
    public async Task A_nonce_challenge_of_the_authorization_server_and_of_the_resource_server_is_answered_once()
    {
        await using var server = await DPoPServer.StartAsync();
        var (keyway, admin) = await StartAsync(StoreKind.Sqlite, server);
        await using var _ = keyway;
        using var __ = admin;
        await server.RequireNoncesAsync(authorizationServer: true, resourceServer: true);

        await RunAsync(admin, new { path = "/first" });
        var stats = await server.StatsAsync();
        Assert.Equal(1, (int)stats["tokenNonceChallenges"]!);
        Assert.Equal(1, (int)stats["resourceNonceChallenges"]!);
        Assert.Equal(1, (int)stats["tokensIssued"]!);

        // The nonce is remembered per origin: later requests, runs and the proxy alike, carry it up front.
        await RunAsync(admin, new { path = "/second" });
        using (var proxied = await admin.GetAsync("/proxy/bound/third"))
        {
            Assert.Equal(HttpStatusCode.OK, proxied.StatusCode);
        }

        await Expect.SuccessAsync(await admin.PostAsync("/api/v1/resources/bound/credential/refresh", null));
        stats = await server.StatsAsync();
        Assert.Equal(1, (int)stats["resourceNonceChallenges"]!);
        Assert.Equal(1, (int)stats["tokenNonceChallenges"]!);
        Assert.Equal(2, (int)stats["tokensIssued"]!);
        Assert.Equal(3, (int)stats["accepted"]!);

        // A new nonce: a proxied request with a body is not sent twice (its body was streamed); the caller gets the 401,
        // and its next request carries the new nonce. A proxied request without a body is answered once more, at once.
        await server.RotateResourceNonceAsync();
        using (var streamed = await admin.PostAsync("/proxy/bound/upload", JsonContent.Create(new { name = "streamed" })))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, streamed.StatusCode);
            Assert.Contains("use_dpop_nonce", string.Join(' ', streamed.Headers.WwwAuthenticate.Select(h => h.ToString())));
        }

        using (var again = await admin.PostAsync("/proxy/bound/upload", JsonContent.Create(new { name = "streamed" })))
        {
            Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        }

        await server.RotateResourceNonceAsync();
        using (var bodyless = await admin.GetAsync("/proxy/bound/list"))
        {
            Assert.Equal(HttpStatusCode.OK, bodyless.StatusCode);
        }

        stats = await server.StatsAsync();
        Assert.Equal(3, (int)stats["resourceNonceChallenges"]!);
        Assert.Equal(5, (int)stats["accepted"]!);
    }

    [Fact]
    public async Task The_servers_enforce_DPoP_a_token_bound_to_another_key_is_refused()
    {
        await using var server = await DPoPServer.StartAsync();
        using var http = new HttpClient();
        using var holder = DPoPKey.Generate("ES256");
        using var thief = DPoPKey.Generate("ES256");

        // Without a proof the authorization server issues nothing to this client.
        using (var bare = await http.SendAsync(TokenRequest(server, proof: null)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, bare.StatusCode);
        }

        using var issued = await http.SendAsync(TokenRequest(server, holder.Proof("POST", server.TokenEndpoint, DateTimeOffset.UtcNow, null, null)));
        var answer = (await issued.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.True(issued.IsSuccessStatusCode, answer.ToJsonString());
        Assert.Equal("DPoP", (string?)answer["token_type"]);
        var token = (string)answer["access_token"]!;

        HttpRequestMessage Call(DPoPKey key)
        {
            var url = server.ResourceUrl + "/things";
            var request = new HttpRequestMessage(HttpMethod.Get, url);
            request.Headers.Authorization = new AuthenticationHeaderValue("DPoP", token);
            request.Headers.Add("DPoP", key.Proof("GET", url, DateTimeOffset.UtcNow, DPoPKey.AccessTokenHash(token), null));
            return request;
        }

        using var stolen = await http.SendAsync(Call(thief));
        Assert.Equal(HttpStatusCode.Unauthorized, stolen.StatusCode);
        Assert.Contains("bound to another key", await stolen.Content.ReadAsStringAsync());
        using var asBearer = await http.SendAsync(new HttpRequestMessage(HttpMethod.Get, server.ResourceUrl + "/things")
        {
            Headers = { Authorization = new AuthenticationHeaderValue("Bearer", token) },
        });
        Assert.Equal(HttpStatusCode.Unauthorized, asBearer.StatusCode);
        using var owned = await http.SendAsync(Call(holder));
        Assert.Equal(HttpStatusCode.OK, owned.StatusCode);
        Assert.Equal(holder.Thumbprint, (string?)(await owned.Content.ReadFromJsonAsync<JsonObject>())!["jkt"]);
    }

    private static HttpRequestMessage TokenRequest(DPoPServer server, string? proof)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, server.TokenEndpoint)
        {
            Content = new FormUrlEncodedContent([new("grant_type", "client_credentials")]),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{DPoPServer.ClientId}:{server.ClientSecret}")));
        if (proof is not null)
        {
            request.Headers.Add("DPoP", proof);
        }

        return request;
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// <c>auth.apply</c> on a token method: an OAuth 2.0 access token placed where the API wants it (a header of its own, a
/// query parameter, a JSON or form body field) instead of <c>Authorization: Bearer</c>, against a real authorization
/// server whose API validates the token wherever it was put.
/// </summary>
[Trait("Category", "Integration")]
public sealed class TokensAnywhereTests
{
    private static async Task<(KeywayProcess Keyway, HttpClient Admin)> StartAsync(AuthServer server)
    {
        var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_anywhere_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
        });
        var admin = keyway.CreateAdminClient();
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/environments/production/variables/OAUTH_SECRET",
            new { value = AuthServerClient.Default.ClientSecret, secret = true }), 200);
        return (keyway, admin);
    }

    private static object Auth(AuthServer server, object apply) => new
    {
        type = "oauth2",
        grant = "client_credentials",
        tokenUrl = server.TokenEndpoint,
        clientId = "keyway",
        clientSecret = "{{ environment.variables.OAUTH_SECRET }}",
        scope = AuthServer.ApiScope,
        clientAuth = "post",
        apply,
    };

    [Fact]
    public async Task A_token_goes_in_a_header_and_a_query_parameter_of_the_apis_choosing_through_runs_and_the_proxy()
    {
        await using var server = await AuthServer.StartAsync();
        var (keyway, admin) = await StartAsync(server);
        await using var _ = keyway;
        using var __ = admin;
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/anywhere", new
        {
            baseUrl = server.BaseUrl,
            auth = Auth(server, new
            {
                headers = new Dictionary<string, string> { ["X-Access-Token"] = "{{ credential.accessToken }}" },
                query = new Dictionary<string, string> { ["access_token"] = "{{ credential.accessToken }}" },
            }),
        }));

        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/anywhere/run", new { path = "/api/anywhere" }), 200);
        using var proxied = await admin.GetAsync("/proxy/anywhere/api/anywhere");

        Assert.Equal(200, (int)run["status"]!);
        Assert.Equal(["header", "query"], run["body"]!["foundIn"]!.AsArray().Select(n => (string)n!).ToArray());
        Assert.Equal(HttpStatusCode.OK, proxied.StatusCode);
        Assert.Equal(["header", "query"], (await proxied.Content.ReadFromJsonAsync<AuthServerAnywhere>())!.FoundIn);
        Assert.Equal(1, server.TokenRequestCount("client_credentials"));

        // The request as sent shows neither placement's value.
        var outbound = run["outbound"]!;
        Assert.StartsWith("«withheld", (string?)outbound["headers"]!["X-Access-Token"]);
        Assert.DoesNotContain("access_token=ey", (string?)outbound["url"]);
    }

    [Fact]
    public async Task A_token_goes_in_a_json_or_form_body_and_a_call_without_one_is_refused_not_sent_bare()
    {
        await using var server = await AuthServer.StartAsync();
        var (keyway, admin) = await StartAsync(server);
        await using var _ = keyway;
        using var __ = admin;
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/in-body", new
        {
            baseUrl = server.BaseUrl,
            auth = Auth(server, new { body = new Dictionary<string, string> { ["token"] = "{{ credential.accessToken }}" } }),
        }));

        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/in-body/run",
            new { method = "POST", path = "/api/anywhere", body = new { note = "kept", token = "the caller's own" } }), 200);
        using var json = await admin.PostAsync("/proxy/in-body/api/anywhere", new StringContent("{\"note\":\"kept\"}", Encoding.UTF8, "application/json"));
        using var form = await admin.PostAsync("/proxy/in-body/api/anywhere",
            new FormUrlEncodedContent([new("note", "kept"), new("token", "the caller's own")]));
        using var empty = await admin.PostAsync("/proxy/in-body/api/anywhere", null);
        using var get = await admin.GetAsync("/proxy/in-body/api/anywhere");
        using var text = await admin.PostAsync("/proxy/in-body/api/anywhere", new StringContent("token please", Encoding.UTF8, "text/plain"));

        Assert.Equal(200, (int)run["status"]!);
        Assert.Equal(["json"], run["body"]!["foundIn"]!.AsArray().Select(n => (string)n!).ToArray());
        Assert.Equal(["json"], (await json.Content.ReadFromJsonAsync<AuthServerAnywhere>())!.FoundIn);
        Assert.Equal(["form"], (await form.Content.ReadFromJsonAsync<AuthServerAnywhere>())!.FoundIn);
        Assert.Equal(["json"], (await empty.Content.ReadFromJsonAsync<AuthServerAnywhere>())!.FoundIn);
        Assert.Equal(HttpStatusCode.BadRequest, get.StatusCode);
        Assert.Equal("body_not_placeable", (string?)(await get.Content.ReadFromJsonAsync<JsonObject>())!["code"]);
        Assert.Equal(HttpStatusCode.UnsupportedMediaType, text.StatusCode);
        Assert.Equal("body_not_placeable", (string?)(await text.Content.ReadFromJsonAsync<JsonObject>())!["code"]);
        // The caller's body is what the run shows; the token is not in it.
        Assert.Contains("kept", (string?)run["outbound"]!["body"]);
    }

    [Fact]
    public async Task Apply_must_place_the_token_and_may_not_read_the_caller_or_sit_beside_in_and_name()
    {
        await using var server = await AuthServer.StartAsync();
        var (keyway, admin) = await StartAsync(server);
        await using var _ = keyway;
        using var __ = admin;

        var noToken = await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/resources/bad",
            new { baseUrl = server.BaseUrl, auth = Auth(server, new { headers = new Dictionary<string, string> { ["X-Tenant"] = "acme" } }) }), 400);
        var caller = await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/resources/bad",
            new { baseUrl = server.BaseUrl, auth = Auth(server, new { headers = new Dictionary<string, string> { ["X-Token"] = "{{ credential.accessToken }}:{{ current_user.email }}" } }) }), 400);

        Assert.Contains(noToken["errors"]!.AsArray(), e => (string?)e!["field"] == "auth.apply" && ((string?)e["message"])!.Contains("credential.accessToken"));
        Assert.Contains(caller["errors"]!.AsArray(), e => (string?)e!["field"] == "auth.apply.headers.X-Token" && ((string?)e["message"])!.Contains("current_user"));
    }
}

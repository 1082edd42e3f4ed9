using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// The resource test as a debugger, against a real Keyway process: each step of a custom login flow and of
/// an OAuth exchange with a real authorization server, as sent and as answered, redacted; the credential in
/// hand left alone unless a fresh run is asked for; and the failing step named, with its fix.
/// </summary>
[Trait("Category", "Integration")]
public sealed class DebuggerTests(SqliteKeyway fixture) : IClassFixture<SqliteKeyway>
{
    private HttpClient Admin => fixture.Admin;

    private static JsonObject Step(JsonNode report, string name) =>
        report["steps"]!.AsArray().Select(s => s!.AsObject()).FirstOrDefault(s => (string?)s["step"] == name)
        ?? throw new Xunit.Sdk.XunitException($"No step '{name}' in {report.ToJsonString()}");

    private static string[] Names(JsonNode report) => [.. report["steps"]!.AsArray().Select(s => (string)s!["step"]!)];

    private async Task<(JsonNode Report, string Text)> TestAsync(string resource, object? body = null)
    {
        using var response = await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/test", body ?? new { });
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        return (JsonNode.Parse(text)!, text);
    }

    [Fact]
    public async Task Each_step_of_a_custom_flow_is_shown_as_sent_and_answered_and_the_credential_in_hand_is_left_alone_unless_a_fresh_run_is_asked()
    {
        var password = "pw-" + Guid.NewGuid().ToString("N");
        await using var api = await CustomLoginApi.StartAsync("svc-user", password);
        var variable = "DBG_PASSWORD_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await fixture.SetVariableAsync(variable, password, secret: true);
        var resource = KeywayFixture.Unique("dbgflow");
        await fixture.PutResourceAsync(resource, new JsonObject
        {
            ["baseUrl"] = api.BaseUrl,
            ["auth"] = new JsonObject
            {
                ["type"] = "custom",
                ["steps"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "request",
                        ["name"] = "login",
                        ["method"] = "POST",
                        ["url"] = api.BaseUrl + "/login",
                        ["headers"] = new JsonObject { ["Content-Type"] = "application/json" },
                        ["body"] = $"{{\"username\": \"svc-user\", \"password\": \"{{{{ environment.variables.{variable} }}}}\"}}",
                    },
                    new JsonObject { ["type"] = "variable", ["name"] = "TOKEN", ["value"] = "{{ login.body.session.token }}" },
                    new JsonObject { ["type"] = "javascript", ["name"] = "derived", ["code"] = "return { CSRF: login.headers['x-csrf'] };" }),
                ["apply"] = new JsonObject { ["headers"] = new JsonObject { ["Authorization"] = "Bearer {{ TOKEN }}", ["X-CSRF"] = "{{ CSRF }}" } },
                ["expiresIn"] = "{{ login.body.session.expiresIn }}",
            },
        });

        var (first, firstText) = await TestAsync(resource, new { path = "/data" });
        var (second, secondText) = await TestAsync(resource, new { path = "/data" });
        var (fresh, freshText) = await TestAsync(resource, new { path = "/data", fresh = true });

        Assert.True((bool)first["ok"]!, firstText);
        Assert.Equal(["configuration", "login", "TOKEN", "derived", "credential", "request"], Names(first));
        var login = Step(first, "login");
        Assert.Equal("flow", (string?)login["kind"]);
        Assert.Equal("POST", (string?)login["request"]!["method"]);
        Assert.Equal(api.BaseUrl + "/login", (string?)login["request"]!["url"]);
        Assert.StartsWith("«withheld: reads the secret", (string?)login["request"]!["body"]);
        Assert.Equal(200, (int)login["response"]!["status"]!);
        // The session token the answer carried is extracted, so withheld; its shape is still there to read.
        Assert.Contains("\"token\": \"[REDACTED]\"", (string?)login["response"]!["body"]);
        Assert.NotNull(login["durationMs"]);
        Assert.Equal(["TOKEN"], Step(first, "TOKEN")["extracted"]!.AsArray().Select(n => (string)n!));
        Assert.Equal(["CSRF"], Step(first, "derived")["extracted"]!.AsArray().Select(n => (string)n!));
        var request = Step(first, "request");
        Assert.Equal(200, (int)request["response"]!["status"]!);
        Assert.Equal("«withheld: set by the resource's auth method»", (string?)request["request"]!["headers"]!["Authorization"]);
        Assert.Equal("«withheld: set by the resource's auth method»", (string?)request["request"]!["headers"]!["X-CSRF"]);

        // The second test uses the session in hand: no login step, no login.
        Assert.True((bool)second["ok"]!, secondText);
        Assert.Equal(["configuration", "credential", "request"], Names(second));
        Assert.Contains("no token request was made", (string?)Step(second, "credential")["detail"]);
        Assert.True((bool)fresh["ok"]!, freshText);
        Assert.Contains("login", Names(fresh));
        Assert.Equal(2, api.Logins);

        foreach (var secret in api.Issued.Append(password))
        {
            Assert.DoesNotContain(secret, firstText + secondText + freshText, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_flow_step_answering_500_is_named_as_the_failing_step_with_its_fix()
    {
        var resource = KeywayFixture.Unique("dbg500");
        await fixture.PutResourceAsync(resource, new JsonObject
        {
            ["baseUrl"] = fixture.Upstream.BaseUrl,
            ["auth"] = new JsonObject
            {
                ["type"] = "custom",
                ["steps"] = new JsonArray(
                    new JsonObject { ["type"] = "request", ["name"] = "preflight", ["method"] = "GET", ["url"] = fixture.Upstream.BaseUrl + "/status/500" },
                    new JsonObject { ["type"] = "variable", ["name"] = "SESSION", ["value"] = "{{ preflight.status }}" }),
                ["apply"] = new JsonObject { ["headers"] = new JsonObject { ["X-Session"] = "{{ SESSION }}" } },
                ["lifetimeSeconds"] = 60,
            },
        });

        var (report, text) = await TestAsync(resource);

        Assert.False((bool)report["ok"]!, text);
        Assert.Equal("preflight", (string?)report["failedStep"]);
        var preflight = Step(report, "preflight");
        Assert.False((bool)preflight["ok"]!);
        Assert.Equal(500, (int)preflight["response"]!["status"]!);
        Assert.Contains("HTTP 500", (string?)preflight["fix"]);
        Assert.Contains("HTTP 500", (string?)report["fix"]);
        Assert.False((bool)Step(report, "credential")["ok"]!);
        Assert.DoesNotContain(report["steps"]!.AsArray(), s => (string?)s!["step"] == "request");
    }

    [Fact]
    public async Task An_oauth_exchange_with_a_real_authorization_server_is_shown_step_by_step_and_a_wrong_client_secret_is_named()
    {
        await using var server = await AuthServer.StartAsync();
        var secretVariable = "DBG_OAUTH_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var wrongVariable = secretVariable + "_WRONG";
        await fixture.SetVariableAsync(secretVariable, AuthServerClient.Default.ClientSecret, secret: true);
        await fixture.SetVariableAsync(wrongVariable, "wrong-" + Guid.NewGuid().ToString("N"), secret: true);
        object Auth(string variable, bool discovery) => discovery
            ? new { type = "oauth2", grant = "client_credentials", issuer = server.Issuer, clientId = "keyway", clientSecret = $"{{{{ environment.variables.{variable} }}}}", scope = AuthServer.ApiScope }
            : new { type = "oauth2", grant = "client_credentials", tokenUrl = server.TokenEndpoint, clientId = "keyway", clientSecret = $"{{{{ environment.variables.{variable} }}}}", scope = AuthServer.ApiScope, clientAuth = "post" };
        var good = KeywayFixture.Unique("dbgcc");
        var discovered = KeywayFixture.Unique("dbgdisc");
        var wrong = KeywayFixture.Unique("dbgwrong");
        await fixture.PutResourceAsync(good, new { baseUrl = server.BaseUrl, auth = Auth(secretVariable, discovery: false) });
        await fixture.PutResourceAsync(discovered, new { baseUrl = server.BaseUrl, auth = Auth(secretVariable, discovery: true) });
        await fixture.PutResourceAsync(wrong, new { baseUrl = server.BaseUrl, auth = Auth(wrongVariable, discovery: false) });

        var (report, text) = await TestAsync(good, new { path = "/api/me" });
        var (viaDiscovery, discoveryText) = await TestAsync(discovered, new { path = "/api/me", method = "GET" });
        var (failed, failedText) = await TestAsync(wrong, new { path = "/api/me" });

        Assert.True((bool)report["ok"]!, text);
        Assert.Equal(["configuration", "token request (client_credentials)", "credential", "request"], Names(report));
        var token = Step(report, "token request (client_credentials)");
        Assert.Equal("token", (string?)token["kind"]);
        Assert.Equal("POST", (string?)token["request"]!["method"]);
        Assert.Equal(server.TokenEndpoint, (string?)token["request"]!["url"]);
        var sent = (string)token["request"]!["body"]!;
        Assert.Contains("grant_type=client_credentials", sent);
        Assert.Contains("client_secret=[REDACTED]", sent);
        Assert.Equal(200, (int)token["response"]!["status"]!);
        Assert.Contains("\"access_token\": \"[REDACTED]\"", (string?)token["response"]!["body"]);
        Assert.Equal(200, (int)Step(report, "request")["response"]!["status"]!);
        Assert.Equal("«withheld: set by the resource's auth method»", (string?)Step(report, "request")["request"]!["headers"]!["Authorization"]);

        Assert.True((bool)viaDiscovery["ok"]!, discoveryText);
        // Discovery reads the document, then its keys: two exchanges of one step.
        Assert.Equal(["configuration", "discovery", "discovery (2)", "token request (client_credentials)", "credential", "request"], Names(viaDiscovery));
        Assert.StartsWith("Basic [REDACTED]", (string?)Step(viaDiscovery, "token request (client_credentials)")["request"]!["headers"]!["Authorization"]);

        Assert.False((bool)failed["ok"]!, failedText);
        Assert.Equal("token request (client_credentials)", (string?)failed["failedStep"]);
        Assert.Contains("invalid_client", (string?)Step(failed, "token request (client_credentials)")["detail"]);
        Assert.Contains("client secret", (string?)failed["fix"]);

        var all = text + discoveryText + failedText;
        Assert.DoesNotContain(AuthServerClient.Default.ClientSecret, all, StringComparison.Ordinal);
        var status = await Expect.SuccessAsync(await Admin.GetAsync($"/api/v1/resources/{good}/credential"));
        Assert.Equal("valid", (string?)status["state"]);
    }

    [Fact]
    public async Task A_run_returns_the_request_it_sent_with_the_secret_values_redacted()
    {
        var (resource, token) = await fixture.BearerResourceAsync();

        var run = await Expect.SuccessAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run",
            new { method = "POST", path = "/things", query = new { color = "blue" }, headers = new Dictionary<string, string> { ["X-Note"] = "hello" }, body = new { name = "widget" } }));

        var outbound = run["outbound"]!;
        Assert.Equal("POST", (string?)outbound["method"]);
        Assert.Equal(fixture.Upstream.BaseUrl + "/base/things?color=blue", (string?)outbound["url"]);
        Assert.Equal("«withheld: the resource's credential»", (string?)outbound["headers"]!["Authorization"]);
        Assert.Equal("hello", (string?)outbound["headers"]!["X-Note"]);
        Assert.Contains("widget", (string?)outbound["body"]);
        Assert.DoesNotContain(token, run.ToJsonString(), StringComparison.Ordinal);
    }
}

using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// The custom auth method end to end: a real Keyway process logs in to a real session API on
/// loopback, attaches the session through /run and the proxy, and logs in again when the API
/// says (401, a body condition) or the session expires.
/// </summary>
[Trait("Category", "Integration")]
public sealed class CustomLoginFlowTests(SqliteKeyway fixture) : IClassFixture<SqliteKeyway>, IAsyncLifetime
{
    private readonly string _password = "pw-" + Guid.NewGuid().ToString("N");
    private readonly List<string> _responses = [];
    private CustomLoginApi _api = null!;
    private string _userVariable = "";
    private string _passwordVariable = "";

    private HttpClient Admin => fixture.Admin;

    public async Task InitializeAsync()
    {
        _api = await CustomLoginApi.StartAsync("svc-user", _password);
        var suffix = Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        _userVariable = "API_USER_" + suffix;
        _passwordVariable = "API_PASSWORD_" + suffix;
        await fixture.SetVariableAsync(_userVariable, "svc-user", secret: false);
        await fixture.SetVariableAsync(_passwordVariable, _password, secret: true);
    }

    public async Task DisposeAsync()
    {
        // Whatever a test did, no password, session token or CSRF value reached a response or the process output.
        var output = fixture.Keyway.AllOutput;
        foreach (var secret in _api.Issued.Append(_password))
        {
            Assert.DoesNotContain(secret, output, StringComparison.Ordinal);
            Assert.All(_responses, r => Assert.DoesNotContain(secret, r, StringComparison.Ordinal));
        }

        await _api.DisposeAsync();
    }

    private async Task<string> CustomResourceAsync(int? expiresIn = null, object? refresh = null, object[]? refreshSteps = null, string? expiresInTemplate = null)
    {
        var resource = KeywayFixture.Unique("custom");
        if (expiresIn is { } seconds)
        {
            _api.ExpiresInSeconds = seconds;
        }

        var auth = new JsonObject
        {
            ["type"] = "custom",
            ["steps"] = new JsonArray(
                new JsonObject
                {
                    ["type"] = "request",
                    ["name"] = "login",
                    ["method"] = "POST",
                    ["url"] = _api.BaseUrl + "/login",
                    ["headers"] = new JsonObject { ["Content-Type"] = "application/json" },
                    ["body"] = $"{{\"username\": \"{{{{ environment.variables.{_userVariable} }}}}\", \"password\": \"{{{{ environment.variables.{_passwordVariable} }}}}\"}}",
                },
                new JsonObject { ["type"] = "variable", ["name"] = "TOKEN", ["value"] = "{{ login.body.session.token }}" },
                new JsonObject { ["type"] = "javascript", ["name"] = "derived", ["code"] = "return { CSRF: login.headers['x-csrf'] };" }),
            ["apply"] = new JsonObject { ["headers"] = new JsonObject { ["Authorization"] = "Bearer {{ TOKEN }}", ["X-CSRF"] = "{{ CSRF }}" } },
            ["expiresIn"] = expiresInTemplate ?? "{{ login.body.session.expiresIn }}",
        };
        if (refresh is not null)
        {
            auth["refresh"] = System.Text.Json.JsonSerializer.SerializeToNode(refresh);
        }

        if (refreshSteps is not null)
        {
            auth["refreshSteps"] = System.Text.Json.JsonSerializer.SerializeToNode(refreshSteps);
        }

        await fixture.PutResourceAsync(resource, new JsonObject { ["kind"] = "rest", ["baseUrl"] = _api.BaseUrl, ["auth"] = auth });
        return resource;
    }

    private async Task<JsonNode> RunAsync(string resource, string path)
    {
        var response = await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path });
        var text = await response.Content.ReadAsStringAsync();
        _responses.Add(text);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"Expected 200, got {(int)response.StatusCode}: {text}");
        return JsonNode.Parse(text)!;
    }

    private async Task<(HttpStatusCode Status, string Body)> ProxyAsync(string resource, string path)
    {
        using var client = fixture.Keyway.CreateClient(fixture.Keyway.AdminToken);
        using var response = await client.GetAsync($"/proxy/{resource}{path}");
        var body = await response.Content.ReadAsStringAsync();
        _responses.Add(body);
        return (response.StatusCode, body);
    }

    [Fact]
    public async Task A_new_version_of_the_password_and_a_rollback_each_log_in_again_with_it()
    {
        var resource = await CustomResourceAsync();
        await RunAsync(resource, "/data");
        Assert.Equal(1, _api.Logins);

        // The same password as a new version: the session made with the old version is not used again.
        await fixture.SetVariableAsync(_passwordVariable, _password, secret: true);
        await RunAsync(resource, "/data");
        Assert.Equal(2, _api.Logins);
        await RunAsync(resource, "/data");
        Assert.Equal(2, _api.Logins);

        var rollback = await Admin.PostAsJsonAsync($"/api/v1/environments/production/variables/{_passwordVariable}/rollback", new { version = 1 });
        Assert.Equal(HttpStatusCode.OK, rollback.StatusCode);
        await RunAsync(resource, "/data");
        Assert.Equal(3, _api.Logins);
    }

    [Fact]
    public async Task The_first_use_logs_in_and_the_session_is_attached_through_run_and_the_proxy()
    {
        var resource = await CustomResourceAsync();

        var run = await RunAsync(resource, "/data");
        var (status, proxied) = await ProxyAsync(resource, "/data");
        var credential = await Admin.GetStringAsync($"/api/v1/resources/{resource}/credential");
        _responses.Add(credential);

        Assert.Equal(200, (int)run["status"]!);
        Assert.True((bool)run["body"]!["ok"]!);
        // The API echoes the Authorization header: Keyway redacts the session token from the answer.
        Assert.Equal("[REDACTED]", (string?)run["body"]!["authorization"]);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Contains("[REDACTED]", proxied, StringComparison.Ordinal);
        Assert.Equal(1, _api.Logins);
        Assert.Equal("valid", (string?)JsonNode.Parse(credential)!["state"]);
    }

    [Fact]
    public async Task A_401_after_the_api_drops_the_session_causes_exactly_one_new_login_and_the_request_succeeds()
    {
        var resource = await CustomResourceAsync(refresh: new { statuses = new[] { 401, 419 } });
        await RunAsync(resource, "/data");

        _api.InvalidateSessions();
        var run = await RunAsync(resource, "/data");
        _api.InvalidateSessions();
        var (status, _) = await ProxyAsync(resource, "/data");

        Assert.Equal(200, (int)run["status"]!);
        Assert.True((bool)run["refreshed"]!);
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal(3, _api.Logins);
        Assert.Equal(2, _api.Rejected);
    }

    [Fact]
    public async Task A_body_condition_in_a_run_logs_in_again_although_the_status_is_200()
    {
        var resource = await CustomResourceAsync(refresh: new { statuses = new[] { 401 }, bodyCondition = "{{ response.body.error == 'session expired' }}" });
        await RunAsync(resource, "/soft");

        _api.InvalidateSessions();
        var run = await RunAsync(resource, "/soft");

        Assert.Equal(200, (int)run["status"]!);
        Assert.True((bool)run["body"]!["ok"]!);
        Assert.True((bool)run["refreshed"]!);
        Assert.Equal(2, _api.Logins);
    }

    [Fact]
    public async Task A_session_that_expires_is_replaced_by_a_new_login_before_use()
    {
        var resource = await CustomResourceAsync(expiresIn: 2);
        await RunAsync(resource, "/data");

        await Poll.UntilAsync(async () =>
        {
            var run = await RunAsync(resource, "/data");
            Assert.Equal(200, (int)run["status"]!);
            return _api.Logins >= 2;
        }, TimeSpan.FromSeconds(15), "Keyway to log in again after the session expired");

        Assert.Equal(0, _api.Rejected);
    }

    [Fact]
    public async Task Refresh_steps_renew_the_session_with_the_previous_token()
    {
        // A long-lived session, renewed on demand: what is tested is which steps a refresh runs, not
        // when the refresher wakes (the engine's timing is tested on a fake clock).
        var resource = await CustomResourceAsync(expiresIn: 3600, refreshSteps:
        [
            new { type = "request", name = "renew", method = "POST", url = _api.BaseUrl + "/refresh", headers = new Dictionary<string, string> { ["Authorization"] = "Bearer {{ TOKEN }}" } },
            new { type = "variable", name = "TOKEN", value = "{{ renew.body.token }}" },
        ], expiresInTemplate: "{{ typeof renew === 'undefined' ? login.body.session.expiresIn : renew.body.expiresIn }}");
        await RunAsync(resource, "/data");

        await Expect.StatusAsync(await Admin.PostAsync($"/api/v1/resources/{resource}/credential/refresh", null), 200);
        var run = await RunAsync(resource, "/data");

        // Renewed with the previous token (which the API then ended), not logged in again.
        Assert.Equal(200, (int)run["status"]!);
        Assert.Equal(1, _api.Refreshes);
        Assert.Equal(1, _api.Logins);
    }

    [Fact]
    public async Task A_wrong_password_fails_with_the_step_named_and_nothing_secret_in_the_error()
    {
        await fixture.SetVariableAsync(_passwordVariable, "wrong-" + _password, secret: true);
        var resource = await CustomResourceAsync();

        var response = await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/data" });
        var problem = await Expect.ProblemAsync(response, 502, "credential_failed");
        _responses.Add(problem.ToJsonString());

        Assert.Contains("'login'", (string?)problem["detail"], StringComparison.Ordinal);
        Assert.Contains("401", (string?)problem["detail"], StringComparison.Ordinal);
        Assert.DoesNotContain("wrong-" + _password, problem.ToJsonString(), StringComparison.Ordinal);
        Assert.DoesNotContain("wrong-" + _password, fixture.Keyway.AllOutput, StringComparison.Ordinal);
        Assert.Equal(0, _api.Logins);
    }
}

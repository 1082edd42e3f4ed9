using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration.Adversarial;

/// <summary>
/// A member who may only <c>use</c> a resource tries to make the debugger (the resource test, its CLI, and a
/// run's outbound request) show a secret: a login step that sends the secret in its URL, headers and body to
/// an endpoint that echoes them in every encoding, a token endpoint that echoes the client secret, a final
/// request whose answer reflects the credentials. No form of the canary may come back, nor reach the audit log.
/// </summary>
[Trait("Category", "Integration")]
public sealed class DebuggerRedactionTests(RedactionEncodingFixture fixture) : IClassFixture<RedactionEncodingFixture>
{
    private const string Canary = RedactionEncodingFixture.Canary;
    private const string Secret = "{{ environment.variables.CANARY }}";

    private async Task<(string Name, HttpClient Client, string Token)> MemberWithUseAsync(string resource)
    {
        var name = "m-" + Guid.NewGuid().ToString("N")[..10];
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/users", new { name, role = "member" }), 201);
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = name, permission = "use" }), 201);
        var key = await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/keys", new { name = "debug", owner = name }), 201);
        var token = (string)key["token"]!;
        return (name, fixture.Keyway.CreateClient(token), token);
    }

    private async Task PutAsync(string resource, object definition)
    {
        using var response = await fixture.Admin.PutAsJsonAsync($"/api/v1/resources/{resource}", definition);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_login_flow_that_sends_the_secret_everywhere_to_an_echo_shows_no_form_of_it_in_the_report_the_cli_or_the_audit_log()
    {
        var resource = "dbg-echo-" + Guid.NewGuid().ToString("N")[..8];
        await PutAsync(resource, new JsonObject
        {
            ["baseUrl"] = fixture.Upstream.BaseUrl,
            ["headers"] = new JsonObject { ["X-Echo"] = Secret },
            ["auth"] = new JsonObject
            {
                ["type"] = "custom",
                ["steps"] = new JsonArray(
                    new JsonObject
                    {
                        // Each form of the secret back in the answer, and the secret in the URL, a header and the body as sent.
                        ["type"] = "request",
                        ["name"] = "login",
                        ["method"] = "POST",
                        ["url"] = fixture.Upstream.BaseUrl + "/forms/all?key={{ encodeURIComponent(environment.variables.CANARY) }}",
                        ["headers"] = new JsonObject { ["X-Echo"] = Secret, ["Authorization"] = "Bearer " + Secret },
                        ["body"] = "{\"password\": \"" + Secret + "\"}",
                    },
                    new JsonObject { ["type"] = "request", ["name"] = "echo", ["method"] = "POST", ["url"] = fixture.Upstream.BaseUrl + "/anything", ["body"] = "secret=" + Secret },
                    new JsonObject { ["type"] = "variable", ["name"] = "SESSION", ["value"] = "{{ login.body.echo }}" }),
                ["apply"] = new JsonObject { ["headers"] = new JsonObject { ["X-Session"] = "{{ SESSION }}" } },
                ["lifetimeSeconds"] = 600,
            },
        });
        var (_, member, token) = await MemberWithUseAsync(resource);

        // The final request's answer reflects the X-Echo header (the secret) in every form.
        using var test = await member.PostAsJsonAsync($"/api/v1/resources/{resource}/test", new { path = "/forms/all", fresh = true });
        var report = await test.Content.ReadAsByteArrayAsync();
        using var run = await member.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/forms/all" });
        var answer = await run.Content.ReadAsByteArrayAsync();
        var cli = await KeywayProcess.RunCliAsync(["resource", "test", resource, "--path", "/anything", "--verbose", "--fresh"], fixture.Keyway.CliEnvironment(token));
        var cliJson = await KeywayProcess.RunCliAsync(["resource", "test", resource, "--path", "/anything", "--json"], fixture.Keyway.CliEnvironment(token));

        Assert.True(test.IsSuccessStatusCode, Encoding.UTF8.GetString(report));
        var parsed = JsonNode.Parse(report)!;
        Assert.True(parsed["steps"]!.AsArray().Any(s => (string?)s!["step"] == "login" && s["request"] is not null && s["response"] is not null), Encoding.UTF8.GetString(report));
        Assert.Contains(parsed["steps"]!.AsArray(), s => (string?)s!["step"] == "echo" && s["response"] is not null);
        Assert.Contains("[REDACTED]", Encoding.UTF8.GetString(report));
        RedactionEncodingTests.AssertNothingOf(report, Canary, "the test report");
        Assert.True(run.IsSuccessStatusCode, Encoding.UTF8.GetString(answer));
        Assert.NotNull(JsonNode.Parse(answer)!["outbound"]);
        RedactionEncodingTests.AssertNothingOf(answer, Canary, "a run with its outbound request");
        Assert.True(cli.ExitCode == 0, cli.Output);
        Assert.Contains("> POST", cli.StandardOutput);
        RedactionEncodingTests.AssertNothingOf(Encoding.UTF8.GetBytes(cli.Output), Canary, "keyway resource test --verbose");
        RedactionEncodingTests.AssertNothingOf(Encoding.UTF8.GetBytes(cliJson.Output), Canary, "keyway resource test --json");

        var audit = await fixture.Admin.GetByteArrayAsync("/api/v1/audit/export");
        RedactionEncodingTests.AssertNothingOf(audit, Canary, "the audit log");
    }

    [Theory]
    [InlineData("basic")]
    [InlineData("post")]
    public async Task A_token_endpoint_that_echoes_the_client_secret_is_redacted_from_the_report(string clientAuth)
    {
        var resource = "dbg-token-" + Guid.NewGuid().ToString("N")[..8];
        await PutAsync(resource, new
        {
            baseUrl = fixture.Upstream.BaseUrl,
            // The upstream echoes every request as JSON: the client secret comes back, and no access token.
            auth = new { type = "oauth2", grant = "client_credentials", tokenUrl = fixture.Upstream.BaseUrl + "/token-echo", clientId = "keyway", clientSecret = Secret, clientAuth },
        });
        var (_, member, _) = await MemberWithUseAsync(resource);

        using var test = await member.PostAsJsonAsync($"/api/v1/resources/{resource}/test", new { fresh = true });
        var report = await test.Content.ReadAsByteArrayAsync();

        Assert.True(test.IsSuccessStatusCode, Encoding.UTF8.GetString(report));
        var parsed = JsonNode.Parse(report)!;
        Assert.False((bool)parsed["ok"]!);
        Assert.Equal("token request (client_credentials)", (string?)parsed["failedStep"]);
        var step = parsed["steps"]!.AsArray().First(s => (string?)s!["step"] == "token request (client_credentials)")!;
        Assert.Equal(200, (int)step["response"]!["status"]!);
        RedactionEncodingTests.AssertNothingOf(report, Canary, $"the test report ({clientAuth})");
    }
}

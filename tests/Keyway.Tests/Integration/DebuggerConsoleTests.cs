using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Keyway.Tests.Integration;

/// <summary>
/// The resource page's "Test connection" in a real browser: a custom flow's steps as a timeline, each opening
/// to its request as sent and its answer; an OAuth exchange whose client secret is wrong, the failing step
/// marked with its fix; a run's request as sent beside its answer. The secret appears in no page and no answer.
/// </summary>
[Trait("Category", "Integration")]
public sealed class DebuggerConsoleTests(SqliteKeyway fixture, Chromium chromium) : IClassFixture<SqliteKeyway>, IClassFixture<Chromium>
{
    [Fact]
    public async Task Test_connection_shows_the_steps_as_a_timeline_and_marks_the_failing_one_with_its_fix()
    {
        var canary = "CANARY-debugger-" + Guid.NewGuid().ToString("N");
        await using var api = await CustomLoginApi.StartAsync("svc-user", canary);
        await using var server = await AuthServer.StartAsync();
        var variable = "DBG_CONSOLE_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await fixture.SetVariableAsync(variable, canary, secret: true);
        var flow = KeywayFixture.Unique("dbgui");
        await fixture.PutResourceAsync(flow, new JsonObject
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
        // The canary is also the client secret here: wrong for the server, and never to be shown.
        var oauth = KeywayFixture.Unique("dbgoauth");
        await fixture.PutResourceAsync(oauth, new
        {
            baseUrl = server.BaseUrl,
            auth = new { type = "oauth2", grant = "client_credentials", tokenUrl = server.TokenEndpoint, clientId = "keyway", clientSecret = $"{{{{ environment.variables.{variable} }}}}", scope = AuthServer.ApiScope },
        });

        var page = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        var received = ConsoleTests.Record(page);
        await page.GotoAsync("/console");
        await ConsoleTests.SignInAsync(page, "admin", fixture.Keyway.AdminPassword!);
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Attention", Exact = true })).ToBeVisibleAsync();
        var pages = new List<string>();

        // The custom flow: every step in order, the login step opening to its request and answer.
        await page.GotoAsync($"/console#/resources/{flow}?env=production");
        var form = page.Locator("#test-form");
        await form.GetByLabel("Test request path").FillAsync("/data");
        await form.GetByRole(AriaRole.Button, new() { Name = "Test connection" }).ClickAsync();
        var timeline = page.Locator("#test-result .timeline");
        await Assertions.Expect(timeline.Locator("li.step")).ToHaveCountAsync(6);
        await Assertions.Expect(page.Locator("#test-result")).ToContainTextAsync("passed");
        var login = timeline.Locator("li[data-step='login']");
        await login.Locator("summary").ClickAsync();
        await Assertions.Expect(login.Locator("pre.sent")).ToContainTextAsync($"POST {api.BaseUrl}/login");
        await Assertions.Expect(login.Locator("pre.sent")).ToContainTextAsync("«withheld: reads the secret");
        await Assertions.Expect(login.Locator("pre.received")).ToContainTextAsync("200");
        await Assertions.Expect(timeline.Locator("li[data-step='TOKEN']")).ToContainTextAsync("login step");
        var request = timeline.Locator("li[data-step='request']");
        await request.Locator("summary").ClickAsync();
        await Assertions.Expect(request.Locator("pre.sent")).ToContainTextAsync("Authorization: «withheld: set by the resource's auth method»");
        pages.Add(await page.ContentAsync());

        // A run shows the request it sent beside its answer.
        var run = page.Locator("#run");
        await run.GetByLabel("Path").FillAsync("/data");
        await run.GetByRole(AriaRole.Button, new() { Name = "Run" }).ClickAsync();
        await Assertions.Expect(page.Locator("#run-result .badge").First).ToHaveTextAsync("200");
        await page.Locator("#run-result details.outbound summary").ClickAsync();
        await Assertions.Expect(page.Locator("#run-result pre.sent")).ToContainTextAsync($"GET {api.BaseUrl}/data");
        await Assertions.Expect(page.Locator("#run-result pre.sent")).ToContainTextAsync("Authorization: «withheld:");
        pages.Add(await page.ContentAsync());

        // The OAuth exchange with a wrong client secret: the token request is the failing step, open, with its fix.
        await page.GotoAsync($"/console#/resources/{oauth}?env=production");
        await page.Locator("#test-form").GetByRole(AriaRole.Button, new() { Name = "Test connection" }).ClickAsync();
        var failed = page.Locator("#test-result .debug-failed");
        await Assertions.Expect(failed).ToContainTextAsync("token request (client_credentials)");
        await Assertions.Expect(failed).ToContainTextAsync("client secret");
        var culprit = page.Locator("#test-result li.culprit");
        await Assertions.Expect(culprit).ToHaveAttributeAsync("data-step", "token request (client_credentials)");
        await Assertions.Expect(culprit.Locator("pre.sent")).ToBeVisibleAsync();
        await Assertions.Expect(culprit.Locator("pre.sent")).ToContainTextAsync($"POST {server.TokenEndpoint}");
        await Assertions.Expect(culprit.Locator("pre.received")).ToContainTextAsync("invalid_client");
        pages.Add(await page.ContentAsync());

        var responses = await received();
        Assert.All(pages, p => Assert.DoesNotContain(canary, p, StringComparison.Ordinal));
        Assert.All(responses, r => Assert.False(r.Body.Contains(canary, StringComparison.Ordinal), $"{r.Url} returned the secret"));
        Assert.All(api.Issued, issued => Assert.All(responses, r => Assert.DoesNotContain(issued, r.Body, StringComparison.Ordinal)));
        await page.Context.CloseAsync();
    }
}

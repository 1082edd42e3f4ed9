using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Deque.AxeCore.Playwright;
using Keyway.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Keyway.Tests.Integration;

/// <summary>
/// Every page of the console, with data in it, in a real browser: axe finds no serious or critical
/// accessibility violation, no script fails, no stray "null" is drawn, the audit log fits a 1400 px
/// window, and a screenshot of each is saved with the test output (console-screenshots/), the resource
/// test's timeline and a run's request as sent among them. Also the
/// API reference: no vendor offers, and the OpenAPI document's security schemes.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ConsoleAccessibilityTests(SqliteKeyway fixture, Chromium chromium) : IClassFixture<SqliteKeyway>, IClassFixture<Chromium>
{
    [Fact]
    public async Task Every_console_page_has_no_serious_accessibility_violation_no_script_error_and_no_stray_null()
    {
        var canary = "CANARY-a11y-" + Guid.NewGuid().ToString("N");
        var secret = "A11Y_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await fixture.SetVariableAsync(secret, canary, secret: true);
        await fixture.SetVariableAsync(secret, canary + "-2", secret: true);
        var resource = KeywayFixture.Unique("a11y");
        await fixture.PutResourceAsync(resource, new
        {
            baseUrl = fixture.Upstream.BaseUrl,
            description = "Every page, with data",
            audit = new { traffic = "each" },
            auth = new { type = "bearer", token = $"{{{{ environment.variables.{secret} }}}}" },
        });
        // A run whose audit detail is long and unbroken: the Detail column must wrap it.
        var longPath = "/" + new string('x', 240);
        var query = Enumerable.Range(0, 12).ToDictionary(i => $"parameter{i}", i => $"value{i}");
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = longPath, query }), 200);
        await Expect.SuccessAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/queries/{KeywayFixture.Unique("q")}", new { resource, path = "/items/{{ inputs.id }}" }));
        await Expect.SuccessAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/webhooks", new { name = KeywayFixture.Unique("hook"), url = "https://hooks.example.com/keyway" }));

        var page = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        await page.SetViewportSizeAsync(1400, 900);
        var received = ConsoleTests.Record(page);
        var scriptErrors = new List<string>();
        page.PageError += (_, error) => scriptErrors.Add(error);
        var findings = new List<string>();

        await page.GotoAsync("/console");
        await Assertions.Expect(page.Locator("#signin")).ToBeVisibleAsync();
        await CheckAsync(page, "sign-in", canary, findings);
        await ConsoleTests.SignInAsync(page, "admin", fixture.Keyway.AdminPassword!);
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Attention", Exact = true })).ToBeVisibleAsync();
        await CheckAsync(page, "attention", canary, findings);

        foreach (var (section, heading) in new[]
        {
            ("Resources", "Resources"), ("Queries", "Saved queries"), ("Schedules", "Schedules"), ("Variables", "Configuration variables"),
            ("API keys", "API keys"), ("Audit log", "Audit log"), ("Webhooks", "Webhooks"), ("Users & groups", "Users & groups"),
        })
        {
            await ConsoleTests.Nav(page, section).ClickAsync();
            await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = heading, Exact = true })).ToBeVisibleAsync();
            await page.Locator("main").GetByText("Loading…").WaitForAsync(new() { State = WaitForSelectorState.Detached });
            await CheckAsync(page, section.ToLowerInvariant().Replace(' ', '-').Replace("&", "and", StringComparison.Ordinal), canary, findings);
            if (section == "Audit log")
            {
                Assert.True(await page.EvaluateAsync<bool>("() => { const c = document.querySelector('#audit'); return c.scrollWidth <= c.clientWidth; }"),
                    "The audit log needs horizontal scrolling at 1400 px.");
            }
        }

        // The new-resource form's tabs, with the richest methods shown.
        await ConsoleTests.Nav(page, "Resources").ClickAsync();
        var form = ResourceFormConsoleTests.Form(page);
        await form.GetByRole(AriaRole.Tab, new() { Name = "Auth & Headers" }).ClickAsync();
        await form.GetByLabel("Auth method").SelectOptionAsync("oauth2");
        await form.GetByLabel("Grant").SelectOptionAsync("authorization_code");
        await CheckAsync(page, "form-oauth2", canary, findings);
        await form.GetByLabel("Auth method").SelectOptionAsync("custom");
        await form.GetByRole(AriaRole.Button, new() { Name = "Add request step" }).First.ClickAsync();
        await form.GetByRole(AriaRole.Button, new() { Name = "Add extract a value step" }).First.ClickAsync();
        await CheckAsync(page, "form-custom", canary, findings);
        // Keyboard: the arrow keys move between tabs.
        await form.GetByRole(AriaRole.Tab, new() { Name = "Auth & Headers" }).FocusAsync();
        await page.Keyboard.PressAsync("ArrowRight");
        await Assertions.Expect(form.GetByRole(AriaRole.Tab, new() { Name = "Advanced" })).ToHaveAttributeAsync("aria-selected", "true");
        await CheckAsync(page, "form-advanced", canary, findings);
        await page.Keyboard.PressAsync("ArrowRight");
        await CheckAsync(page, "form-source", canary, findings);

        // A resource's page, with the edit form open; the variables' versions; a webhook's deliveries; the account.
        await page.GotoAsync($"/console#/resources/{resource}");
        await Assertions.Expect(page.Locator("#configuration")).ToBeVisibleAsync();
        await page.Locator("#edit-resource").ClickAsync();
        await CheckAsync(page, "resource", canary, findings);
        // The debugger's timeline, and a run with its request as sent.
        await page.Locator("#test-form").GetByRole(AriaRole.Button, new() { Name = "Test connection" }).ClickAsync();
        await Assertions.Expect(page.Locator("#test-result .timeline")).ToBeVisibleAsync();
        await page.Locator("#test-result details summary").First.ClickAsync();
        await CheckAsync(page, "resource-test", canary, findings);
        await page.Locator("#run").GetByLabel("Path").FillAsync("/items/1");
        await page.Locator("#run").GetByRole(AriaRole.Button, new() { Name = "Run" }).ClickAsync();
        await Assertions.Expect(page.Locator("#run-result .badge").First).ToHaveTextAsync("200");
        await page.Locator("#run-result details.outbound summary").ClickAsync();
        await Assertions.Expect(page.Locator("#run-result pre.sent")).ToContainTextAsync("Authorization: «withheld:");
        await CheckAsync(page, "resource-run", canary, findings);
        await page.GotoAsync("/console#/variables");
        await page.Locator($"[data-versions='{secret}']").ClickAsync();
        await Assertions.Expect(page.Locator("#variable-versions")).ToContainTextAsync($"Versions of {secret}");
        await CheckAsync(page, "variable-versions", canary, findings);
        await page.GotoAsync("/console#/webhooks");
        await page.Locator("#webhooks a").First.ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Deliveries to", Exact = false })).ToBeVisibleAsync();
        await CheckAsync(page, "webhook-deliveries", canary, findings);
        await page.GotoAsync("/console#/account");
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Your account" })).ToBeVisibleAsync();
        await CheckAsync(page, "account", canary, findings);

        Assert.True(findings.Count == 0, string.Join('\n', findings));
        Assert.True(scriptErrors.Count == 0, string.Join('\n', scriptErrors));
        var responses = await received();
        Assert.All(responses, r => Assert.False(r.Body.Contains(canary, StringComparison.Ordinal), $"{r.Url} returned the secret"));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task The_api_reference_offers_nothing_from_its_vendor_and_the_openapi_document_declares_how_callers_authenticate()
    {
        using var anonymous = new HttpClient { BaseAddress = new Uri(fixture.Keyway.BaseUrl) };
        var document = JsonNode.Parse(await anonymous.GetStringAsync("/openapi/v1.json"))!;
        var schemes = document["components"]!["securitySchemes"]!;
        Assert.Equal("http", (string?)schemes["apiKey"]!["type"]);
        Assert.Equal("bearer", (string?)schemes["apiKey"]!["scheme"]);
        Assert.Equal("X-Keyway-Token", (string?)schemes["keywayToken"]!["name"]);
        Assert.Equal("cookie", (string?)schemes["consoleSession"]!["in"]);
        var put = document["paths"]!["/api/v1/resources/{name}"]!["put"]!;
        Assert.Contains(put["security"]!.AsArray(), r => r!.AsObject().ContainsKey("apiKey"));
        // Sign-in is the one operation open without a key.
        Assert.Null(document["paths"]!["/api/v1/auth/login"]!["post"]!["security"]);

        var page = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        var html = await anonymous.GetStringAsync("/api/reference");
        await page.GotoAsync("/api/reference");
        await Assertions.Expect(page.GetByText("Keyway API").First).ToBeVisibleAsync();
        await page.GetByText("Resources").First.WaitForAsync();
        var text = await page.Locator("body").InnerTextAsync();
        foreach (var offer in new[] { "Ask AI", "Deploy", "Generate SDK" })
        {
            Assert.DoesNotContain(offer, text, StringComparison.OrdinalIgnoreCase);
        }

        var directory = Path.Combine(AppContext.BaseDirectory, "console-screenshots");
        Directory.CreateDirectory(directory);
        await page.ScreenshotAsync(new() { Path = Path.Combine(directory, "api-reference.png") });
        Assert.Contains("Keyway API", html, StringComparison.Ordinal);
        await page.Context.CloseAsync();
    }

    /// <summary>axe's serious and critical findings on the page as it is, a stray "null", and a screenshot.</summary>
    private static async Task CheckAsync(IPage page, string name, string canary, List<string> findings)
    {
        var result = await page.RunAxe();
        Assert.NotEmpty(result.Passes); // axe ran, and checked something
        foreach (var violation in result.Violations.Where(v => v.Impact is "serious" or "critical"))
        {
            findings.Add($"{name}: {violation.Impact} {violation.Id} ({violation.Help}) at {string.Join(", ", violation.Nodes.Select(n => n.Target?.ToString()))}");
        }

        if (await page.EvaluateAsync<bool>("""
            () => {
              const walk = document.createTreeWalker(document.getElementById('main'), NodeFilter.SHOW_TEXT);
              for (let n = walk.nextNode(); n; n = walk.nextNode()) {
                if (n.parentElement.closest('pre, textarea, code')) continue;
                if (/^(null)+$/.test(n.textContent.trim()) || /[a-z]null\b/i.test(n.textContent)) return true;
              }
              return false;
            }
            """))
        {
            findings.Add($"{name}: a literal 'null' is drawn in the page");
        }

        await ResourceFormConsoleTests.SnapshotAsync(page, name, canary);
    }
}

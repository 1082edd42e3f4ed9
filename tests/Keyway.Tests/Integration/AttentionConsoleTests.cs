using System.Net.Http.Json;
using Keyway.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Keyway.Tests.Integration;

/// <summary>
/// The console's home page ("Attention") and the resource list's credential badges in a real browser:
/// what fails, expires or is not connected, each linking to where it is fixed, and only what the
/// signed-in person may see.
/// </summary>
[Trait("Category", "Integration")]
public sealed class AttentionConsoleTests(SqliteKeyway fixture, Chromium chromium) : IClassFixture<SqliteKeyway>, IClassFixture<Chromium>
{
    private const string MemberPassword = "member passphrase long enough";

    [Fact]
    public async Task The_home_page_lists_failing_and_unconnected_credentials_and_expiring_secrets_and_a_member_sees_only_their_own()
    {
        var canary = "CANARY-attention-" + Guid.NewGuid().ToString("N");
        var secret = "ATTN_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await fixture.SetVariableAsync(secret, canary, secret: true);
        var expiring = "ATTN_EXP_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await Expect.SuccessAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{expiring}",
            new { value = "expiring-" + Guid.NewGuid().ToString("N"), secret = true, expiresAt = DateTimeOffset.UtcNow.AddDays(3) }));

        // Two resources whose token endpoint refuses (a shared credential each), and one per-person credential nobody connected.
        var visible = await FailingResourceAsync("visible", secret);
        var hidden = await FailingResourceAsync("hidden", secret);
        var personal = KeywayFixture.Unique("personal");
        await fixture.PutResourceAsync(personal, new
        {
            baseUrl = fixture.Upstream.BaseUrl,
            shareCredentials = false,
            auth = new
            {
                type = "oauth2",
                grant = "authorization_code",
                authorizeUrl = fixture.Upstream.BaseUrl + "/authorize",
                tokenUrl = fixture.Upstream.BaseUrl + "/token",
                clientId = "p",
                clientSecret = $"{{{{ environment.variables.{secret} }}}}",
            },
        });

        var member = KeywayFixture.Unique("member");
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/users", new { name = member, role = "member", source = "local", password = MemberPassword }), 201);
        foreach (var resource in new[] { visible, personal })
        {
            await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = member, permission = "use" }), 201);
        }

        // The member: their resource failing and their own connection missing; not the other resource, not the secrets.
        var page = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        var received = ConsoleTests.Record(page);
        await page.GotoAsync("/console");
        await ConsoleTests.SignInAsync(page, member, MemberPassword);
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Attention", Exact = true })).ToBeVisibleAsync();
        var attention = page.Locator("#attention");
        var failing = attention.Locator("tr", new() { HasText = visible });
        await Assertions.Expect(failing).ToContainTextAsync("failing");
        await Assertions.Expect(attention.Locator("tr", new() { HasText = personal })).ToContainTextAsync("not connected");
        await Assertions.Expect(attention.Locator("tr", new() { HasText = personal })).ToContainTextAsync("(you)");
        await Assertions.Expect(page.Locator("#failures")).ToContainTextAsync(visible);
        await Assertions.Expect(attention).Not.ToContainTextAsync(hidden);
        await Assertions.Expect(attention).Not.ToContainTextAsync(expiring);
        await Assertions.Expect(page.Locator("#failures")).Not.ToContainTextAsync(hidden);

        // Each row links to where it is fixed: the resource's page in that environment.
        await failing.GetByRole(AriaRole.Link, new() { Name = visible }).ClickAsync();
        await Assertions.Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex($"#/resources/{visible}\\?env=production$"));
        await Assertions.Expect(page.Locator("#credential")).ToContainTextAsync("Last error");

        // The resource list: badges for what the member may see, and nothing of the rest.
        await ConsoleTests.Nav(page, "Resources").ClickAsync();
        var list = page.Locator("#resources");
        await Assertions.Expect(list.Locator("tr", new() { HasText = visible })).ToContainTextAsync("failing");
        await Assertions.Expect(list.Locator("tr", new() { HasText = personal })).ToContainTextAsync("not connected");
        await Assertions.Expect(list).Not.ToContainTextAsync(hidden);
        var memberPages = await page.ContentAsync();
        var memberResponses = await received();
        Assert.All(memberResponses, r => Assert.DoesNotContain(hidden, r.Body, StringComparison.Ordinal));
        Assert.All(memberResponses, r => Assert.DoesNotContain(expiring, r.Body, StringComparison.Ordinal));
        await page.Context.CloseAsync();

        // The admin: both failing resources and the expiring secret, which links to its versions.
        var admin = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        var adminReceived = ConsoleTests.Record(admin);
        await admin.GotoAsync("/console");
        await ConsoleTests.SignInAsync(admin, "admin", fixture.Keyway.AdminPassword!);
        var all = admin.Locator("#attention");
        await Assertions.Expect(all.Locator("tr", new() { HasText = hidden })).ToContainTextAsync("failing");
        await Assertions.Expect(all.Locator("tr", new() { HasText = visible })).ToContainTextAsync("failing");
        var secretRow = all.Locator("tr", new() { HasText = expiring });
        await Assertions.Expect(secretRow).ToContainTextAsync("expiring");
        await Assertions.Expect(admin.Locator("#failures tr", new() { HasText = hidden })).ToBeVisibleAsync();
        // Worst first: failing credentials come before a secret that only expires soon.
        var rows = await all.Locator("tbody tr").AllInnerTextsAsync();
        Assert.True(rows.ToList().FindIndex(r => r.Contains(hidden, StringComparison.Ordinal)) < rows.ToList().FindIndex(r => r.Contains(expiring, StringComparison.Ordinal)));
        var adminPage = await admin.ContentAsync();
        await secretRow.GetByRole(AriaRole.Link, new() { Name = expiring }).ClickAsync();
        await Assertions.Expect(admin.Locator("#variable-versions")).ToContainTextAsync($"Versions of {expiring} in production");

        var responses = await adminReceived();
        Assert.DoesNotContain(canary, memberPages, StringComparison.Ordinal);
        Assert.DoesNotContain(canary, adminPage, StringComparison.Ordinal);
        Assert.All(memberResponses.Concat(responses), r => Assert.False(r.Body.Contains(canary, StringComparison.Ordinal), $"{r.Url} returned the secret"));
        await admin.Context.CloseAsync();
    }

    /// <summary>A client-credentials resource whose token endpoint answers 401, refreshed once so its credential has failed.</summary>
    private async Task<string> FailingResourceAsync(string prefix, string secret)
    {
        var name = KeywayFixture.Unique(prefix);
        await fixture.PutResourceAsync(name, new
        {
            baseUrl = fixture.Upstream.BaseUrl,
            auth = new { type = "oauth2", grant = "client_credentials", tokenUrl = fixture.Upstream.BaseUrl + "/status/401", clientId = "c", clientSecret = $"{{{{ environment.variables.{secret} }}}}" },
        });
        var refresh = await fixture.Admin.PostAsync($"/api/v1/resources/{name}/credential/refresh", null);
        Assert.False(refresh.IsSuccessStatusCode);
        var health = await Expect.SuccessAsync(await fixture.Admin.GetAsync("/api/v1/status/credentials"));
        Assert.Contains(health["credentials"]!.AsArray(), c => (string?)c!["resource"] == name && (string?)c["state"] == "failed" && c["failedAt"] is not null);
        return name;
    }
}

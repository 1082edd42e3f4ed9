using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Keyway.Tests.Integration;

/// <summary>
/// The console's versions and rotation history in a real browser: what became of a key a rotation minted and
/// abandoned — its revoke's state as a pill, and the reason the API gives — in both lists, and never a value.
/// </summary>
[Trait("Category", "Integration")]
public sealed class RotationConsoleTests(SqliteKeyway fixture, Chromium chromium) : IClassFixture<SqliteKeyway>, IClassFixture<Chromium>
{
    [Fact]
    public async Task A_rolled_back_rotations_abandoned_key_shows_its_revoke_state_and_reason_in_the_versions_and_the_history()
    {
        var variable = "CONSOLE_ABANDON_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var original = "CANARY-orig-" + Guid.NewGuid().ToString("N");
        var minted = "CANARY-minted-" + Guid.NewGuid().ToString("N");
        var keyId = "kid-" + Guid.NewGuid().ToString("N")[..8];
        await fixture.SetVariableAsync(variable, original, secret: true);
        var admin = KeywayFixture.Unique("abadmin");
        var api = KeywayFixture.Unique("abapi");
        await fixture.PutResourceAsync(admin, new { kind = "rest", baseUrl = fixture.Upstream.BaseUrl });
        await fixture.PutResourceAsync(api, new JsonObject
        {
            ["kind"] = "rest",
            ["baseUrl"] = fixture.Upstream.BaseUrl,
            ["auth"] = new JsonObject { ["type"] = "bearer", ["token"] = $"{{{{ environment.variables.{variable} }}}}" },
        });
        await Expect.StatusAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{variable}/origins",
            new { origins = new[] { fixture.Upstream.BaseUrl } }), 200);
        // The upstream echoes the mint request (the value is its body, the id its query); verify is refused (401), and
        // the revoke of the abandoned key answers 500, so it stays pending with the provider's answer as its reason.
        await Expect.StatusAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{variable}/rotation", new JsonObject
        {
            ["mint"] = new JsonArray(new JsonObject
            {
                ["name"] = "create",
                ["resource"] = admin,
                ["method"] = "POST",
                ["path"] = "/provider/keys",
                ["query"] = new JsonObject { ["id"] = keyId },
                ["body"] = minted,
            }),
            ["value"] = "{{ create.body.body }}",
            ["id"] = "{{ create.body.query.id }}",
            ["verify"] = new JsonObject { ["resource"] = api, ["path"] = "/status/401" },
            ["revoke"] = new JsonObject
            {
                ["resource"] = admin,
                ["method"] = "DELETE",
                ["path"] = "/status/500",
                ["query"] = new JsonObject { ["id"] = "{{ rotation.revoke.id }}" },
            },
        }), 200);
        await Expect.ProblemAsync(await fixture.Admin.PostAsync($"/api/v1/environments/production/variables/{variable}/rotate", null), 502, "rotation_verify_failed");
        await Poll.UntilAsync(async () =>
        {
            var rotation = (await Expect.StatusAsync(await fixture.Admin.GetAsync($"/api/v1/environments/production/variables/{variable}/rotations"), 200))["rotations"]![0]!;
            return ((string?)rotation["abandonedRevokeError"])?.Contains("answered 500", StringComparison.Ordinal) == true;
        }, TimeSpan.FromSeconds(30), "the abandoned key's first revoke attempt");
        Assert.Contains(fixture.Upstream.Requests, r => r.Path == "/status/500" && r.Query.GetValueOrDefault("id") == keyId);

        var page = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.GotoAsync("/console#/variables");
        await ConsoleTests.SignInAsync(page, "admin", fixture.Keyway.AdminPassword!);
        var received = ConsoleTests.Record(page);
        await page.Locator($"button[data-versions={variable}]").ClickAsync();

        // The rotation history: rolled back, and its minted key's revoke pending, with why.
        var history = page.Locator("#variable-rotations [data-abandoned-revoke=pending]");
        await Assertions.Expect(history).ToContainTextAsync("revoke pending");
        await Assertions.Expect(history).ToContainTextAsync("answered 500");
        await Assertions.Expect(page.Locator("#variable-rotations")).ToContainTextAsync("rotation_verify_failed");

        // The versions list: the retired minted version names its key and says the same.
        var version = page.Locator("#variable-versions > table tr", new() { HasText = keyId });
        await Assertions.Expect(version.Locator("td").First).ToHaveTextAsync("2");
        await Assertions.Expect(version.Locator("[data-version-revoke=pending]")).ToContainTextAsync("revoke pending");
        await Assertions.Expect(version).ToContainTextAsync("answered 500");

        var html = await page.ContentAsync();
        var responses = await received();
        Assert.All((string[])[original, minted], v => Assert.DoesNotContain(v, html, StringComparison.Ordinal));
        // The minted value is in the flow's definition (this test's stand-in provider echoes it back), so only the original is checked there.
        Assert.All(responses, r => Assert.DoesNotContain(original, r.Body, StringComparison.Ordinal));
        Assert.All(responses.Where(r => !r.Url.EndsWith("/rotation", StringComparison.Ordinal)), r => Assert.DoesNotContain(minted, r.Body, StringComparison.Ordinal));
        await page.Context.CloseAsync();
    }
}

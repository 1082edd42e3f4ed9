using System.Net.Http.Json;
using Keyway.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Keyway.Tests.Integration;

/// <summary>The console's Schedules page in a real browser: save, list with the next run, run now, history.</summary>
[Trait("Category", "Integration")]
public sealed class ScheduleConsoleTests(SqliteKeyway fixture, Chromium chromium) : IClassFixture<SqliteKeyway>, IClassFixture<Chromium>
{
    [Fact]
    public async Task A_schedule_saved_in_the_console_shows_its_next_local_run_runs_now_and_shows_its_history()
    {
        var (resource, _) = await fixture.BearerResourceAsync();
        var query = KeywayFixture.Unique("q");
        await Expect.SuccessAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/queries/{query}", new { resource, method = "GET", path = "/console-schedule" }));
        var name = KeywayFixture.Unique("sched");
        var page = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.GotoAsync("/console#/schedules");
        await ConsoleTests.SignInAsync(page, "admin", fixture.Keyway.AdminPassword!);

        var editor = page.Locator("#save-schedule");
        await editor.Locator("input[name=name]").FillAsync(name);
        await editor.Locator("textarea[name=definition]").FillAsync($$"""{"cron": "0 7 * * *", "timeZone": "Nowhere/Special", "action": "run", "query": "{{query}}"}""");
        await editor.GetByRole(AriaRole.Button, new() { Name = "Save schedule" }).ClickAsync();
        await Assertions.Expect(page.Locator("#notice")).ToContainTextAsync("is not a known time zone");

        await editor.Locator("textarea[name=definition]").FillAsync($$"""{"cron": "0 7 * * *", "timeZone": "Asia/Tokyo", "action": "run", "query": "{{query}}"}""");
        await editor.GetByRole(AriaRole.Button, new() { Name = "Save schedule" }).ClickAsync();
        var row = page.Locator("#schedules tr", new() { HasText = name });
        await Assertions.Expect(row).ToContainTextAsync("07:00:00 +09:00 (Asia/Tokyo)");

        await row.GetByRole(AriaRole.Button, new() { Name = "Run now" }).ClickAsync();
        await Assertions.Expect(page.Locator("#schedules tr", new() { HasText = name })).ToContainTextAsync("succeeded");
        Assert.Contains(fixture.Upstream.Requests, r => r.Path == "/base/console-schedule");

        await page.Locator("#schedules").GetByRole(AriaRole.Link, new() { Name = name }).ClickAsync();
        await Assertions.Expect(page.Locator("#schedule-history tbody tr")).ToHaveCountAsync(1);
        await Assertions.Expect(page.Locator("#schedule-history")).ToContainTextAsync("manual");
        await page.Context.CloseAsync();
    }
}

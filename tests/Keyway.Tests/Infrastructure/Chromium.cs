using Microsoft.Playwright;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// A real browser for the console's tests: Debian's Chromium driven by Playwright, headless,
/// launched once per test class. Each test opens its own <see cref="IBrowserContext"/>, so cookies
/// and storage never leak from one test to the next. <c>scripts/test.sh</c> installs Chromium
/// when it is missing; Playwright's own browser download is never used.
/// </summary>
public sealed class Chromium : IAsyncLifetime
{
    private IPlaywright? _playwright;

    public IBrowser Browser { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        // Expectations retry until they hold; on a loaded two-core CI machine 5 s (the default) is short.
        Assertions.SetDefaultExpectTimeout(15_000);
        _playwright = await Playwright.CreateAsync();
        Browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = FindExecutable(),
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        });
    }

    /// <summary>A fresh browser profile whose relative URLs resolve against <paramref name="baseUrl"/>.</summary>
    public async Task<IPage> NewPageAsync(string baseUrl)
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { BaseURL = baseUrl, Locale = "en-US", TimezoneId = "UTC" });
        // Long enough for a loaded CI machine; a failing expectation still ends well inside the test's budget.
        context.SetDefaultTimeout(15_000);
        return await context.NewPageAsync();
    }

    public async Task DisposeAsync()
    {
        if (Browser is not null)
            await Browser.DisposeAsync();
        _playwright?.Dispose();
    }

    private static string FindExecutable()
    {
        foreach (var candidate in new[] { Environment.GetEnvironmentVariable("KEYWAY_TEST_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser" })
        {
            if (!string.IsNullOrEmpty(candidate) && File.Exists(candidate))
                return candidate;
        }

        throw new InvalidOperationException(
            "Chromium is not installed. Run the suite with scripts/test.sh, which installs it, or `sudo apt-get install -y chromium` " +
            "(KEYWAY_TEST_CHROMIUM names another binary).");
    }
}

using Keyway.Cli;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Packaging;

/// <summary><c>keyway operator wait-ready</c>, as a service manager or a deploy job runs it.</summary>
public sealed class WaitReadyTests
{
    [Theory]
    [InlineData(null, "http://127.0.0.1:7510")]
    [InlineData("http://0.0.0.0:8080", "http://127.0.0.1:8080")]
    [InlineData("http://[::]:8080;http://0.0.0.0:9090", "http://[::1]:8080")]
    [InlineData("http://*:7510", "http://127.0.0.1:7510")]
    [InlineData("https://keyway.internal:443", "https://keyway.internal:443")]
    public void The_address_is_the_first_listen_address_as_this_machine_reaches_it(string? urls, string expected) =>
        Assert.Equal(expected, WaitReadyCommand.LocalAddress(urls));

    [Fact]
    [Trait("Category", "Integration")]
    public async Task It_gives_up_after_its_timeout_on_an_address_nothing_serves_and_says_where_to_look()
    {
        var port = FreePort.Next();
        var result = await KeywayProcess.RunCliAsync(["operator", "wait-ready", "--url", $"http://127.0.0.1:{port}", "--timeout", "1"]);
        Assert.Equal(6, result.ExitCode);
        Assert.Contains("was not ready within 1 s", result.StandardError, StringComparison.Ordinal);
        Assert.Contains("journalctl", result.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Category", "Integration")]
    public async Task It_returns_as_soon_as_a_running_Keyway_is_ready()
    {
        await using var keyway = await KeywayProcess.StartAsync();
        var result = await KeywayProcess.RunCliAsync(["operator", "wait-ready", "--timeout", "30"], new Dictionary<string, string> { ["KEYWAY_URLS"] = keyway.BaseUrl });
        Assert.True(result.ExitCode == 0, result.Output);
        Assert.Contains("is ready", result.StandardOutput, StringComparison.Ordinal);
    }
}

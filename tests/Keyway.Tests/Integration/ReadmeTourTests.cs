using System.Text.RegularExpressions;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// README.md's "Five minutes with Keyway", run as printed: every line of its <c>sh</c> blocks, in
/// order, in one bash session, against a server started with no admin key given (so it prints one,
/// as step 1 shows). What this environment cannot do as a reader would is substituted, and only that:
/// <list type="bullet">
/// <item>the lines that start the server (<c>dotnet run … serve</c>) and the test suite: the server is
/// the <see cref="KeywayProcess"/> this test starts (its own port and data directory);</item>
/// <item><c>dotnet publish … &amp;&amp; export PATH=…</c>: a <c>keyway</c> on PATH that runs the CLI the tests
/// were built with;</item>
/// <item><c>http://127.0.0.1:7510</c>: that server's address; <c>kw_...</c>: the admin key it printed;</item>
/// <item><c>https://httpbin.org</c>: a local echo server (tests do not reach the internet), which the
/// server may call because test servers allow loopback (<c>KEYWAY_OUTBOUND_ALLOW</c>, as the README
/// says to do for an API on the same machine).</item>
/// </list>
/// </summary>
[Trait("Category", "Integration")]
public sealed partial class ReadmeTourTests
{
    private static readonly string[] s_substituted = ["dotnet run --project src/Keyway", "./scripts/test.sh", "dotnet publish src/Keyway"];

    [Fact]
    public async Task Every_command_in_the_readme_runs_as_printed()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite);
        var adminKey = PrintedKey().Match(keyway.AllOutput) is { Success: true } printed ? printed.Groups[1].Value : throw new InvalidOperationException("No admin key printed:\n" + keyway.AllOutput);
        var readme = await File.ReadAllTextAsync(Path.Combine(RepositoryRoot(), "README.md"));

        var skipped = new List<string>();
        var lines = new List<string>();
        foreach (var line in ShellBlocks().Matches(readme).SelectMany(m => m.Groups[1].Value.Split('\n')))
        {
            if (s_substituted.Any(line.StartsWith))
            {
                skipped.Add(line);
                continue;
            }

            lines.Add(line
                .Replace("http://127.0.0.1:7510", keyway.BaseUrl, StringComparison.Ordinal)
                .Replace("kw_...", adminKey, StringComparison.Ordinal)
                .Replace("https://httpbin.org", upstream.BaseUrl, StringComparison.Ordinal));
        }

        var script = "set -euo pipefail\nset -x\n" + string.Join('\n', lines) + "\n";
        var result = await KeywayProcess.RunShellAsync(script, TestDirectories.Create("readme"));

        Assert.Equal(4, skipped.Count); // the intro's two lines, step 1's serve, the publish line
        Assert.True(result.ExitCode == 0, script + "\n---\n" + result.Output);
        Assert.DoesNotContain("error:", result.StandardError);
        // The CLI run, the JSON API, the proxy and the app's key: each reached the API with the stored token.
        var calls = upstream.Requests.Where(r => r.Path == "/anything").ToList();
        Assert.Equal(4, calls.Count);
        Assert.All(calls, c => Assert.Equal("Bearer my-upstream-token", c.Headers["Authorization"]));
        Assert.Equal(3, calls.Count(c => c.Query.GetValueOrDefault("color") == "blue"));
        // The upstream echoes the token back; what the reader sees is redacted.
        Assert.DoesNotContain("my-upstream-token", result.StandardOutput);
        Assert.Contains("verifies", result.StandardOutput);
    }

    internal static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Keyway.slnx")))
            {
                return directory.FullName;
            }
        }

        throw new DirectoryNotFoundException("No Keyway.slnx above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex(@"```sh\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex ShellBlocks();

    [GeneratedRegex(@"export KEYWAY_TOKEN=(kw_\S+)")]
    private static partial Regex PrintedKey();
}

using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// Every command a message suggests is one that works: each message below is triggered from the
/// CLI, the command it suggests is taken out of it and run as printed, in bash, by whoever the
/// message tells to run it; then what failed works. Also the shell completion scripts.
/// </summary>
[Trait("Category", "Integration")]
public sealed partial class CliSuggestionTests(SqliteKeyway fixture) : IClassFixture<SqliteKeyway>
{
    private Dictionary<string, string> Admin => fixture.Keyway.CliEnvironment(fixture.Keyway.AdminToken);

    private static Task<CommandResult> Cli(Dictionary<string, string> env, string? stdin, params string[] args) => KeywayProcess.RunCliAsync(args, env, stdin);

    [Fact]
    public async Task Every_suggested_command_runs_and_fixes_what_it_is_suggested_for()
    {
        var (resource, _) = await fixture.BearerResourceAsync();
        var (other, _) = await fixture.BearerResourceAsync();
        var member = KeywayFixture.Unique("sug");
        Assert.Equal(0, (await Cli(Admin, null, "user", "create", member)).ExitCode);
        var memberEnv = fixture.Keyway.CliEnvironment(await KeyAsync(Admin, "--name", "sug", "--owner", member));
        var ran = new List<string>();

        // 1. A member without 'use': the grant the message names, run by an admin.
        await FixedByAsync(() => Cli(memberEnv, null, "run", resource, "/sug"), Admin, ran, "keyway permission grant");
        // 2. A member without 'read': 'read' is not grantable, the message names 'use'.
        await FixedByAsync(() => Cli(memberEnv, null, "resource", "get", other), Admin, ran, "--permission use");
        // 3. A key scoped to another resource: the key the message names, created by the member, works.
        var scoped = fixture.Keyway.CliEnvironment(await KeyAsync(memberEnv, "--name", "scoped", "--resource", resource, "--action", "use"));
        var refused = await Cli(scoped, null, "run", other, "/sug");
        Assert.Equal(4, refused.ExitCode);
        var keyCreate = Assert.Single(Suggestions(refused.StandardError));
        Assert.Contains($"--resource {other}", keyCreate);
        var created = await KeywayProcess.RunShellAsync(keyCreate + " --json", TestDirectories.Create("sug"), memberEnv);
        Assert.True(created.ExitCode == 0, created.Output);
        var newKey = fixture.Keyway.CliEnvironment((string)JsonNode.Parse(created.StandardOutput)!["token"]!);
        Assert.True((await Cli(newKey, null, "run", other, "/sug")).ExitCode == 0);
        ran.Add(keyCreate);
        // 4. A variable in an environment that does not exist.
        var environment = KeywayFixture.Unique("env");
        await FixedByAsync(() => Cli(Admin, null, "var", "set", "SUG_PLAIN", "--value", "v", "--env", environment), Admin, ran, "keyway env create");
        // 5. An empty secret: the pipe the message shows, with the value in $VALUE.
        var secret = "SUG_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var empty = await Cli(Admin, "", "var", "set", secret, "--secret");
        var pipe = Assert.Single(Suggestions(empty.StandardError));
        var piped = await KeywayProcess.RunShellAsync(pipe, TestDirectories.Create("sug"), new Dictionary<string, string>(Admin) { ["VALUE"] = "sug-secret-value" });
        Assert.True(piped.ExitCode == 0, pipe + "\n" + piped.Output);
        ran.Add(pipe);
        // 6. Not found: the listing the message names.
        await FixedByAsync(() => Cli(Admin, null, "resource", "get", "no-such-" + resource), Admin, ran, "keyway resource list", expectFixed: false);
        await FixedByAsync(() => Cli(Admin, null, "query", "get", "no-such-query"), Admin, ran, "keyway query list", expectFixed: false);
        await FixedByAsync(() => Cli(Admin, null, "user", "get", "no-such-user"), Admin, ran, "keyway user list", expectFixed: false);
        // 7. A rollback to a version that is not there: the versions listing.
        await FixedByAsync(() => Cli(Admin, null, "var", "rollback", secret, "--version", "9"), Admin, ran, "keyway var versions", expectFixed: false);
        // 8. A key for an owner that does not exist: the service identity the message creates.
        var owner = KeywayFixture.Unique("bot");
        await FixedByAsync(() => Cli(Admin, null, "key", "create", "--name", "bot", "--owner", owner), Admin, ran, "keyway user create");
        // 9. A member added to a group that does not exist.
        var group = KeywayFixture.Unique("grp");
        await FixedByAsync(() => Cli(Admin, null, "group", "add", group, member), Admin, ran, "keyway group create");

        Assert.Equal(11, ran.Count);
    }

    [Fact]
    public async Task Completion_scripts_are_printed_for_each_shell_and_bash_completes_a_subcommand()
    {
        var directory = TestDirectories.Create("completion");
        foreach (var shell in new[] { "bash", "zsh", "fish", "pwsh" })
        {
            var script = await Cli(Admin, null, "completion", shell);
            Assert.True(script.ExitCode == 0, shell + ": " + script.Output);
            Assert.Contains("[suggest:", script.StandardOutput);
        }

        var unknown = await Cli(Admin, null, "completion", "tcsh");
        var bash = await KeywayProcess.RunShellAsync("""
            source <(keyway completion bash)
            complete -p keyway
            COMP_LINE='keyway var se'; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(keyway var se); COMP_CWORD=2
            _keyway_complete
            printf 'first: %s\n' "${COMPREPLY[@]}"
            COMP_LINE='keyway resource apply --bi'; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(keyway resource apply --bi); COMP_CWORD=3
            _keyway_complete
            printf 'second: %s\n' "${COMPREPLY[@]}"
            """, directory, Admin);

        Assert.Equal(2, unknown.ExitCode);
        Assert.True(bash.ExitCode == 0, bash.Output);
        Assert.Contains("-F _keyway_complete keyway", bash.StandardOutput);
        Assert.Equal(["first: set"], bash.StandardOutput.Split('\n').Where(l => l.StartsWith("first:", StringComparison.Ordinal)));
        Assert.Equal(["second: --bind-secrets"], bash.StandardOutput.Split('\n').Where(l => l.StartsWith("second:", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Every_command_the_docs_and_the_console_name_exists()
    {
        var root = RepositoryRoot();
        var texts = Directory.GetFiles(Path.Combine(root, "docs"), "*.md", SearchOption.AllDirectories)
            .Concat([Path.Combine(root, "README.md"), Path.Combine(root, "ARCHITECTURE.md")])
            .Concat(Directory.GetFiles(Path.Combine(root, "src", "Keyway", "WebConsole", "assets"), "*.js"));
        var commands = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var file in texts)
        {
            foreach (Match m in NamedCommand().Matches(await File.ReadAllTextAsync(file)))
            {
                commands.Add(m.Groups[1].Value + (m.Groups[2].Success ? " " + m.Groups[2].Value : ""));
            }
        }

        // Nothing reachable at KEYWAY_ADDR: a command that parses fails to connect (or prints), one that does not is a usage error naming the word.
        var nowhere = new Dictionary<string, string> { ["KEYWAY_ADDR"] = $"http://127.0.0.1:{FreePort.Next()}", ["KEYWAY_TOKEN"] = "x" };
        var unknown = new List<string>();
        foreach (var command in commands.Where(c => !c.StartsWith("serve", StringComparison.Ordinal)))
        {
            // wait-ready waits for a server by design: a second is enough to show it parses.
            string[] extra = command == "operator wait-ready" ? ["--timeout", "1"] : [];
            var result = await Cli(nowhere, "", [.. command.Split(' '), .. extra]);
            if (result.StandardError.Contains("Unrecognized command or argument", StringComparison.Ordinal))
            {
                unknown.Add($"keyway {command}: {result.StandardError.Trim()}");
            }
        }

        Assert.True(commands.Count > 40, string.Join('\n', commands));
        Assert.Empty(unknown);
    }

    /// <summary>
    /// Runs <paramref name="failing"/>, takes the one suggested command containing <paramref name="expected"/>
    /// out of its error, runs it in bash as <paramref name="fixer"/>, and (unless it only shows something)
    /// runs <paramref name="failing"/> again, which now succeeds.
    /// </summary>
    private static async Task FixedByAsync(Func<Task<CommandResult>> failing, Dictionary<string, string> fixer, List<string> ran, string expected, bool expectFixed = true)
    {
        var failed = await failing();
        Assert.True(failed.ExitCode != 0, failed.Output);
        var suggestion = Assert.Single(Suggestions(failed.StandardError));
        Assert.Contains(expected, suggestion);
        var fix = await KeywayProcess.RunShellAsync(suggestion, TestDirectories.Create("sug"), fixer);
        Assert.True(fix.ExitCode == 0, $"{suggestion}\n{fix.Output}");
        if (expectFixed)
        {
            var again = await failing();
            Assert.True(again.ExitCode == 0, $"still failing after {suggestion}\n{again.Output}");
        }

        ran.Add(suggestion);
    }

    private static async Task<string> KeyAsync(Dictionary<string, string> env, params string[] args)
    {
        var created = await Cli(env, null, ["key", "create", .. args, "--json"]);
        Assert.True(created.ExitCode == 0, created.Output);
        return (string)JsonNode.Parse(created.StandardOutput)!["token"]!;
    }

    /// <summary>The commands an error message suggests: quoted ('keyway …'), in a shown pipe, or after a colon at the end.</summary>
    private static List<string> Suggestions(string message)
    {
        var found = new List<string>();
        foreach (Match m in QuotedCommand().Matches(message))
        {
            found.Add(m.Groups[1].Value);
        }

        foreach (Match m in PipedCommand().Matches(message))
        {
            found.Add(m.Groups[1].Value);
        }

        if (found.Count == 0)
        {
            foreach (Match m in TrailingCommand().Matches(message))
            {
                found.Add(m.Groups[1].Value);
            }
        }

        return found;
    }

    private static string RepositoryRoot()
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

    /// <summary>`keyway a b` in code: after a backtick, at a line's start, after a pipe or in $( ).</summary>
    [GeneratedRegex(@"(?<=`|^|\| |\$\()keyway ([a-z][a-z-]+)(?: ([a-z][a-z-]+))?", RegexOptions.Multiline)]
    private static partial Regex NamedCommand();

    [GeneratedRegex(@"'(keyway [^']+)'")]
    private static partial Regex QuotedCommand();

    [GeneratedRegex(@"\((printf [^()]*\| keyway [^()]+)\)")]
    private static partial Regex PipedCommand();

    [GeneratedRegex(@": (keyway [^(\n]+?)(?: \(|\.?\s*$)", RegexOptions.Multiline)]
    private static partial Regex TrailingCommand();
}

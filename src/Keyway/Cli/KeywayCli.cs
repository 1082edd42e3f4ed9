using System.CommandLine;
using System.CommandLine.Invocation;
using Keyway.Hosting;
using Spectre.Console;

namespace Keyway.Cli;

/// <summary>
/// The <c>keyway</c> command line. <c>serve</c> runs the server; every other command is a client of
/// its HTTP API (<c>KEYWAY_ADDR</c>, <c>KEYWAY_TOKEN</c>).
/// </summary>
internal static class KeywayCli
{
    /// <summary><c>--json</c>: print the API's JSON instead of tables, for scripts.</summary>
    public static readonly Option<bool> JsonOption = new("--json") { Description = "Print JSON instead of tables (for scripts).", Recursive = true };

    /// <summary>
    /// Response files are off: '@body.json' and '@-' are Keyway's own forms (a body or inputs from a
    /// file or stdin), which the library would otherwise expand into arguments before Keyway sees them.
    /// </summary>
    internal static readonly ParserConfiguration ParserConfiguration = new() { ResponseFileTokenReplacer = null };

    public static async Task<int> RunAsync(string[] args, TextWriter? stdout = null, TextWriter? stderr = null, TextReader? stdin = null)
    {
        var root = new RootCommand("Keyway: credentials for internal tools, attached server-side.\n" +
                                   "Run 'keyway serve' for the server; the other commands talk to it (KEYWAY_ADDR, KEYWAY_TOKEN).");
        root.Options.Add(JsonOption);
        var io = new CliIo(stdout ?? System.Console.Out, stderr ?? System.Console.Error, stdin ?? System.Console.In);
        root.Subcommands.Add(ServeCommand());
        root.Subcommands.Add(EnvCommands.Create(io));
        root.Subcommands.Add(VarCommands.Create(io));
        root.Subcommands.Add(ResourceCommands.Create(io));
        root.Subcommands.Add(QueryCommands.Create(io));
        root.Subcommands.Add(ScheduleCommands.Create(io));
        root.Subcommands.Add(CredentialCommands.Create(io));
        root.Subcommands.Add(RunCommand.Create(io));
        root.Subcommands.Add(KeyCommands.Create(io));
        root.Subcommands.Add(UserCommands.Users(io));
        root.Subcommands.Add(UserCommands.Groups(io));
        root.Subcommands.Add(PermissionCommands.Create(io));
        root.Subcommands.Add(RightCommands.Create(io));
        root.Subcommands.Add(OperatorCommands.Create(io));
        root.Subcommands.Add(AuditCommands.Create(io));
        root.Subcommands.Add(StatusCommand.Create(io));
        root.Subcommands.Add(WebhookCommands.Create(io));
        root.Subcommands.Add(CompletionCommand.Create(io));
        root.Subcommands.Add(VersionCommand.Create(io));
        foreach (var command in ConfigCommands.Create(io))
        {
            root.Subcommands.Add(command);
        }

        var parse = root.Parse(args, ParserConfiguration);
        if (parse.Action is ParseErrorAction)
        {
            // System.CommandLine exits 1 on a parse error; docs/cli.md promises 2 for usage errors.
            foreach (var error in parse.Errors)
            {
                await io.Error.WriteLineAsync($"error: {error.Message}");
            }

            await io.Error.WriteLineAsync($"Run '{CommandPath(parse)} --help' for usage.");
            return ExitCodes.Usage;
        }

        return await parse.InvokeAsync(new InvocationConfiguration { Output = io.Out, Error = io.Error });
    }

    private static string CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (var result = parse.CommandResult; result is not null; result = result.Parent as System.CommandLine.Parsing.CommandResult)
        {
            names.Add(result.Command is RootCommand ? "keyway" : result.Command.Name);
        }

        names.Reverse();
        return string.Join(' ', names);
    }

    private static Command ServeCommand()
    {
        var dataDir = new Option<string>("--data-dir")
        {
            Description = "Where Keyway keeps its data (SQLite store, master.key) (or KEYWAY_DATA_DIR).",
            DefaultValueFactory = _ => ServeOptions.DataDirectoryFromEnvironment(),
        };
        var urls = new Option<string>("--urls")
        {
            Description = "Addresses to listen on, separated by ';' (or KEYWAY_URLS).",
            DefaultValueFactory = _ => Environment.GetEnvironmentVariable("KEYWAY_URLS") is { Length: > 0 } fromEnvironment ? fromEnvironment : ServeOptions.DefaultUrls,
        };
        var database = new Option<string?>("--database") { Description = "A postgres:// URL to use PostgreSQL instead of the embedded SQLite (or KEYWAY_DATABASE_URL)." };
        var publicUrl = new Option<string?>("--public-url") { Description = "How people and OAuth providers reach this server, for redirects (or KEYWAY_PUBLIC_URL)." };
        var proxyUrls = new Option<string?>("--proxy-urls")
        {
            Description = "Addresses that serve /proxy alone, separated by ';' (or KEYWAY_PROXY_URLS); the API and console then stay on --urls.",
        };
        var command = new Command("serve", "Run the Keyway server.") { dataDir, urls, database, publicUrl, proxyUrls };
        command.SetAction(async (parse, ct) =>
        {
            try
            {
                return await KeywayServer.RunAsync(new ServeOptions
                {
                    DataDirectory = Path.GetFullPath(parse.GetValue(dataDir)!),
                    Urls = parse.GetValue(urls)!,
                    DatabaseUrl = parse.GetValue(database),
                    PublicUrl = parse.GetValue(publicUrl) ?? Environment.GetEnvironmentVariable("KEYWAY_PUBLIC_URL"),
                    ProxyUrls = parse.GetValue(proxyUrls) is { Length: > 0 } proxy ? proxy : Environment.GetEnvironmentVariable("KEYWAY_PROXY_URLS") is { Length: > 0 } fromEnvironment ? fromEnvironment : null,
                }, ct);
            }
            catch (Exception e) when (e is StartupException or Secrets.MasterKeyException or ArgumentException)
            {
                await System.Console.Error.WriteLineAsync($"keyway: cannot start: {e.Message}");
                return ExitCodes.Failure;
            }
            // DbException covers both drivers' errors without naming Npgsql, which would load it on SQLite too.
            catch (Exception e) when (e is System.Data.Common.DbException or System.Net.Sockets.SocketException)
            {
                await System.Console.Error.WriteLineAsync($"keyway: cannot open the store: {e.Message}");
                return ExitCodes.Failure;
            }
            catch (IOException e) when (e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
            {
                await System.Console.Error.WriteLineAsync($"keyway: cannot listen: {e.Message} Choose another address with --urls.");
                return ExitCodes.Failure;
            }
        });
        return command;
    }
}

/// <summary>The CLI's streams, so tests can drive it in process.</summary>
internal sealed class CliIo(TextWriter output, TextWriter error, TextReader input)
{
    public TextWriter Out { get; } = output;

    public TextWriter Error { get; } = error;

    public TextReader In { get; } = input;

    public Output For(ParseResult parse)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(Out),
            Ansi = ReferenceEquals(Out, System.Console.Out) && !System.Console.IsOutputRedirected ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = ReferenceEquals(Out, System.Console.Out) && !System.Console.IsOutputRedirected ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        if (!ReferenceEquals(Out, System.Console.Out) || System.Console.IsOutputRedirected)
        {
            // Piped output is read by programs (grep, less): no wrapping inside table cells.
            console.Profile.Width = 400;
        }

        return new Output(parse.GetValue(KeywayCli.JsonOption), console, Error);
    }

    /// <summary>Runs a client command: one place that turns failures into a message and an exit code.</summary>
    public Func<ParseResult, CancellationToken, Task<int>> Client(Func<KeywayClient, Output, ParseResult, CancellationToken, Task> body) =>
        async (parse, ct) =>
        {
            var output = For(parse);
            try
            {
                using var client = KeywayClient.FromEnvironment();
                await body(client, output, parse, ct);
                return ExitCodes.Ok;
            }
            catch (CliException e)
            {
                output.Error(e);
                return e.ExitCode;
            }
        };
}

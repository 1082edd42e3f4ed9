using System.CommandLine;
using System.Text.Json.Nodes;
using Keyway.Hosting;

namespace Keyway.Cli;

/// <summary>
/// <c>keyway version</c>: this binary's version (the same string as <c>--version</c>), its commit, runtime
/// and platform. Needs no server.
/// </summary>
internal static class VersionCommand
{
    public static Command Create(CliIo io)
    {
        var command = new Command("version", "Show this binary's version (as --version prints it), the commit it was built from, its .NET runtime and platform.");
        command.SetAction(async (parse, ct) =>
        {
            var output = io.For(parse);
            var doc = new JsonObject
            {
                ["version"] = BuildInfo.Version,
                ["commit"] = BuildInfo.Commit,
                ["runtime"] = BuildInfo.Runtime,
                ["platform"] = BuildInfo.Platform,
                ["singleFile"] = BuildInfo.SingleFile,
            };
            output.Details(doc, ("version", BuildInfo.Version), ("commit", BuildInfo.Commit ?? "not stamped"), ("runtime", ".NET " + BuildInfo.Runtime),
                ("platform", BuildInfo.Platform + (BuildInfo.SingleFile ? " (single file)" : " (keyway.dll on the dotnet host)")));
            await Task.CompletedTask;
            return ExitCodes.Ok;
        });
        return command;
    }
}

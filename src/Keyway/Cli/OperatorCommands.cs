using System.CommandLine;
using System.Text.Json.Nodes;
using Keyway.Secrets;
using Spectre.Console;

namespace Keyway.Cli;

/// <summary><c>keyway operator rekey|new-master-key|backup|restore</c>: key and store maintenance for whoever runs Keyway.</summary>
internal static class OperatorCommands
{
    private const string RekeyPath = "api/v1/operator/rekey";
    private static readonly TimeSpan s_pollInterval = TimeSpan.FromMilliseconds(500);

    public static Command Create(CliIo io)
    {
        var command = new Command("operator", "Maintenance for whoever runs Keyway: rotate the master key and the data keys, back up and restore the embedded store.");

        var rekey = new Command("rekey",
            "Re-wrap every data key under the primary master key, rotate to a fresh data key and re-encrypt every stored secret and credential token, " +
            "while Keyway keeps serving. Waits until it finishes; if it is interrupted, run it again to resume.");
        rekey.SetAction(io.Client((client, output, _, ct) => RekeyAsync(client, output, io, ct)));

        var newKey = new Command("new-master-key",
            "Print a fresh random master key (base64 of 32 bytes) for KEYWAY_MASTER_KEY, and how to roll it out (on stderr).");
        newKey.SetAction(parse =>
        {
            var key = MasterKeyRing.Generate();
            if (parse.GetValue(KeywayCli.JsonOption))
            {
                io.Out.WriteLine(new JsonObject { ["masterKey"] = key }.ToJsonString(CliJson.Indented));
            }
            else
            {
                io.Out.WriteLine(key);
            }

            io.Error.WriteLine(
                """
                This is a new master key; store it where you keep secrets. To roll it out without downtime:
                  1. Set KEYWAY_MASTER_KEY=<new>,<old> on every replica and restart them one by one
                     (the first key wraps new data keys; the old one still unwraps the existing ones).
                  2. Run: keyway operator rekey
                  3. Set KEYWAY_MASTER_KEY=<new> (drop <old>) and restart the replicas one by one.
                With master.key instead of the variable, put <new> on the first line and <old> on the second.
                """);
            return ExitCodes.Ok;
        });

        command.Subcommands.Add(rekey);
        command.Subcommands.Add(newKey);
        command.Subcommands.Add(BackupCommands.Backup(io));
        command.Subcommands.Add(BackupCommands.Restore(io));
        command.Subcommands.Add(WaitReadyCommand.Create(io));
        return command;
    }

    private static async Task RekeyAsync(KeywayClient client, Output output, CliIo io, CancellationToken ct)
    {
        JsonNode? status;
        try
        {
            status = await client.PostAsync(RekeyPath, null, ct);
        }
        catch (CliException e) when (e.ExitCode == ExitCodes.Conflict)
        {
            // One is already running (started elsewhere): follow it rather than fail.
            if (!output.Json)
            {
                io.Error.WriteLine("A rekey is already running; following it.");
            }

            status = await client.GetAsync(RekeyPath, ct);
        }

        var terminal = !output.Json && ReferenceEquals(io.Out, System.Console.Out) && !System.Console.IsOutputRedirected;
        if (terminal)
        {
            output.Console.Profile.Capabilities.Interactive = true;
            await output.Console.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .StartAsync(async progress =>
                {
                    var task = progress.AddTask("Re-encrypting secrets");
                    while (true)
                    {
                        task.MaxValue = Math.Max(1, Number(status, "total"));
                        task.Value = Math.Min(task.MaxValue, Number(status, "done"));
                        if (State(status) != RekeyStatus.Running)
                        {
                            task.Value = task.MaxValue;
                            break;
                        }

                        await Task.Delay(s_pollInterval, ct);
                        status = await client.GetAsync(RekeyPath, ct);
                    }
                });
        }
        else
        {
            var last = "";
            while (true)
            {
                var line = State(status) == RekeyStatus.Running && Number(status, "total") == 0
                    ? "rekey started"
                    : $"rekey {State(status)}: {Number(status, "done")}/{Number(status, "total")} secrets checked";
                if (!output.Json && line != last)
                {
                    io.Out.WriteLine(line);
                    last = line;
                }

                if (State(status) != RekeyStatus.Running)
                {
                    break;
                }

                await Task.Delay(s_pollInterval, ct);
                status = await client.GetAsync(RekeyPath, ct);
            }
        }

        if (State(status) == RekeyStatus.Failed)
        {
            if (output.Json)
            {
                output.WriteJson(status);
            }

            var error = Output.Str(status?["error"]);
            var hint = error.Contains("keyway operator rekey", StringComparison.Ordinal)
                ? ""
                : " Once the cause is fixed, run 'keyway operator rekey' again: it resumes where it stopped.";
            throw new CliException(ExitCodes.Failure, $"The rekey failed: {error}{hint}", "rekey_failed");
        }

        if (output.Json)
        {
            output.WriteJson(status);
            return;
        }

        output.Success($"Rekey completed: {Number(status, "done")} secrets checked, {Number(status, "reencrypted")} re-encrypted under data key {Output.Str(status?["dataKeyId"])}.");
        output.Console.WriteLine("Every data key is now wrapped by the first master key: older master keys can be dropped.");
    }

    private static string State(JsonNode? status) => status?["state"]?.GetValue<string>() ?? "unknown";

    private static long Number(JsonNode? status, string name) => status?[name]?.GetValue<long>() ?? 0;
}

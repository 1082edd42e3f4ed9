using System.CommandLine;
using System.Text.Json.Nodes;
using Keyway.Config;
using Spectre.Console;

namespace Keyway.Cli;

/// <summary>
/// <c>keyway apply -f PATH… [--prune] [--yes]</c>: the plan, confirmed, then each changed object sent
/// on its own, in dependency order (deletes last, in reverse). An object that fails does not stop the
/// others (each is one request, or for groups, grants and secrets a few, each checked by the server), and the command names every one that failed, where it is
/// written and why, and exits with the first failure's code.
/// </summary>
internal static class ConfigApplyCommand
{
    /// <summary>More changes than this show a progress bar at a terminal (fewer: a line each).</summary>
    private const int ProgressAbove = 10;

    public static Option<string[]> FilesOption() => new("--file", "-f")
    {
        Description = "Files or directories (every .yaml, .yml and .json under them); '-' reads stdin.",
        Required = true,
        AllowMultipleArgumentsPerToken = true,
    };

    public static Option<bool> PruneOption() => new("--prune")
    {
        Description = "Also delete the objects of the kinds the files hold that the files do not hold (variables: in the environments they name).",
    };

    public static Command Create(CliIo io)
    {
        var files = FilesOption();
        var prune = PruneOption();
        var yes = new Option<bool>("--yes", "-y") { Description = "Apply without asking (needed to delete when no one is at a terminal)." };
        var command = new Command("apply", "Make the server's configuration what the files say: create and update objects in dependency order, " +
            "each on its own; unchanged objects are not sent. Asks first at a terminal.") { files, prune, yes };
        command.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var plan = await ConfigCommands.MakePlanAsync(io, client, parse.GetValue(files)!, parse.GetValue(prune), ct);
            if (!output.Json)
            {
                plan.Write(io.Out);
            }

            var toSend = Ordered(plan.Changes.Where(c => !c.ValueMissing)).ToList();
            var terminal = ReferenceEquals(io.In, Console.In) && !Console.IsInputRedirected && !Console.IsOutputRedirected && !output.Json;
            if (toSend.Count > 0 && !parse.GetValue(yes))
            {
                var deletes = plan.Count(ChangeAction.Delete);
                if (terminal)
                {
                    if (!await AnsiConsole.ConfirmAsync($"Apply {toSend.Count} change(s)?", false, ct))
                    {
                        throw new CliException(ExitCodes.Failure, "Nothing applied.");
                    }
                }
                else if (deletes > 0)
                {
                    throw new CliException(ExitCodes.Usage,
                        $"This would delete {deletes} object(s) and no one is at a terminal to confirm: pass --yes to apply it (review it first with keyway plan).");
                }
            }

            var results = await RunAsync(new ConfigApply(client), toSend, output, terminal, ct);
            foreach (var missing in plan.Changes.Where(c => c.ValueMissing))
            {
                results.Add(Result(missing, null, $"value missing — set it with: {ConfigPlan.SetCommand(missing.Object)}"));
            }

            Report(io, output, results);
        }));
        return command;
    }

    /// <summary>Creates and updates by kind; a variable's rotation flow after the resources it names; deletes after everything, in reverse.</summary>
    private static IEnumerable<ConfigChange> Ordered(IEnumerable<ConfigChange> changes) => changes
        .OrderBy(c => c.Action == ChangeAction.Delete ? 1 : 0)
        .ThenBy(c => c.Action == ChangeAction.Delete ? -ConfigKinds.Rank(c.Object.Kind) : Rank(c))
        .ThenBy(c => c.Object.Environment ?? "", StringComparer.Ordinal)
        .ThenBy(c => c.Object.Name, StringComparer.Ordinal);

    private static double Rank(ConfigChange c) =>
        c.Object.Kind == ConfigKinds.Variable && c.Object.Spec["rotation"] is not null && !ConfigTree.Same(c.Current?.Spec["rotation"], c.Object.Spec["rotation"])
            ? ConfigKinds.Rank(ConfigKinds.Query) + 0.5
            : ConfigKinds.Rank(c.Object.Kind);

    private static async Task<List<JsonObject>> RunAsync(ConfigApply apply, List<ConfigChange> changes, Output output, bool terminal, CancellationToken ct)
    {
        var results = new List<JsonObject>();
        async Task OneAsync(ConfigChange change)
        {
            try
            {
                var note = await apply.ApplyAsync(change, ct);
                results.Add(Result(change, null, note));
            }
            catch (CliException e)
            {
                results.Add(Result(change, e, null));
            }
        }

        if (terminal && changes.Count > ProgressAbove)
        {
            output.Console.Profile.Capabilities.Interactive = true;
            await output.Console.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .StartAsync(async progress =>
                {
                    var task = progress.AddTask("Applying", maxValue: changes.Count);
                    foreach (var change in changes)
                    {
                        await OneAsync(change);
                        task.Increment(1);
                    }
                });
        }
        else
        {
            foreach (var change in changes)
            {
                await OneAsync(change);
            }
        }

        return results;
    }

    private static JsonObject Result(ConfigChange change, CliException? error, string? note)
    {
        var result = new JsonObject
        {
            ["action"] = change.Action.ToString().ToLowerInvariant(),
            ["kind"] = change.Object.Kind,
            ["name"] = change.Object.Name,
            ["environment"] = change.Object.Environment,
            ["file"] = change.Entry?.Where(),
            ["ok"] = error is null && note?.StartsWith("value missing", StringComparison.Ordinal) != true,
            ["note"] = note,
        };
        if (error is not null)
        {
            var errors = new JsonArray();
            foreach (var item in error.Errors ?? [])
            {
                if (item is JsonObject e && e["field"]?.GetValue<string>() is { } field)
                {
                    // The server names a field of the spec; the file says where it is.
                    var where = change.Entry?.Document.Where("spec." + field) ?? "";
                    errors.Add(new JsonObject { ["field"] = "spec." + field + where, ["message"] = e["message"]?.DeepClone() });
                }
            }

            result["error"] = new JsonObject { ["exitCode"] = error.ExitCode, ["code"] = error.Code, ["message"] = error.Message, ["errors"] = errors };
        }

        return result;
    }

    private static void Report(CliIo io, Output output, List<JsonObject> results)
    {
        var failed = results.Where(r => r["error"] is not null).ToList();
        if (output.Json)
        {
            output.WriteJson(new JsonObject { ["results"] = new JsonArray(results.Select(r => (JsonNode?)r).ToArray()), ["failed"] = failed.Count });
        }
        else
        {
            foreach (var r in results)
            {
                var title = $"{r["kind"]!.GetValue<string>().ToLowerInvariant()} '{r["name"]}'" + (r["environment"] is { } env ? $" ({env})" : "");
                if (r["error"] is null && r["ok"]!.GetValue<bool>())
                {
                    var verb = r["action"]!.GetValue<string>() switch { "create" => "created", "update" => "updated", _ => "deleted" };
                    output.Console.MarkupLine($"[green]✓[/] {Markup.Escape($"{title} {verb}")}");
                }

                if (r["note"] is { } note)
                {
                    io.Error.WriteLine($"note: {title}: {note}");
                }
            }

            foreach (var r in failed)
            {
                var title = $"{r["kind"]!.GetValue<string>().ToLowerInvariant()} '{r["name"]}'" + (r["environment"] is { } env ? $" ({env})" : "");
                var error = r["error"]!;
                io.Error.WriteLine($"error: {r["file"]}, {title}: {error["message"]}" + (error["code"] is { } code ? $" ({code})" : ""));
                foreach (var item in error["errors"] as JsonArray ?? [])
                {
                    io.Error.WriteLine($"  - {item?["field"]}: {item?["message"]}");
                }
            }
        }

        if (failed.Count > 0)
        {
            var first = failed[0]["error"]!;
            throw new CliException(first["exitCode"]!.GetValue<int>(),
                $"{failed.Count} of {results.Count} object(s) failed; the others were applied. Fix the files and run keyway apply again.",
                "apply_failed");
        }
    }
}

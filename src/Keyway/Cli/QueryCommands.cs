using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Keyway.Cli;

/// <summary><c>keyway query apply|list|get|delete|run</c>: saved queries.</summary>
internal static class QueryCommands
{
    public static Command Create(CliIo io)
    {
        var command = new Command("query", "Manage and run saved queries.");

        var file = new Argument<string>("file") { Description = "A JSON or YAML file with one query (or several), each with a 'name'. '-' reads stdin." };
        var apply = new Command("apply", "Create or replace the queries described in a file.") { file };
        apply.SetAction(io.Client((client, output, parse, ct) => ResourceCommands.ApplyAsync(io, client, output, parse.GetValue(file)!, "Query", "queries", ct)));

        var resource = new Option<string?>("--resource") { Description = "Only the queries of this resource." };
        var list = new Command("list", "List saved queries.") { resource };
        list.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var filter = parse.GetValue(resource) is { } r ? "?resource=" + Uri.EscapeDataString(r) : "";
            var doc = await client.GetAsync("api/v1/queries" + filter, ct);
            output.Table(doc, doc?["queries"] as JsonArray,
                ("NAME", q => Output.Str(q["name"])), ("RESOURCE", q => Output.Str(q["definition"]?["resource"])),
                ("METHOD", q => Output.Str(q["definition"]?["method"])), ("PATH", q => Output.Str(q["definition"]?["path"])),
                ("VERSION", q => Output.Str(q["version"])), ("UPDATED", q => Output.When(q["updatedAt"])));
        }));

        var getName = new Argument<string>("name") { Description = "The query's name." };
        var get = new Command("get", "Show a saved query. With --json, the definition as 'query apply' takes it.") { getName };
        get.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.GetAsync($"api/v1/queries/{Uri.EscapeDataString(parse.GetValue(getName)!)}", ct);
            if (output.Json)
            {
                output.WriteJson(ConfigFiles.Applicable(doc));
                return;
            }

            output.Details(doc, ("name", Output.Str(doc?["name"])), ("version", Output.Str(doc?["version"])), ("updated", Output.When(doc?["updatedAt"])));
            output.Console.WriteLine(ConfigFiles.WithoutNulls(doc?["definition"])?.ToJsonString(CliJson.Indented) ?? "");
        }));

        var delName = new Argument<string>("name") { Description = "The query's name." };
        var delete = new Command("delete", "Delete a saved query.") { delName };
        delete.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            await client.DeleteAsync($"api/v1/queries/{Uri.EscapeDataString(parse.GetValue(delName)!)}", ct);
            output.Success($"Query '{parse.GetValue(delName)}' deleted.");
        }));

        var runName = new Argument<string>("name") { Description = "The query to run." };
        var input = new Option<string[]>("--input", "-i") { Description = "An input name=value (repeatable). A value that is JSON (a number, true, an object) keeps its type." };
        var inputs = new Option<string?>("--inputs") { Description = "All inputs as one JSON object, @FILE to read it from a file or @- from stdin; --input values are added to it." };
        var env = new Option<string>("--env", "-e") { Description = "The environment.", DefaultValueFactory = _ => "production" };
        var run = new Command("run", "Run a saved query and print the upstream's answer.\nExample: keyway query run list-issues -i owner=acme -i per_page=5") { runName, input, inputs, env };
        run.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var values = parse.GetValue(inputs) is { } all ? ParseObject(await ArgumentFiles.ReadAsync(io, all, "--inputs", ct)) : new JsonObject();
            foreach (var item in parse.GetValue(input) ?? [])
            {
                var cut = item.IndexOf('=', StringComparison.Ordinal);
                if (cut <= 0)
                {
                    throw new CliException(ExitCodes.Usage, $"The input '{item}' is not of the form name=value.");
                }

                values[item[..cut]] = JsonOrString(item[(cut + 1)..]);
            }

            var result = await client.PostAsync($"api/v1/queries/{Uri.EscapeDataString(parse.GetValue(runName)!)}/run",
                new JsonObject { ["environment"] = parse.GetValue(env), ["inputs"] = values }, ct);
            RunCommand.Print(io, output, result);
        }));

        command.Subcommands.Add(apply);
        command.Subcommands.Add(list);
        command.Subcommands.Add(get);
        command.Subcommands.Add(delete);
        command.Subcommands.Add(run);
        return command;
    }

    private static JsonObject ParseObject(string text)
    {
        try
        {
            return JsonNode.Parse(text) as JsonObject ?? throw new CliException(ExitCodes.Usage, "--inputs must be a JSON object.");
        }
        catch (JsonException e)
        {
            throw new CliException(ExitCodes.Usage, $"--inputs is not valid JSON: {e.Message}");
        }
    }

    private static JsonNode? JsonOrString(string value)
    {
        try
        {
            return JsonNode.Parse(value);
        }
        catch (JsonException)
        {
            return JsonValue.Create(value);
        }
    }
}

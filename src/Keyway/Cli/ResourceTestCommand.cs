using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Keyway.Cli;

/// <summary>
/// <c>keyway resource test NAME</c>: the resource's credential path step by step (each login-flow step, discovery,
/// the token request), then a request of the person's choosing; a timeline, with each step's redacted request and
/// answer under <c>--verbose</c>, and the failing step's fix.
/// </summary>
internal static class ResourceTestCommand
{
    public static Command Create(CliIo io)
    {
        var resource = new Argument<string>("resource") { Description = "The resource to test." };
        var env = new Option<string>("--env", "-e") { Description = "The environment.", DefaultValueFactory = _ => "production" };
        var path = new Option<string?>("--path") { Description = "The path of the final request (default: the base URL itself)." };
        var method = new Option<string>("--method", "-X") { Description = "The method of the final request.", DefaultValueFactory = _ => "GET" };
        var query = new Option<string[]>("--query", "-q") { Description = "A query parameter name=value of the final request (repeatable)." };
        var headers = new Option<string[]>("--header", "-H") { Description = "A header 'Name: value' of the final request (repeatable).", AllowMultipleArgumentsPerToken = false };
        var data = new Option<string?>("--data", "-d") { Description = "The body of the final request: text, JSON, @FILE or @- for stdin." };
        var fresh = new Option<bool>("--fresh") { Description = "Run the login flow or token request again (a refresh through the engine) instead of using the credential in hand." };
        var verbose = new Option<bool>("--verbose", "-v") { Description = "Print each step's request as sent and its answer (redacted), and what it extracted." };
        var command = new Command("test", "Debug a resource: run its credential path step by step, then a request (GET on its base URL, or --path); report each step.\n" +
                                          "Example: keyway resource test github --path /user --verbose")
        {
            resource, env, path, method, query, headers, data, fresh, verbose,
        };
        command.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var body = new JsonObject
            {
                ["method"] = parse.GetValue(method)!.ToUpperInvariant(),
                ["path"] = parse.GetValue(path),
                ["query"] = RunCommand.Pairs(parse.GetValue(query), '=', "query parameter", "name=value"),
                ["headers"] = RunCommand.Pairs(parse.GetValue(headers), ':', "header", "'Name: value'"),
                ["fresh"] = parse.GetValue(fresh),
            };
            if (parse.GetValue(data) is { } sent)
            {
                var text = await ArgumentFiles.ReadAsync(io, sent, "--data", ct);
                body["body"] = text;
                var sentHeaders = (JsonObject)body["headers"]!;
                if (RunCommand.IsJson(text) && !sentHeaders.Any(h => h.Key.Equals("Content-Type", StringComparison.OrdinalIgnoreCase)))
                {
                    sentHeaders["Content-Type"] = "application/json";
                }
            }

            var doc = await client.PostAsync(
                $"api/v1/resources/{Uri.EscapeDataString(parse.GetValue(resource)!)}/test?environment={Uri.EscapeDataString(parse.GetValue(env)!)}", body, ct);
            var steps = doc?["steps"] as JsonArray;
            var number = 0;
            output.Table(doc, steps,
                ("#", _ => (++number).ToString(System.Globalization.CultureInfo.InvariantCulture)),
                ("STEP", s => Output.Str(s["step"])),
                ("KIND", s => Output.Str(s["kind"])),
                ("OK", s => s["ok"]?.GetValue<bool>() == true ? "yes" : "NO"),
                ("TIME", s => s["durationMs"] is { } ms ? $"{ms} ms" : ""),
                ("DETAIL", s => Output.Str(s["detail"])));
            if (!output.Json)
            {
                if (parse.GetValue(verbose))
                {
                    Exchanges(output.Console, steps);
                }

                if (doc?["failedStep"] is { } failed)
                {
                    output.Console.Write(new Text($"Failed at: {Output.Str(failed)}\n", new Style(Color.Red)));
                    if (doc["fix"] is { } fix)
                    {
                        output.Console.Write(new Text($"Fix: {Output.Str(fix)}\n"));
                    }
                }
            }

            if (doc?["ok"]?.GetValue<bool>() != true)
            {
                throw new CliException(ExitCodes.Failure, $"The test failed at step '{Output.Str(doc?["failedStep"])}'.", "test_failed");
            }
        }));
        return command;
    }

    /// <summary>Each step's exchange, as plain text (never markup: every value is the upstream's or the definition's).</summary>
    private static void Exchanges(IAnsiConsole console, JsonArray? steps)
    {
        var number = 0;
        foreach (var step in steps ?? [])
        {
            number++;
            var lines = new List<string>();
            if (step?["request"] is JsonObject request)
            {
                lines.Add($"> {Output.Str(request["method"])} {Output.Str(request["url"])}");
                lines.AddRange(Headers(request["headers"], "> "));
                if (request["body"] is { } sent)
                {
                    lines.Add(">");
                    lines.AddRange(Output.Str(sent).Split('\n').Select(l => "> " + l));
                }
            }

            if (step?["response"] is JsonObject response)
            {
                lines.Add($"< {Output.Str(response["status"])}");
                lines.AddRange(Headers(response["headers"], "< "));
                if (response["body"] is { } received)
                {
                    lines.Add("<");
                    lines.AddRange(Output.Str(received).Split('\n').Select(l => "< " + l));
                }
            }

            if (step?["extracted"] is JsonArray extracted && extracted.Count > 0)
            {
                lines.Add("extracted: " + string.Join(", ", extracted.Select(Output.Str)));
            }

            if (step?["fix"] is { } fix)
            {
                lines.Add("fix: " + Output.Str(fix));
            }

            if (lines.Count == 0)
            {
                continue;
            }

            console.Write(new Text($"\n[{number}] {Output.Str(step?["step"])}\n", new Style(decoration: Decoration.Bold)));
            console.Write(new Text(string.Join('\n', lines) + "\n"));
        }
    }

    private static IEnumerable<string> Headers(JsonNode? headers, string prefix) =>
        headers is JsonObject obj ? obj.Select(h => $"{prefix}{h.Key}: {Output.Str(h.Value)}") : [];
}

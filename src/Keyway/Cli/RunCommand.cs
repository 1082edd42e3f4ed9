using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Keyway.Cli;

/// <summary><c>keyway run RESOURCE [PATH]</c>: an ad-hoc request through a resource, curl-style.</summary>
internal static class RunCommand
{
    public static Command Create(CliIo io)
    {
        var resource = new Argument<string>("resource") { Description = "The resource to call." };
        var path = new Argument<string?>("path") { Description = "The path relative to the resource's base URL.", DefaultValueFactory = _ => null };
        var method = new Option<string>("--method", "-X") { Description = "The HTTP method.", DefaultValueFactory = _ => "GET" };
        var headers = new Option<string[]>("--header", "-H") { Description = "A header 'Name: value' (repeatable).", AllowMultipleArgumentsPerToken = false };
        var query = new Option<string[]>("--query", "-q") { Description = "A query parameter name=value (repeatable)." };
        var data = new Option<string?>("--data", "-d") { Description = "The body, sent as it is: text, JSON (sent as application/json), @FILE for a file's contents or @- for stdin." };
        var env = new Option<string>("--env", "-e") { Description = "The environment.", DefaultValueFactory = _ => "production" };
        var command = new Command("run", "Send a request through a resource and print the upstream's answer.\nExample: keyway run github /user -H 'Accept: application/json'")
        {
            resource, path, method, headers, query, data, env,
        };
        command.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var request = new JsonObject
            {
                ["environment"] = parse.GetValue(env),
                ["method"] = parse.GetValue(method)!.ToUpperInvariant(),
                ["path"] = parse.GetValue(path),
                ["headers"] = Pairs(parse.GetValue(headers), ':', "header", "'Name: value'"),
                ["query"] = Pairs(parse.GetValue(query), '=', "query parameter", "name=value"),
            };
            if (parse.GetValue(data) is { } body)
            {
                // Sent as text, byte for byte; a JSON object or array goes as application/json
                // unless a Content-Type header says otherwise (the API sends any other text as text/plain).
                var text = await ArgumentFiles.ReadAsync(io, body, "--data", ct);
                request["body"] = text;
                var sent = (JsonObject)request["headers"]!;
                if (IsJson(text) && !sent.Any(h => h.Key.Equals("Content-Type", StringComparison.OrdinalIgnoreCase)))
                {
                    sent["Content-Type"] = "application/json";
                }
            }

            var result = await client.PostAsync($"api/v1/resources/{Uri.EscapeDataString(parse.GetValue(resource)!)}/run", request, ct);
            Print(io, output, result);
        }));
        return command;
    }

    /// <summary>Prints a run's result: the body on stdout, the status on stderr; 4xx/5xx exit 1.</summary>
    internal static void Print(CliIo io, Output output, JsonNode? result)
    {
        var status = result?["status"]?.GetValue<int>() ?? 0;
        if (output.Json)
        {
            output.WriteJson(result);
        }
        else
        {
            io.Error.WriteLine($"{status} in {Output.Str(result?["durationMs"])} ms");
            var responseBody = result?["body"];
            io.Out.WriteLine(responseBody is JsonValue v && v.TryGetValue<string>(out var s) ? s : responseBody?.ToJsonString(CliJson.Indented) ?? "");
        }

        // With --json too: a script checks the exit code whichever form it reads.
        if (status >= 400)
        {
            throw new CliException(ExitCodes.Failure, $"The upstream answered {status}.", "upstream_status");
        }
    }

    internal static JsonObject Pairs(string[]? items, char separator, string what, string shape)
    {
        var result = new JsonObject();
        foreach (var item in items ?? [])
        {
            var cut = item.IndexOf(separator, StringComparison.Ordinal);
            if (cut <= 0)
            {
                throw new CliException(ExitCodes.Usage, $"The {what} '{item}' is not of the form {shape}.");
            }

            result[item[..cut].Trim()] = item[(cut + 1)..].Trim();
        }

        return result;
    }

    internal static bool IsJson(string text)
    {
        var t = text.TrimStart();
        if (!(t.StartsWith('{') || t.StartsWith('[')))
        {
            return false;
        }

        try
        {
            using var document = JsonDocument.Parse(text);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}

using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using YamlDotNet.RepresentationModel;

namespace Keyway.Cli;

/// <summary><c>keyway resource apply|get|list|delete</c>.</summary>
internal static class ResourceCommands
{
    public static Command Create(CliIo io)
    {
        var command = new Command("resource", "Manage resources: the APIs Keyway calls with their credentials.");

        var file = new Argument<string>("file") { Description = "A JSON or YAML file with one resource (or several: a JSON array, or YAML documents separated by ---). '-' reads stdin." };
        var bindSecrets = new Option<bool>("--bind-secrets")
        {
            Description = "Bind every secret the resources send that is bound to no origin yet to the origin it is sent to, without asking.",
        };
        var apply = new Command("apply", "Create or replace the resources described in a file. Each needs a 'name'. " +
            "Secrets they send that are bound to no origin are offered for binding to it.") { file, bindSecrets };
        apply.SetAction(io.Client((client, output, parse, ct) =>
            ApplyAsync(io, client, output, parse.GetValue(file)!, "Resource", "resources", ct, parse.GetValue(bindSecrets))));

        var list = new Command("list", "List resources.");
        list.SetAction(io.Client(async (client, output, _, ct) =>
        {
            var doc = await client.GetAsync("api/v1/resources", ct);
            output.Table(doc, doc?["resources"] as JsonArray,
                ("NAME", r => Output.Str(r["name"])), ("KIND", r => Output.Str(r["definition"]?["kind"])),
                ("BASE URL", r => Output.Str(r["definition"]?["baseUrl"])), ("AUTH", r => Output.Str(r["definition"]?["auth"]?["type"] ?? "none")),
                ("VERSION", r => Output.Str(r["version"])), ("UPDATED", r => Output.When(r["updatedAt"])));
        }));

        var getName = new Argument<string>("name") { Description = "The resource's name." };
        var get = new Command("get", "Show a resource's configuration (templates as written, never a secret value).") { getName };
        get.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.GetAsync($"api/v1/resources/{Uri.EscapeDataString(parse.GetValue(getName)!)}", ct);
            if (output.Json)
            {
                output.WriteJson(doc);
                return;
            }

            output.Details(doc, ("name", Output.Str(doc?["name"])), ("version", Output.Str(doc?["version"])), ("updated", Output.When(doc?["updatedAt"])));
            output.Console.WriteLine(doc?["definition"]?.ToJsonString(CliJson.Indented) ?? "");
        }));

        var delName = new Argument<string>("name") { Description = "The resource's name." };
        var delete = new Command("delete", "Delete a resource.") { delName };
        delete.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var name = parse.GetValue(delName)!;
            await client.DeleteAsync($"api/v1/resources/{Uri.EscapeDataString(name)}", ct);
            output.Success($"Resource '{name}' deleted.");
        }));

        command.Subcommands.Add(apply);
        command.Subcommands.Add(list);
        command.Subcommands.Add(get);
        command.Subcommands.Add(delete);
        command.Subcommands.Add(CredentialCommands.Test(io));
        return command;
    }

    /// <summary>
    /// <c>apply</c> for resources and queries alike: every document of a JSON or YAML file (or stdin
    /// for '-'), each PUT under its <c>name</c>.
    /// </summary>
    internal static async Task ApplyAsync(
        CliIo io, KeywayClient client, Output output, string path, string kind, string collection, CancellationToken ct, bool bindSecrets = false)
    {
        var text = path == "-" ? await io.In.ReadToEndAsync(ct) : await ReadFileAsync(path, ct);
        var results = new JsonArray();
        foreach (var doc in ParseDocuments(text, path))
        {
            var name = doc["name"]?.GetValue<string>() ?? throw new CliException(ExitCodes.Invalid, $"A {kind.ToLowerInvariant()} in {path} has no 'name'.");
            doc.Remove("name");
            var result = await client.PutAsync($"api/v1/{collection}/{Uri.EscapeDataString(name)}", doc, ct);
            results.Add(result);
            if (!output.Json)
            {
                output.Success($"{kind} '{name}' applied (version {Output.Str(result?["version"])}).");
            }

            await OfferBindingsAsync(io, client, output, result?["unboundSecrets"] as JsonArray, bindSecrets, ct);
        }

        if (output.Json)
        {
            output.WriteJson(results);
        }
    }

    /// <summary>
    /// A resource sends secrets that are bound to no origin: bind each to the origin it goes to, with
    /// --bind-secrets or when a person at a terminal says yes; otherwise say how.
    /// </summary>
    private static async Task OfferBindingsAsync(CliIo io, KeywayClient client, Output output, JsonArray? unbound, bool bindAll, CancellationToken ct)
    {
        var interactive = ReferenceEquals(io.In, Console.In) && !Console.IsInputRedirected && !Console.IsOutputRedirected && !output.Json;
        foreach (var item in unbound ?? [])
        {
            var (variable, env, origin) = (Output.Str(item?["variable"]), Output.Str(item?["environment"]), item?["origin"]?.GetValue<string>());
            if (origin is null)
            {
                if (!output.Json)
                {
                    io.Error.WriteLine($"note: the secret '{variable}' ({env}) is bound to no origin; bind it: keyway var bind {variable} https://… --env {env}");
                }

                continue;
            }

            var bind = bindAll || (interactive && await AnsiConsole.ConfirmAsync(
                $"The secret [bold]{Markup.Escape(variable)}[/] ({Markup.Escape(env)}) is bound to no origin. Bind it to [bold]{Markup.Escape(origin)}[/]?", false, ct));
            if (!bind)
            {
                if (!output.Json)
                {
                    io.Error.WriteLine($"note: the secret '{variable}' ({env}) is bound to no origin; to send it only to {origin}: keyway var bind {variable} {origin} --env {env}");
                }

                continue;
            }

            await VarCommands.BindAsync(client, env, variable, [origin], ct);
            if (!output.Json)
            {
                output.Success($"Secret '{variable}' ({env}) bound to {origin}.");
            }
        }
    }

    private static async Task<string> ReadFileAsync(string path, CancellationToken ct)
    {
        try
        {
            return await File.ReadAllTextAsync(path, ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException(ExitCodes.Usage, $"Cannot read {path}: {e.Message}");
        }
    }

    /// <summary>JSON (an object or an array of them) or YAML (one or more documents), as JSON objects.</summary>
    internal static List<JsonObject> ParseDocuments(string text, string source)
    {
        var trimmed = text.TrimStart();
        if (trimmed.StartsWith('{') || trimmed.StartsWith('['))
        {
            try
            {
                var node = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
                return node switch
                {
                    JsonObject obj => [obj],
                    JsonArray array => array.Select(n => n as JsonObject ?? throw new CliException(ExitCodes.Invalid, $"{source}: every item of the array must be an object.")).ToList(),
                    _ => throw new CliException(ExitCodes.Invalid, $"{source}: expected a JSON object or array."),
                };
            }
            catch (JsonException e)
            {
                throw new CliException(ExitCodes.Invalid, $"{source} is not valid JSON: {e.Message}");
            }
        }

        try
        {
            var yaml = new YamlStream();
            yaml.Load(new StringReader(text));
            return yaml.Documents
                .Where(d => d.RootNode is not YamlScalarNode { Value: null or "" })
                .Select(d => ToJson(d.RootNode) as JsonObject ?? throw new CliException(ExitCodes.Invalid, $"{source}: each YAML document must be a mapping."))
                .ToList();
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw new CliException(ExitCodes.Invalid, $"{source} is not valid YAML (line {e.Start.Line}, column {e.Start.Column}): {e.Message}");
        }
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv => new KeyValuePair<string, JsonNode?>(((YamlScalarNode)kv.Key).Value ?? "", ToJson(kv.Value)))),
        YamlSequenceNode seq => new JsonArray(seq.Children.Select(ToJson).ToArray()),
        YamlScalarNode scalar => Scalar(scalar),
        _ => null,
    };

    private static JsonValue? Scalar(YamlScalarNode scalar)
    {
        var value = scalar.Value;
        if (scalar.Style is YamlDotNet.Core.ScalarStyle.SingleQuoted or YamlDotNet.Core.ScalarStyle.DoubleQuoted or YamlDotNet.Core.ScalarStyle.Literal or YamlDotNet.Core.ScalarStyle.Folded)
        {
            return JsonValue.Create(value);
        }

        return value switch
        {
            null or "~" or "null" => null,
            "true" => JsonValue.Create(true),
            "false" => JsonValue.Create(false),
            _ when long.TryParse(value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var l) => JsonValue.Create(l),
            _ when double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) => JsonValue.Create(d),
            _ => JsonValue.Create(value),
        };
    }
}

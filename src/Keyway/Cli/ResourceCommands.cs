using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

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
        var get = new Command("get", "Show a resource's configuration (templates as written, never a secret value). " +
            "With --json, the definition as 'resource apply' takes it: its output applies back unchanged.") { getName };
        get.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.GetAsync($"api/v1/resources/{Uri.EscapeDataString(parse.GetValue(getName)!)}", ct);
            if (output.Json)
            {
                output.WriteJson(ConfigFiles.Applicable(doc));
                return;
            }

            output.Details(doc, ("name", Output.Str(doc?["name"])), ("version", Output.Str(doc?["version"])), ("updated", Output.When(doc?["updatedAt"])));
            output.Console.WriteLine(ConfigFiles.WithoutNulls(doc?["definition"])?.ToJsonString(CliJson.Indented) ?? "");
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
        command.Subcommands.Add(ResourceTestCommand.Create(io));
        return command;
    }

    /// <summary>
    /// <c>apply</c> for resources and queries alike: every document of a JSON or YAML file (or stdin
    /// for '-'), each PUT under its <c>name</c>.
    /// </summary>
    internal static async Task ApplyAsync(
        CliIo io, KeywayClient client, Output output, string path, string kind, string collection, CancellationToken ct, bool bindSecrets = false)
    {
        var text = path == "-" ? await io.In.ReadToEndAsync(ct) : await ConfigFiles.ReadAsync(path, ct);
        var source = path == "-" ? "stdin" : path;
        var results = new JsonArray();
        foreach (var document in ConfigFiles.Parse(text, source, collection))
        {
            var doc = document.Body;
            var name = doc["name"]?.GetValue<string>() ?? throw new CliException(ExitCodes.Invalid, $"A {kind.ToLowerInvariant()} in {source}{document.Where("")} has no 'name'.");
            doc.Remove("name");
            JsonNode? result;
            try
            {
                result = await client.PutAsync($"api/v1/{collection}/{Uri.EscapeDataString(name)}", doc, ct);
            }
            catch (CliException e) when (e.ExitCode == ExitCodes.Invalid)
            {
                // The server names fields by path; the file says where they are.
                foreach (var item in e.Errors ?? [])
                {
                    if (item is JsonObject error && error["field"]?.GetValue<string>() is { } field)
                    {
                        error["field"] = field + document.Where(field);
                    }
                }

                throw new CliException(e.ExitCode, $"{source}, {kind.ToLowerInvariant()} '{name}': {e.Message}", e.Code, e.Errors);
            }

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
}

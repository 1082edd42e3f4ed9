using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Keyway.Cli;

/// <summary><c>keyway var set|get|list|delete</c>: configuration variables, secret or plain.</summary>
internal static class VarCommands
{
    public static Command Create(CliIo io)
    {
        var command = new Command("var", "Manage configuration variables. Secret values are write-only.");
        Option<string> Env() => new("--env", "-e") { Description = "The environment.", DefaultValueFactory = _ => "production" };

        var setName = new Argument<string>("name") { Description = "The variable's name, used as {{ environment.variables.NAME }}." };
        var setEnv = Env();
        var secret = new Option<bool>("--secret", "-s") { Description = "Store it as a secret: encrypted, write-only, usable only in resource configuration." };
        var value = new Option<string?>("--value") { Description = "The value on the command line. It lands in shell history: for secrets, prefer stdin or the prompt." };
        var expires = new Option<DateTimeOffset?>("--expires-at") { Description = "When the value expires (ISO 8601), for reminders and rotation." };
        var set = new Command("set", "Set a variable. The value comes from --value, else stdin (piped), else a hidden prompt.") { setName, setEnv, secret, value, expires };
        set.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var name = parse.GetValue(setName)!;
            var env = parse.GetValue(setEnv)!;
            var isSecret = parse.GetValue(secret);
            var text = parse.GetValue(value) ?? await ReadValueAsync(io, name, isSecret, ct);
            var doc = await client.PutAsync(
                $"api/v1/environments/{Uri.EscapeDataString(env)}/variables/{Uri.EscapeDataString(name)}",
                new { value = text, secret = isSecret, expiresAt = parse.GetValue(expires) }, ct);
            output.Success($"{(isSecret ? "Secret" : "Variable")} '{name}' set in '{env}' (version {Output.Str(doc?["version"])}).", doc);
        }));

        var getName = new Argument<string>("name") { Description = "The variable's name." };
        var getEnv = Env();
        var get = new Command("get", "Show a variable (a secret shows only its version and dates).") { getName, getEnv };
        get.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.GetAsync(
                $"api/v1/environments/{Uri.EscapeDataString(parse.GetValue(getEnv)!)}/variables/{Uri.EscapeDataString(parse.GetValue(getName)!)}", ct);
            output.Details(doc,
                ("name", Output.Str(doc?["name"])), ("environment", Output.Str(doc?["environment"])),
                ("secret", Output.Str(doc?["secret"])), ("value", SecretAware(doc!)), ("version", Output.Str(doc?["version"])),
                ("updated", Output.When(doc?["updatedAt"])), ("expires", Output.When(doc?["expiresAt"])));
        }));

        var listEnv = Env();
        var list = new Command("list", "List an environment's variables.") { listEnv };
        list.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.GetAsync($"api/v1/environments/{Uri.EscapeDataString(parse.GetValue(listEnv)!)}/variables", ct);
            output.Table(doc, doc?["variables"] as JsonArray,
                ("NAME", v => Output.Str(v["name"])), ("SECRET", v => v["secret"]?.GetValue<bool>() == true ? "yes" : "no"),
                ("VALUE", SecretAware), ("VERSION", v => Output.Str(v["version"])), ("UPDATED", v => Output.When(v["updatedAt"])));
        }));

        var delName = new Argument<string>("name") { Description = "The variable's name." };
        var delEnv = Env();
        var delete = new Command("delete", "Delete a variable and all its versions.") { delName, delEnv };
        delete.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var name = parse.GetValue(delName)!;
            await client.DeleteAsync($"api/v1/environments/{Uri.EscapeDataString(parse.GetValue(delEnv)!)}/variables/{Uri.EscapeDataString(name)}", ct);
            output.Success($"Variable '{name}' deleted.");
        }));

        command.Subcommands.Add(set);
        command.Subcommands.Add(get);
        command.Subcommands.Add(list);
        command.Subcommands.Add(delete);
        return command;
    }

    private static string SecretAware(JsonNode v) => v["secret"]?.GetValue<bool>() == true ? "(secret)" : Output.Str(v["value"]);

    private static async Task<string> ReadValueAsync(CliIo io, string name, bool secret, CancellationToken ct)
    {
        if (ReferenceEquals(io.In, Console.In) && !Console.IsInputRedirected)
        {
            var prompt = new TextPrompt<string>($"Value of [bold]{Markup.Escape(name)}[/]:");
            if (secret)
            {
                prompt = prompt.Secret();
            }

            return await AnsiConsole.PromptAsync(prompt, ct);
        }

        var text = await io.In.ReadToEndAsync(ct);
        // `echo value | keyway var set` adds a newline nobody means as part of the value.
        return text.EndsWith("\r\n", StringComparison.Ordinal) ? text[..^2] : text.EndsWith('\n') ? text[..^1] : text;
    }
}

using System.CommandLine;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Keyway.Cli;

/// <summary><c>keyway var set|get|list|delete|bind|unbind|versions|rollback</c> (and <see cref="RotationCommands"/>): configuration variables, secret or plain.</summary>
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
        var origin = new Option<string[]>("--origin")
        {
            Description = "A secret: an origin its value may be sent to (https://api.example.com, https://*.example.com); repeat for more. Left out, the binding stays as it was.",
            AllowMultipleArgumentsPerToken = false,
        };
        var keep = new Option<int?>("--keep-versions") { Description = "How many versions to keep, the current one included (0: the server's default). Left out, unchanged." };
        var rotateEvery = new Option<string?>("--rotate-every") { Description = "How often the value should be rotated: 90d, 12h or P90D (\"\": no policy). Left out, unchanged." };
        var expiredPolicy = new Option<string?>("--expired-policy") { Description = "Once expired: warn (used, flagged, alerted) or block (refused with secret_expired). Left out, unchanged." };
        var set = new Command("set", "Set a variable. The value comes from --value, else stdin (piped), else a hidden prompt. A JWT's exp is its expiry unless --expires-at says otherwise.")
        {
            setName, setEnv, secret, value, expires, origin, keep, rotateEvery, expiredPolicy,
        };
        set.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var name = parse.GetValue(setName)!;
            var env = parse.GetValue(setEnv)!;
            var isSecret = parse.GetValue(secret);
            var text = parse.GetValue(value) ?? await ReadValueAsync(io, name, isSecret, ct);
            if (isSecret && text.Length == 0)
            {
                throw new CliException(ExitCodes.Usage,
                    $"The secret '{name}' would be empty: stdin gave nothing. Pipe the value (printf %s \"$VALUE\" | keyway var set {name} --secret), or run it at a terminal to be asked.",
                    "empty_secret");
            }

            var doc = await client.PutAsync(
                $"api/v1/environments/{Uri.EscapeDataString(env)}/variables/{Uri.EscapeDataString(name)}",
                new
                {
                    value = text,
                    secret = isSecret,
                    expiresAt = parse.GetValue(expires),
                    origins = parse.GetValue(origin) is { Length: > 0 } o ? o : null,
                    keepVersions = parse.GetValue(keep),
                    rotateEvery = parse.GetValue(rotateEvery),
                    expiredPolicy = parse.GetValue(expiredPolicy),
                }, ct);
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
                ("updated", Output.When(doc?["updatedAt"])), ("expires", Expiry(doc!)), ("rotate every", Output.Str(doc?["rotateEvery"])),
                ("rotate by", Output.When(doc?["rotateBy"])), ("expired policy", Output.Str(doc?["expiredPolicy"])), ("keep versions", Output.Str(doc?["keepVersions"])),
                ("attention", Output.Str(doc?["attention"])), ("origins", OriginsOf(doc!)));
        }));

        var listEnv = Env();
        var list = new Command("list", "List an environment's variables.") { listEnv };
        list.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.GetAsync($"api/v1/environments/{Uri.EscapeDataString(parse.GetValue(listEnv)!)}/variables", ct);
            output.Table(doc, doc?["variables"] as JsonArray,
                ("NAME", v => Output.Str(v["name"])), ("SECRET", v => v["secret"]?.GetValue<bool>() == true ? "yes" : "no"),
                ("VALUE", SecretAware), ("VERSION", v => Output.Str(v["version"])), ("ORIGINS", OriginsOf), ("UPDATED", v => Output.When(v["updatedAt"])),
                ("EXPIRES", Expiry), ("ROTATE BY", v => Output.When(v["rotateBy"])), ("ATTENTION", v => Output.Str(v["attention"])));
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

        var bindName = new Argument<string>("name") { Description = "The secret variable's name." };
        var bindOrigins = new Argument<string[]>("origins") { Description = "Origins its value may be sent to: https://api.example.com, https://*.example.com.", Arity = ArgumentArity.OneOrMore };
        var bindEnv = Env();
        var bind = new Command("bind", "Bind a secret to origins: Keyway sends its value nowhere else, whatever a resource says. Adds to its origins.") { bindName, bindOrigins, bindEnv };
        bind.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var (name, env) = (parse.GetValue(bindName)!, parse.GetValue(bindEnv)!);
            var doc = await BindAsync(client, env, name, parse.GetValue(bindOrigins)!, ct);
            output.Success($"Secret '{name}' in '{env}' may be sent only to {OriginsOf(doc!)}.", doc);
        }));

        var unbindName = new Argument<string>("name") { Description = "The secret variable's name." };
        var unbindOrigins = new Argument<string[]>("origins") { Description = "The origins to remove; none: remove them all (the secret may then go wherever a resource sends it).", Arity = ArgumentArity.ZeroOrMore };
        var unbindEnv = Env();
        var unbind = new Command("unbind", "Remove origins from a secret's binding.") { unbindName, unbindOrigins, unbindEnv };
        unbind.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var (name, env) = (parse.GetValue(unbindName)!, parse.GetValue(unbindEnv)!);
            var removing = parse.GetValue(unbindOrigins) ?? [];
            var current = await client.GetAsync(VariablePath(env, name), ct);
            var origins = removing.Length == 0 ? [] : Origins(current!).Where(o => !removing.Contains(o, StringComparer.OrdinalIgnoreCase)).ToArray();
            var doc = await client.PutAsync(VariablePath(env, name) + "/origins", new { origins }, ct);
            output.Success(origins.Length == 0
                ? $"Secret '{name}' in '{env}' is bound to no origin now."
                : $"Secret '{name}' in '{env}' may be sent only to {OriginsOf(doc!)}.", doc);
        }));

        var versionsName = new Argument<string>("name") { Description = "The variable's name." };
        var versionsEnv = Env();
        var versions = new Command("versions", "List a variable's stored versions, newest first: who set each, when, its expiry, whether a rotation still owes its key a revoke. Never a value.") { versionsName, versionsEnv };
        versions.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.GetAsync(VariablePath(parse.GetValue(versionsEnv)!, parse.GetValue(versionsName)!) + "/versions", ct);
            output.Table(doc, doc?["versions"] as JsonArray,
                ("VERSION", v => Output.Str(v["version"])), ("STATE", v => Output.Str(v["state"])),
                ("SET BY", v => Output.Str(v["setBy"]) + (v["setByKey"] is { } key ? $" (key {Output.Str(key)})" : "")),
                ("SET AT", v => Output.When(v["setAt"])), ("EXPIRES", Expiry),
                ("RESTORED FROM", v => Output.Str(v["restoredFrom"])), ("KEY REVOKE", v => Output.Str(v["revoke"])));
        }));

        var rollbackName = new Argument<string>("name") { Description = "The variable's name." };
        var rollbackVersion = new Option<long>("--version") { Description = "The version whose value becomes current again (keyway var versions NAME).", Required = true };
        var rollbackEnv = Env();
        var rollback = new Command("rollback", "Make an earlier version's value current again, as a new version.") { rollbackName, rollbackVersion, rollbackEnv };
        rollback.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var (name, env, version) = (parse.GetValue(rollbackName)!, parse.GetValue(rollbackEnv)!, parse.GetValue(rollbackVersion));
            var doc = await client.PostAsync(VariablePath(env, name) + "/rollback", new { version }, ct);
            output.Success($"'{name}' in '{env}' rolled back to the value of version {version} (now version {Output.Str(doc?["version"])}).", doc);
        }));

        command.Subcommands.Add(set);
        command.Subcommands.Add(get);
        command.Subcommands.Add(list);
        command.Subcommands.Add(delete);
        command.Subcommands.Add(bind);
        command.Subcommands.Add(unbind);
        command.Subcommands.Add(versions);
        command.Subcommands.Add(rollback);
        RotationCommands.AddTo(command, io);
        return command;
    }

    /// <summary>Adds origins to a secret's binding (the API sets the whole list, so its current origins are read first).</summary>
    internal static async Task<JsonNode?> BindAsync(KeywayClient client, string env, string name, IEnumerable<string> adding, CancellationToken ct)
    {
        var current = await client.GetAsync(VariablePath(env, name), ct);
        var origins = Origins(current!).Concat(adding).Distinct(StringComparer.Ordinal).ToArray();
        return await client.PutAsync(VariablePath(env, name) + "/origins", new { origins }, ct);
    }

    internal static string VariablePath(string env, string name) =>
        $"api/v1/environments/{Uri.EscapeDataString(env)}/variables/{Uri.EscapeDataString(name)}";

    private static string[] Origins(JsonNode v) =>
        v["origins"] is JsonArray a ? a.Select(o => o?.GetValue<string>() ?? "").Where(o => o.Length > 0).ToArray() : [];

    private static string OriginsOf(JsonNode v) =>
        v["secret"]?.GetValue<bool>() != true ? "-" : Origins(v) is { Length: > 0 } o ? string.Join(", ", o) : "(anywhere)";

    /// <summary>An expiry with where it came from, and a flag once it has passed.</summary>
    private static string Expiry(JsonNode v) =>
        v["expiresAt"] is null ? "-"
        : Output.When(v["expiresAt"]) + (v["expiresFrom"]?.GetValue<string>() == "jwt" ? " (jwt)" : "") + (v["expired"]?.GetValue<bool>() == true || v["attention"]?.GetValue<string>() == "expired" ? " EXPIRED" : "");

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

using System.CommandLine;
using System.Text.Json.Nodes;

namespace Keyway.Cli;

/// <summary><c>keyway key create|list|revoke</c>: API keys for apps and scripts.</summary>
internal static class KeyCommands
{
    public static Command Create(CliIo io)
    {
        var command = new Command("key", "Manage API keys. A key's token is shown once, when it is created.");

        var nameArgument = new Argument<string?>("name") { Description = "What the key is for, e.g. billing-app (or --name).", Arity = ArgumentArity.ZeroOrOne };
        var name = new Option<string?>("--name", "-n") { Description = "What the key is for, e.g. billing-app." };
        var owner = new Option<string?>("--owner") { Description = "Whose key it is: a user or a service identity (admins only; default: you)." };
        var resources = new Option<string[]>("--resource", "-r") { Description = "Limit the key to this resource (repeatable).", AllowMultipleArgumentsPerToken = false };
        var environments = new Option<string[]>("--environment", "-e") { Description = "Limit the key to this environment (repeatable)." };
        var actions = new Option<string[]>("--action", "-a") { Description = "Limit the key to these actions: read, use, edit, own, admin (repeatable; each includes those below it, admin everything), or config:read (an admin's key that reads the whole configuration for keyway plan, and nothing else)." };
        var expires = new Option<string?>("--expires") { Description = "How long the key lives: 90m, 12h, 30d, 2w." };
        var expiresAt = new Option<DateTimeOffset?>("--expires-at") { Description = "When the key stops working (ISO 8601)." };
        var create = new Command("create", "Create an API key and print its token (once).") { nameArgument, name, owner, resources, environments, actions, expires, expiresAt };
        create.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var keyName = parse.GetValue(name) ?? parse.GetValue(nameArgument)
                ?? throw new CliException(ExitCodes.Usage, "Name the key: keyway key create --name billing-app.");
            static string[]? OrNull(string[]? values) => values is { Length: > 0 } ? values : null;
            var scope = OrNull(parse.GetValue(resources)) is null && OrNull(parse.GetValue(environments)) is null && OrNull(parse.GetValue(actions)) is null
                ? null
                : new { resources = OrNull(parse.GetValue(resources)), environments = OrNull(parse.GetValue(environments)), actions = OrNull(parse.GetValue(actions)) };
            var doc = await client.PostAsync("api/v1/keys", new
            {
                name = keyName,
                owner = parse.GetValue(owner),
                expiresIn = parse.GetValue(expires),
                expiresAt = parse.GetValue(expiresAt),
                scopes = scope,
            }, ct);
            if (output.Json)
            {
                output.WriteJson(doc);
                return;
            }

            output.Success($"Key '{Output.Str(doc?["key"]?["name"])}' of '{Output.Str(doc?["key"]?["owner"])}' created ({Output.Str(doc?["key"]?["id"])}). Its token, shown only now:");
            io.Out.WriteLine(Output.Str(doc?["token"]));
        }));

        var list = new Command("list", "List API keys (never their tokens). Members see their own.");
        list.SetAction(io.Client(async (client, output, _, ct) =>
        {
            var doc = await client.GetAsync("api/v1/keys", ct);
            output.Table(doc, doc?["keys"] as JsonArray,
                ("ID", k => Output.Str(k["id"])), ("NAME", k => Output.Str(k["name"])), ("OWNER", k => Output.Str(k["owner"])),
                ("SCOPES", k => Scopes(k["scopes"])), ("HINT", k => Output.Str(k["hint"])),
                ("CREATED", k => Output.When(k["createdAt"])), ("EXPIRES", k => Output.When(k["expiresAt"])),
                ("LAST USED", k => Output.When(k["lastUsedAt"])), ("REVOKED", k => Output.When(k["revokedAt"])));
        }));

        var id = new Argument<string>("id") { Description = "The key's id (from 'keyway key list')." };
        var revoke = new Command("revoke", "Revoke an API key.") { id };
        revoke.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            await client.DeleteAsync($"api/v1/keys/{Uri.EscapeDataString(parse.GetValue(id)!)}", ct);
            output.Success($"Key '{parse.GetValue(id)}' revoked.");
        }));

        command.Subcommands.Add(create);
        command.Subcommands.Add(list);
        command.Subcommands.Add(revoke);
        return command;
    }

    private static string Scopes(JsonNode? scopes)
    {
        if (scopes is not JsonObject scope)
        {
            return "(owner's)";
        }

        var parts = new List<string>();
        foreach (var axis in (string[])["resources", "environments", "actions"])
        {
            if (scope[axis] is JsonArray values)
            {
                parts.Add($"{axis}: {string.Join(",", values.Select(v => Output.Str(v)))}");
            }
        }

        return string.Join("; ", parts);
    }
}

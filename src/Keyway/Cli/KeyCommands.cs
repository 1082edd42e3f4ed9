using System.CommandLine;
using System.Text.Json.Nodes;

namespace Keyway.Cli;

/// <summary><c>keyway key create|list|revoke</c>: API keys for apps and scripts.</summary>
internal static class KeyCommands
{
    public static Command Create(CliIo io)
    {
        var command = new Command("key", "Manage API keys. A key's token is shown once, when it is created.");

        var name = new Argument<string>("name") { Description = "What the key is for, e.g. billing-app." };
        var expires = new Option<DateTimeOffset?>("--expires-at") { Description = "When the key stops working (ISO 8601)." };
        var create = new Command("create", "Create an API key and print its token (once).") { name, expires };
        create.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.PostAsync("api/v1/keys", new { name = parse.GetValue(name), expiresAt = parse.GetValue(expires) }, ct);
            if (output.Json)
            {
                output.WriteJson(doc);
                return;
            }

            output.Success($"Key '{Output.Str(doc?["key"]?["name"])}' created ({Output.Str(doc?["key"]?["id"])}). Its token, shown only now:");
            io.Out.WriteLine(Output.Str(doc?["token"]));
        }));

        var list = new Command("list", "List API keys (never their tokens).");
        list.SetAction(io.Client(async (client, output, _, ct) =>
        {
            var doc = await client.GetAsync("api/v1/keys", ct);
            output.Table(doc, doc?["keys"] as JsonArray,
                ("ID", k => Output.Str(k["id"])), ("NAME", k => Output.Str(k["name"])), ("HINT", k => Output.Str(k["hint"])),
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
}

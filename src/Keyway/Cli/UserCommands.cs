using System.CommandLine;
using System.Text.Json.Nodes;

namespace Keyway.Cli;

/// <summary><c>keyway user list|create|get|update|delete</c> and <c>keyway group list|create|delete|add|remove</c> (admins).</summary>
internal static class UserCommands
{
    public static Command Users(CliIo io)
    {
        var command = new Command("user", "Manage users and service identities (admins).");

        var list = new Command("list", "List users.");
        list.SetAction(io.Client(async (client, output, _, ct) =>
        {
            var doc = await client.GetAsync("api/v1/users", ct);
            output.Table(doc, doc?["users"] as JsonArray,
                ("NAME", u => Output.Str(u["name"])), ("ROLE", u => Output.Str(u["role"])), ("SOURCE", u => Output.Str(u["source"])),
                ("EMAIL", u => Output.Str(u["email"])), ("GROUPS", u => Groups(u["groups"])),
                ("DISABLED", u => u["disabled"]?.GetValue<bool>() == true ? "yes" : "no"), ("CREATED", u => Output.When(u["createdAt"])));
        }));

        var createName = new Argument<string>("name") { Description = "The user's name (letters, digits, '_', '.', '-')." };
        var role = new Option<string>("--role") { Description = "admin or member.", DefaultValueFactory = _ => "member" };
        var service = new Option<bool>("--service") { Description = "A service identity: no password, owns API keys ('keyway key create --owner NAME')." };
        var email = new Option<string?>("--email") { Description = "The user's email (current_user.email in templates)." };
        var displayName = new Option<string?>("--display-name") { Description = "The name people read." };
        var passwordStdin = new Option<bool>("--password-stdin") { Description = "Read the initial password from stdin; without it Keyway generates one and prints it once." };
        var create = new Command("create", "Create a local user (password generated and shown once, or from stdin) or a service identity.")
            { createName, role, service, email, displayName, passwordStdin };
        create.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            string? password = null;
            if (parse.GetValue(passwordStdin))
            {
                password = (await io.In.ReadToEndAsync(ct)).TrimEnd('\r', '\n');
            }

            var doc = await client.PostAsync("api/v1/users", new
            {
                name = parse.GetValue(createName),
                role = parse.GetValue(role),
                source = parse.GetValue(service) ? "service" : "local",
                email = parse.GetValue(email),
                displayName = parse.GetValue(displayName),
                password,
            }, ct);
            if (output.Json)
            {
                output.WriteJson(doc);
                return;
            }

            output.Success($"User '{Output.Str(doc?["user"]?["name"])}' created ({Output.Str(doc?["user"]?["role"])}, {Output.Str(doc?["user"]?["source"])}).");
            if (doc?["password"] is JsonValue generated)
            {
                io.Out.WriteLine("Their password, shown only now:");
                io.Out.WriteLine(generated.GetValue<string>());
            }
        }));

        var getName = new Argument<string>("name") { Description = "The user's name." };
        var get = new Command("get", "Show a user.") { getName };
        get.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.GetAsync($"api/v1/users/{Uri.EscapeDataString(parse.GetValue(getName)!)}", ct);
            output.Details(doc,
                ("name", Output.Str(doc?["name"])), ("id", Output.Str(doc?["id"])), ("role", Output.Str(doc?["role"])),
                ("source", Output.Str(doc?["source"])), ("email", Output.Str(doc?["email"])), ("display name", Output.Str(doc?["displayName"])),
                ("groups", Groups(doc?["groups"])), ("disabled", Output.When(doc?["disabledAt"])), ("created", Output.When(doc?["createdAt"])));
        }));

        var updateName = new Argument<string>("name") { Description = "The user's name." };
        var newRole = new Option<string?>("--role") { Description = "admin or member (the last admin cannot be demoted)." };
        var newEmail = new Option<string?>("--email") { Description = "A new email." };
        var newDisplayName = new Option<string?>("--display-name") { Description = "A new display name." };
        var disable = new Option<bool>("--disable") { Description = "Disable the user: their sessions end and their API keys stop working." };
        var enable = new Option<bool>("--enable") { Description = "Enable a disabled user." };
        var newPassword = new Option<bool>("--password-stdin") { Description = "Set a new password, read from stdin." };
        var update = new Command("update", "Change a user's role, email or display name; disable or enable them; set a password.")
            { updateName, newRole, newEmail, newDisplayName, disable, enable, newPassword };
        update.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            if (parse.GetValue(disable) && parse.GetValue(enable))
            {
                throw new CliException(ExitCodes.Usage, "Choose --disable or --enable, not both.");
            }

            var body = new JsonObject();
            if (parse.GetValue(newRole) is { } r)
            {
                body["role"] = r;
            }

            if (parse.GetValue(newEmail) is { } e)
            {
                body["email"] = e;
            }

            if (parse.GetValue(newDisplayName) is { } d)
            {
                body["displayName"] = d;
            }

            if (parse.GetValue(disable) || parse.GetValue(enable))
            {
                body["disabled"] = parse.GetValue(disable);
            }

            if (parse.GetValue(newPassword))
            {
                body["password"] = (await io.In.ReadToEndAsync(ct)).TrimEnd('\r', '\n');
            }

            if (body.Count == 0)
            {
                throw new CliException(ExitCodes.Usage, "Nothing to change: pass --role, --email, --display-name, --disable, --enable or --password-stdin.");
            }

            var name = parse.GetValue(updateName)!;
            var doc = await client.SendAsync(HttpMethod.Patch, $"api/v1/users/{Uri.EscapeDataString(name)}", body, ct);
            output.Success($"User '{name}' updated.", doc);
        }));

        var deleteName = new Argument<string>("name") { Description = "The user to delete, with their API keys, memberships and grants." };
        var delete = new Command("delete", "Delete a user (the last admin cannot be deleted).") { deleteName };
        delete.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var name = parse.GetValue(deleteName)!;
            await client.DeleteAsync($"api/v1/users/{Uri.EscapeDataString(name)}", ct);
            output.Success($"User '{name}' deleted.");
        }));

        command.Subcommands.Add(list);
        command.Subcommands.Add(create);
        command.Subcommands.Add(get);
        command.Subcommands.Add(update);
        command.Subcommands.Add(delete);
        return command;
    }

    public static Command Groups(CliIo io)
    {
        var command = new Command("group", "Manage groups (admins). Grant permissions to a group with 'keyway permission grant RESOURCE --group NAME'.");

        var list = new Command("list", "List groups and their members.");
        list.SetAction(io.Client(async (client, output, _, ct) =>
        {
            var doc = await client.GetAsync("api/v1/groups", ct);
            output.Table(doc, doc?["groups"] as JsonArray,
                ("NAME", g => Output.Str(g["name"])), ("DESCRIPTION", g => Output.Str(g["description"])),
                ("MEMBERS", g => string.Join(", ", (g["members"] as JsonArray ?? []).Select(m => Output.Str(m?["user"])))));
        }));

        var createName = new Argument<string>("name") { Description = "The group's name, e.g. ops." };
        var description = new Option<string?>("--description") { Description = "What the group is for." };
        var create = new Command("create", "Create a group (or change its description).") { createName, description };
        create.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var name = parse.GetValue(createName)!;
            var doc = await client.PutAsync($"api/v1/groups/{Uri.EscapeDataString(name)}", new { description = parse.GetValue(description) }, ct);
            output.Success($"Group '{name}' is ready.", doc);
        }));

        var deleteName = new Argument<string>("name") { Description = "The group to delete, with its memberships and grants." };
        var delete = new Command("delete", "Delete a group.") { deleteName };
        delete.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var name = parse.GetValue(deleteName)!;
            await client.DeleteAsync($"api/v1/groups/{Uri.EscapeDataString(name)}", ct);
            output.Success($"Group '{name}' deleted.");
        }));

        Command Membership(string verb, string summary, bool add)
        {
            var group = new Argument<string>("group") { Description = "The group." };
            var user = new Argument<string>("user") { Description = "The user." };
            var membership = new Command(verb, summary) { group, user };
            membership.SetAction(io.Client(async (client, output, parse, ct) =>
            {
                var path = $"api/v1/groups/{Uri.EscapeDataString(parse.GetValue(group)!)}/members/{Uri.EscapeDataString(parse.GetValue(user)!)}";
                await client.SendAsync(add ? HttpMethod.Put : HttpMethod.Delete, path, null, ct);
                output.Success(add ? $"'{parse.GetValue(user)}' added to '{parse.GetValue(group)}'." : $"'{parse.GetValue(user)}' removed from '{parse.GetValue(group)}'.");
            }));
            return membership;
        }

        command.Subcommands.Add(list);
        command.Subcommands.Add(create);
        command.Subcommands.Add(delete);
        command.Subcommands.Add(Membership("add", "Add a user to a group.", add: true));
        command.Subcommands.Add(Membership("remove", "Remove a user from a group.", add: false));
        return command;
    }

    private static string Groups(JsonNode? groups) =>
        groups is JsonArray array && array.Count > 0 ? string.Join(", ", array.Select(g => Output.Str(g))) : "-";
}

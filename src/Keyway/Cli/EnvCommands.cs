using System.CommandLine;
using System.Text.Json.Nodes;

namespace Keyway.Cli;

/// <summary><c>keyway env list|create|delete</c>.</summary>
internal static class EnvCommands
{
    public static Command Create(CliIo io)
    {
        var command = new Command("env", "Manage environments (production always exists).");

        var list = new Command("list", "List environments.");
        list.SetAction(io.Client(async (client, output, _, ct) =>
        {
            var doc = await client.GetAsync("api/v1/environments", ct);
            output.Table(doc, doc?["environments"] as JsonArray,
                ("NAME", e => Output.Str(e["name"])), ("DESCRIPTION", e => Output.Str(e["description"])), ("CREATED", e => Output.When(e["createdAt"])));
        }));

        var name = new Argument<string>("name") { Description = "The environment's name, e.g. staging." };
        var description = new Option<string?>("--description") { Description = "What the environment is for." };
        var create = new Command("create", "Create an environment (or update its description).") { name, description };
        create.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var env = parse.GetValue(name)!;
            var doc = await client.PutAsync($"api/v1/environments/{Uri.EscapeDataString(env)}", new { description = parse.GetValue(description) }, ct);
            output.Success($"Environment '{env}' is ready.", doc);
        }));

        var deleteName = new Argument<string>("name") { Description = "The environment to delete, with all its variables." };
        var delete = new Command("delete", "Delete an environment and its variables.") { deleteName };
        delete.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var env = parse.GetValue(deleteName)!;
            await client.DeleteAsync($"api/v1/environments/{Uri.EscapeDataString(env)}", ct);
            output.Success($"Environment '{env}' deleted.");
        }));

        command.Subcommands.Add(list);
        command.Subcommands.Add(create);
        command.Subcommands.Add(delete);
        return command;
    }
}

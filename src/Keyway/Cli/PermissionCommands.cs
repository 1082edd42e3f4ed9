using System.CommandLine;
using System.Text.Json.Nodes;

namespace Keyway.Cli;

/// <summary><c>keyway permission list|grant|revoke</c>: who may use, edit or own a resource (owners and admins).</summary>
internal static class PermissionCommands
{
    public static Command Create(CliIo io)
    {
        var command = new Command("permission", "Manage who may use, edit or own a resource. '*' as the resource means every resource.");

        var listResource = new Argument<string>("resource") { Description = "The resource (or '*')." };
        var list = new Command("list", "List the grants on a resource, including grants on every resource.") { listResource };
        list.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.GetAsync($"api/v1/resources/{Uri.EscapeDataString(parse.GetValue(listResource)!)}/permissions", ct);
            output.Table(doc, doc?["grants"] as JsonArray,
                ("ID", g => Output.Str(g["id"])), ("RESOURCE", g => Output.Str(g["resource"])),
                ("PRINCIPAL", g => $"{Output.Str(g["principalKind"])} {Output.Str(g["principalName"])}"),
                ("PERMISSION", g => Output.Str(g["permission"])), ("ENVIRONMENT", g => Output.Str(g["environment"])),
                ("CREATED", g => Output.When(g["createdAt"])));
        }));

        var grantResource = new Argument<string>("resource") { Description = "The resource (or '*' for every resource)." };
        var user = new Option<string?>("--user") { Description = "Grant to this user." };
        var group = new Option<string?>("--group") { Description = "Grant to this group." };
        var everyone = new Option<bool>("--everyone") { Description = "Grant to every user, people and service identities, now and later." };
        var permission = new Option<string>("--permission", "-p") { Description = "use (run, proxy), edit (change configuration; never read secrets) or own (edit, delete, manage permissions).", DefaultValueFactory = _ => "use" };
        var environment = new Option<string>("--environment", "-e") { Description = "One environment, or '*' for every one.", DefaultValueFactory = _ => "*" };
        var grant = new Command("grant", "Grant a permission on a resource to a user, a group or everyone.") { grantResource, user, group, everyone, permission, environment };
        grant.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            if ((parse.GetValue(user) is null ? 0 : 1) + (parse.GetValue(group) is null ? 0 : 1) + (parse.GetValue(everyone) ? 1 : 0) != 1)
            {
                throw new CliException(ExitCodes.Usage, "Name exactly one of --user, --group or --everyone.");
            }

            var resource = parse.GetValue(grantResource)!;
            var doc = await client.PostAsync($"api/v1/resources/{Uri.EscapeDataString(resource)}/permissions", new
            {
                user = parse.GetValue(user),
                group = parse.GetValue(group),
                everyone = parse.GetValue(everyone),
                permission = parse.GetValue(permission),
                environment = parse.GetValue(environment),
            }, ct);
            var who = Output.Str(doc?["principalKind"]) == "everyone" ? "Everyone" : $"{Output.Str(doc?["principalKind"])} '{Output.Str(doc?["principalName"])}'";
            output.Success(
                $"{who} may {Output.Str(doc?["permission"])} '{resource}' " +
                $"in {(Output.Str(doc?["environment"]) == "*" ? "every environment" : "'" + Output.Str(doc?["environment"]) + "'")} (grant {Output.Str(doc?["id"])}).", doc);
        }));

        var revokeResource = new Argument<string>("resource") { Description = "The resource (or '*')." };
        var grantId = new Argument<string>("grant") { Description = "The grant's id (from 'keyway permission list')." };
        var revoke = new Command("revoke", "Revoke a grant. It takes effect at once.") { revokeResource, grantId };
        revoke.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            await client.DeleteAsync(
                $"api/v1/resources/{Uri.EscapeDataString(parse.GetValue(revokeResource)!)}/permissions/{Uri.EscapeDataString(parse.GetValue(grantId)!)}", ct);
            output.Success($"Grant '{parse.GetValue(grantId)}' revoked.");
        }));

        command.Subcommands.Add(list);
        command.Subcommands.Add(grant);
        command.Subcommands.Add(revoke);
        return command;
    }
}

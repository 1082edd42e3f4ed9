using System.CommandLine;
using System.Text.Json.Nodes;

namespace Keyway.Cli;

/// <summary><c>keyway right list|grant|revoke</c>: who may create resources and attach which secrets (admins).</summary>
internal static class RightCommands
{
    public static Command Create(CliIo io)
    {
        var command = new Command("right",
            "Manage who may create resources (build) and who may attach which secret variable to a resource (attach). Admins hold both.");

        var listRight = new Option<string?>("--right") { Description = "Only this right: build or attach." };
        var listVariable = new Option<string?>("--variable") { Description = "Only the attach rights on this variable." };
        var list = new Command("list", "List the build and attach rights.") { listRight, listVariable };
        list.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var query = new List<string>();
            if (parse.GetValue(listRight) is { } r)
            {
                query.Add("right=" + Uri.EscapeDataString(r));
            }

            if (parse.GetValue(listVariable) is { } v)
            {
                query.Add("variable=" + Uri.EscapeDataString(v));
            }

            var doc = await client.GetAsync("api/v1/rights" + (query.Count == 0 ? "" : "?" + string.Join('&', query)), ct);
            output.Table(doc, doc?["rights"] as JsonArray,
                ("ID", g => Output.Str(g["id"])), ("RIGHT", g => Output.Str(g["right"])),
                ("VARIABLE", g => Output.Str(g["right"]) == "attach" ? Output.Str(g["target"]) : "-"),
                ("PRINCIPAL", g => $"{Output.Str(g["principalKind"])} {Output.Str(g["principalName"])}"),
                ("CREATED", g => Output.When(g["createdAt"])));
        }));

        var grantRight = new Argument<string>("right") { Description = "build (create resources) or attach (save resources that read a secret variable)." };
        var variable = new Option<string?>("--variable") { Description = "attach: the secret variable, or '*' for every one." };
        var user = new Option<string?>("--user") { Description = "Give it to this user." };
        var group = new Option<string?>("--group") { Description = "Give it to this group." };
        var everyone = new Option<bool>("--everyone") { Description = "Give it to every user, now and later." };
        var grant = new Command("grant", "Give a right to a user, a group or everyone.") { grantRight, variable, user, group, everyone };
        grant.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            if ((parse.GetValue(user) is null ? 0 : 1) + (parse.GetValue(group) is null ? 0 : 1) + (parse.GetValue(everyone) ? 1 : 0) != 1)
            {
                throw new CliException(ExitCodes.Usage, "Name exactly one of --user, --group or --everyone.");
            }

            var doc = await client.PostAsync("api/v1/rights", new
            {
                right = parse.GetValue(grantRight),
                variable = parse.GetValue(variable),
                user = parse.GetValue(user),
                group = parse.GetValue(group),
                everyone = parse.GetValue(everyone),
            }, ct);
            var who = Output.Str(doc?["principalKind"]) == "everyone" ? "Everyone" : $"{Output.Str(doc?["principalKind"])} '{Output.Str(doc?["principalName"])}'";
            var what = Output.Str(doc?["right"]) == "build"
                ? "may create resources"
                : Output.Str(doc?["target"]) == "*" ? "may attach every secret variable" : $"may attach the secret variable '{Output.Str(doc?["target"])}'";
            output.Success($"{who} {what} (right {Output.Str(doc?["id"])}).", doc);
        }));

        var rightId = new Argument<string>("id") { Description = "The right's id (from 'keyway right list')." };
        var revoke = new Command("revoke", "Take a right back. Resources saved with it keep working; their next save is checked again.") { rightId };
        revoke.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            await client.DeleteAsync($"api/v1/rights/{Uri.EscapeDataString(parse.GetValue(rightId)!)}", ct);
            output.Success($"Right '{parse.GetValue(rightId)}' revoked.");
        }));

        command.Subcommands.Add(list);
        command.Subcommands.Add(grant);
        command.Subcommands.Add(revoke);
        return command;
    }
}

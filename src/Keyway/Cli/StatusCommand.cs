using System.CommandLine;
using System.Text.Json.Nodes;

namespace Keyway.Cli;

/// <summary><c>keyway status</c>: what needs attention, most urgent first (<c>GET /api/v1/status/attention</c>).</summary>
internal static class StatusCommand
{
    public static Command Create(CliIo io)
    {
        var command = new Command("status",
            "What needs attention, most urgent first: secrets expired, expiring or due for rotation; credentials that failed, need a reconnect, expire or are not connected; schedules whose last run failed. Shows only what you may see.");
        command.SetAction(io.Client(async (client, output, _, ct) =>
        {
            var doc = await client.GetAsync("api/v1/status/attention", ct);
            if (!output.Json && doc?["items"] is JsonArray { Count: 0 })
            {
                output.Success("Nothing needs attention.", doc);
                return;
            }

            output.Table(doc, doc?["items"] as JsonArray,
                ("STATE", i => Output.Str(i["state"])), ("KIND", i => Output.Str(i["kind"])), ("ENVIRONMENT", i => Output.Str(i["environment"])),
                ("NAME", i => Output.Str(i["name"]) + (i["owner"] is { } owner && Output.Str(owner) != "shared" ? $" (user {Output.Str(owner)})" : "")),
                ("WHEN", i => Output.When(i["at"])), ("DETAIL", i => Output.Str(i["detail"])));
        }));
        return command;
    }
}

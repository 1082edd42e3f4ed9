using System.CommandLine;
using System.Text.Json.Nodes;

namespace Keyway.Cli;

/// <summary>
/// <c>keyway webhook list|create|get|update|delete|rotate-secret|test|deliveries|redeliver</c>:
/// where alerts are delivered (admins). A signing secret is printed once, on create and rotate-secret.
/// </summary>
internal static class WebhookCommands
{
    public static Command Create(CliIo io)
    {
        var command = new Command("webhook",
            "Manage the webhook endpoints alerts are delivered to (signed per Standard Webhooks), and their deliveries.");

        var list = new Command("list", "List webhook endpoints (never their signing secrets).");
        list.SetAction(io.Client(async (client, output, _, ct) =>
        {
            var doc = await client.GetAsync("api/v1/webhooks", ct);
            output.Table(doc, doc?["webhooks"] as JsonArray,
                ("NAME", w => Output.Str(w["name"])), ("URL", w => Output.Str(w["url"])), ("EVENTS", w => Events(w["events"])),
                ("ENABLED", w => Output.Str(w["enabled"])), ("DESCRIPTION", w => Output.Str(w["description"])),
                ("UPDATED", w => Output.When(w["updatedAt"])));
        }));

        var name = new Argument<string>("name") { Description = "The webhook endpoint's name." };
        var url = new Option<string?>("--url") { Description = "Where alerts are POSTed, e.g. https://hooks.example.com/keyway." };
        var events = new Option<string[]?>("--event") { Description = "An alert type it receives (repeat the option); all types when left out. 'keyway webhook list --json' lists them.", AllowMultipleArgumentsPerToken = true };
        var description = new Option<string?>("--description") { Description = "What the endpoint is for." };
        var disabled = new Option<bool>("--disabled") { Description = "Create it disabled: nothing is queued for it until it is enabled." };
        var create = new Command("create", "Create a webhook endpoint and print its signing secret (once).") { name, url, events, description, disabled };
        create.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.PostAsync("api/v1/webhooks", new
            {
                name = parse.GetValue(name),
                url = parse.GetValue(url) ?? throw new CliException(ExitCodes.Usage, "Give the URL: keyway webhook create NAME --url https://hooks.example.com/keyway"),
                events = parse.GetValue(events),
                enabled = !parse.GetValue(disabled),
                description = parse.GetValue(description),
            }, ct);
            ShowSecret(io, output, doc, $"Webhook endpoint '{Output.Str(doc?["webhook"]?["name"])}' created.");
        }));

        var get = new Command("get", "Show a webhook endpoint.") { name };
        get.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var w = await client.GetAsync($"api/v1/webhooks/{Escape(parse.GetValue(name))}", ct);
            output.Details(w, ("name", Output.Str(w?["name"])), ("url", Output.Str(w?["url"])), ("events", Events(w?["events"])),
                ("enabled", Output.Str(w?["enabled"])), ("description", Output.Str(w?["description"])),
                ("previous secret signs until", Output.When(w?["previousSecretUntil"])),
                ("created", Output.When(w?["createdAt"])), ("updated", Output.When(w?["updatedAt"])));
        }));

        var allEvents = new Option<bool>("--all-events") { Description = "Receive every alert type." };
        var enable = new Option<bool>("--enable") { Description = "Enable the endpoint." };
        var disable = new Option<bool>("--disable") { Description = "Disable the endpoint: nothing more is queued for it." };
        var update = new Command("update", "Change a webhook endpoint.") { name, url, events, allEvents, description, enable, disable };
        update.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            if (parse.GetValue(enable) && parse.GetValue(disable))
            {
                throw new CliException(ExitCodes.Usage, "Give --enable or --disable, not both.");
            }

            var doc = await client.SendAsync(HttpMethod.Patch, $"api/v1/webhooks/{Escape(parse.GetValue(name))}", new
            {
                url = parse.GetValue(url),
                events = parse.GetValue(allEvents) ? ["*"] : parse.GetValue(events),
                enabled = parse.GetValue(enable) ? true : parse.GetValue(disable) ? false : (bool?)null,
                description = parse.GetValue(description),
            }, ct);
            output.Success($"Webhook endpoint '{Output.Str(doc?["name"])}' updated.", doc);
        }));

        var delete = new Command("delete", "Delete a webhook endpoint and its delivery history.") { name };
        delete.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            await client.DeleteAsync($"api/v1/webhooks/{Escape(parse.GetValue(name))}", ct);
            output.Success($"Webhook endpoint '{parse.GetValue(name)}' deleted.");
        }));

        var grace = new Option<long?>("--grace-seconds") { Description = "How long the previous secret keeps signing beside the new one (default 86400; 0 stops it now)." };
        var rotate = new Command("rotate-secret", "Give the endpoint a new signing secret and print it (once).") { name, grace };
        rotate.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.PostAsync($"api/v1/webhooks/{Escape(parse.GetValue(name))}/rotate-secret", new { graceSeconds = parse.GetValue(grace) }, ct);
            ShowSecret(io, output, doc, $"Webhook endpoint '{Output.Str(doc?["webhook"]?["name"])}' has a new signing secret.");
        }));

        var test = new Command("test", "Queue a signed webhook.test event for the endpoint.") { name };
        test.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.PostAsync($"api/v1/webhooks/{Escape(parse.GetValue(name))}/test", null, ct);
            output.Success($"Test event queued as delivery {Output.Str(doc?["id"])}. Follow it: keyway webhook deliveries {parse.GetValue(name)}", doc);
        }));

        var status = new Option<string?>("--status") { Description = "Only deliveries in this state: pending, succeeded or failed." };
        var limit = new Option<int?>("--limit") { Description = "At most this many (default 50, at most 500)." };
        var deliveries = new Command("deliveries", "List the endpoint's deliveries, newest first.") { name, status, limit };
        deliveries.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var query = new List<string>();
            if (parse.GetValue(status) is { } s)
            {
                query.Add("status=" + Uri.EscapeDataString(s));
            }

            if (parse.GetValue(limit) is { } l)
            {
                query.Add("limit=" + l.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }

            var doc = await client.GetAsync($"api/v1/webhooks/{Escape(parse.GetValue(name))}/deliveries" + (query.Count == 0 ? "" : "?" + string.Join('&', query)), ct);
            output.Table(doc, doc?["deliveries"] as JsonArray,
                ("ID", d => Output.Str(d["id"])), ("EVENT", d => Output.Str(d["eventType"])), ("STATUS", d => Output.Str(d["status"])),
                ("ATTEMPTS", d => Output.Str(d["attempts"])), ("LAST", d => Output.Str(d["lastStatusCode"] ?? d["lastError"])),
                ("NEXT ATTEMPT", d => Output.When(d["nextAttemptAt"])), ("CREATED", d => Output.When(d["createdAt"])));
        }));

        var id = new Argument<string>("id") { Description = "The delivery's id (from 'keyway webhook deliveries')." };
        var redeliver = new Command("redeliver", "Send a delivery's payload again, as a new delivery.") { name, id };
        redeliver.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.PostAsync($"api/v1/webhooks/{Escape(parse.GetValue(name))}/deliveries/{Escape(parse.GetValue(id))}/redeliver", null, ct);
            output.Success($"Queued again as delivery {Output.Str(doc?["id"])}.", doc);
        }));

        foreach (var sub in new[] { list, create, get, update, delete, rotate, test, deliveries, redeliver })
        {
            command.Subcommands.Add(sub);
        }

        return command;
    }

    private static string Escape(string? value) => Uri.EscapeDataString(value ?? "");

    private static string Events(JsonNode? events) =>
        events is JsonArray array ? string.Join(", ", array.Select(e => Output.Str(e))) : "all";

    private static void ShowSecret(CliIo io, Output output, JsonNode? doc, string message)
    {
        if (output.Json)
        {
            output.WriteJson(doc);
            return;
        }

        output.Success(message + " Its signing secret, shown only now — store it in the receiver now:");
        io.Out.WriteLine(Output.Str(doc?["secret"]));
        if (doc?["webhook"]?["previousSecretUntil"] is { } until && until.GetValueKind() != System.Text.Json.JsonValueKind.Null)
        {
            io.Out.WriteLine($"The previous secret also signs until {Output.When(until)}: update the receiver before then.");
        }
    }
}

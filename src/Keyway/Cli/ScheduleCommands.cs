using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Keyway.Cli;

/// <summary><c>keyway schedule list|get|put|create|delete|run|history</c>: cron schedules.</summary>
internal static class ScheduleCommands
{
    public static Command Create(CliIo io)
    {
        var command = new Command("schedule", "Manage schedules: refresh or rotate a credential, run a saved query, or verify the audit chain on a cron.");

        var list = new Command("list", "List schedules with their next run (in each schedule's time zone) and last outcome.");
        list.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var doc = await client.GetAsync("api/v1/schedules", ct);
            output.Table(doc, doc?["schedules"] as JsonArray,
                ("NAME", s => Output.Str(s["name"])), ("ACTION", s => Output.Str(s["schedule"]?["action"])), ("TARGET", Target),
                ("CRON", s => Output.Str(s["schedule"]?["cron"])), ("ENABLED", s => s["schedule"]?["enabled"]?.GetValue<bool>() == false ? "no" : "yes"),
                ("NEXT RUN", s => Output.Str(s["nextRunLocal"])), ("LAST", s => Output.Str(s["lastRun"]?["outcome"])),
                ("LAST ERROR", s => Output.Str(s["lastRun"]?["errorCode"])));
        }));

        var getName = new Argument<string>("name") { Description = "The schedule's name." };
        var get = new Command("get", "Show a schedule.") { getName };
        get.SetAction(io.Client(async (client, output, parse, ct) =>
            output.WriteJson(await client.GetAsync($"api/v1/schedules/{Uri.EscapeDataString(parse.GetValue(getName)!)}", ct))));

        var file = new Option<string>("--file", "-f") { Description = "A JSON or YAML file with one schedule (or several), each with a 'name'. '-' reads stdin.", Required = true };
        var put = new Command("put", "Create or replace the schedules described in a file.\nExample: keyway schedule put -f nightly.yaml") { file };
        put.SetAction(io.Client((client, output, parse, ct) => ResourceCommands.ApplyAsync(io, client, output, parse.GetValue(file)!, "Schedule", "schedules", ct)));

        var name = new Argument<string>("name") { Description = "The schedule's name." };
        var cron = new Option<string>("--cron") { Description = "5 fields ('0 3 * * *') or 6 with seconds first.", Required = true };
        var zone = new Option<string?>("--time-zone", "--tz") { Description = "An IANA time zone (default UTC), e.g. Europe/Madrid." };
        var action = new Option<string>("--action") { Description = "refresh, rotate, run or verify.", Required = true };
        var resource = new Option<string?>("--resource") { Description = "The resource whose credential refresh or rotate acts on." };
        var variable = new Option<string?>("--variable") { Description = "The secret variable rotate runs the rotation flow of (instead of --resource)." };
        var query = new Option<string?>("--query") { Description = "The saved query run runs." };
        var env = new Option<string?>("--env", "-e") { Description = "The environment (default production)." };
        var inputs = new Option<string?>("--inputs") { Description = "A run's inputs as one JSON object, @FILE to read it from a file or @- from stdin." };
        var attempts = new Option<int?>("--max-attempts") { Description = "Attempts per run (default 3)." };
        var misfire = new Option<string?>("--misfire") { Description = "After downtime: fireOnce (default) or skip." };
        var disabled = new Option<bool>("--disabled") { Description = "Create it disabled." };
        var create = new Command("create", "Create or replace one schedule from options.\nExample: keyway schedule create nightly-refresh --cron '0 3 * * *' --tz Europe/Madrid --action refresh --resource billing")
        {
            name, cron, zone, action, resource, variable, query, env, inputs, attempts, misfire, disabled,
        };
        create.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var body = new JsonObject { ["cron"] = parse.GetValue(cron), ["action"] = parse.GetValue(action) };
            Set(body, "timeZone", parse.GetValue(zone));
            Set(body, "resource", parse.GetValue(resource));
            Set(body, "variable", parse.GetValue(variable));
            Set(body, "query", parse.GetValue(query));
            Set(body, "environment", parse.GetValue(env));
            Set(body, "misfire", parse.GetValue(misfire));
            if (parse.GetValue(attempts) is { } n)
            {
                body["maxAttempts"] = n;
            }

            if (parse.GetValue(disabled))
            {
                body["enabled"] = false;
            }

            if (parse.GetValue(inputs) is { } text)
            {
                try
                {
                    body["inputs"] = JsonNode.Parse(await ArgumentFiles.ReadAsync(io, text, "--inputs", ct));
                }
                catch (JsonException e)
                {
                    throw new CliException(ExitCodes.Usage, $"--inputs is not valid JSON: {e.Message}");
                }
            }

            var result = await client.PutAsync($"api/v1/schedules/{Uri.EscapeDataString(parse.GetValue(name)!)}", body, ct);
            output.Success($"Schedule '{parse.GetValue(name)}' saved; next run {Output.Str(result?["nextRunLocal"])}.", result);
        }));

        var delName = new Argument<string>("name") { Description = "The schedule's name." };
        var delete = new Command("delete", "Delete a schedule and its history.") { delName };
        delete.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            await client.DeleteAsync($"api/v1/schedules/{Uri.EscapeDataString(parse.GetValue(delName)!)}", ct);
            output.Success($"Schedule '{parse.GetValue(delName)}' deleted.");
        }));

        var runName = new Argument<string>("name") { Description = "The schedule to run now." };
        var noWait = new Option<bool>("--no-wait") { Description = "Do not wait for a run that goes to retry: print its id and where to follow it, and return." };
        var run = new Command("run", "Run a schedule now (as its owner, with its retries) and show how it went; waits through its retries unless --no-wait.") { runName, noWait };
        run.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var name = Uri.EscapeDataString(parse.GetValue(runName)!);
            var result = await client.PostAsync($"api/v1/schedules/{name}/run", null, ct);
            // 202: the first attempt failed and the run waits to retry, on the server. Follow its history entry.
            var attempts = -1;
            while (Output.Str(result?["outcome"]) == "running" && !parse.GetValue(noWait))
            {
                if (result?["attempts"]?.GetValue<int>() is { } n && n != attempts)
                {
                    attempts = n;
                    output.Progress($"attempt {n} failed ({Output.Str(result?["errorCode"])}); retrying (keyway schedule history {parse.GetValue(runName)})…");
                }

                await Task.Delay(TimeSpan.FromSeconds(1), ct);
                result = await client.GetAsync($"api/v1/schedules/{name}/runs/{Output.Str(result?["id"])}", ct);
            }

            output.Details(result, ("outcome", Output.Str(result?["outcome"])), ("run", Output.Str(result?["id"])), ("attempts", Output.Str(result?["attempts"])),
                ("duration", $"{Output.Str(result?["durationMs"])} ms"), ("error", Output.Str(result?["errorCode"])), ("status", Output.Str(result?["status"])));
            if (Output.Str(result?["outcome"]) == "failed")
            {
                throw new CliException(ExitCodes.Failure, $"Schedule '{parse.GetValue(runName)}' failed ({Output.Str(result?["errorCode"])}).");
            }
        }));

        var historyName = new Argument<string>("name") { Description = "The schedule." };
        var limit = new Option<int?>("--limit", "-n") { Description = "How many runs (newest first; at most 100)." };
        var history = new Command("history", "A schedule's runs, newest first.") { historyName, limit };
        history.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var query = parse.GetValue(limit) is { } n ? $"?limit={n}" : "";
            var doc = await client.GetAsync($"api/v1/schedules/{Uri.EscapeDataString(parse.GetValue(historyName)!)}/history{query}", ct);
            output.Table(doc, doc?["runs"] as JsonArray,
                ("SCHEDULED", r => Output.When(r["scheduledAt"])), ("KIND", r => Output.Str(r["kind"])), ("STARTED", r => Output.When(r["startedAt"])),
                ("OUTCOME", r => Output.Str(r["outcome"])), ("ATTEMPTS", r => Output.Str(r["attempts"])), ("MS", r => Output.Str(r["durationMs"])),
                ("ERROR", r => Output.Str(r["errorCode"])), ("REPLICA", r => Output.Str(r["replica"])));
        }));

        command.Subcommands.Add(list);
        command.Subcommands.Add(get);
        command.Subcommands.Add(put);
        command.Subcommands.Add(create);
        command.Subcommands.Add(delete);
        command.Subcommands.Add(run);
        command.Subcommands.Add(history);
        return command;
    }

    private static string Target(JsonNode schedule)
    {
        var s = schedule["schedule"];
        var env = Output.Str(s?["environment"]) is "-" ? "production" : Output.Str(s?["environment"]);
        return Output.Str(s?["action"]) switch
        {
            "verify" => "audit chain",
            "run" => $"query {Output.Str(s?["query"])} ({env})",
            "rotate" when s?["variable"] is not null => $"variable {Output.Str(s?["variable"])} ({env})",
            _ => $"{Output.Str(s?["resource"])} ({env})",
        };
    }

    private static void Set(JsonObject body, string field, string? value)
    {
        if (value is not null)
        {
            body[field] = value;
        }
    }
}

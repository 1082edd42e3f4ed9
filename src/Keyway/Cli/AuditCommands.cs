using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Keyway.Cli;

/// <summary><c>keyway audit list|tail|verify|export|prune</c>: read and check the tamper-evident audit log (admins).</summary>
internal static class AuditCommands
{
    private const string AuditPath = "api/v1/audit";

    public static Command Create(CliIo io)
    {
        var command = new Command("audit", "Read, follow, export and verify the audit log (a hash chain of every change, credential event and run).");
        command.Subcommands.Add(List(io));
        command.Subcommands.Add(Tail(io));
        command.Subcommands.Add(Verify(io));
        command.Subcommands.Add(Export(io));
        command.Subcommands.Add(Prune(io));
        return command;
    }

    private sealed record Filters(Option<string?> Actor, Option<string?> Resource, Option<string?> Action, Option<string?> Since, Option<string?> Until)
    {
        public static Filters Create() => new(
            new Option<string?>("--actor") { Description = "A user id, user name or API key id." },
            new Option<string?>("--resource") { Description = "A resource name." },
            new Option<string?>("--action") { Description = "An action (resource.put), or a prefix ending in '.' (credential.)." },
            new Option<string?>("--since") { Description = "From this time: ISO 8601, or an age such as 15m, 2h, 7d." },
            new Option<string?>("--until") { Description = "Before this time: ISO 8601, or an age such as 15m, 2h, 7d." });

        public void AddTo(Command command)
        {
            command.Options.Add(Actor);
            command.Options.Add(Resource);
            command.Options.Add(Action);
            command.Options.Add(Since);
            command.Options.Add(Until);
        }

        public List<string> Query(ParseResult parse)
        {
            var query = new List<string>();
            Add(query, "actor", parse.GetValue(Actor));
            Add(query, "resource", parse.GetValue(Resource));
            Add(query, "action", parse.GetValue(Action));
            Add(query, "since", Time(parse.GetValue(Since), "--since"));
            Add(query, "until", Time(parse.GetValue(Until), "--until"));
            return query;
        }
    }

    private static Command List(CliIo io)
    {
        var filters = Filters.Create();
        var limit = new Option<int>("--limit", "-n") { Description = "How many events (the newest; at most 1000).", DefaultValueFactory = _ => 50 };
        var after = new Option<long?>("--after") { Description = "Only events after this seq (oldest first from there)." };
        var before = new Option<long?>("--before") { Description = "Only events before this seq: the newest --limit of them (page back with the first seq shown)." };
        var command = new Command("list", "List audit events, oldest first: the newest --limit, those after --after, or the newest before --before.\n" +
                                          "Example: keyway audit list --action credential. --since 1h") { limit, after, before };
        filters.AddTo(command);
        command.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var query = filters.Query(parse);
            Add(query, "limit", parse.GetValue(limit).ToString(CultureInfo.InvariantCulture));
            Add(query, "after", parse.GetValue(after)?.ToString(CultureInfo.InvariantCulture));
            Add(query, "before", parse.GetValue(before)?.ToString(CultureInfo.InvariantCulture));
            var doc = await client.GetAsync(AuditPath + Join(query), ct);
            Table(output, doc, doc?["events"] as JsonArray);
        }));
        return command;
    }

    private static Command Tail(CliIo io)
    {
        var filters = Filters.Create();
        var last = new Option<int>("--last", "-n") { Description = "How many past events to show first.", DefaultValueFactory = _ => 10 };
        var interval = new Option<double>("--interval") { Description = "Seconds between polls.", DefaultValueFactory = _ => 1 };
        var max = new Option<int?>("--max") { Description = "Stop after printing this many events (default: follow until interrupted)." };
        var command = new Command("tail", "Print the newest events, then follow new ones as they are recorded (Ctrl+C stops). " +
                                          "With --json, one JSON object per line.") { last, interval, max };
        filters.AddTo(command);
        command.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var query = filters.Query(parse);
            var limit = parse.GetValue(last);
            var remaining = parse.GetValue(max) ?? int.MaxValue;
            var delay = TimeSpan.FromSeconds(Math.Max(0.1, parse.GetValue(interval)));
            long? cursor = null;
            if (limit <= 0)
            {
                // Only what comes next: start from the newest event.
                var newest = await client.GetAsync(AuditPath + Join([.. query, "limit=1"]), ct);
                cursor = newest?["next"]?.GetValue<long?>() ?? 0;
            }

            while (remaining > 0 && !ct.IsCancellationRequested)
            {
                var page = new List<string>(query) { $"limit={(cursor is null ? Math.Min(limit, 1000) : 1000)}" };
                Add(page, "after", cursor?.ToString(CultureInfo.InvariantCulture));
                var doc = await client.GetAsync(AuditPath + Join(page), ct);
                var events = doc?["events"] as JsonArray ?? [];
                foreach (var e in events.Take(remaining))
                {
                    io.Out.WriteLine(output.Json ? e!.ToJsonString(CliJson.Compact) : Line(e!));
                }

                remaining -= events.Count;
                cursor = doc?["next"]?.GetValue<long?>() ?? cursor ?? 0;
                await io.Out.FlushAsync(ct);
                if (remaining > 0 && events.Count < 1000)
                {
                    try
                    {
                        await Task.Delay(delay, ct);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }
            }
        }));
        return command;
    }

    private static Command Verify(CliIo io)
    {
        var command = new Command("verify", "Walk the hash chain and check the head's seal. Exits 8 and names the first broken event (seq, id, what is wrong) " +
                                            "if any event was edited, deleted, reordered or inserted, or the chain was rewritten without the master key.");
        command.SetAction(io.Client(async (client, output, _, ct) =>
        {
            var doc = await client.PostAsync(AuditPath + "/verify", null, ct);
            var ok = doc?["ok"]?.GetValue<bool>() == true;
            if (output.Json)
            {
                output.WriteJson(doc);
            }
            else if (ok)
            {
                var sealKey = doc?["head"]?["sealKey"];
                var checkpoint = doc?["checkpoint"] is JsonObject c
                    ? $" from checkpoint {Output.Str(c["number"])} at seq {Output.Str(c["seq"])} (events before it pruned by retention)"
                    : "";
                output.Success($"The audit chain verifies{checkpoint}: {Output.Str(doc?["checked"])} events; head seq {Output.Str(doc?["head"]?["seq"])}, hash {Output.Str(doc?["head"]?["hash"])}" +
                    (sealKey is null ? "." : $", sealed under master key {Output.Str(sealKey)}."));
            }

            if (!ok)
            {
                var broken = doc?["firstBroken"];
                throw new CliException(ExitCodes.Tampered,
                    $"The audit chain is broken at event seq {Output.Str(broken?["seq"])} (id {Output.Str(broken?["id"])}): {Output.Str(broken?["problem"])}",
                    "audit_chain_broken");
            }
        }));
        return command;
    }

    private static Command Export(CliIo io)
    {
        var filters = Filters.Create();
        var file = new Option<string?>("--output", "-o") { Description = "Write to this file instead of standard output." };
        var after = new Option<long?>("--after") { Description = "Only events after this seq (resume an earlier export)." };
        var command = new Command("export", "Export audit events as JSON lines (application/x-ndjson), oldest first, for a SIEM.\n" +
                                            "Example: keyway audit export --output audit.jsonl") { file, after };
        filters.AddTo(command);
        command.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var query = filters.Query(parse);
            Add(query, "after", parse.GetValue(after)?.ToString(CultureInfo.InvariantCulture));
            var path = parse.GetValue(file);
            using var response = await client.GetStreamAsync(AuditPath + "/export" + Join(query), "application/x-ndjson", ct);
            await using var body = await response.Content.ReadAsStreamAsync(ct);
            using var reader = new StreamReader(body, Encoding.UTF8);
            if (path is null)
            {
                while (await reader.ReadLineAsync(ct) is { } line)
                {
                    await io.Out.WriteLineAsync(line);
                }

                await io.Out.FlushAsync(ct);
                return;
            }

            // To a file: the newest seq gives the progress bar its end.
            var newest = await client.GetAsync(AuditPath + "?limit=1", ct);
            var total = Math.Max(1, (newest?["next"]?.GetValue<long?>() ?? 0) - (parse.GetValue(after) ?? 0));
            long count = 0;
            await using (var writer = new StreamWriter(path, append: false, new UTF8Encoding(false)))
            {
                async Task CopyAsync(ProgressTask? task)
                {
                    while (await reader.ReadLineAsync(ct) is { } line)
                    {
                        await writer.WriteLineAsync(line);
                        count++;
                        task?.Value(Math.Min(count, total));
                    }

                    task?.Value(total);
                }

                var terminal = !output.Json && ReferenceEquals(io.Error, System.Console.Error) && !System.Console.IsErrorRedirected;
                if (terminal)
                {
                    var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(System.Console.Error) });
                    await console.Progress()
                        .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
                        .StartAsync(p => CopyAsync(p.AddTask("Exporting audit events", maxValue: total)));
                }
                else
                {
                    await CopyAsync(null);
                }
            }

            output.Success($"Exported {count} events to {path}.", new JsonObject { ["ok"] = true, ["events"] = count, ["file"] = path });
        }));
        return command;
    }

    private static Command Prune(CliIo io)
    {
        var dryRun = new Option<bool>("--dry-run") { Description = "Only count what would be pruned; change nothing." };
        var command = new Command("prune", "Delete the audit events past their retention (KEYWAY_AUDIT_RETAIN_TRAFFIC, KEYWAY_AUDIT_RETAIN_CHANGES), after a sealed " +
                                           "checkpoint that verify starts from (and an NDJSON archive of them with KEYWAY_AUDIT_ARCHIVE_DIR). The server also prunes on its own " +
                                           "every KEYWAY_AUDIT_PRUNE_INTERVAL.\nExample: keyway audit prune --dry-run") { dryRun };
        command.SetAction(io.Client(async (client, output, parse, ct) =>
        {
            var path = AuditPath + "/prune" + (parse.GetValue(dryRun) ? "?dryRun=true" : "");
            JsonNode? doc = null;
            var terminal = !output.Json && ReferenceEquals(io.Error, System.Console.Error) && !System.Console.IsErrorRedirected;
            if (terminal)
            {
                // One request does the work; the spinner says it is under way on a large log.
                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(System.Console.Error) });
                await console.Status().StartAsync(parse.GetValue(dryRun) ? "Counting audit events past their retention…" : "Pruning the audit log…",
                    async _ => doc = await client.PostAsync(path, null, ct));
            }
            else
            {
                doc = await client.PostAsync(path, null, ct);
            }

            var dry = doc?["dryRun"]?.GetValue<bool>() == true;
            var pruned = doc?["pruned"]?.GetValue<long>() ?? 0;
            var checkpoint = doc?["checkpoint"];
            output.Details(doc,
                (dry ? "Would prune" : "Pruned", $"{pruned} events ({Output.Str(doc?["traffic"])} traffic, {Output.Str(doc?["changes"])} changes)"),
                ("Kept before the cut", $"{Output.Str(doc?["kept"])} events within their retention"),
                ("Cut at seq", Output.Str(doc?["cutSeq"])),
                ("Traffic before", doc?["trafficBefore"] is { } t ? Output.When(t) : "kept for ever"),
                ("Changes before", doc?["changesBefore"] is { } c ? Output.When(c) : "kept for ever"),
                ("Checkpoint", checkpoint is null ? "-" : $"{Output.Str(checkpoint["number"])} at seq {Output.Str(checkpoint["seq"])}, hash {Output.Str(checkpoint["hash"])}"),
                ("Archive", Output.Str(doc?["archive"])));
            if (!output.Json)
            {
                output.Success(dry ? $"Dry run: {pruned} events would be pruned; nothing changed."
                    : pruned == 0 ? "Nothing is past its retention; nothing pruned." : $"Pruned {pruned} events; keyway audit verify starts from checkpoint {Output.Str(checkpoint?["number"])}.");
            }
        }));
        return command;
    }

    private static void Table(Output output, JsonNode? document, JsonArray? rows) =>
        output.Table(document, rows,
            ("SEQ", e => Output.Str(e["seq"])), ("AT", e => Output.When(e["at"])), ("ACTOR", Actor), ("ACTION", e => Output.Str(e["action"])),
            ("OUTCOME", e => Output.Str(e["outcome"])), ("RESOURCE", e => Output.Str(e["resource"])), ("ENV", e => Output.Str(e["environment"])),
            ("TARGET", e => Output.Str(e["target"])), ("DETAIL", Detail));

    private static string Line(JsonNode e) =>
        $"{Output.Str(e["seq"])}  {Output.When(e["at"])}  {Actor(e)}  {Output.Str(e["action"])}  {Output.Str(e["outcome"])}  " +
        $"{Output.Str(e["resource"])}  {Output.Str(e["environment"])}  {Output.Str(e["target"])}  {Detail(e)}";

    private static string Actor(JsonNode e)
    {
        var name = Output.Str(e["actor"]?["name"]);
        return e["actor"]?["keyId"] is { } key ? $"{name} (key {Output.Str(key)})" : name;
    }

    private static string Detail(JsonNode e) => e["detail"] switch
    {
        JsonObject rollup when Output.Str(e["action"]) == "traffic.rollup" => Rollup(rollup),
        JsonObject o => string.Join(' ', o.Where(kv => kv.Value is not null).Select(kv => $"{kv.Key}={Output.Str(kv.Value)}")),
        _ => "-",
    };

    /// <summary>A rollup in one short line: "proxy GET 2xx count=23 slowest=40ms in=0B out=2048B 09:15:00Z-09:16:00Z", then errors and refreshes if any.</summary>
    private static string Rollup(JsonObject d)
    {
        static string Time(JsonNode? at) => Output.When(at) is var t && t.Length > 11 ? t[11..] : t;
        var line = $"{Output.Str(d["kind"])} {Output.Str(d["method"])} {Output.Str(d["statusClass"])} count={Output.Str(d["count"])} " +
                   $"slowest={Output.Str(d["slowestMs"])}ms in={Output.Str(d["bytesIn"])}B out={Output.Str(d["bytesOut"])}B " +
                   $"{Time(d["intervalStart"])}-{Time(d["intervalEnd"])}";
        if (d["refreshed"] is JsonValue refreshed && refreshed.TryGetValue<long>(out var r) && r > 0)
        {
            line += $" refreshed={r}";
        }

        if (d["errors"] is JsonValue errors && errors.TryGetValue<long>(out var n) && n > 0)
        {
            line += $" errors={n} {Output.Str(d["errorCodes"])}";
        }

        return line;
    }

    private static void Add(List<string> query, string name, string? value)
    {
        if (!string.IsNullOrWhiteSpace(value))
        {
            query.Add($"{name}={Uri.EscapeDataString(value)}");
        }
    }

    private static string Join(List<string> query) => query.Count == 0 ? "" : "?" + string.Join('&', query);

    /// <summary>An ISO 8601 time, or an age (<c>90s</c>, <c>15m</c>, <c>2h</c>, <c>7d</c>) before now by <paramref name="time"/> (the system clock when null).</summary>
    internal static string? Time(string? value, string option, TimeProvider? time = null)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        value = value.Trim();
        if (value.Length > 1 && char.IsAsciiLetter(value[^1]) &&
            double.TryParse(value[..^1], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var amount))
        {
            TimeSpan? age = char.ToLowerInvariant(value[^1]) switch
            {
                's' => TimeSpan.FromSeconds(amount),
                'm' => TimeSpan.FromMinutes(amount),
                'h' => TimeSpan.FromHours(amount),
                'd' => TimeSpan.FromDays(amount),
                _ => null,
            };
            if (age is { } a)
            {
                return ((time ?? TimeProvider.System).GetUtcNow() - a).ToString("O", CultureInfo.InvariantCulture);
            }
        }

        return DateTimeOffset.TryParse(value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var when)
            ? when.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture)
            : throw new CliException(ExitCodes.Usage, $"{option} must be an ISO 8601 time or an age such as 15m, 2h or 7d; '{value}' is neither.");
    }
}

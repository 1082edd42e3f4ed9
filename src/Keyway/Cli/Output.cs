using System.Text.Json.Nodes;
using Spectre.Console;

namespace Keyway.Cli;

/// <summary>How the CLI prints: human tables by default, the API's JSON with <c>--json</c>.</summary>
internal sealed class Output(bool json, IAnsiConsole console, TextWriter error)
{
    public bool Json { get; } = json;

    public IAnsiConsole Console { get; } = console;

    public void WriteJson(JsonNode? node) => Console.Profile.Out.Writer.WriteLine(node?.ToJsonString(CliJson.Indented) ?? "null");

    /// <summary>Prints a table of <paramref name="rows"/> (or the JSON document when <c>--json</c>).</summary>
    public void Table(JsonNode? document, JsonArray? rows, params (string Header, Func<JsonNode, string> Cell)[] columns)
    {
        if (Json)
        {
            WriteJson(document);
            return;
        }

        if (rows is null || rows.Count == 0)
        {
            Console.MarkupLine("[grey](none)[/]");
            return;
        }

        var table = new Table().Border(TableBorder.Rounded);
        foreach (var (header, _) in columns)
        {
            table.AddColumn(new TableColumn($"[bold]{Markup.Escape(header)}[/]"));
        }

        foreach (var row in rows)
        {
            table.AddRow(columns.Select(c => (Spectre.Console.Rendering.IRenderable)new Text(c.Cell(row!))).ToArray());
        }

        Console.Write(table);
    }

    /// <summary>Prints name/value pairs of one object (or the JSON document when <c>--json</c>).</summary>
    public void Details(JsonNode? document, params (string Name, string? Value)[] fields)
    {
        if (Json)
        {
            WriteJson(document);
            return;
        }

        var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        foreach (var (name, value) in fields)
        {
            grid.AddRow(new Markup($"[grey]{Markup.Escape(name)}[/]"), new Text(value ?? "-"));
        }

        Console.Write(grid);
    }

    public void Success(string message, JsonNode? document = null)
    {
        if (Json)
        {
            WriteJson(document ?? new JsonObject { ["ok"] = true });
            return;
        }

        Console.MarkupLine($"[green]✓[/] {Markup.Escape(message)}");
    }

    /// <summary>A line about work under way, on standard error: standard output keeps only the result (and stays JSON with <c>--json</c>).</summary>
    public void Progress(string message) => error.WriteLine(message);

    public void Error(CliException e)
    {
        error.WriteLine($"error: {e.Message}" + (e.Code is null ? "" : $" ({e.Code})"));
        foreach (var item in e.Errors ?? [])
        {
            error.WriteLine($"  - {item?["field"]}: {item?["message"]}");
        }
    }

    public static string Str(JsonNode? node) => node switch
    {
        null => "-",
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        _ => node.ToJsonString(CliJson.Compact),
    };

    public static string When(JsonNode? node) =>
        node is JsonValue v && v.TryGetValue<string>(out var s) && DateTimeOffset.TryParse(s, out var t)
            ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'")
            : "-";
}

using System.Text.Json.Nodes;
using Keyway.Api;
using Keyway.Config;
using Keyway.Resources;

namespace Keyway.Cli;

/// <summary>One object read from a file: its canonical document, and where it is written (for errors).</summary>
internal sealed record ConfigEntry(ConfigObject Object, string Source, ConfigDocument Document)
{
    /// <summary>"file.yaml (line 3, column 1)": where a spec field (or the document) is written.</summary>
    public string Where(string? specField = null) => Source + Document.Where(specField is null ? "" : "spec." + specField);
}

/// <summary>
/// The objects of the files and directories given to <c>plan</c> and <c>apply</c>: each document read
/// as the server would read it, so an unknown field, a missing name or an unknown kind is an error
/// that says file, line, column and field before anything is sent.
/// </summary>
internal static class ConfigSet
{
    private static readonly string[] s_extensions = [".yaml", ".yml", ".json"];

    public static async Task<List<ConfigEntry>> ReadAsync(IReadOnlyList<string> paths, TextReader stdin, CancellationToken ct)
    {
        var entries = new List<ConfigEntry>();
        foreach (var (path, text) in await FilesAsync(paths, stdin, ct))
        {
            foreach (var document in ConfigFiles.Parse(text, path, "configuration objects"))
            {
                entries.Add(Read(path, document));
            }
        }

        foreach (var duplicate in entries.GroupBy(e => e.Object.Key).Where(g => g.Count() > 1))
        {
            throw new CliException(ExitCodes.Invalid,
                $"{duplicate.First().Object.Title} is written twice: {string.Join(" and ", duplicate.Select(e => e.Where()))}. Keep one.");
        }

        return entries;
    }

    private static async Task<List<(string Path, string Text)>> FilesAsync(IReadOnlyList<string> paths, TextReader stdin, CancellationToken ct)
    {
        var files = new List<(string, string)>();
        foreach (var path in paths)
        {
            if (path == "-")
            {
                files.Add(("stdin", await stdin.ReadToEndAsync(ct)));
            }
            else if (Directory.Exists(path))
            {
                var found = Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
                    .Where(f => s_extensions.Contains(Path.GetExtension(f), StringComparer.OrdinalIgnoreCase) && Path.GetFileName(f) != ConfigCommands.SchemaFile)
                    .Order(StringComparer.Ordinal)
                    .ToList();
                foreach (var file in found)
                {
                    files.Add((file, await ConfigFiles.ReadAsync(file, ct)));
                }
            }
            else
            {
                files.Add((path, await ConfigFiles.ReadAsync(path, ct)));
            }
        }

        if (files.Count == 0)
        {
            throw new CliException(ExitCodes.Usage, $"No .yaml, .yml or .json file in {string.Join(", ", paths)}.");
        }

        return files;
    }

    private static ConfigEntry Read(string source, ConfigDocument document)
    {
        ConfigFileDocument envelope;
        try
        {
            envelope = ConfigSpecs.Read<ConfigFileDocument>(document.Body, "document");
        }
        catch (KeywayException e)
        {
            throw Invalid(source, document, "a document", e, "");
        }

        var at = source + document.Where("");
        if (ConfigKinds.Order.Contains(envelope.Kind ?? "", StringComparer.Ordinal) is false)
        {
            var hint = envelope.Kind is null ? "" : ConfigKinds.Parse(envelope.Kind) ?? ConfigJsonErrors.Closest(envelope.Kind, ConfigKinds.Order);
            throw new CliException(ExitCodes.Invalid, envelope.Kind is null
                ? $"{at}: a document without 'kind'. Write one of {string.Join(", ", ConfigKinds.Order)}."
                : $"{source}{document.Where("kind")}: unknown kind '{envelope.Kind}'" + (hint is null ? $"; the kinds are {string.Join(", ", ConfigKinds.Order)}." : $" — did you mean '{hint}'?"));
        }

        var kind = envelope.Kind!;
        if (string.IsNullOrWhiteSpace(envelope.Name))
        {
            throw new CliException(ExitCodes.Invalid, $"{at}: a {kind} without 'name'.");
        }

        if (kind == ConfigKinds.Variable && string.IsNullOrWhiteSpace(envelope.Environment))
        {
            throw new CliException(ExitCodes.Invalid, $"{at}: variable '{envelope.Name}' has no 'environment': name the environment it belongs to.");
        }

        if (kind != ConfigKinds.Variable && envelope.Environment is not null)
        {
            throw new CliException(ExitCodes.Invalid, $"{source}{document.Where("environment")}: only a Variable belongs to an environment; remove 'environment' from {kind.ToLowerInvariant()} '{envelope.Name}'.");
        }

        var title = $"{kind.ToLowerInvariant()} '{envelope.Name}'";
        JsonObject spec;
        try
        {
            spec = ConfigSpecs.Canonical(kind, envelope.Spec ?? []);
        }
        catch (KeywayException e)
        {
            throw Invalid(source, document, title, e, "spec.");
        }

        var entry = new ConfigEntry(new ConfigObject(kind, envelope.Name, envelope.Environment, spec), source, document);
        Check(entry);
        return entry;
    }

    /// <summary>What a file may not say, whatever the server would: a secret's value, a plain variable without one, a grant without exactly one principal.</summary>
    private static void Check(ConfigEntry entry)
    {
        var (o, spec) = (entry.Object, entry.Object.Spec);
        if (o.Kind == ConfigKinds.Variable && spec["secret"] is not null && spec["value"] is not null)
        {
            throw new CliException(ExitCodes.Invalid,
                $"{entry.Where("value")}: {o.Title} is a secret: its value is never kept in a file. Remove 'value' and set it with: keyway var set {o.Name} --env {o.Environment} --secret");
        }

        if (o.Kind == ConfigKinds.Variable && spec["secret"] is null && spec["value"] is null)
        {
            throw new CliException(ExitCodes.Invalid, $"{entry.Where()}: {o.Title} is a plain variable without a value: give it 'value', or 'secret: true'.");
        }

        if (o.Kind == ConfigKinds.Grants)
        {
            var grants = spec["grants"] as JsonArray ?? [];
            for (var i = 0; i < grants.Count; i++)
            {
                var g = grants[i]!;
                if ((g["user"] is null ? 0 : 1) + (g["group"] is null ? 0 : 1) + (g["everyone"] is null ? 0 : 1) != 1 || g["permission"] is null)
                {
                    throw new CliException(ExitCodes.Invalid,
                        $"{entry.Where("grants")}: each grant of {o.Title} names exactly one of 'user', 'group' or 'everyone: true', and a 'permission' (use, edit or own).");
                }
            }
        }
    }

    private static CliException Invalid(string source, ConfigDocument document, string title, KeywayException e, string prefix)
    {
        var errors = new JsonArray();
        if (e.Extensions?.TryGetValue("errors", out var list) == true && list is IEnumerable<FieldError> fields)
        {
            foreach (var field in fields)
            {
                errors.Add(new JsonObject { ["field"] = prefix + field.Field + document.Where(prefix + field.Field), ["message"] = field.Message });
            }
        }

        return new CliException(ExitCodes.Invalid, $"{source}{document.Where("")}, {title}: {e.Message}", e.Code, errors);
    }
}

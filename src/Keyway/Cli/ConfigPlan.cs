using System.Text.Json.Nodes;
using Keyway.Config;

namespace Keyway.Cli;

internal enum ChangeAction
{
    Create,
    Update,
    Delete,
}

/// <summary>One field that differs: its path in the spec, what the server has, what the files say (null: absent).</summary>
internal sealed record FieldChange(string Path, JsonNode? Before, JsonNode? After);

/// <summary>One object to create, update or delete; <see cref="Entry"/> is where the files say it (null for a delete).</summary>
internal sealed record ConfigChange(ChangeAction Action, ConfigObject Object, ConfigObject? Current, ConfigEntry? Entry, IReadOnlyList<FieldChange> Fields)
{
    /// <summary>A secret variable the files describe and the server does not hold: it cannot be created without its value.</summary>
    public bool ValueMissing => Action == ChangeAction.Create && Object.Kind == ConfigKinds.Variable && Object.Spec["secret"] is not null;
}

/// <summary>
/// What <c>apply</c> would do: the files' canonical documents against the server's export, object by
/// object and field by field. Unchanged objects are not part of it (they are never sent). With prune,
/// the objects of the kinds the files hold (variables: of the environments they name) that the files
/// do not hold are deleted.
/// </summary>
internal sealed class ConfigPlan(IReadOnlyList<ConfigChange> changes, int unchanged, IReadOnlyList<string> notes)
{
    public IReadOnlyList<ConfigChange> Changes { get; } = changes;

    public int Unchanged { get; } = unchanged;

    /// <summary>What the plan will not do and says why (the 'production' environment is never deleted).</summary>
    public IReadOnlyList<string> Notes { get; } = notes;

    public int Count(ChangeAction action) => Changes.Count(c => c.Action == action);

    public static ConfigPlan Make(IReadOnlyList<ConfigEntry> files, IReadOnlyList<ConfigObject> server, bool prune)
    {
        var current = server.ToDictionary(o => o.Key, StringComparer.Ordinal);
        var changes = new List<ConfigChange>();
        var unchanged = 0;
        foreach (var entry in files.OrderBy(e => ConfigKinds.Rank(e.Object.Kind)).ThenBy(e => e.Object.Environment ?? "", StringComparer.Ordinal).ThenBy(e => e.Object.Name, StringComparer.Ordinal))
        {
            if (!current.TryGetValue(entry.Object.Key, out var existing))
            {
                changes.Add(new ConfigChange(ChangeAction.Create, entry.Object, null, entry, Diff("", null, entry.Object.Spec)));
            }
            else if (!ConfigTree.Same(existing.Spec, entry.Object.Spec))
            {
                changes.Add(new ConfigChange(ChangeAction.Update, entry.Object, existing, entry, Diff("", existing.Spec, entry.Object.Spec)));
            }
            else
            {
                unchanged++;
            }
        }

        var notes = new List<string>();
        if (prune)
        {
            var kinds = files.Select(e => e.Object.Kind).ToHashSet(StringComparer.Ordinal);
            var environments = files.Select(e => e.Object.Kind == ConfigKinds.Environment ? e.Object.Name : e.Object.Environment)
                .OfType<string>().ToHashSet(StringComparer.Ordinal);
            var wanted = files.Select(e => e.Object.Key).ToHashSet(StringComparer.Ordinal);
            foreach (var o in ConfigObject.Sorted(server).Reverse())
            {
                if (!kinds.Contains(o.Kind) || wanted.Contains(o.Key) || (o.Kind == ConfigKinds.Variable && !environments.Contains(o.Environment!)))
                {
                    continue;
                }

                if (o.Kind == ConfigKinds.Environment && o.Name == Environments.VariableService.Production)
                {
                    notes.Add("The 'production' environment is not in the files; it is never deleted.");
                    continue;
                }

                changes.Add(new ConfigChange(ChangeAction.Delete, o, o, null, Diff("", o.Spec, null)));
            }
        }

        return new ConfigPlan(changes, unchanged, notes);
    }

    /// <summary>Leaf by leaf; a list that changed is one change (its items have no identity of their own).</summary>
    private static List<FieldChange> Diff(string path, JsonNode? before, JsonNode? after)
    {
        var result = new List<FieldChange>();
        if (before is JsonObject b && after is JsonObject a)
        {
            foreach (var key in b.Select(kv => kv.Key).Union(a.Select(kv => kv.Key)))
            {
                result.AddRange(Diff(path.Length == 0 ? key : $"{path}.{key}", b[key], a[key]));
            }
        }
        else if (before is JsonObject only && after is null)
        {
            result.AddRange(only.SelectMany(kv => Diff(path.Length == 0 ? kv.Key : $"{path}.{kv.Key}", kv.Value, null)));
        }
        else if (after is JsonObject added && before is null)
        {
            result.AddRange(added.SelectMany(kv => Diff(path.Length == 0 ? kv.Key : $"{path}.{kv.Key}", null, kv.Value)));
        }
        else if (!ConfigTree.Same(before, after))
        {
            result.Add(new FieldChange(path, before?.DeepClone(), after?.DeepClone()));
        }

        return result;
    }

    /// <summary>The command that sets a secret the server lacks, with the metadata the files give it, so one command makes it what the files say.</summary>
    public static string SetCommand(ConfigObject variable)
    {
        var command = $"keyway var set {variable.Name} --env {variable.Environment} --secret";
        var spec = variable.Spec;
        foreach (var origin in spec["origins"] as JsonArray ?? [])
        {
            command += $" --origin {origin}";
        }

        command += spec["expiresAt"] is { } expires ? $" --expires-at {expires.GetValue<string>()}" : "";
        command += spec["rotateEvery"] is { } every ? $" --rotate-every {every.GetValue<string>()}" : "";
        command += spec["expiredPolicy"] is { } policy ? $" --expired-policy {policy.GetValue<string>()}" : "";
        command += spec["keepVersions"] is { } keep ? $" --keep-versions {keep.ToJsonString()}" : "";
        return command;
    }

    /// <summary>The plan as text: one line per object, one per field under updates; secret variables by name and metadata only (a file never holds their value).</summary>
    public void Write(TextWriter output)
    {
        foreach (var change in Changes)
        {
            var (sign, verb) = change.Action switch
            {
                ChangeAction.Create => ("+", "create"),
                ChangeAction.Update => ("~", "update"),
                _ => ("-", "delete"),
            };
            output.WriteLine($"{sign} {verb} {change.Object.Title}" + (change.Entry is { } e ? $" — {e.Where()}" : ""));
            if (change.ValueMissing)
            {
                output.WriteLine($"    ! value missing — set it with: {SetCommand(change.Object)}");
                continue;
            }

            foreach (var field in change.Fields)
            {
                output.WriteLine(change.Action switch
                {
                    ChangeAction.Create => $"    + {field.Path}: {Show(field.After)}",
                    ChangeAction.Delete => $"    - {field.Path}: {Show(field.Before)}",
                    _ => $"    ~ {field.Path}: {Show(field.Before)} → {Show(field.After)}",
                });
            }
        }

        foreach (var note in Notes)
        {
            output.WriteLine($"note: {note}");
        }

        output.WriteLine(Changes.Count == 0
            ? $"No changes: the server matches the files ({Unchanged} objects)."
            : $"Plan: {Count(ChangeAction.Create)} to create, {Count(ChangeAction.Update)} to update, {Count(ChangeAction.Delete)} to delete; {Unchanged} unchanged.");
    }

    public JsonObject ToJson() => new()
    {
        ["changes"] = new JsonArray(Changes.Select(c => (JsonNode?)new JsonObject
        {
            ["action"] = c.Action.ToString().ToLowerInvariant(),
            ["kind"] = c.Object.Kind,
            ["name"] = c.Object.Name,
            ["environment"] = c.Object.Environment,
            ["file"] = c.Entry?.Where(),
            ["valueMissing"] = c.ValueMissing ? SetCommand(c.Object) : null,
            ["fields"] = new JsonArray(c.Fields.Select(f => (JsonNode?)new JsonObject
            {
                ["path"] = f.Path,
                ["before"] = f.Before?.DeepClone(),
                ["after"] = f.After?.DeepClone(),
            }).ToArray()),
        }).ToArray()),
        ["create"] = Count(ChangeAction.Create),
        ["update"] = Count(ChangeAction.Update),
        ["delete"] = Count(ChangeAction.Delete),
        ["unchanged"] = Unchanged,
        ["notes"] = new JsonArray(Notes.Select(n => (JsonNode?)n).ToArray()),
    };

    private static string Show(JsonNode? value) => value is null ? "(none)" : value.ToJsonString(CliJson.Compact);
}

using System.Text.Json;
using System.Text.RegularExpressions;
using Keyway.Api;

namespace Keyway.Resources;

/// <summary>
/// A configuration document (a resource, a query, a schedule) that <see cref="ConfigJson"/> cannot read,
/// told in the writer's terms: the field's path, "unknown field 'headerz' — did you mean 'headers'?",
/// "should be a number", never a .NET type name. Never quotes a value: it may be a secret.
/// </summary>
internal static partial class ConfigJsonErrors
{
    /// <summary>A 400 <c>invalid_config</c> with one field error (when the path is known) for <paramref name="e"/>.</summary>
    public static KeywayException Invalid(JsonException e, string what)
    {
        var field = e.Path is { Length: > 1 } p ? p.TrimStart('$').TrimStart('.') : "";
        var message = Describe(e, field);
        var detail = $"The {what} is not valid: {(field.Length > 0 ? field + ": " : "")}{message}";
        return new KeywayException(StatusCodes.Status400BadRequest, "invalid_config", detail,
            field.Length == 0 ? null : new Dictionary<string, object?> { ["errors"] = new[] { new FieldError(field, message) } });
    }

    private static string Describe(JsonException e, string field)
    {
        if (UnmappedPattern().Match(e.Message) is { Success: true } unmapped)
        {
            var name = unmapped.Groups["name"].Value;
            var known = KnownFields(unmapped.Groups["type"].Value);
            var best = Closest(name, known);
            return best is not null ? $"unknown field '{name}' — did you mean '{best}'?"
                : known.Count > 0 ? $"unknown field '{name}'; the fields here are {string.Join(", ", known)}."
                : $"unknown field '{name}'.";
        }

        if (ConvertPattern().Match(e.Message) is { Success: true } convert)
        {
            return $"{(field.Length > 0 ? "the value" : "the document")} should be {Expected(convert.Groups["type"].Value)}.";
        }

        // A syntax error or a converter's own message: its first sentence, without the path and position suffix.
        var text = e.Message;
        var cut = text.IndexOf(" Path:", StringComparison.Ordinal);
        text = cut > 0 ? text[..cut] : text;
        return e.LineNumber is { } line ? $"{text} (line {line + 1}, byte {e.BytePositionInLine + 1})" : text;
    }

    /// <summary>The JSON names of a configuration type's fields, as written in a file.</summary>
    private static List<string> KnownFields(string typeName)
    {
        var type = typeof(ConfigJsonErrors).Assembly.GetType(typeName);
        if (type is null)
        {
            return [];
        }

        var info = ConfigJson.Options.GetTypeInfo(type);
        return info.Kind == System.Text.Json.Serialization.Metadata.JsonTypeInfoKind.Object ? info.Properties.Select(p => p.Name).ToList() : [];
    }

    /// <summary>The known field nearest to a misspelled one, if near enough to be what was meant.</summary>
    internal static string? Closest(string name, IReadOnlyList<string> known)
    {
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in known)
        {
            var distance = Distance(name.ToLowerInvariant(), candidate.ToLowerInvariant());
            if (distance < bestDistance)
            {
                (best, bestDistance) = (candidate, distance);
            }
        }

        return best is not null && bestDistance <= Math.Max(1, Math.Min(3, name.Length / 3)) ? best : null;
    }

    /// <summary>Levenshtein distance with adjacent transpositions (a swapped pair is one typo).</summary>
    private static int Distance(string a, string b)
    {
        var d = new int[a.Length + 1, b.Length + 1];
        for (var i = 0; i <= a.Length; i++)
        {
            d[i, 0] = i;
        }

        for (var j = 0; j <= b.Length; j++)
        {
            d[0, j] = j;
        }

        for (var i = 1; i <= a.Length; i++)
        {
            for (var j = 1; j <= b.Length; j++)
            {
                var cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + cost);
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                {
                    d[i, j] = Math.Min(d[i, j], d[i - 2, j - 2] + 1);
                }
            }
        }

        return d[a.Length, b.Length];
    }

    private static string Expected(string type) => type switch
    {
        _ when type.Contains("Int", StringComparison.Ordinal) || type.Contains("Double", StringComparison.Ordinal)
            || type.Contains("Decimal", StringComparison.Ordinal) || type.Contains("Single", StringComparison.Ordinal) => "a number",
        _ when type.Contains("Boolean", StringComparison.Ordinal) => "true or false",
        _ when type.Contains("DateTimeOffset", StringComparison.Ordinal) || type.Contains("DateTime", StringComparison.Ordinal) => "a date and time (ISO 8601)",
        _ when type.Contains("Dictionary", StringComparison.Ordinal) => "a mapping of names to values",
        _ when type.Contains("List", StringComparison.Ordinal) || type.EndsWith("[]", StringComparison.Ordinal) => "a list",
        _ when type.Contains("String", StringComparison.Ordinal) => "a string",
        _ => "a mapping of fields",
    };

    [GeneratedRegex(@"The JSON property '(?<name>[^']*)' could not be mapped to any \.NET member contained in type '(?<type>[^']*)'")]
    private static partial Regex UnmappedPattern();

    [GeneratedRegex(@"could not be converted to (?<type>\S+?)\.? Path:")]
    private static partial Regex ConvertPattern();
}

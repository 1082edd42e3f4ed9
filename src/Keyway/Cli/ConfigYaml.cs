using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Keyway.Cli;

/// <summary>
/// Writes canonical documents as YAML, the same bytes for the same configuration: block style, two
/// spaces, fields in the order given, a string plain only when no YAML reader could take it for
/// anything else (a number, a boolean, null, a flow collection), multi-line text as a literal block.
/// What it writes reads back through <see cref="ConfigFiles"/> as the same JSON.
/// </summary>
internal static class ConfigYaml
{
    private static readonly HashSet<string> s_reserved = new(StringComparer.OrdinalIgnoreCase)
    {
        "true", "false", "null", "~", "yes", "no", "on", "off", "y", "n", ".inf", "-.inf", ".nan",
    };

    /// <summary>One document (no <c>---</c>).</summary>
    public static string Write(JsonObject document)
    {
        var text = new StringBuilder();
        Mapping(text, document, 0);
        return text.ToString();
    }

    private static void Mapping(StringBuilder text, JsonObject map, int indent)
    {
        foreach (var (key, value) in map)
        {
            text.Append(' ', indent).Append(Scalar(key)).Append(':');
            Value(text, value, indent);
        }
    }

    /// <summary>After "key:" or "-": the rest of the line and what follows.</summary>
    private static void Value(StringBuilder text, JsonNode? value, int indent)
    {
        switch (value)
        {
            case JsonObject { Count: 0 }:
                text.Append(" {}\n");
                break;
            case JsonObject obj:
                text.Append('\n');
                Mapping(text, obj, indent + 2);
                break;
            case JsonArray { Count: 0 }:
                text.Append(" []\n");
                break;
            case JsonArray array when array.Any(i => i is JsonArray):
                // Lists of lists are rare in a configuration: JSON's flow form is YAML too.
                text.Append(' ').Append(array.ToJsonString(CliJson.Compact)).Append('\n');
                break;
            case JsonArray array:
                text.Append('\n');
                foreach (var item in array)
                {
                    text.Append(' ', indent + 2).Append('-');
                    if (item is JsonObject { Count: > 0 } obj)
                    {
                        // The item's first field on the dash's line, the others under it.
                        var first = true;
                        foreach (var (key, field) in obj)
                        {
                            if (!first)
                            {
                                text.Append(' ', indent + 4);
                            }
                            else
                            {
                                text.Append(' ');
                            }

                            first = false;
                            text.Append(Scalar(key)).Append(':');
                            Value(text, field, indent + 4);
                        }
                    }
                    else
                    {
                        Value(text, item, indent + 2);
                    }
                }

                break;
            case JsonValue scalar when scalar.GetValueKind() == JsonValueKind.String && Block(scalar.GetValue<string>(), indent + 2) is { } block:
                text.Append(block);
                break;
            default:
                text.Append(' ').Append(ScalarValue(value)).Append('\n');
                break;
        }
    }

    private static string ScalarValue(JsonNode? value) => value?.GetValueKind() switch
    {
        null or JsonValueKind.Null => "null",
        JsonValueKind.String => Scalar(value.GetValue<string>()),
        _ => value.ToJsonString(),
    };

    /// <summary>A string as a plain scalar when that is unambiguous, else double-quoted with JSON's escapes (which YAML reads).</summary>
    public static string Scalar(string value) => Plain(value) ? value : Quoted(value);

    private static bool Plain(string value)
    {
        if (value.Length == 0 || s_reserved.Contains(value) || value[0] is ' ' || value[^1] is ' ' or ':')
        {
            return false;
        }

        // Indicators that start something else, digits and signs that may start a number.
        if ("-?:,[]{}#&*!|>'\"%@`.+0123456789=<~".Contains(value[0]))
        {
            return false;
        }

        if (value.Contains(": ", StringComparison.Ordinal) || value.Contains(" #", StringComparison.Ordinal) ||
            double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out _))
        {
            return false;
        }

        return value.All(c => c >= ' ' && c != '\u007f' && c != '\\' && !char.IsSurrogate(c) && c < '\u0080');
    }

    private static string Quoted(string value)
    {
        var text = new StringBuilder("\"");
        foreach (var c in value)
        {
            _ = c switch
            {
                '"' => text.Append("\\\""),
                '\\' => text.Append("\\\\"),
                '\n' => text.Append("\\n"),
                '\r' => text.Append("\\r"),
                '\t' => text.Append("\\t"),
                < ' ' or '\u007f' or '\u0085' or '\u2028' or '\u2029' => text.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"),
                _ => text.Append(c),
            };
        }

        return text.Append('"').ToString();
    }

    /// <summary>
    /// Multi-line text as a literal block (<c>|</c> with its one final newline, <c>|-</c> without),
    /// when it reads back exactly: no carriage return or control character, no line of spaces alone,
    /// not starting with a space, at most one final newline. Null when it would not.
    /// </summary>
    private static string? Block(string value, int indent)
    {
        if (!value.Contains('\n') || value.EndsWith("\n\n", StringComparison.Ordinal) || value.StartsWith(' ') || value.StartsWith('\n') ||
            value.Any(c => (c < ' ' && c != '\n') || c is '\u007f' or '\u0085' or '\u2028' or '\u2029' || char.IsSurrogate(c)))
        {
            return null;
        }

        var body = value.EndsWith('\n') ? value[..^1] : value;
        var lines = body.Split('\n');
        if (lines.Any(l => l.Length > 0 && l.Trim(' ').Length == 0))
        {
            return null;
        }

        var text = new StringBuilder(value.EndsWith('\n') ? " |\n" : " |-\n");
        foreach (var line in lines)
        {
            if (line.Length > 0)
            {
                text.Append(' ', indent).Append(line);
            }

            text.Append('\n');
        }

        return text.ToString();
    }
}

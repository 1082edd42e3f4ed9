using System.Collections.Frozen;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Keyway.Secrets;

namespace Keyway.Templates;

/// <summary>
/// A plain member path (<c>environment.variables.API_TOKEN</c>, <c>inputs.items[0].name</c>,
/// <c>a['b-c']</c>) resolved against the scope directly, without the script engine: most templates
/// are this shape, and a dictionary walk costs nanoseconds where a script costs microseconds.
/// </summary>
/// <remarks>
/// Semantics follow JavaScript's for data: a missing member is <c>undefined</c>; reading a member
/// of <c>null</c>/<c>undefined</c> throws (as <c>a.b.c</c> does in JS when <c>a.b</c> is undefined);
/// an unknown root throws "is not defined". Only own data is visible: arrays and strings expose
/// <c>length</c> and indices, nothing else of the JS prototypes. Paths naming <c>constructor</c>,
/// <c>prototype</c> or <c>__proto__</c> are left to the script path, where they mean what JS says.
/// </remarks>
internal sealed class MemberPath
{
    // A root that is a keyword or a standard global is not scope data: the script path handles it.
    private static readonly FrozenSet<string> ScriptOnlyRoots = FrozenSet.Create(StringComparer.Ordinal,
    [
        "this", "true", "false", "null", "undefined", "NaN", "Infinity", "globalThis", "new", "typeof", "void",
        "delete", "in", "instanceof", "function", "class", "super", "import", "await", "yield", "let", "var", "const",
        "Math", "JSON", "Object", "Array", "String", "Number", "Boolean", "Date", "RegExp", "Symbol", "BigInt",
        "Intl", "Reflect", "Proxy", "Promise", "Map", "Set", "WeakMap", "WeakSet", "Error", "Function", "Temporal",
        "encodeURIComponent", "decodeURIComponent", "encodeURI", "decodeURI", "parseInt", "parseFloat", "isNaN", "isFinite",
    ]);

    private static readonly FrozenSet<string> ScriptOnlyMembers = FrozenSet.Create(StringComparer.Ordinal,
        ["constructor", "prototype", "__proto__"]);

    private readonly Segment[] _segments;

    private MemberPath(string root, Segment[] segments, string canonical)
    {
        Root = root;
        _segments = segments;
        Canonical = canonical;
    }

    public string Root { get; }

    /// <summary>The path written with dots where possible: <c>environment.variables.X</c>, <c>a['b-c']</c>, <c>items[0]</c>.</summary>
    public string Canonical { get; }

    /// <summary>The member names after the root (indices as their decimal text).</summary>
    public IEnumerable<string> Members => _segments.Select(s => s.Name);

    private readonly record struct Segment(string Name, int Index, string Parent);

    /// <summary>Recognizes a plain member path; anything else (calls, operators, spaces) is a script.</summary>
    public static bool TryParse(string expression, out MemberPath? path)
    {
        path = null;
        var i = 0;
        if (!TryReadIdentifier(expression, ref i, out var root) || ScriptOnlyRoots.Contains(root))
        {
            return false;
        }

        var segments = new List<Segment>();
        var canonical = new StringBuilder(root);
        while (i < expression.Length)
        {
            string name;
            if (expression[i] == '.')
            {
                i++;
                if (!TryReadIdentifier(expression, ref i, out name))
                {
                    return false;
                }
            }
            else if (expression[i] == '[')
            {
                i++;
                if (!TryReadBracketKey(expression, ref i, out name) || i >= expression.Length || expression[i] != ']')
                {
                    return false;
                }

                i++;
            }
            else
            {
                return false;
            }

            if (ScriptOnlyMembers.Contains(name))
            {
                return false;
            }

            var parent = canonical.ToString();
            var index = IsArrayIndex(name, out var value) ? value : -1;
            if (index >= 0)
            {
                canonical.Append('[').Append(name).Append(']');
            }
            else if (IsIdentifier(name))
            {
                canonical.Append('.').Append(name);
            }
            else
            {
                var quote = name.Contains('\'', StringComparison.Ordinal) ? '"' : '\'';
                canonical.Append('[').Append(quote).Append(name).Append(quote).Append(']');
            }

            segments.Add(new Segment(name, index, parent));
        }

        path = new MemberPath(root, [.. segments], canonical.ToString());
        return true;
    }

    /// <summary>Walks the path. Allocation-free over <see cref="JsonElement"/> and dictionaries.</summary>
    public TemplateValue Resolve(TemplateScope scope, string expression, int position)
    {
        if (!scope.TryGetRoot(Root, out var rootValue))
        {
            throw new TemplateEvaluationException($"'{Root}' is not defined", expression, position);
        }

        var current = TemplateValue.From(rootValue);
        foreach (var segment in _segments)
        {
            if (current.IsNullish)
            {
                var what = current.Kind == TemplateValueKind.Null ? "null" : "undefined";
                throw new TemplateEvaluationException($"cannot read '{segment.Name}' of {what} at {segment.Parent}", expression, position);
            }

            current = Step(current, segment);
        }

        return current;
    }

    private static TemplateValue Step(TemplateValue parent, Segment segment)
    {
        if (parent.Kind == TemplateValueKind.Element)
        {
            var element = parent.Element;
            switch (element.ValueKind)
            {
                case JsonValueKind.Object:
                    return element.TryGetProperty(segment.Name, out var property) ? TemplateValue.FromElement(property) : TemplateValue.Undefined;
                case JsonValueKind.Array:
                    var length = element.GetArrayLength();
                    return segment.Index >= 0 && segment.Index < length ? TemplateValue.FromElement(element[segment.Index])
                        : segment.Name == "length" ? TemplateValue.FromNumber(length)
                        : TemplateValue.Undefined;
                case JsonValueKind.String:
                    return StringMember(element.GetString()!, segment);
                default:
                    return TemplateValue.Undefined;
            }
        }

        return parent.Clr switch
        {
            string s => StringMember(s, segment),
            Secret secret => StringMember(secret.Reveal(), segment),
            IReadOnlyDictionary<string, object?> dictionary =>
                dictionary.TryGetValue(segment.Name, out var value) ? TemplateValue.From(value) : TemplateValue.Undefined,
            IReadOnlyList<object?> list =>
                segment.Index >= 0 && segment.Index < list.Count ? TemplateValue.From(list[segment.Index]) : Length(list.Count, segment),
            JsonObject obj => obj.TryGetPropertyValue(segment.Name, out var node) ? TemplateValue.From(node) : TemplateValue.Undefined,
            JsonArray array =>
                segment.Index >= 0 && segment.Index < array.Count ? TemplateValue.From(array[segment.Index]) : Length(array.Count, segment),
            _ => TemplateValue.Undefined,
        };
    }

    private static TemplateValue Length(int count, Segment segment) =>
        segment.Name == "length" ? TemplateValue.FromNumber(count) : TemplateValue.Undefined;

    private static TemplateValue StringMember(string s, Segment segment) =>
        segment.Index >= 0 && segment.Index < s.Length ? TemplateValue.From(s[segment.Index].ToString())
        : segment.Name == "length" ? TemplateValue.FromNumber(s.Length)
        : TemplateValue.Undefined;

    private static bool TryReadIdentifier(string text, ref int i, out string identifier)
    {
        var start = i;
        if (i < text.Length && IsIdentifierStart(text[i]))
        {
            i++;
            while (i < text.Length && IsIdentifierPart(text[i]))
            {
                i++;
            }
        }

        identifier = text[start..i];
        return i > start;
    }

    private static bool TryReadBracketKey(string text, ref int i, out string key)
    {
        key = string.Empty;
        if (i >= text.Length)
        {
            return false;
        }

        var quote = text[i];
        if (quote is '\'' or '"')
        {
            var end = text.IndexOf(quote, i + 1);
            if (end < 0 || text.AsSpan(i + 1, end - i - 1).IndexOfAny('\\', '\n', '\r') >= 0)
            {
                return false; // escapes are the script engine's business
            }

            key = text[(i + 1)..end];
            i = end + 1;
            return true;
        }

        var start = i;
        while (i < text.Length && char.IsAsciiDigit(text[i]))
        {
            i++;
        }

        key = text[start..i];
        return IsArrayIndex(key, out _);
    }

    private static bool IsArrayIndex(string text, out int index)
    {
        index = -1;
        return text.Length is > 0 and <= 9 && char.IsAsciiDigit(text[0]) && (text.Length == 1 || text[0] != '0')
            && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out index);
    }

    internal static bool IsIdentifier(string text)
    {
        if (text.Length == 0 || !IsIdentifierStart(text[0]))
        {
            return false;
        }

        foreach (var c in text.AsSpan(1))
        {
            if (!IsIdentifierPart(c))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsIdentifierStart(char c) => char.IsAsciiLetter(c) || c is '_' or '$';

    private static bool IsIdentifierPart(char c) => char.IsAsciiLetterOrDigit(c) || c is '_' or '$';
}

using System.Buffers;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Keyway.Secrets;

/// <summary>
/// Replaces known secret values with <c>[REDACTED]</c> in anything Keyway returns: an upstream
/// response that echoes a token, an error text that quotes one. Values shorter than
/// <see cref="MinimumLength"/> are not searched for (redacting every "a" would ruin every body).
/// </summary>
internal sealed class Redactor
{
    public const int MinimumLength = 4;

    public static readonly Redactor None = new([]);

    private readonly string[] _values;
    private readonly SearchValues<string>? _search;

    public Redactor(IEnumerable<string> values)
    {
        // Longest first, so a secret that contains another is replaced whole. Each value is also
        // looked for as an upstream would echo it inside JSON or a URL: escaped.
        _values = values.Where(v => v.Length >= MinimumLength).SelectMany(Forms).Distinct(StringComparer.Ordinal)
            .OrderByDescending(v => v.Length).ToArray();
        _search = _values.Length == 0 ? null : SearchValues.Create(_values, StringComparison.Ordinal);
        Utf8Values = _values.Select(Encoding.UTF8.GetBytes).ToArray();
        LongestUtf8 = Utf8Values.Length == 0 ? 0 : Utf8Values.Max(v => v.Length);
    }

    private static IEnumerable<string> Forms(string value)
    {
        yield return value;
        yield return JsonEncodedText.Encode(value).ToString();
        yield return JsonEncodedText.Encode(value, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).ToString();
        yield return AsciiJson(value, "x4");
        yield return AsciiJson(value, "X4");
        yield return Uri.EscapeDataString(value);
    }

    /// <summary>JSON string escaping that keeps only ASCII, as Python's json.dumps does by default.</summary>
    private static string AsciiJson(string value, string hex)
    {
        var builder = new StringBuilder(value.Length + 8);
        foreach (var c in value)
        {
            builder.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\b' => "\\b",
                '\f' => "\\f",
                < ' ' or > '~' => "\\u" + ((int)c).ToString(hex, System.Globalization.CultureInfo.InvariantCulture),
                _ => c.ToString(),
            });
        }

        return builder.ToString();
    }

    public static Redactor For(IEnumerable<Secret> secrets, IEnumerable<string>? derived = null) =>
        new(secrets.Select(s => s.Reveal()).Concat(derived ?? []));

    public bool IsEmpty => _search is null;

    /// <summary>The values as UTF-8, longest first, for redacting byte streams.</summary>
    internal byte[][] Utf8Values { get; }

    internal int LongestUtf8 { get; }

    /// <summary>The values, for combining redactors. Never print these.</summary>
    internal IReadOnlyList<string> Values => _values;

    public bool Contains(ReadOnlySpan<char> text) => _search is not null && text.IndexOfAny(_search) >= 0;

    public string Redact(string text)
    {
        if (_search is null || text.AsSpan().IndexOfAny(_search) < 0)
        {
            return text;
        }

        var builder = new StringBuilder(text);
        foreach (var value in _values)
        {
            builder.Replace(value, Secret.Redacted);
        }

        return builder.ToString();
    }

    public Redactor Combine(Redactor other) =>
        other.IsEmpty ? this : IsEmpty ? other : new Redactor(_values.Concat(other._values));
}

using System.Buffers;
using System.Collections.Concurrent;
using System.Text;

namespace Keyway.Secrets;

/// <summary>
/// Replaces known secret values with <c>[REDACTED]</c> in anything Keyway returns: an upstream
/// response that echoes a token, an error text that quotes one. Each value is found in every form an
/// answer may carry it (raw, JSON-escaped, percent-encoded, base64 and base64url also inside a longer
/// text such as <c>user:secret</c>, HTML references, UTF-16; see <see cref="RedactionForms"/>). Values
/// shorter than <see cref="MinimumLength"/> are not searched for (redacting every "a" would ruin every body).
/// </summary>
/// <remarks>
/// Making a redactor is cheap: the forms are compiled on first use, once per distinct set of values
/// (shared by every redactor of that set), so a redactor combined per request reuses them.
/// </remarks>
internal sealed class Redactor
{
    public const int MinimumLength = 4;

    // Compiled forms by set of values. Bounded: sets are few (one per change of the secrets, per
    // credential, per caller of a resource that reads current_user); past the bound it starts over.
    private const int MaxCompiledSets = 512;
    private static readonly ConcurrentDictionary<string, RedactionForms> s_compiled = new(StringComparer.Ordinal);

    private static readonly byte[] Replacement = Encoding.UTF8.GetBytes(Secret.Redacted);

    public static readonly Redactor None = new([]);

    private readonly string[] _values;
    private RedactionForms? _forms;

    public Redactor(IEnumerable<string> values)
    {
        _values = values.Where(v => v.Length >= MinimumLength).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
    }

    public static Redactor For(IEnumerable<Secret> secrets, IEnumerable<string>? derived = null) =>
        new(secrets.Select(s => s.Reveal()).Concat(derived ?? []));

    public bool IsEmpty => _values.Length == 0;

    /// <summary>The values, for combining redactors. Never print these.</summary>
    internal IReadOnlyList<string> Values => _values;

    /// <summary>The compiled forms of the values.</summary>
    internal RedactionForms Forms => _forms ??= Compile(_values);

    private static RedactionForms Compile(string[] values)
    {
        var key = string.Join('\0', values);
        if (s_compiled.TryGetValue(key, out var forms))
        {
            return forms;
        }

        if (s_compiled.Count >= MaxCompiledSets)
        {
            s_compiled.Clear();
        }

        return s_compiled.GetOrAdd(key, _ => new RedactionForms(values));
    }

    public bool Contains(ReadOnlySpan<char> text)
    {
        if (IsEmpty || text.IsEmpty)
        {
            return false;
        }

        if (Ascii.IsValid(text))
        {
            return Forms.FindAll(text) is not null;
        }

        var bytes = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(text.Length));
        try
        {
            var count = Encoding.UTF8.GetBytes(text, bytes);
            return ContainsUtf8(bytes.AsSpan(0, count));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    /// <summary>Whether <paramref name="bytes"/> (a body of any encoding) holds a form of a value.</summary>
    public bool ContainsUtf8(ReadOnlySpan<byte> bytes)
    {
        if (IsEmpty || bytes.IsEmpty)
        {
            return false;
        }

        return Forms.FindAll(bytes) is not null;
    }

    public string Redact(string text)
    {
        if (IsEmpty || text.Length == 0)
        {
            return text;
        }

        if (Ascii.IsValid(text))
        {
            return RedactWide(text, text.AsSpan(), ascii: true);
        }

        var bytes = Encoding.UTF8.GetBytes(text);
        var wide = Encoding.Latin1.GetString(bytes);
        return RedactWide(text, wide.AsSpan(), ascii: false);
    }

    /// <summary>Redacts text of one byte per char; returns <paramref name="original"/> itself when nothing matched.</summary>
    private string RedactWide(string original, ReadOnlySpan<char> wide, bool ascii)
    {
        if (Forms.FindAll(wide) is not { } matches)
        {
            return original;
        }

        var builder = new StringBuilder(wide.Length);
        var start = 0;
        foreach (var (at, length) in matches)
        {
            builder.Append(wide[start..at]).Append(Secret.Redacted);
            start = at + length;
        }

        builder.Append(wide[start..]);
        if (ascii)
        {
            return builder.ToString();
        }

        // Back from bytes-as-chars to text (a partly replaced multi-byte character becomes U+FFFD).
        return Encoding.UTF8.GetString(Encoding.Latin1.GetBytes(builder.ToString()));
    }

    /// <summary>The length of <paramref name="body"/> once every form of a value in it is replaced.</summary>
    internal int RedactedLength(ReadOnlySpan<byte> body)
    {
        var result = body.Length;
        foreach (var (_, found) in Forms.FindAll(body) ?? RedactionForms.NoMatches)
        {
            result += Replacement.Length - found;
        }

        return result;
    }

    /// <summary>
    /// Writes <paramref name="body"/> with every form of a value replaced into <paramref name="destination"/>,
    /// which holds at least <see cref="RedactedLength"/> bytes.
    /// </summary>
    internal void Redact(ReadOnlySpan<byte> body, Span<byte> destination)
    {
        var start = 0;
        var written = 0;
        foreach (var (at, found) in Forms.FindAll(body) ?? RedactionForms.NoMatches)
        {
            body[start..at].CopyTo(destination[written..]);
            written += at - start;
            Replacement.CopyTo(destination[written..]);
            written += Replacement.Length;
            start = at + found;
        }

        body[start..].CopyTo(destination[written..]);
    }

    public Redactor Combine(Redactor other) =>
        other.IsEmpty ? this : IsEmpty ? other : new Redactor(_values.Concat(other._values));
}

using System.Buffers;
using System.Text;

namespace Keyway.Secrets;

/// <summary>
/// The compiled search behind a <see cref="Redactor"/>: every form in which an answer may carry a
/// secret value, found in text of one byte per <c>char</c> (UTF-8 bytes widened, so a byte stream and a
/// string share one matcher).
/// </summary>
/// <remarks>
/// <para>The targets are byte sequences: each value's UTF-8 bytes, the base64 and base64url text of
/// those bytes at each of the three alignments a value can have inside a longer base64 text (only the
/// characters that depend on the value alone, so <c>base64("user:" + value)</c> holds one of them
/// whatever the user), and its UTF-16 LE and BE bytes.</para>
/// <para>A target is found literally (one vectorized <see cref="SearchValues{T}"/> scan over all of
/// them), or encoded: when the text holds an escape introducer (<c>\ % &amp;</c>, and <c>+</c> when a value
/// holds a space), a decoded copy of it is made — each JSON escape (<c>\/</c>, <c>\n</c>, <c>\u0063</c>,
/// a surrogate pair), percent-escape (either hex case, <c>+</c> for a space) and HTML character
/// reference (<c>&amp;#99;</c>, <c>&amp;#x63;</c>, <c>&amp;amp;</c>) replaced by the bytes it stands for,
/// in any mix — and searched the same vectorized way; a match there is mapped back to the text it
/// came from. Text without escapes costs the vectorized scans and nothing else; text with escapes one
/// more copy.</para>
/// <para>Built once per set of values (<see cref="Redactor"/> caches them by the set), never per request.</para>
/// </remarks>
internal sealed class RedactionForms
{
    /// <summary>The most bytes one target byte may take when encoded (<c>&amp;#x00063;</c>, <c>&amp;#0000099;</c>).</summary>
    private const int MaxExpansion = 10;

    // A base64 run of the value shorter than this would match unrelated base64 text too often.
    private const int MinBase64Core = 6;

    private static readonly SearchValues<char> s_introducersWithPlus = SearchValues.Create("\\%&+");
    private static readonly SearchValues<char> s_introducers = SearchValues.Create("\\%&");
    private static readonly SearchValues<byte> s_introducerBytesWithPlus = SearchValues.Create("\\%&+"u8);
    private static readonly SearchValues<byte> s_introducerBytes = SearchValues.Create("\\%&"u8);

    private readonly SearchValues<char> _escapes;
    private readonly SearchValues<byte> _escapeBytes;
    private readonly bool _plusIsSpace;
    private readonly Targets _literal;
    private readonly Targets? _utf16;
    private readonly Targets _decoded;

    // The literal and UTF-16 targets as bytes, searched in a body as it is; null where Teddy does not fit (many values).
    private readonly TeddySearch? _bytes;

    public RedactionForms(IReadOnlyCollection<string> values)
    {
        var targets = new HashSet<string>(StringComparer.Ordinal);
        var utf16 = new HashSet<string>(StringComparer.Ordinal);
        foreach (var value in values)
        {
            var utf8 = Encoding.UTF8.GetBytes(value);
            targets.Add(Encoding.Latin1.GetString(utf8));
            foreach (var core in Base64Cores(utf8))
            {
                targets.Add(core);
                targets.Add(core.Replace('+', '-').Replace('/', '_'));
            }

            // Looked for only in text that holds a NUL: UTF-16 of ASCII does, other text hardly ever.
            utf16.Add(Encoding.Latin1.GetString(Encoding.Unicode.GetBytes(value)));
            utf16.Add(Encoding.Latin1.GetString(Encoding.BigEndianUnicode.GetBytes(value)));
        }

        // A '+' stands for a space only in a value that holds one; then both sides read every '+' as a space.
        _plusIsSpace = targets.Any(t => t.Contains(' ', StringComparison.Ordinal));
        _escapes = _plusIsSpace ? s_introducersWithPlus : s_introducers;
        _escapeBytes = _plusIsSpace ? s_introducerBytesWithPlus : s_introducerBytes;
        _literal = new Targets(targets);
        _utf16 = utf16.Count == 0 ? null : new Targets(utf16);
        _decoded = new Targets(_plusIsSpace ? targets.Select(t => t.Replace('+', ' ')) : targets);
        LongestTarget = Math.Max(_literal.Longest, _utf16?.Longest ?? 0);
        MaxEncodedLength = Math.Max(_literal.Longest * MaxExpansion, _utf16?.Longest ?? 0);
        _bytes = TeddySearch.TryCreate([.. targets.Concat(utf16).Select(Encoding.Latin1.GetBytes)]);
    }

    /// <summary>An empty list to loop over when <see cref="FindAll(ReadOnlySpan{byte})"/> finds nothing (never added to).</summary>
    internal static readonly List<(int Start, int Length)> NoMatches = [];

    /// <summary>The longest target, in bytes.</summary>
    public int LongestTarget { get; }

    /// <summary>The most bytes any form of any target may span: the window a stream must hold back.</summary>
    public int MaxEncodedLength { get; }

    /// <summary>
    /// The runs of a base64 text that encode <paramref name="value"/> starting at each of the three
    /// byte alignments; only characters made of the value's bits alone, so they hold whatever surrounds it.
    /// </summary>
    private static IEnumerable<string> Base64Cores(byte[] value)
    {
        for (var offset = 0; offset < 3; offset++)
        {
            var padded = new byte[offset + value.Length + 2];
            value.CopyTo(padded, offset);
            var encoded = Convert.ToBase64String(padded);
            // Character i carries bits [6i, 6i + 6) of the padded bytes; the value holds bits [8·offset, 8·(offset + n)).
            var first = (8 * offset + 5) / 6;
            var end = 8 * (offset + value.Length) / 6;
            if (end - first >= MinBase64Core)
            {
                yield return encoded[first..end];
            }
        }
    }

    /// <summary>
    /// Every form of any target in <paramref name="text"/> (one byte per char): where each starts and how
    /// many chars it spans, earliest first and not overlapping (of two at one place, the longer); null
    /// when there is none, the common case, which allocates nothing.
    /// </summary>
    public List<(int Start, int Length)>? FindAll(ReadOnlySpan<char> text)
    {
        List<(int Start, int Length)>? found = null;
        if (text.IsEmpty)
        {
            return null;
        }

        _literal.FindAll(text, ref found);
        if (_utf16 is not null && text.Contains('\0'))
        {
            _utf16.FindAll(text, ref found);
        }

        var first = text.IndexOfAny(_escapes);
        if (first >= 0)
        {
            FindDecoded(text, first, ref found);
        }

        return Settle(found);
    }

    /// <summary>Whether <paramref name="bytes"/> hold a character that may begin an escape (<c>\ % &amp;</c>, <c>+</c> for a space).</summary>
    public bool HasEscapeIntroducer(ReadOnlySpan<byte> bytes) => bytes.ContainsAny(_escapeBytes);

    /// <summary>
    /// <see cref="FindAll(ReadOnlySpan{char})"/> of bytes (a body, in any encoding): the literal and UTF-16
    /// forms are searched in the bytes themselves; only a body that holds an escape introducer is widened
    /// to one char per byte, for its decoded copy.
    /// </summary>
    public List<(int Start, int Length)>? FindAll(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return null;
        }

        if (_bytes is null)
        {
            return FindWidened(bytes, decodedOnly: false);
        }

        List<(int Start, int Length)>? found = null;
        _bytes.FindAll(bytes, ref found);
        if (HasEscapeIntroducer(bytes))
        {
            foreach (var match in FindWidened(bytes, decodedOnly: true) ?? [])
            {
                (found ??= []).Add(match);
            }
        }

        return Settle(found);
    }

    private List<(int Start, int Length)>? FindWidened(ReadOnlySpan<byte> bytes, bool decodedOnly)
    {
        var wide = ArrayPool<char>.Shared.Rent(bytes.Length);
        try
        {
            var text = wide.AsSpan(0, Encoding.Latin1.GetChars(bytes, wide));
            if (!decodedOnly)
            {
                return FindAll(text);
            }

            List<(int Start, int Length)>? found = null;
            FindDecoded(text, text.IndexOfAny(_escapes), ref found);
            return found;
        }
        finally
        {
            ArrayPool<char>.Shared.Return(wide);
        }
    }

    /// <summary>Orders the matches of several searches and keeps, of overlapping ones, the earliest (the longer at one place).</summary>
    private static List<(int Start, int Length)>? Settle(List<(int Start, int Length)>? found)
    {
        if (found is { Count: > 1 })
        {
            found.Sort(static (a, b) => a.Start != b.Start ? a.Start.CompareTo(b.Start) : b.Length.CompareTo(a.Length));
            var kept = 0;
            var end = 0;
            for (var i = 0; i < found.Count; i++)
            {
                var match = found[i];
                if (match.Start >= end)
                {
                    found[kept++] = match;
                    end = match.Start + match.Length;
                }
            }

            found.RemoveRange(kept, found.Count - kept);
        }

        return found;
    }

    /// <summary>Decodes <paramref name="text"/> from its first escape on, searches the decoded copy, and maps what it finds back.</summary>
    private void FindDecoded(ReadOnlySpan<char> text, int first, ref List<(int Start, int Length)>? found)
    {
        // Decoding never lengthens: every escape stands for at most as many bytes as it has chars.
        var decoded = ArrayPool<char>.Shared.Rent(text.Length);
        // Per decoded escape: where it was in the text, how long, where it is in the copy, how long.
        var tokens = ArrayPool<int>.Shared.Rent(64);
        var count = 0;
        try
        {
            text[..first].CopyTo(decoded);
            var source = first;
            var written = first;
            Span<byte> bytes = stackalloc byte[4];
            while (source < text.Length)
            {
                var next = text[source..].IndexOfAny(_escapes);
                if (next < 0)
                {
                    text[source..].CopyTo(decoded.AsSpan(written));
                    written += text.Length - source;
                    break;
                }

                text.Slice(source, next).CopyTo(decoded.AsSpan(written));
                source += next;
                written += next;
                var length = EscapeDecoding.Decode(text, source, bytes, out var consumed);
                if (length == 0)
                {
                    decoded[written++] = text[source++];
                    continue;
                }

                if ((count + 1) * 4 > tokens.Length)
                {
                    var larger = ArrayPool<int>.Shared.Rent(tokens.Length * 2);
                    tokens.AsSpan(0, count * 4).CopyTo(larger);
                    ArrayPool<int>.Shared.Return(tokens);
                    tokens = larger;
                }

                tokens[count * 4] = source;
                tokens[(count * 4) + 1] = consumed;
                tokens[(count * 4) + 2] = written;
                tokens[(count * 4) + 3] = length;
                count++;
                for (var k = 0; k < length; k++)
                {
                    decoded[written++] = (char)bytes[k];
                }

                source += consumed;
            }

            var copy = decoded.AsSpan(0, written);
            if (_plusIsSpace)
            {
                copy.Replace('+', ' ');
            }

            List<(int Start, int Length)>? inCopy = null;
            _decoded.FindAll(copy, ref inCopy);
            foreach (var (start, length) in inCopy ?? [])
            {
                var from = MapStart(tokens.AsSpan(0, count * 4), start);
                var to = MapEnd(tokens.AsSpan(0, count * 4), start + length);
                (found ??= []).Add((from, to - from));
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(tokens);
            ArrayPool<char>.Shared.Return(decoded);
        }
    }

    /// <summary>The text position of decoded position <paramref name="at"/> (the escape's start when it falls inside one).</summary>
    private static int MapStart(ReadOnlySpan<int> tokens, int at)
    {
        var k = LastTokenAtOrBefore(tokens, at, inclusive: true);
        if (k < 0)
        {
            return at;
        }

        var (source, consumed, written, length) = (tokens[k * 4], tokens[(k * 4) + 1], tokens[(k * 4) + 2], tokens[(k * 4) + 3]);
        return at < written + length ? source : source + consumed + (at - written - length);
    }

    /// <summary>The text position just past decoded position <paramref name="end"/> − 1 (the escape's end when it falls inside one).</summary>
    private static int MapEnd(ReadOnlySpan<int> tokens, int end)
    {
        var k = LastTokenAtOrBefore(tokens, end, inclusive: false);
        if (k < 0)
        {
            return end;
        }

        var (source, consumed, written, length) = (tokens[k * 4], tokens[(k * 4) + 1], tokens[(k * 4) + 2], tokens[(k * 4) + 3]);
        return end <= written + length ? source + consumed : source + consumed + (end - written - length);
    }

    /// <summary>The last token whose decoded start is at or before (or strictly before) <paramref name="at"/>; -1 when none.</summary>
    private static int LastTokenAtOrBefore(ReadOnlySpan<int> tokens, int at, bool inclusive)
    {
        int low = 0, high = (tokens.Length / 4) - 1, result = -1;
        while (low <= high)
        {
            var mid = (low + high) / 2;
            var written = tokens[(mid * 4) + 2];
            if (inclusive ? written <= at : written < at)
            {
                result = mid;
                low = mid + 1;
            }
            else
            {
                high = mid - 1;
            }
        }

        return result;
    }

    /// <summary>A set of byte sequences (one byte per char) and the vectorized search for them.</summary>
    private sealed class Targets
    {
        private readonly string[] _targets;
        private readonly SearchValues<string> _search;
        private readonly int[][] _byFirst = new int[256][];

        public Targets(IEnumerable<string> targets)
        {
            // Longest first, so that of two targets starting at one place the longer is replaced whole.
            _targets = targets.Distinct(StringComparer.Ordinal).OrderByDescending(t => t.Length).ThenBy(t => t, StringComparer.Ordinal).ToArray();
            _search = SearchValues.Create(_targets, StringComparison.Ordinal);
            var byFirst = new List<int>[256];
            for (var i = 0; i < _targets.Length; i++)
            {
                (byFirst[_targets[i][0]] ??= []).Add(i);
            }

            for (var b = 0; b < 256; b++)
            {
                _byFirst[b] = byFirst[b]?.ToArray() ?? [];
            }

            Longest = _targets.Length == 0 ? 0 : _targets[0].Length;
        }

        public int Longest { get; }

        public void FindAll(ReadOnlySpan<char> text, ref List<(int Start, int Length)>? found)
        {
            if (_targets.Length == 0)
            {
                return;
            }

            var from = 0;
            while (from < text.Length)
            {
                var at = text[from..].IndexOfAny(_search);
                if (at < 0)
                {
                    return;
                }

                at += from;
                var length = 0;
                foreach (var index in _byFirst[Math.Min(text[at], (char)255)])
                {
                    if (text[at..].StartsWith(_targets[index], StringComparison.Ordinal))
                    {
                        length = _targets[index].Length;
                        break;
                    }
                }

                // (The search found one; the longest at that place is the first that matches.)
                (found ??= []).Add((at, Math.Max(length, 1)));
                from = at + Math.Max(length, 1);
            }
        }
    }
}

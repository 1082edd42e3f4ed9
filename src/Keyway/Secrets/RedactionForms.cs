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
/// <para>A target is found either literally (one vectorized <see cref="SearchValues{T}"/> scan over all
/// of them) or encoded: matched one unit at a time, where each unit may be written as itself, as a JSON
/// escape (<c>\/</c>, <c>\n</c>, <c>\u0063</c>, a surrogate pair), percent-encoded (either hex case,
/// <c>+</c> for a space) or as an HTML character reference (<c>&amp;#99;</c>, <c>&amp;#x63;</c>,
/// <c>&amp;amp;</c>), in any mix. An encoded form holds an escape introducer (<c>\ % &amp; +</c>), and its
/// literal prefix is shorter than the target, so only the positions shortly before an introducer are
/// tried: text without escapes costs the two vectorized scans and nothing else.</para>
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

    private readonly string[] _targets;
    private readonly SearchValues<string> _literal;
    private readonly SearchValues<char> _escapes;
    private readonly int[][] _byFirst = new int[256][];
    private readonly int[] _longestByFirst = new int[256];

    public RedactionForms(IReadOnlyCollection<string> values)
    {
        var targets = new HashSet<string>(StringComparer.Ordinal);
        foreach (var value in values)
        {
            var utf8 = Encoding.UTF8.GetBytes(value);
            targets.Add(Encoding.Latin1.GetString(utf8));
            foreach (var core in Base64Cores(utf8))
            {
                targets.Add(core);
                targets.Add(core.Replace('+', '-').Replace('/', '_'));
            }

            targets.Add(Encoding.Latin1.GetString(Encoding.Unicode.GetBytes(value)));
            targets.Add(Encoding.Latin1.GetString(Encoding.BigEndianUnicode.GetBytes(value)));
        }

        // Longest first, so that of two targets starting at one place the longer is replaced whole.
        _targets = targets.OrderByDescending(t => t.Length).ThenBy(t => t, StringComparer.Ordinal).ToArray();
        _literal = SearchValues.Create(_targets, StringComparison.Ordinal);
        _escapes = _targets.Any(t => t.Contains(' ', StringComparison.Ordinal)) ? s_introducersWithPlus : s_introducers;
        var byFirst = new List<int>[256];
        for (var i = 0; i < _targets.Length; i++)
        {
            var first = _targets[i][0];
            (byFirst[first] ??= []).Add(i);
            _longestByFirst[first] = Math.Max(_longestByFirst[first], _targets[i].Length);
        }

        for (var b = 0; b < 256; b++)
        {
            _byFirst[b] = byFirst[b]?.ToArray() ?? [];
        }

        LongestTarget = _targets.Length == 0 ? 0 : _targets[0].Length;
        MaxEncodedLength = LongestTarget * MaxExpansion;
    }

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
    /// Finds the earliest form of any target in <paramref name="text"/> (one byte per char) at or after
    /// <paramref name="from"/>: where it starts and how many chars it spans.
    /// </summary>
    public bool Find(ReadOnlySpan<char> text, int from, out int start, out int length)
    {
        start = -1;
        length = 0;
        if (from >= text.Length || _targets.Length == 0)
        {
            return false;
        }

        var literal = text[from..].IndexOfAny(_literal);
        literal = literal < 0 ? -1 : literal + from;
        var tried = from;
        var escape = from;
        while (true)
        {
            var next = text[escape..].IndexOfAny(_escapes);
            if (next < 0)
            {
                break;
            }

            var introducer = escape + next;
            if (literal >= 0 && introducer - LongestTarget >= literal)
            {
                // The literal match comes before any encoded form that could reach this introducer.
                break;
            }

            // An encoded form holding this introducer starts at most (its length − 1) before it.
            for (var p = Math.Max(tried, introducer - LongestTarget + 1); p <= introducer; p++)
            {
                if (literal >= 0 && p > literal)
                {
                    break;
                }

                if (introducer - p < _longestByFirst[Math.Min(text[p], (char)255)] || p == introducer)
                {
                    var found = MatchAt(text, p);
                    if (found > 0)
                    {
                        start = p;
                        length = found;
                        return true;
                    }
                }
            }

            tried = introducer + 1;
            escape = introducer + 1;
            if (escape >= text.Length)
            {
                break;
            }
        }

        if (literal >= 0)
        {
            start = literal;
            length = MatchAt(text, literal);
            return length > 0;
        }

        return false;
    }

    /// <summary>The chars the longest target found at <paramref name="at"/> spans (in any form), or 0.</summary>
    private int MatchAt(ReadOnlySpan<char> text, int at)
    {
        var c = text[at];
        var best = 0;
        if (c < 256)
        {
            best = TryTargets(_byFirst[c], text, at);
        }

        if (IsIntroducer(c) && DecodeFirst(text, at) is >= 0 and < 256 and var decoded && decoded != c)
        {
            best = Math.Max(best, TryTargets(_byFirst[decoded], text, at));
        }

        return best;
    }

    private static bool IsIntroducer(char c) => c is '\\' or '%' or '&' or '+';

    private int TryTargets(int[] candidates, ReadOnlySpan<char> text, int at)
    {
        var best = 0;
        foreach (var index in candidates)
        {
            var target = _targets[index];
            var found = text[at..].StartsWith(target, StringComparison.Ordinal) ? target.Length : MatchEncoded(text, at, target);
            best = Math.Max(best, found);
        }

        return best;
    }

    /// <summary>Matches <paramref name="target"/> unit by unit, each as itself or encoded; the chars spanned, or 0.</summary>
    private static int MatchEncoded(ReadOnlySpan<char> text, int at, string target)
    {
        Span<byte> decoded = stackalloc byte[4];
        var i = at;
        var j = 0;
        while (j < target.Length)
        {
            if (i >= text.Length)
            {
                return 0;
            }

            var c = text[i];
            // An escape that decodes to the target's next bytes is taken first; a literal introducer after that.
            if (IsIntroducer(c) && Decode(text, i, decoded, out var consumed) is var count and > 0 &&
                (Matches(decoded[..count], target, j) || (c == '\\' && count == 1 && decoded[0] == '+' && target[j] == ' ')))
            {
                // (A JSON-escaped '+' still stands for a space: a percent-encoded value written into JSON.)
                i += consumed;
                j += count;
                continue;
            }

            if (c != target[j])
            {
                return 0;
            }

            i++;
            j++;
        }

        return i - at;
    }

    private static bool Matches(ReadOnlySpan<byte> decoded, string target, int at)
    {
        if (at + decoded.Length > target.Length)
        {
            return false;
        }

        for (var k = 0; k < decoded.Length; k++)
        {
            if (target[at + k] != decoded[k])
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The first byte an escape at <paramref name="at"/> decodes to, or -1.</summary>
    private static int DecodeFirst(ReadOnlySpan<char> text, int at)
    {
        Span<byte> decoded = stackalloc byte[4];
        return Decode(text, at, decoded, out _) > 0 ? decoded[0] : -1;
    }

    /// <summary>
    /// Decodes one escape at <paramref name="at"/> (JSON, percent, <c>+</c>, HTML reference) into the
    /// UTF-8 bytes it stands for; returns how many, 0 when there is no escape there.
    /// </summary>
    private static int Decode(ReadOnlySpan<char> text, int at, Span<byte> bytes, out int consumed)
    {
        consumed = 0;
        var rest = text[at..];
        switch (rest[0])
        {
            case '+':
                consumed = 1;
                bytes[0] = (byte)' ';
                return 1;
            case '%' when rest.Length >= 3 && Hex(rest[1]) is >= 0 and var high && Hex(rest[2]) is >= 0 and var low:
                consumed = 3;
                bytes[0] = (byte)(high * 16 + low);
                return 1;
            case '\\' when rest.Length >= 2:
                return DecodeJson(rest, bytes, out consumed);
            case '&' when rest.Length >= 3:
                return DecodeHtml(rest, bytes, out consumed);
            default:
                return 0;
        }
    }

    private static int DecodeJson(ReadOnlySpan<char> rest, Span<byte> bytes, out int consumed)
    {
        consumed = 2;
        int single = rest[1] switch
        {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\b',
            'f' => '\f',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            _ => -1,
        };
        if (single >= 0)
        {
            bytes[0] = (byte)single;
            return 1;
        }

        if (rest[1] != 'u' || HexUnit(rest, 2) is not (>= 0 and var unit))
        {
            return 0;
        }

        consumed = 6;
        if (char.IsHighSurrogate((char)unit) && rest.Length >= 12 && rest[6] == '\\' && rest[7] == 'u' &&
            HexUnit(rest, 8) is >= 0 and var low && char.IsLowSurrogate((char)low))
        {
            consumed = 12;
            return new Rune((char)unit, (char)low).EncodeToUtf8(bytes);
        }

        return Rune.TryCreate(unit, out var rune) ? rune.EncodeToUtf8(bytes) : 0;
    }

    private static int DecodeHtml(ReadOnlySpan<char> rest, Span<byte> bytes, out int consumed)
    {
        consumed = 0;
        int codePoint;
        int i;
        if (rest[1] == '#')
        {
            var hex = rest[2] is 'x' or 'X';
            i = hex ? 3 : 2;
            var start = i;
            codePoint = 0;
            // At most 7 digits: enough for any code point with a leading zero or two; the window stays bounded.
            while (i < rest.Length && i - start < 7 && (hex ? Hex(rest[i]) : rest[i] is >= '0' and <= '9' ? rest[i] - '0' : -1) is >= 0 and var digit)
            {
                codePoint = codePoint * (hex ? 16 : 10) + digit;
                i++;
            }

            if (i == start)
            {
                return 0;
            }

            // The semicolon may be left out (browsers accept it).
            if (i < rest.Length && rest[i] == ';')
            {
                i++;
            }
        }
        else
        {
            i = 1;
            while (i < rest.Length && i <= 7 && char.IsAsciiLetter(rest[i]))
            {
                i++;
            }

            if (i >= rest.Length || rest[i] != ';' || Named(rest[1..i]) is not (>= 0 and var named))
            {
                return 0;
            }

            codePoint = named;
            i++;
        }

        if (!Rune.TryCreate(codePoint, out var rune))
        {
            return 0;
        }

        consumed = i;
        return rune.EncodeToUtf8(bytes);
    }

    /// <summary>The named references of ASCII characters a value may hold.</summary>
    private static int Named(ReadOnlySpan<char> name) => name switch
    {
        "amp" or "AMP" => '&',
        "lt" or "LT" => '<',
        "gt" or "GT" => '>',
        "quot" or "QUOT" => '"',
        "apos" => '\'',
        "sol" => '/',
        "bsol" => '\\',
        "colon" => ':',
        "semi" => ';',
        "equals" => '=',
        "plus" => '+',
        "num" => '#',
        "percnt" => '%',
        "dollar" => '$',
        "lowbar" => '_',
        "period" => '.',
        "comma" => ',',
        "excl" => '!',
        "quest" => '?',
        "commat" => '@',
        "lpar" => '(',
        "rpar" => ')',
        "ast" or "midast" => '*',
        "lsqb" or "lbrack" => '[',
        "rsqb" or "rbrack" => ']',
        "lcub" or "lbrace" => '{',
        "rcub" or "rbrace" => '}',
        "verbar" or "vert" => '|',
        "grave" => '`',
        "Hat" => '^',
        "tilde" => '~',
        "Tab" => '\t',
        "NewLine" => '\n',
        _ => -1,
    };

    private static int HexUnit(ReadOnlySpan<char> text, int at)
    {
        if (text.Length < at + 4)
        {
            return -1;
        }

        var value = 0;
        for (var k = at; k < at + 4; k++)
        {
            var digit = Hex(text[k]);
            if (digit < 0)
            {
                return -1;
            }

            value = value * 16 + digit;
        }

        return value;
    }

    private static int Hex(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => -1,
    };
}

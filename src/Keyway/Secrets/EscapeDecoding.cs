using System.Text;

namespace Keyway.Secrets;

/// <summary>The escapes a value may be written with in an answer (JSON, percent, <c>+</c>, HTML references), decoded one at a time for <see cref="RedactionForms"/>.</summary>
internal static class EscapeDecoding
{
    /// <summary>
    /// Decodes one escape at <paramref name="at"/> (JSON, percent, <c>+</c>, HTML reference) into the
    /// UTF-8 bytes it stands for; returns how many, 0 when there is no escape there.
    /// </summary>
    public static int Decode(ReadOnlySpan<char> text, int at, Span<byte> bytes, out int consumed)
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

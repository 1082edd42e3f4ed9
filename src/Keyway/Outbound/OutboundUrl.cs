using System.Runtime.CompilerServices;
using System.Text;

namespace Keyway.Outbound;

/// <summary>
/// Builds the URL Keyway sends to: a resource's base URL plus a caller's relative path, and
/// nothing else. A caller can never reach another scheme, host, port or a path outside the
/// base path.
/// </summary>
/// <remarks>
/// <para>The relative path is read as the path part of a URL (already percent-encoded where the
/// caller chose to encode). Valid <c>%XX</c> escapes are kept as they are, never decoded;
/// characters a path cannot hold raw (space, non-ASCII, <c>"</c>, <c>&lt;</c>, <c>{</c>, …) are
/// percent-encoded as UTF-8; <c>+</c> stays a literal <c>+</c>. One leading <c>/</c> is
/// ignored: <c>/users</c> and <c>users</c> are both relative to the base path. Empty, <c>/</c>
/// and <see langword="null"/> mean the base URL itself.</para>
/// <para>Rejected with <see cref="OutboundRequestException.PathNotAllowed"/>, and the choices
/// made:</para>
/// <list type="bullet">
/// <item>a <c>:</c> or <c>@</c> in the first segment: that is a scheme (<c>http:</c>,
/// <c>javascript:</c>), a <c>host:port</c> or userinfo (RFC 3986 §4.2 forbids a colon there
/// in a relative reference). Both are fine in later segments (<c>v1/items/a:b</c>).</item>
/// <item>empty segments (<c>//host</c>, <c>a//b</c>); a single trailing <c>/</c> is kept.</item>
/// <item><c>\</c> raw or encoded, and encoded <c>/</c> (<c>%2F</c>): rejected rather than kept
/// encoded, because some upstreams decode them into new segments.</item>
/// <item>dot segments: a segment made only of dots (and spaces), raw or <c>%2E</c>, optionally
/// followed by <c>;params</c> (Tomcat's <c>..;</c>); and Unicode look-alikes of <c>/</c>,
/// <c>\</c> and <c>.</c> that an upstream could normalize into them.</item>
/// <item>double encoding: <c>%25</c> followed by what would decode into another escape
/// (<c>%252e</c>, <c>%25%32%65</c>); a <c>%</c> not followed by two hex digits.</item>
/// <item>escapes of bytes that never occur in UTF-8 (<c>%C0</c>, <c>%C1</c>, <c>%F5</c>–<c>%FF</c>):
/// <c>%C0%AE</c> is an overlong <c>.</c>.</item>
/// <item>control characters raw or encoded (CR, LF, NUL, TAB, DEL, C1), lone surrogates.</item>
/// <item><c>?</c> and <c>#</c>: the query is passed separately, so a raw <c>?</c> in the path
/// is a mistake or a trick; <c>%3F</c> and <c>%23</c> are data and are kept.</item>
/// <item>paths longer than <see cref="MaxPathLength"/> characters.</item>
/// </list>
/// <para>After building, the result is checked again (defence in depth): same scheme, host,
/// port and userinfo as the base, and a path inside the base path.</para>
/// </remarks>
internal static class OutboundUrl
{
    /// <summary>The longest relative path accepted, in characters.</summary>
    public const int MaxPathLength = 8 * 1024;

    private const string UpperHex = "0123456789ABCDEF";

    /// <summary>Builds base URL + relative path + (base query, then <paramref name="query"/>).</summary>
    /// <exception cref="OutboundRequestException">The path or a query name is not allowed.</exception>
    /// <exception cref="ArgumentException"><paramref name="baseUrl"/> is not an absolute http(s) URL.</exception>
    public static Uri Build(Uri baseUrl, string? relativePath, IEnumerable<KeyValuePair<string, string?>>? query = null)
    {
        ArgumentNullException.ThrowIfNull(baseUrl);
        if (!baseUrl.IsAbsoluteUri || (baseUrl.Scheme != Uri.UriSchemeHttp && baseUrl.Scheme != Uri.UriSchemeHttps))
            throw new ArgumentException("The base URL must be an absolute http or https URL.", nameof(baseUrl));

        // AbsoluteUri is canonical and cached by Uri: a raw '?' or '#' there starts the query or
        // the fragment, so slicing it costs no allocation.
        var baseText = baseUrl.AbsoluteUri;
        var queryStart = baseText.IndexOf('?', StringComparison.Ordinal);
        var fragmentStart = baseText.IndexOf('#', StringComparison.Ordinal);
        var baseEnd = fragmentStart >= 0 ? fragmentStart : baseText.Length;
        if (queryStart < 0 || queryStart > baseEnd)
            queryStart = baseEnd;
        var basePathAndAuthority = baseText.AsSpan(0, queryStart);
        var baseQuery = baseText.AsSpan(queryStart, baseEnd - queryStart); // "" or "?…"

        var path = relativePath.AsSpan();
        if (path.Length > MaxPathLength)
            throw Reject($"the path is longer than {MaxPathLength} characters");
        if (!path.IsEmpty && path[0] == '/')
            path = path[1..];

        var builder = new DefaultInterpolatedStringHandler(0, 0, null, stackalloc char[256]);
        try
        {
            if (path.IsEmpty)
            {
                builder.AppendFormatted(basePathAndAuthority);
            }
            else
            {
                builder.AppendFormatted(basePathAndAuthority.EndsWith('/') ? basePathAndAuthority[..^1] : basePathAndAuthority);
                builder.AppendFormatted('/');
                AppendPath(ref builder, path);
            }

            AppendQuery(ref builder, baseQuery, query);
            var text = builder.ToStringAndClear();
            return Verify(baseUrl, text);
        }
        catch
        {
            // ToStringAndClear returns the pooled buffer; on a rejection nobody else will.
            builder.ToStringAndClear();
            throw;
        }
    }

    private static void AppendPath(ref DefaultInterpolatedStringHandler builder, ReadOnlySpan<char> path)
    {
        var segment = new Segment(first: true);
        Span<byte> utf8 = stackalloc byte[4];

        for (var i = 0; i < path.Length; i++)
        {
            var c = path[i];
            switch (c)
            {
                case '/':
                    segment.End();
                    segment = new Segment(first: false);
                    builder.AppendFormatted('/');
                    continue;

                case '%':
                    var decoded = DecodeEscape(path, i);
                    segment.Add(decoded);
                    builder.AppendFormatted(path.Slice(i, 3));
                    i += 2;
                    continue;

                case '\\':
                    throw Reject("backslashes are not allowed in the path");

                case '?':
                case '#':
                    throw Reject("the path must not contain '?' or '#'; pass query parameters separately");

                case ':' when segment.IsFirst:
                    throw Reject("the path must be relative to the resource's base URL; absolute URLs are not allowed (a ':' in the first segment names a scheme or a port)");

                case '@' when segment.IsFirst:
                    throw Reject("the path must be relative to the resource's base URL; an '@' in the first segment could name a user and another host");
            }

            if (c < 0x80)
            {
                if (c < 0x20 || c == 0x7F)
                    throw Reject("control characters (CR, LF, NUL, TAB, …) are not allowed in the path");

                segment.Add(c);
                if (IsPathChar(c))
                {
                    builder.AppendFormatted(c);
                }
                else
                {
                    AppendEscaped(ref builder, (byte)c);
                }

                continue;
            }

            if (char.IsControl(c))
                throw Reject("control characters (CR, LF, NUL, TAB, …) are not allowed in the path");
            if (IsLookAlike(c))
                throw Reject("look-alikes of '/', '\\' and '.' are not allowed in the path");

            Rune rune;
            if (char.IsHighSurrogate(c) && i + 1 < path.Length && char.IsLowSurrogate(path[i + 1]))
            {
                rune = new Rune(c, path[i + 1]);
                i++;
            }
            else if (!Rune.TryCreate(c, out rune))
            {
                throw Reject("the path is not valid UTF-16 (a lone surrogate)");
            }

            segment.Add('\u0080'); // any non-dot, non-separator character
            var length = rune.EncodeToUtf8(utf8);
            for (var b = 0; b < length; b++)
                AppendEscaped(ref builder, utf8[b]);
        }

        segment.EndLast();
    }

    /// <summary>
    /// Reads the escape at <paramref name="index"/> and returns the character it stands for,
    /// rejecting the escapes that could be decoded into a separator, a dot segment or a control
    /// character by an upstream that decodes once or twice.
    /// </summary>
    private static char DecodeEscape(ReadOnlySpan<char> path, int index)
    {
        if (index + 2 >= path.Length || !char.IsAsciiHexDigit(path[index + 1]) || !char.IsAsciiHexDigit(path[index + 2]))
            throw Reject("a '%' in the path must start a percent-encoded byte (%XX)");

        var value = (HexValue(path[index + 1]) << 4) | HexValue(path[index + 2]);
        switch (value)
        {
            case < 0x20 or 0x7F:
                throw Reject("encoded control characters (%0D, %0A, %00, …) are not allowed in the path");
            case '/' or '\\':
                throw Reject("encoded slashes and backslashes (%2F, %5C) are not allowed in the path");
            case '%':
                // "%25" is a literal percent sign, unless what follows would turn it into another
                // escape once decoded ("%252e" → "%2e" → ".", "%25%32%65" → "%2e").
                var next = index + 3;
                if (next < path.Length &&
                    (path[next] == '%' ||
                     (next + 1 < path.Length && char.IsAsciiHexDigit(path[next]) && char.IsAsciiHexDigit(path[next + 1]))))
                {
                    throw Reject("double percent-encoding (%25 followed by an escape) is not allowed in the path");
                }

                return '%';
            case 0xC0 or 0xC1 or >= 0xF5:
                // Bytes that never occur in UTF-8; "%C0%AE" is an overlong '.' that lax
                // decoders (IIS of old, some Java) still read as a dot.
                throw Reject("percent-encoded bytes that are never valid UTF-8 (%C0, %C1, %F5-%FF) are not allowed in the path");
            case >= 0x80:
                return '\u0080'; // part of a multi-byte character: never a dot or a separator
            default:
                return (char)value;
        }
    }

    private static void AppendQuery(
        ref DefaultInterpolatedStringHandler builder,
        ReadOnlySpan<char> baseQuery,
        IEnumerable<KeyValuePair<string, string?>>? query)
    {
        builder.AppendFormatted(baseQuery);
        if (query is null)
            return;

        // The base query may be absent (""), bare ("?") or hold parameters ("?a=1").
        var needsQuestionMark = baseQuery.IsEmpty;
        var needsAmpersand = baseQuery.Length > 1;
        foreach (var (name, value) in query)
        {
            if (string.IsNullOrEmpty(name))
                throw new OutboundRequestException(OutboundRequestException.InvalidQuery, "A query parameter name must not be empty.");

            if (needsQuestionMark)
                builder.AppendFormatted('?');
            else if (needsAmpersand)
                builder.AppendFormatted('&');
            needsQuestionMark = false;
            needsAmpersand = true;

            builder.AppendFormatted(Uri.EscapeDataString(name));
            if (value is not null)
            {
                builder.AppendFormatted('=');
                builder.AppendFormatted(Uri.EscapeDataString(value));
            }
        }
    }

    /// <summary>Defence in depth: whatever the checks above missed, the result stays under the base.</summary>
    private static Uri Verify(Uri baseUrl, string text)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var result))
            throw Reject("the resulting URL is not valid");

        if (!string.Equals(result.Scheme, baseUrl.Scheme, StringComparison.Ordinal) ||
            !string.Equals(result.Host, baseUrl.Host, StringComparison.OrdinalIgnoreCase) ||
            result.Port != baseUrl.Port ||
            !string.Equals(result.UserInfo, baseUrl.UserInfo, StringComparison.Ordinal))
        {
            throw Reject("the path must stay on the resource's scheme, host and port");
        }

        var basePath = baseUrl.AbsolutePath.AsSpan();
        if (basePath.EndsWith('/'))
            basePath = basePath[..^1];
        var resultPath = result.AbsolutePath.AsSpan();
        if (!resultPath.StartsWith(basePath, StringComparison.Ordinal) ||
            (resultPath.Length > basePath.Length && resultPath[basePath.Length] != '/'))
        {
            throw Reject("the path must stay under the resource's base path");
        }

        return result;
    }

    /// <summary>RFC 3986 pchar minus '%' (handled apart) plus '/': what a path may hold raw.</summary>
    private static bool IsPathChar(char c) =>
        char.IsAsciiLetterOrDigit(c) ||
        c is '-' or '.' or '_' or '~' // unreserved
            or '!' or '$' or '&' or '\'' or '(' or ')' or '*' or '+' or ',' or ';' or '=' // sub-delims
            or ':' or '@';

    /// <summary>Characters that Unicode normalization (NFKC) or a lax upstream turns into '/', '\' or '.'.</summary>
    private static bool IsLookAlike(char c) =>
        c is '\uFF0E' // FULLWIDTH FULL STOP
            or '\uFF0F' // FULLWIDTH SOLIDUS
            or '\uFF3C' // FULLWIDTH REVERSE SOLIDUS
            or '\uFE52' // SMALL FULL STOP
            or '\uFE68' // SMALL REVERSE SOLIDUS
            or '\u2024' // ONE DOT LEADER
            or '\u2025' // TWO DOT LEADER
            or '\u2044' // FRACTION SLASH
            or '\u2215' // DIVISION SLASH
            or '\u2216'; // SET MINUS

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    private static void AppendEscaped(ref DefaultInterpolatedStringHandler builder, byte value)
    {
        builder.AppendFormatted('%');
        builder.AppendFormatted(UpperHex[value >> 4]);
        builder.AppendFormatted(UpperHex[value & 0xF]);
    }

    private static OutboundRequestException Reject(string why) =>
        new(OutboundRequestException.PathNotAllowed, $"Path not allowed: {why}.");

    /// <summary>What one path segment has held so far, as decoded once.</summary>
    private struct Segment(bool first)
    {
        private int _length;
        private bool _inParameters;
        private bool _hasDot;
        private bool _onlyDotsAndSpaces = true;

        public readonly bool IsFirst => first;

        public void Add(char decoded)
        {
            _length++;
            if (_inParameters)
                return;

            switch (decoded)
            {
                case ';':
                    // ";params" do not count: Tomcat and others read "..;x" as "..".
                    _inParameters = true;
                    break;
                case '.':
                    _hasDot = true;
                    break;
                case ' ':
                    break;
                default:
                    _onlyDotsAndSpaces = false;
                    break;
            }
        }

        /// <summary>Ends a segment followed by '/': it must not be empty or a dot segment.</summary>
        public readonly void End()
        {
            if (_length == 0)
                throw Reject("empty path segments ('//') are not allowed; a path starting with '//' would name another host");
            CheckDots();
        }

        /// <summary>Ends the last segment: empty means a trailing '/', which is kept.</summary>
        public readonly void EndLast() => CheckDots();

        private readonly void CheckDots()
        {
            if (_hasDot && _onlyDotsAndSpaces)
                throw Reject("'.' and '..' segments (raw or percent-encoded) are not allowed in the path");
        }
    }
}

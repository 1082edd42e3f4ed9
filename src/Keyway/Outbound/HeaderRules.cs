using System.Buffers;
using System.Collections.Frozen;

namespace Keyway.Outbound;

/// <summary>
/// Which headers may be sent upstream: valid names and values, the hop-by-hop headers that
/// belong to one connection, and the caller's headers Keyway never forwards. Cheap lookups for
/// the hot path.
/// </summary>
internal static class HeaderRules
{
    /// <summary>The prefix of Keyway's own headers; a caller's are never forwarded.</summary>
    public const string KeywayPrefix = "X-Keyway-";

    // RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
    // "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
    private static readonly SearchValues<char> TokenChars = SearchValues.Create(
        "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");

    // RFC 9110 §5.5: CTL except HTAB (CR, LF and NUL among them) and DEL.
    private static readonly SearchValues<char> ForbiddenValueChars = SearchValues.Create(
        "\0\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\u000A\u000B\u000C\u000D\u000E\u000F" +
        "\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001A\u001B\u001C\u001D\u001E\u001F\u007F");

    /// <summary>Headers that describe one connection (RFC 9110 §7.6.1), never forwarded either way.</summary>
    /// <summary>Headers .NET keeps on <see cref="HttpContent"/> rather than on the request message.</summary>
    public static FrozenSet<string> ContentHeaders { get; } = FrozenSet.Create(
        StringComparer.OrdinalIgnoreCase,
        "Allow",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Content-Length",
        "Content-Location",
        "Content-MD5",
        "Content-Range",
        "Content-Type",
        "Expires",
        "Last-Modified");

    /// <summary>
    /// Sets a header on an outbound request, replacing any value it had, on the request or on its
    /// content as .NET requires. A content header on a request without a body is dropped.
    /// </summary>
    public static void Set(HttpRequestMessage request, string name, string value)
    {
        if (ContentHeaders.Contains(name))
        {
            if (request.Content is { } content)
            {
                content.Headers.Remove(name);
                content.Headers.TryAddWithoutValidation(name, value);
            }

            return;
        }

        request.Headers.Remove(name);
        request.Headers.TryAddWithoutValidation(name, value);
    }

    public static FrozenSet<string> HopByHop { get; } = FrozenSet.Create(
        StringComparer.OrdinalIgnoreCase,
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Authenticate",
        "Proxy-Authorization");

    /// <summary>
    /// A caller's headers that never reach the upstream: its credentials for Keyway, its cookies,
    /// the host it addressed. Keyway sets these itself where the resource needs them. Names
    /// starting with <see cref="KeywayPrefix"/> are never forwarded either (see <see cref="IsNeverForwarded"/>).
    /// </summary>
    public static FrozenSet<string> NeverForwardedFromCaller { get; } = FrozenSet.Create(
        StringComparer.OrdinalIgnoreCase,
        "Authorization",
        "Cookie",
        "Host");

    /// <summary>An RFC 9110 token: one or more tchar.</summary>
    public static bool IsValidName(string? name) =>
        !string.IsNullOrEmpty(name) && !name.AsSpan().ContainsAnyExcept(TokenChars);

    /// <summary>No CR, LF, NUL or other control character except HTAB. Empty is valid.</summary>
    public static bool IsValidValue(string? value) =>
        value is not null && !value.AsSpan().ContainsAny(ForbiddenValueChars);

    /// <summary>
    /// Why the written (non-template) text of a header or query value is refused: a CR, LF or NUL
    /// outside <c>{{ }}</c>, which would end the header or smuggle another; null when it is fine.
    /// The parts inside <c>{{ }}</c> are checked on what they evaluate to, when the request is built.
    /// </summary>
    public static string? StaticValueError(string? text)
    {
        if (text is null || text.AsSpan().IndexOfAny('\r', '\n', '\0') < 0)
            return null;

        var depth = 0;
        for (var i = 0; i < text.Length; i++)
        {
            if (i + 1 < text.Length && text[i] == '{' && text[i + 1] == '{')
            {
                depth++;
                i++;
            }
            else if (depth > 0 && i + 1 < text.Length && text[i] == '}' && text[i + 1] == '}')
            {
                depth--;
                i++;
            }
            else if (depth == 0 && text[i] is '\r' or '\n' or '\0')
            {
                return "A header or query value must not hold a line break (CR, LF) or a NUL character; write it on one line.";
            }
        }

        return null;
    }

    /// <summary>A hop-by-hop header, by its name alone.</summary>
    public static bool IsHopByHop(string name) => HopByHop.Contains(name);

    /// <summary>
    /// A hop-by-hop header: one of <see cref="HopByHop"/> or one named in the message's
    /// <c>Connection</c> header values (comma-separated tokens, RFC 9110 §7.6.1).
    /// </summary>
    public static bool IsHopByHop(string name, IEnumerable<string?>? connectionValues)
    {
        if (HopByHop.Contains(name))
            return true;
        if (connectionValues is null)
            return false;

        foreach (var value in connectionValues)
        {
            if (value is not null && ListContains(value, name))
                return true;
        }

        return false;
    }

    /// <summary>A caller's header that Keyway never forwards: credentials, cookies, host, <c>X-Keyway-*</c>.</summary>
    public static bool IsNeverForwarded(string name) =>
        NeverForwardedFromCaller.Contains(name) || name.StartsWith(KeywayPrefix, StringComparison.OrdinalIgnoreCase);

    /// <summary>Whether a caller's header may be sent upstream: valid, not hop-by-hop, not one Keyway keeps.</summary>
    public static bool MayForwardFromCaller(string name, IEnumerable<string?>? connectionValues) =>
        IsValidName(name) && !IsNeverForwarded(name) && !IsHopByHop(name, connectionValues);

    private static bool ListContains(ReadOnlySpan<char> list, ReadOnlySpan<char> name)
    {
        foreach (var range in list.Split(','))
        {
            if (list[range].Trim(" \t").Equals(name, StringComparison.OrdinalIgnoreCase))
                return true;
        }

        return false;
    }
}

namespace Keyway.Api;

/// <summary>The one check for a return address a caller hands Keyway (after sign-on, after connecting an account).</summary>
internal static class LocalPaths
{
    /// <summary>
    /// Whether Keyway may redirect a browser to <paramref name="url"/>: a path on this server. Not
    /// <c>//host</c>, and nothing a browser would turn into it: it treats <c>\</c> as <c>/</c> and
    /// drops tabs and line breaks, so <c>/\host</c> and <c>/&lt;TAB&gt;/host</c> are other sites too.
    /// Any backslash or control character is refused.
    /// </summary>
    public static bool IsLocal(string? url) =>
        !string.IsNullOrEmpty(url) && url[0] == '/' && (url.Length == 1 || url[1] != '/')
        && !url.AsSpan().ContainsAny(Refused);

    private static readonly System.Buffers.SearchValues<char> Refused = System.Buffers.SearchValues.Create(
        "\\\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\u0008\u0009\u000A\u000B\u000C\u000D\u000E\u000F" +
        "\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001A\u001B\u001C\u001D\u001E\u001F\u007F");
}

using Keyway.Outbound;
using Microsoft.AspNetCore.Http.Features;

namespace Keyway.Proxy;

/// <summary>
/// What keeps an upstream's answer from acting on Keyway's origin. A proxied answer is served from
/// the same origin as the console; without these rules an upstream's HTML page would run its
/// scripts there, read the console's cookies and call the API as whoever opened it.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><c>Content-Security-Policy: sandbox</c> on every answer of <c>/proxy</c>, Keyway's own
/// errors included, replacing the upstream's: a document rendered from it gets an opaque origin
/// (no cookies, no storage, no same-origin requests) and runs no script.</item>
/// <item><c>X-Content-Type-Options: nosniff</c>, replacing the upstream's: a JSON or text answer is
/// never sniffed into HTML or a script.</item>
/// <item>Dropped from the upstream's answer: <c>Set-Cookie</c> (a cookie set on Keyway's origin
/// would reach the console and the API), <c>Clear-Site-Data</c> (it would sign the console out
/// and wipe its storage) and <c>Service-Worker-Allowed</c> (it widens where a service worker may
/// act). <c>Link</c>, <c>Refresh</c> and CORS headers pass: they name other URLs, they act on no
/// state of Keyway's origin, and APIs use <c>Link</c> for paging.</item>
/// </list>
/// </remarks>
internal static class ProxyIsolation
{
    public const string ContentSecurityPolicy = "sandbox";

    /// <summary>Upstream answer headers that would act on Keyway's origin; never passed to the caller.</summary>
    public static readonly string[] DroppedResponseHeaders = ["Set-Cookie", "Clear-Site-Data", "Service-Worker-Allowed"];

    /// <summary>
    /// Sets the rules on an answer's headers. The proxy applies them when a request arrives (so that an
    /// answer Keyway writes itself carries them), again once the upstream's headers are copied (which may
    /// bring their own), and after anything that clears the answer; so every answer of <c>/proxy</c> goes
    /// out with them, without a callback on each response start.
    /// </summary>
    public static void Apply(IHeaderDictionary headers)
    {
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        foreach (var name in DroppedResponseHeaders)
        {
            headers.Remove(name);
        }
    }

    /// <summary>
    /// The relative path the caller sent after <c>/proxy/{resource}/</c>, as it was encoded on the wire.
    /// Routing decodes the path (a <c>%3F</c> becomes a <c>?</c>, a <c>%25</c> a <c>%</c>), which would
    /// change what reaches the upstream; <see cref="OutboundUrl"/> reads an encoded path, as <c>/run</c>
    /// gives it, so both send the same bytes. A raw path that the server normalized on its way to the
    /// route (dot segments that moved the resource name) is refused rather than guessed at.
    /// </summary>
    /// <exception cref="OutboundRequestException">The raw path does not name the routed resource.</exception>
    public static string? RawRelativePath(HttpContext context, string resource, string? routed)
    {
        var raw = context.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (string.IsNullOrEmpty(raw) || raw[0] != '/')
        {
            // The absolute form (GET http://host/proxy/…) or no raw target: the routed path is all there is.
            return routed;
        }

        var end = raw.IndexOf('?', StringComparison.Ordinal);
        var path = end < 0 ? raw.AsSpan() : raw.AsSpan(0, end);
        if (!path.Contains('%') && !path.Contains("/.", StringComparison.Ordinal))
        {
            // Nothing was decoded and no dot segment removed: the routed path is the raw one.
            return routed;
        }

        const string Prefix = "/proxy/";
        if (!path.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
        {
            throw NotTheRoutedPath();
        }

        path = path[Prefix.Length..];
        var slash = path.IndexOf('/');
        var name = slash < 0 ? path : path[..slash];
        if (!(name.Contains('%') ? Uri.UnescapeDataString(name.ToString()).AsSpan() : name).SequenceEqual(resource))
        {
            throw NotTheRoutedPath();
        }

        return slash < 0 ? null : path[(slash + 1)..].ToString();
    }

    private static OutboundRequestException NotTheRoutedPath() =>
        new(OutboundRequestException.PathNotAllowed,
            "Path not allowed: the path does not name the resource plainly ('.' and '..' segments, raw or percent-encoded, are not allowed); send /proxy/{resource}/{path}.");
}

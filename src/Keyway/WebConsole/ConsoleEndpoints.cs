using System.Collections.Frozen;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;

namespace Keyway.WebConsole;

/// <summary>
/// The web console: one static page and its script and style, embedded in the assembly and served
/// at <c>/console</c>. The page holds no data of its own. Everything it shows it reads from
/// <c>/api/v1</c> with the signed-in person's session cookie (and <c>X-Keyway-CSRF</c> on every
/// change), so the console goes through the same authorization, validation, redaction and audit as
/// any other client, and can show nothing the API would not.
/// </summary>
/// <remarks>
/// The folder is <c>WebConsole</c>, not <c>Console</c>: a <c>Keyway.Console</c> namespace would hide
/// <see cref="System.Console"/> from every file under <c>Keyway</c>.
/// </remarks>
internal static class ConsoleEndpoints
{
    public const string Path = "/console";

    /// <summary>
    /// No inline script or style, no other origin, no framing: a value that slipped into the page
    /// could not run, and no other site can overlay the console.
    /// </summary>
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

    public static IEndpointRouteBuilder MapConsole(this IEndpointRouteBuilder app, bool singleSignOn)
    {
        var assets = LoadAssets(singleSignOn);
        app.MapGet("/", () => TypedResults.Redirect(Path)).ExcludeFromDescription();
        app.MapGet(Path, (HttpContext context) => Serve(context, assets["index.html"])).ExcludeFromDescription();
        app.MapGet(Path + "/{file}", (HttpContext context, string file) =>
                assets.TryGetValue(file, out var asset) && file != "index.html"
                    ? Serve(context, asset)
                    : TypedResults.NotFound())
            .ExcludeFromDescription();
        return app;
    }

    private static IResult Serve(HttpContext context, Asset asset)
    {
        var headers = context.Response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers.XFrameOptions = "DENY";
        headers["Referrer-Policy"] = "no-referrer";
        // Revalidated on every load (a 304 costs nothing), so an upgrade never runs old script.
        headers.CacheControl = "no-cache";
        headers.ETag = asset.ETag;
        if (context.Request.Headers.IfNoneMatch.Contains(asset.ETag))
        {
            return TypedResults.StatusCode(StatusCodes.Status304NotModified);
        }

        return TypedResults.Bytes(asset.Content, asset.ContentType);
    }

    private static FrozenDictionary<string, Asset> LoadAssets(bool singleSignOn)
    {
        var assembly = typeof(ConsoleEndpoints).Assembly;
        const string prefix = "Keyway.WebConsole.assets.";
        var assets = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(prefix, StringComparison.Ordinal)))
        {
            var file = name[prefix.Length..];
            var content = Read(assembly, name);
            if (file == "index.html")
            {
                // The one thing the page is told by the server rather than the API: whether to offer single sign-on.
                content = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(content)
                    .Replace("{{SSO}}", singleSignOn ? "on" : "off", StringComparison.Ordinal));
            }

            assets[file] = new Asset(content, ContentTypeOf(file), $"\"{Convert.ToHexStringLower(SHA256.HashData(content))[..16]}\"");
        }

        return assets.ContainsKey("index.html")
            ? assets.ToFrozenDictionary(StringComparer.Ordinal)
            : throw new InvalidOperationException("The console's page is missing from the assembly.");
    }

    private static byte[] Read(Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name)!;
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return buffer.ToArray();
    }

    private static string ContentTypeOf(string file) => System.IO.Path.GetExtension(file) switch
    {
        ".html" => "text/html; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        ".svg" => "image/svg+xml",
        _ => "application/octet-stream",
    };

    private sealed record Asset(byte[] Content, string ContentType, string ETag);
}

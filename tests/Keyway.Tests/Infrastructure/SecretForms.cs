using System.Globalization;
using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// Every form in which an upstream may echo a secret value (JSON escapes, percent, base64 at each
/// alignment and as <c>user:secret</c>, HTML references, UTF-16), a view of a text as a reader would
/// decode it, and an upstream route that echoes a value in one form, compressed on request.
/// </summary>
public static class SecretForms
{
    /// <summary>The forms of <paramref name="value"/> by name; the UTF-16 ones are bytes held one per char (Latin-1).</summary>
    public static Dictionary<string, string> Of(string value)
    {
        var utf8 = Encoding.UTF8.GetBytes(value);
        string Base64At(int offset) => Convert.ToBase64String([.. Enumerable.Repeat((byte)'x', offset), .. utf8]);
        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["raw"] = value,
            ["json-short-escapes"] = value.Replace("/", "\\/", StringComparison.Ordinal),
            ["json-u-lower"] = string.Concat(value.Select(c => "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture))),
            ["json-u-upper"] = string.Concat(value.Select(c => "\\u" + ((int)c).ToString("X4", CultureInfo.InvariantCulture))),
            ["json-mixed"] = string.Concat(value.Select((c, i) => i % 2 == 0 ? "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture) : c == '/' ? "\\/" : c.ToString())),
            ["json-default"] = JsonEncodedText.Encode(value).ToString(),
            ["percent-upper"] = Uri.EscapeDataString(value),
            ["percent-lower"] = string.Concat(utf8.Select(b => "%" + b.ToString("x2", CultureInfo.InvariantCulture))),
            ["percent-plus"] = Uri.EscapeDataString(value).Replace("%20", "+", StringComparison.Ordinal),
            ["percent-mixed"] = value.Replace("/", "%2f", StringComparison.Ordinal).Replace(" ", "+", StringComparison.Ordinal).Replace("ö", "%C3%b6", StringComparison.Ordinal),
            ["base64"] = Convert.ToBase64String(utf8),
            ["base64-unpadded"] = Convert.ToBase64String(utf8).TrimEnd('='),
            ["base64url"] = Convert.ToBase64String(utf8).Replace('+', '-').Replace('/', '_').TrimEnd('='),
            ["base64-basic-auth"] = Convert.ToBase64String(Encoding.UTF8.GetBytes("svc:" + value)),
            ["base64-any-user"] = Convert.ToBase64String(Encoding.UTF8.GetBytes("mallory-the-great:" + value)),
            ["base64-offset-1"] = Base64At(1),
            ["base64-offset-2"] = Base64At(2),
            ["base64url-offset-1"] = Base64At(1).Replace('+', '-').Replace('/', '_'),
            ["base64-json-slash"] = Base64At(2).Replace("/", "\\/", StringComparison.Ordinal),
            ["html-decimal"] = string.Concat(value.Select(c => "&#" + (int)c + ";")),
            ["html-hex"] = string.Concat(value.Select(c => "&#x" + ((int)c).ToString("x", CultureInfo.InvariantCulture) + ";")),
            ["html-named"] = System.Net.WebUtility.HtmlEncode(value),
            ["html-mixed"] = value.Replace("C", "&#67", StringComparison.Ordinal).Replace("&s", "&amp;s", StringComparison.Ordinal).Replace("/", "&sol;", StringComparison.Ordinal),
            ["utf-16le"] = Encoding.Latin1.GetString(Encoding.Unicode.GetBytes(value)),
            ["utf-16be"] = Encoding.Latin1.GetString(Encoding.BigEndianUnicode.GetBytes(value)),
        };
    }

    /// <summary>
    /// <paramref name="text"/> as a reader would decode it, every way at once: itself, JSON-unescaped,
    /// percent-decoded, HTML-decoded, each base64 run decoded at each offset, and its bytes read as UTF-16.
    /// </summary>
    public static string Decoded(string text)
    {
        var views = new List<string> { text };
        try
        {
            views.Add(JsonSerializer.Deserialize<string>("\"" + text.Replace("\"", "\\\"", StringComparison.Ordinal) + "\"") ?? "");
        }
        catch (JsonException)
        {
        }

        try
        {
            views.Add(Uri.UnescapeDataString(text.Replace('+', ' ')));
        }
        catch (UriFormatException)
        {
        }

        views.Add(System.Net.WebUtility.HtmlDecode(text));
        var bytes = Encoding.Latin1.GetBytes(text);
        views.Add(Encoding.Unicode.GetString(bytes));
        views.Add(Encoding.BigEndianUnicode.GetString(bytes));
        foreach (Match run in Regex.Matches(text.Replace("\\/", "/", StringComparison.Ordinal), "[A-Za-z0-9+/_-]{8,}={0,2}"))
        {
            for (var skip = 0; skip < 4; skip++)
            {
                var candidate = run.Value[skip..].TrimEnd('=').Replace('-', '+').Replace('_', '/');
                candidate = candidate[..(candidate.Length / 4 * 4)];
                try
                {
                    views.Add(Encoding.UTF8.GetString(Convert.FromBase64String(candidate)));
                }
                catch (FormatException)
                {
                }
            }
        }

        return string.Join("\n", views);
    }

    /// <summary>
    /// Maps <c>/forms/{form}</c>: the request's <c>X-Echo</c> header (or <paramref name="fixedText"/>'s value
    /// with <c>?source=fixed</c>) in that form (<c>all</c>: every form), in a JSON document
    /// (<c>?type=json</c>, the default), as text (<c>?type=text</c>) or HTML (<c>?type=html</c>); UTF-16 forms
    /// as bytes; <c>?status=N</c> answers with that status. <c>?encoding=gzip|deflate|br|…</c> compresses it (an unknown name is only declared), whatever
    /// the request's Accept-Encoding said. <c>/bomb?encoding=gzip&amp;size=N</c>: N zero bytes, compressed.
    /// </summary>
    public static void MapEchoForms(this WebApplication app, Func<string> fixedText)
    {
        app.Map("/forms/{form}", async (HttpContext context) =>
        {
            var value = context.Request.Query["source"] == "fixed" ? fixedText() : context.Request.Headers["X-Echo"].ToString();
            var form = (string)context.Request.RouteValues["form"]!;
            var forms = Of(value);
            byte[] body;
            string contentType;
            if (form.StartsWith("utf-16", StringComparison.Ordinal))
            {
                body = Encoding.Latin1.GetBytes("<" + forms[form] + ">");
                contentType = "application/octet-stream";
            }
            else
            {
                var echoed = form == "all"
                    ? string.Join(" | ", forms.Where(f => !f.Key.StartsWith("utf-16", StringComparison.Ordinal)).Select(f => f.Value))
                    : forms[form];
                (body, contentType) = context.Request.Query["type"].ToString() switch
                {
                    "text" => (Encoding.UTF8.GetBytes("echo: " + echoed), "text/plain; charset=utf-8"),
                    "html" => (Encoding.UTF8.GetBytes("<p title=\"" + echoed + "\">" + echoed + "</p>"), "text/html; charset=utf-8"),
                    // The form goes into the document as it is: its JSON escapes are the document's.
                    _ => (Encoding.UTF8.GetBytes("{\"echo\":\"" + echoed.Replace("\"", "\\u0022", StringComparison.Ordinal) + "\"}"), "application/json"),
                };
            }

            await WriteAsync(context, body, contentType);
        });
        app.Map("/bomb", (HttpContext context) =>
            WriteAsync(context, new byte[int.Parse(context.Request.Query["size"].ToString(), CultureInfo.InvariantCulture)], "application/octet-stream"));
    }

    private static async Task WriteAsync(HttpContext context, byte[] body, string contentType)
    {
        var encoding = context.Request.Query["encoding"].ToString();
        if (int.TryParse(context.Request.Query["status"], CultureInfo.InvariantCulture, out var status))
        {
            context.Response.StatusCode = status;
        }

        context.Response.ContentType = contentType;
        if (encoding.Length > 0)
        {
            body = Compress(body, encoding);
            context.Response.Headers.ContentEncoding = encoding;
        }

        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body, context.RequestAborted);
    }

    private static byte[] Compress(byte[] body, string encoding)
    {
        using var output = new MemoryStream();
        using (Stream compressor = encoding switch
        {
            "gzip" => new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true),
            "deflate" => new ZLibStream(output, CompressionLevel.Fastest, leaveOpen: true),
            "br" => new BrotliStream(output, CompressionLevel.Fastest, leaveOpen: true),
            // An encoding Keyway does not know: the bytes gzipped, declared under another name.
            _ => new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true),
        })
        {
            compressor.Write(body);
        }

        return output.ToArray();
    }
}

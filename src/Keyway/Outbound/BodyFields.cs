using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Keyway.Api;

namespace Keyway.Outbound;

/// <summary>
/// A credential placed in the request body (<c>auth.apply.body</c>): fields set on a JSON object's top level or in an
/// <c>application/x-www-form-urlencoded</c> form, replacing any the caller sent under the same name. A request without
/// a body gets a JSON object of the fields alone; any other kind of body is refused, never sent without the credential.
/// </summary>
internal static class BodyFields
{
    /// <summary>The largest body the proxy reads whole to place a credential in.</summary>
    public const int MaxBytes = 8 * 1024 * 1024;

    private static readonly JsonSerializerOptions Compact = new() { WriteIndented = false };

    public static byte[] Place(
        string method, ReadOnlySpan<byte> body, string? contentType, IReadOnlyList<KeyValuePair<string, string>> fields, string resource)
    {
        if (body.IsEmpty && (HttpMethods.IsGet(method) || HttpMethods.IsHead(method)))
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "body_not_placeable",
                $"The resource '{resource}' places its credential in the request body (auth.apply.body), and a {method} request has none. " +
                "Send the call with a body (POST, PUT or PATCH), or place the token in a header or query parameter for this API.");
        }

        var mediaType = MediaType(contentType);
        if (contentType is not null && Charset(contentType) is { } charset && !charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) &&
            !charset.Equals("utf8", StringComparison.OrdinalIgnoreCase))
        {
            // Placed as UTF-8 into text of another encoding, the token would reach the upstream in a form no redactor knows.
            throw new KeywayException(StatusCodes.Status415UnsupportedMediaType, "body_not_placeable",
                $"The resource '{resource}' places its credential in the request body, which Keyway does in UTF-8 bodies only; this one says charset={charset}.");
        }

        if (body.IsEmpty && mediaType is null or "application/json")
        {
            return Json(new JsonObject(), fields);
        }

        if (mediaType == "application/x-www-form-urlencoded")
        {
            return Form(body, fields);
        }

        if (mediaType is "application/json" || (mediaType?.EndsWith("+json", StringComparison.Ordinal) ?? false))
        {
            JsonNode? node;
            try
            {
                node = JsonNode.Parse(body);
            }
            catch (JsonException)
            {
                throw Refused(resource, "its body is not valid JSON");
            }

            return node is JsonObject json ? Json(json, fields) : throw Refused(resource, "its JSON body is not an object");
        }

        throw new KeywayException(StatusCodes.Status415UnsupportedMediaType, "body_not_placeable",
            $"The resource '{resource}' places its credential in the request body (auth.apply.body), which Keyway does in a JSON object or a form " +
            $"(application/x-www-form-urlencoded), not in '{mediaType}'. Send one of those.");
    }

    /// <summary>For the proxy: the caller's body, read whole (up to <see cref="MaxBytes"/>) so the credential can be placed in it.</summary>
    public static async ValueTask<byte[]> ReadAsync(HttpRequest request, string resource, CancellationToken cancellationToken)
    {
        if (request.Headers.ContentEncoding.Count > 0)
        {
            // A compressed body would be decompressed by the upstream after the fields were placed in its compressed bytes.
            throw new KeywayException(StatusCodes.Status415UnsupportedMediaType, "body_not_placeable",
                $"The resource '{resource}' places its credential in the request body, which Keyway cannot do in a body sent with Content-Encoding: send it uncompressed.");
        }

        var canHaveBody = request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>()?.CanHaveBody ??
                          request.Headers.ContainsKey("Transfer-Encoding");
        if (request.ContentLength is 0 || (request.ContentLength is null && !canHaveBody))
        {
            return [];
        }

        if (request.ContentLength > MaxBytes)
        {
            throw TooLarge(resource);
        }

        // Held as it arrives, up to the bound, whether its length was declared or it came in chunks.
        var body = new MemoryStream((int)Math.Min(request.ContentLength ?? ReadSize, MaxBytes));
        var buffer = new byte[ReadSize];
        while (await request.Body.ReadAsync(buffer, cancellationToken) is var count and > 0)
        {
            if (body.Length + count > MaxBytes)
            {
                throw TooLarge(resource);
            }

            body.Write(buffer, 0, count);
        }

        if (request.ContentLength is { } declared && body.Length != declared)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "body_incomplete",
                $"The request body ended after {body.Length} of the {declared} bytes its Content-Length declares.");
        }

        return body.ToArray();
    }

    private const int ReadSize = 16 * 1024;

    private static KeywayException TooLarge(string resource) =>
        new(StatusCodes.Status413PayloadTooLarge, "body_not_placeable",
            $"The resource '{resource}' places its credential in the request body, which Keyway reads whole first: send a body of up to " +
            $"{MaxBytes / (1024 * 1024)} MB.");

    private static string? MediaType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return null;
        }

        var end = contentType.IndexOf(';');
        return (end < 0 ? contentType : contentType[..end]).Trim().ToLowerInvariant();
    }

    private static string? Charset(string contentType)
    {
        foreach (var parameter in contentType.Split(';').Skip(1))
        {
            var pair = parameter.Split('=', 2);
            if (pair.Length == 2 && pair[0].Trim().Equals("charset", StringComparison.OrdinalIgnoreCase))
            {
                return pair[1].Trim().Trim('"');
            }
        }

        return null;
    }

    private static byte[] Json(JsonObject json, IReadOnlyList<KeyValuePair<string, string>> fields)
    {
        foreach (var (name, value) in fields)
        {
            json[name] = value;
        }

        return JsonSerializer.SerializeToUtf8Bytes(json, Compact);
    }

    private static byte[] Form(ReadOnlySpan<byte> body, IReadOnlyList<KeyValuePair<string, string>> fields)
    {
        var text = new StringBuilder();
        foreach (var pair in Encoding.UTF8.GetString(body).Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var name = Uri.UnescapeDataString((pair.Split('=', 2)[0]).Replace('+', ' '));
            if (fields.Any(f => f.Key == name))
            {
                continue;
            }

            text.Append(text.Length == 0 ? "" : "&").Append(pair);
        }

        foreach (var (name, value) in fields)
        {
            text.Append(text.Length == 0 ? "" : "&").Append(Uri.EscapeDataString(name)).Append('=').Append(Uri.EscapeDataString(value));
        }

        return Encoding.UTF8.GetBytes(text.ToString());
    }

    private static KeywayException Refused(string resource, string why) =>
        new(StatusCodes.Status400BadRequest, "body_not_placeable",
            $"The resource '{resource}' places its credential in the request body (auth.apply.body), but {why}: send a JSON object or a form.");
}

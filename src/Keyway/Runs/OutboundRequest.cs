using System.Text;
using Keyway.Resources;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Runs;

/// <summary>
/// A request as Keyway sent it upstream (a run's, or a step of the resource test): method, full URL,
/// headers and body, every value that came from a secret withheld (<see cref="OutboundCapture"/>) and every
/// known secret value redacted. What a person debugging a resource needs to see, never what it carried.
/// </summary>
internal sealed record OutboundRequest(string Method, string Url, Dictionary<string, string> Headers, string? Body)
{
    /// <summary>The longest body shown; the rest is cut (after redaction, so no cut leaves part of a secret).</summary>
    public const int MaxBodyChars = 16 * 1024;

    public static OutboundRequest From(
        string method, string url, IEnumerable<KeyValuePair<string, string>> headers, string? body, Redactor redactor) =>
        new(method, redactor.Redact(url), RedactHeaders(headers, redactor), body is null ? null : Excerpt(redactor.Redact(body)));

    /// <summary>
    /// Every header through the redactor; the credentials of <c>Authorization</c>, <c>Proxy-Authorization</c> and <c>DPoP</c>
    /// are withheld whatever they hold (only the scheme is shown): a value built from a secret in a form the
    /// redactor does not know (a digest, an encoding of several values) must not be shown either.
    /// </summary>
    public static Dictionary<string, string> RedactHeaders(IEnumerable<KeyValuePair<string, string>> headers, Redactor redactor)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, value) in headers)
        {
            // A value already withheld by provenance keeps its reason; the redactor has nothing to find in it.
            var shown = value.StartsWith("«withheld:", StringComparison.Ordinal) ? value
                : IsCredentialHeader(name) ? WithheldCredential(value) : redactor.Redact(value);
            var key = redactor.Redact(name);
            result[key] = result.TryGetValue(key, out var earlier) ? earlier + ", " + shown : shown;
        }

        return result;
    }

    /// <summary>A header whose value is a credential or proves one: <c>Authorization</c>, <c>Proxy-Authorization</c>, a <c>DPoP</c> proof.</summary>
    public static bool IsCredentialHeader(string name) =>
        name.Equals("Authorization", StringComparison.OrdinalIgnoreCase) || name.Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase) ||
        name.Equals(Credentials.DPoPHeaders.Proof, StringComparison.OrdinalIgnoreCase);

    /// <summary>The scheme of a credential header, its credentials withheld.</summary>
    public static string WithheldCredential(string value)
    {
        var space = value.IndexOf(' ', StringComparison.Ordinal);
        var scheme = space > 0 ? value[..space] : "";
        return scheme.Length is > 0 and <= 20 && scheme.All(char.IsAsciiLetterOrDigit) ? scheme + " " + Secret.Redacted : Secret.Redacted;
    }

    /// <summary>A body as text, or a note of its size when it is not UTF-8 text.</summary>
    public static string? BodyText(byte[]? bytes)
    {
        if (bytes is null)
        {
            return null;
        }

        if (bytes.AsSpan().Contains((byte)0))
        {
            return $"({bytes.Length} bytes of binary data; not shown)";
        }

        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return $"({bytes.Length} bytes that are not UTF-8 text; not shown)";
        }
    }

    public static string Excerpt(string text) => text.Length <= MaxBodyChars ? text : text[..MaxBodyChars] + $"… ({text.Length - MaxBodyChars} more characters)";
}

/// <summary>
/// Holds the last request a run sent (a redirect or a replay sends another), to be shown: each header and query
/// value only when its provenance is known to be free of secrets (the caller's own, or the resource's rendered from
/// a template that reads nothing secret, see <see cref="ShownValues"/>), every other value withheld with why. The
/// value-based redactor runs over what is shown as well, but it is not what keeps a secret out: a piece of a secret
/// shorter than it matches, or an encoding it does not derive, is withheld because of where it came from.
/// </summary>
internal sealed class OutboundCapture
{
    private static readonly HashSet<string> BodyHeaders = new(StringComparer.OrdinalIgnoreCase) { "Content-Type", "Content-Length" };

    /// <summary>What a SigV4 signature adds that says nothing of a secret: the time and the body's digest.</summary>
    private static readonly HashSet<string> SignatureFacts = new(StringComparer.OrdinalIgnoreCase) { "X-Amz-Date", "X-Amz-Content-Sha256" };

    private string? _method;
    private Uri? _url;
    private List<KeyValuePair<string, string>>? _headers;
    private byte[]? _body;

    public void Capture(HttpRequestMessage request, byte[]? body)
    {
        _method = request.Method.Method;
        _url = request.RequestUri!;
        _headers = [];
        foreach (var (name, values) in request.Content is null ? request.Headers : request.Headers.Concat(request.Content.Headers))
        {
            _headers.Add(new(name, string.Join(", ", values)));
        }

        _body = body;
    }

    /// <summary>The request as sent: <paramref name="call"/> is what the caller asked for, <paramref name="shown"/> what the resource added.</summary>
    public OutboundRequest? Render(Redactor redactor, ShownValues shown, OutboundCall call)
    {
        if (_method is null)
        {
            return null;
        }

        var headers = _headers!.Select(h => new KeyValuePair<string, string>(h.Key, ShownHeader(h.Key, h.Value, shown, call)));
        return OutboundRequest.From(_method, ShownUrl(_url!, shown, call), headers, OutboundRequest.BodyText(_body), redactor);
    }

    private static string ShownHeader(string name, string value, ShownValues shown, OutboundCall call)
    {
        if (shown.WithheldHeaders.TryGetValue(name, out var reason))
        {
            return TemplateProvenance.Marker(reason);
        }

        if (Is(shown.Headers, name, value) || Is(call.Headers, name, value) || BodyHeaders.Contains(name) || SignatureFacts.Contains(name) ||
            (name.Equals("Accept-Encoding", StringComparison.OrdinalIgnoreCase) && value == Outbound.ResponseDecoding.Identity))
        {
            return value;
        }

        return TemplateProvenance.Marker(name.Equals("Cookie", StringComparison.OrdinalIgnoreCase)
            ? "cookies carry the resource's credential"
            : "set by the resource's auth method");
    }

    private static bool Is(IEnumerable<KeyValuePair<string, string>> known, string name, string value) =>
        known.Any(k => k.Key.Equals(name, StringComparison.OrdinalIgnoreCase) && k.Value == value);

    /// <summary>The URL with each query value shown only when the caller or a plain template of the resource gave it.</summary>
    private static string ShownUrl(Uri url, ShownValues shown, OutboundCall call)
    {
        var query = url.Query.Length > 1 ? url.Query[1..].Split('&') : [];
        var parts = new List<string>(query.Length);
        foreach (var pair in query)
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            var name = Unescape(equals < 0 ? pair : pair[..equals]);
            var value = equals < 0 ? null : Unescape(pair[(equals + 1)..]);
            if (shown.WithheldQuery.TryGetValue(name, out var reason))
            {
                parts.Add(pair[..(equals < 0 ? pair.Length : equals)] + "=" + TemplateProvenance.Marker(reason));
            }
            else if (shown.Query.Any(q => q.Key == name && q.Value == (value ?? "")) || call.Query.Any(q => q.Key == name && (q.Value ?? "") == (value ?? "")))
            {
                parts.Add(pair);
            }
            else
            {
                // The auth method's, a signature's, or a redirect's: not known to be free of secrets.
                parts.Add(pair[..(equals < 0 ? pair.Length : equals)] + "=" + TemplateProvenance.Marker("not from the request or a plain setting of the resource"));
            }
        }

        var left = shown.BaseUrlWithheld is { } baseReason ? TemplateProvenance.Marker("the base URL " + baseReason) : url.GetLeftPart(UriPartial.Path);
        return parts.Count == 0 ? left : left + "?" + string.Join('&', parts);
    }

    private static string Unescape(string text) => Uri.UnescapeDataString(text.Replace('+', ' '));
}

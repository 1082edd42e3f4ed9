using System.Text;
using Keyway.Secrets;

namespace Keyway.Runs;

/// <summary>
/// A request as Keyway sent it upstream (a run's, or a step of the resource test): method, full URL,
/// headers and body, with every secret value redacted. What a person debugging a resource needs to see,
/// never what it carried.
/// </summary>
internal sealed record OutboundRequest(string Method, string Url, Dictionary<string, string> Headers, string? Body)
{
    /// <summary>The longest body shown; the rest is cut (after redaction, so no cut leaves part of a secret).</summary>
    public const int MaxBodyChars = 16 * 1024;

    public static OutboundRequest From(
        string method, string url, IEnumerable<KeyValuePair<string, string>> headers, string? body, Redactor redactor) =>
        new(method, redactor.Redact(url), RedactHeaders(headers, redactor), body is null ? null : Excerpt(redactor.Redact(body)));

    /// <summary>
    /// Every header through the redactor; the credentials of <c>Authorization</c> and <c>Proxy-Authorization</c>
    /// are withheld whatever they hold (only the scheme is shown): a value built from a secret in a form the
    /// redactor does not know (a digest, an encoding of several values) must not be shown either.
    /// </summary>
    public static Dictionary<string, string> RedactHeaders(IEnumerable<KeyValuePair<string, string>> headers, Redactor redactor)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, value) in headers)
        {
            var shown = IsCredentialHeader(name) ? WithheldCredential(value) : redactor.Redact(value);
            var key = redactor.Redact(name);
            result[key] = result.TryGetValue(key, out var earlier) ? earlier + ", " + shown : shown;
        }

        return result;
    }

    public static bool IsCredentialHeader(string name) =>
        name.Equals("Authorization", StringComparison.OrdinalIgnoreCase) || name.Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase);

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

/// <summary>Holds the last request a run sent (a redirect or a replay sends another), to be shown redacted.</summary>
internal sealed class OutboundCapture
{
    private string? _method;
    private string? _url;
    private List<KeyValuePair<string, string>>? _headers;
    private byte[]? _body;

    public void Capture(HttpRequestMessage request, byte[]? body)
    {
        _method = request.Method.Method;
        _url = request.RequestUri!.AbsoluteUri;
        _headers = [];
        foreach (var (name, values) in request.Content is null ? request.Headers : request.Headers.Concat(request.Content.Headers))
        {
            _headers.Add(new(name, string.Join(", ", values)));
        }

        _body = body;
    }

    public OutboundRequest? Render(Redactor redactor) =>
        _method is null ? null : OutboundRequest.From(_method, _url!, _headers!, OutboundRequest.BodyText(_body), redactor);
}

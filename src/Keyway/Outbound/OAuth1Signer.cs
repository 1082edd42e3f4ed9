using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Keyway.Credentials;
using Keyway.Secrets;

namespace Keyway.Outbound;

/// <summary>
/// OAuth 1.0a (RFC 5849): signs one request with a consumer key and secret and, when given, a token and its
/// secret, at the moment it is sent: a fresh <c>oauth_nonce</c>, the current <c>oauth_timestamp</c>, and the
/// signature over the request's method, base URI, query and form-encoded body parameters (3.4.1), by
/// HMAC-SHA1, HMAC-SHA256 or RSA-SHA1.
/// </summary>
/// <remarks>
/// The HMAC key (<c>consumer_secret&amp;token_secret</c>) is built once per resolution and the RSA key parsed once
/// per definition version and value (<see cref="SigningKeyCache"/>), so a request costs its base string and one
/// HMAC or RSA signature.
/// </remarks>
internal sealed class OAuth1Signer
{
    public const string HmacSha1 = "HMAC-SHA1";
    public const string HmacSha256 = "HMAC-SHA256";
    public const string RsaSha1 = "RSA-SHA1";

    public static readonly string[] Methods = [HmacSha1, HmacSha256, RsaSha1];

    private readonly string _consumerKey;
    private readonly string? _token;
    private readonly byte[]? _hmacKey;
    private readonly SigningKey? _rsaKey;
    private readonly string? _realm;

    public OAuth1Signer(string consumerKey, Secret? consumerSecret, string? token, Secret? tokenSecret, string method, SigningKey? rsaKey, string? realm, bool inQuery)
    {
        _consumerKey = consumerKey;
        _token = string.IsNullOrEmpty(token) ? null : token;
        Method = method;
        _rsaKey = rsaKey;
        _realm = realm;
        InQuery = inQuery;
        if (method != RsaSha1)
        {
            _hmacKey = Encoding.ASCII.GetBytes(AwsSigV4Signer.Encode(consumerSecret?.Reveal() ?? "") + "&" + AwsSigV4Signer.Encode(tokenSecret?.Reveal() ?? ""));
        }
    }

    /// <summary><c>HMAC-SHA1</c>, <c>HMAC-SHA256</c> or <c>RSA-SHA1</c>.</summary>
    public string Method { get; }

    /// <summary>The protocol parameters go in the query (3.5.3) rather than the <c>Authorization</c> header (3.5.1).</summary>
    public bool InQuery { get; }

    /// <summary>
    /// Signs <paramref name="request"/> as it will be sent. <paramref name="formBody"/> is the body when it is
    /// <c>application/x-www-form-urlencoded</c> (its parameters are signed), else null.
    /// </summary>
    public void Sign(HttpRequestMessage request, ReadOnlySpan<byte> formBody, DateTimeOffset now)
    {
        var uri = request.RequestUri ?? throw new ArgumentException("The request has no URL.", nameof(request));
        Span<byte> random = stackalloc byte[16];
        RandomNumberGenerator.Fill(random);
        var nonce = Convert.ToHexStringLower(random);
        var timestamp = now.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        var protocol = Protocol(nonce, timestamp);
        var signature = Signature(BaseString(request.Method.Method, uri, protocol, formBody));
        protocol.Add(new("oauth_signature", signature));
        request.Headers.Remove("Authorization");
        if (InQuery)
        {
            var text = new StringBuilder(uri.OriginalString.Length + 256);
            text.Append(uri.GetLeftPart(UriPartial.Query)).Append(uri.Query.Length > 1 ? '&' : '?');
            for (var i = 0; i < protocol.Count; i++)
            {
                text.Append(i == 0 ? "" : "&").Append(protocol[i].Key).Append('=').Append(AwsSigV4Signer.Encode(protocol[i].Value));
            }

            request.RequestUri = new Uri(text.ToString());
            return;
        }

        var header = new StringBuilder(320).Append("OAuth ");
        if (_realm is not null)
        {
            header.Append("realm=\"").Append(AwsSigV4Signer.Encode(_realm)).Append("\", ");
        }

        for (var i = 0; i < protocol.Count; i++)
        {
            header.Append(i == 0 ? "" : ", ").Append(protocol[i].Key).Append("=\"").Append(AwsSigV4Signer.Encode(protocol[i].Value)).Append('"');
        }

        request.Headers.TryAddWithoutValidation("Authorization", header.ToString());
    }

    /// <summary>Whether a body's parameters are signed: a single-part <c>application/x-www-form-urlencoded</c> body (3.4.1.3.1).</summary>
    public static bool IsForm(HttpContent? content) =>
        content?.Headers.ContentType?.MediaType is { } type && type.Equals(FormType, StringComparison.OrdinalIgnoreCase);

    public const string FormType = "application/x-www-form-urlencoded";

    /// <summary>The protocol parameters but the signature, for one request.</summary>
    internal List<KeyValuePair<string, string>> Protocol(string nonce, string timestamp)
    {
        var protocol = new List<KeyValuePair<string, string>>(8)
        {
            new("oauth_consumer_key", _consumerKey),
            new("oauth_nonce", nonce),
            new("oauth_signature_method", Method),
            new("oauth_timestamp", timestamp),
        };
        if (_token is not null)
        {
            protocol.Add(new("oauth_token", _token));
        }

        protocol.Add(new("oauth_version", "1.0"));
        return protocol;
    }

    /// <summary>The signature of a base string, base64 (3.4.2, 3.4.3).</summary>
    internal string Signature(string baseString)
    {
        var bytes = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(baseString.Length));
        try
        {
            var count = Encoding.UTF8.GetBytes(baseString, bytes);
            var data = bytes.AsSpan(0, count);
            if (_rsaKey is not null)
            {
                return Convert.ToBase64String(_rsaKey.SignRsa(data, HashAlgorithmName.SHA1));
            }

            Span<byte> mac = stackalloc byte[32];
#pragma warning disable CA5350 // HMAC-SHA1 is RFC 5849's signature method, and what OAuth 1.0a APIs verify.
            var length = Method == HmacSha256 ? HMACSHA256.HashData(_hmacKey, data, mac) : HMACSHA1.HashData(_hmacKey, data, mac);
#pragma warning restore CA5350
            return Convert.ToBase64String(mac[..length]);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    /// <summary>
    /// The signature base string (3.4.1): the method, the base string URI, and every parameter of the query, of a
    /// form-encoded body and of the protocol (never <c>oauth_signature</c> or <c>realm</c>), each encoded (3.6),
    /// sorted by name then value, joined.
    /// </summary>
    internal static string BaseString(string method, Uri uri, IReadOnlyList<KeyValuePair<string, string>> protocol, ReadOnlySpan<byte> formBody)
    {
        var parameters = new List<(string Name, string Value)>(protocol.Count + 8);
        AddForm(parameters, uri.Query.Length > 1 ? uri.Query.AsSpan(1) : default);
        if (!formBody.IsEmpty)
        {
            AddForm(parameters, Encoding.UTF8.GetString(formBody));
        }

        foreach (var (name, value) in protocol)
        {
            parameters.Add((AwsSigV4Signer.Encode(name), AwsSigV4Signer.Encode(value)));
        }

        parameters.Sort(static (a, b) =>
        {
            var byName = string.CompareOrdinal(a.Name, b.Name);
            return byName != 0 ? byName : string.CompareOrdinal(a.Value, b.Value);
        });
        var normalized = new StringBuilder(256);
        for (var i = 0; i < parameters.Count; i++)
        {
            normalized.Append(i == 0 ? "" : "&").Append(parameters[i].Name).Append('=').Append(parameters[i].Value);
        }

        return method.ToUpperInvariant() + "&" + AwsSigV4Signer.Encode(BaseUri(uri)) + "&" + AwsSigV4Signer.Encode(normalized.ToString());
    }

    /// <summary>The base string URI (3.4.1.2): scheme and host in lowercase, the port only when not the scheme's, the path; no query or fragment.</summary>
    internal static string BaseUri(Uri uri)
    {
        var scheme = uri.Scheme.ToLowerInvariant();
        var host = uri.IdnHost.ToLowerInvariant();
        if (uri.HostNameType == UriHostNameType.IPv6)
        {
            host = "[" + host.Trim('[', ']') + "]";
        }

        var path = uri.AbsolutePath.Length == 0 ? "/" : uri.AbsolutePath;
        return uri.IsDefaultPort ? $"{scheme}://{host}{path}" : $"{scheme}://{host}:{uri.Port}{path}";
    }

    /// <summary>Decodes <c>name=value&amp;…</c> as form encoding does ('+' is a space), and adds each pair encoded per 3.6.</summary>
    private static void AddForm(List<(string Name, string Value)> parameters, ReadOnlySpan<char> text)
    {
        foreach (var range in text.Split('&'))
        {
            var pair = text[range];
            if (pair.IsEmpty)
            {
                continue;
            }

            var equals = pair.IndexOf('=');
            var name = equals < 0 ? pair : pair[..equals];
            var value = equals < 0 ? ReadOnlySpan<char>.Empty : pair[(equals + 1)..];
            parameters.Add((AwsSigV4Signer.Encode(FormDecode(name)), AwsSigV4Signer.Encode(FormDecode(value))));
        }
    }

    private static string FormDecode(ReadOnlySpan<char> text) => Uri.UnescapeDataString(text.ToString().Replace('+', ' '));
}

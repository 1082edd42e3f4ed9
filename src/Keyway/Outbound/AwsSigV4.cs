using System.Buffers;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Keyway.Secrets;

namespace Keyway.Outbound;

/// <summary>
/// AWS Signature Version 4 (<c>AWS4-HMAC-SHA256</c>): signs one request with an access key, for one region
/// and service, as AWS documents it ("Create a signed AWS API request") and its published test suite checks.
/// </summary>
/// <remarks>
/// <para>The canonical path of every service but S3 is the path with its dot segments and repeated slashes
/// removed, each segment URI-encoded once more (a path sent as <c>/a%20b</c> is signed as <c>/a%2520b</c>);
/// S3's is the path as sent. The query is decoded and encoded again with RFC 3986's unreserved characters
/// only, sorted by name then value. Signed headers: <c>host</c>, every <c>x-amz-*</c>, and
/// <c>content-type</c> and <c>content-md5</c> when sent; no header a connection may rewrite on the way.</para>
/// <para>The signing key is derived once per day (it depends on the date, region and service only) and the
/// secret access key is read only then.</para>
/// </remarks>
internal sealed class AwsSigV4Signer
{
    public const string Algorithm = "AWS4-HMAC-SHA256";

    /// <summary>The payload hash that S3 (and services that say so) accept for a body that is not hashed.</summary>
    public const string UnsignedPayload = "UNSIGNED-PAYLOAD";

    /// <summary>The SHA-256 of an empty body, in lowercase hex.</summary>
    public const string EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    private readonly string _accessKeyId;
    private readonly Secret _secretAccessKey;
    private readonly Secret? _sessionToken;
    private SigningKey? _key;

    public AwsSigV4Signer(string accessKeyId, Secret secretAccessKey, Secret? sessionToken, string region, string service)
    {
        _accessKeyId = accessKeyId;
        _secretAccessKey = secretAccessKey;
        _sessionToken = sessionToken;
        Region = region;
        Service = service;
    }

    public string Region { get; }

    public string Service { get; }

    /// <summary>S3 signs the path as sent, and wants the payload hash in a header of its own.</summary>
    public bool IsS3 => Service == "s3";

    /// <summary>
    /// Signs <paramref name="request"/> as it will be sent: sets <c>X-Amz-Date</c>, <c>X-Amz-Security-Token</c>
    /// (with a session token), <c>X-Amz-Content-Sha256</c> (S3) and <c>Authorization</c>, replacing any the
    /// request had. <paramref name="payloadHash"/> is the body's SHA-256 in lowercase hex, or <see cref="UnsignedPayload"/>.
    /// </summary>
    public void Sign(HttpRequestMessage request, string payloadHash, DateTimeOffset now)
    {
        var uri = request.RequestUri ?? throw new ArgumentException("The request has no URL.", nameof(request));
        var headers = request.Headers;
        var amzDate = now.UtcDateTime.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        headers.Remove("Authorization");
        headers.Remove("X-Amz-Date");
        headers.TryAddWithoutValidation("X-Amz-Date", amzDate);
        headers.Remove("X-Amz-Security-Token");
        if (_sessionToken is not null)
        {
            headers.TryAddWithoutValidation("X-Amz-Security-Token", _sessionToken.Reveal());
        }

        if (IsS3)
        {
            headers.Remove("X-Amz-Content-Sha256");
            headers.TryAddWithoutValidation("X-Amz-Content-Sha256", payloadHash);
        }

        var signed = new List<KeyValuePair<string, string>> { new("host", HostOf(uri)) };
        foreach (var (name, values) in headers.NonValidated)
        {
            if (name.StartsWith("x-amz-", StringComparison.OrdinalIgnoreCase))
            {
                foreach (var value in values)
                {
                    signed.Add(new(name, value));
                }
            }
        }

        if (request.Content is { } content)
        {
            foreach (var (name, values) in content.Headers.NonValidated)
            {
                if (name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase) || name.Equals("Content-MD5", StringComparison.OrdinalIgnoreCase))
                {
                    foreach (var value in values)
                    {
                        signed.Add(new(name, value));
                    }
                }
            }
        }

        headers.TryAddWithoutValidation("Authorization",
            Authorization(request.Method.Method, uri.AbsolutePath, uri.Query, signed, payloadHash, amzDate));
    }

    /// <summary>The <c>Authorization</c> value for a request given as its parts (the test suite's form).</summary>
    internal string Authorization(string method, string path, string query, IReadOnlyList<KeyValuePair<string, string>> headers, string payloadHash, string amzDate)
    {
        var canonical = CanonicalRequest(method, path, query, headers, payloadHash, !IsS3, out var signedHeaders);
        var date = amzDate[..8];
        var scope = $"{date}/{Region}/{Service}/aws4_request";
        var toSign = StringToSign(amzDate, scope, canonical);
        Span<byte> signature = stackalloc byte[32];
        HMACSHA256.HashData(KeyFor(date), Encoding.UTF8.GetBytes(toSign), signature);
        return $"{Algorithm} Credential={_accessKeyId}/{scope}, SignedHeaders={signedHeaders}, Signature={Convert.ToHexStringLower(signature)}";
    }

    internal static string StringToSign(string amzDate, string scope, string canonicalRequest)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(canonicalRequest), hash);
        return $"{Algorithm}\n{amzDate}\n{scope}\n{Convert.ToHexStringLower(hash)}";
    }

    /// <summary>
    /// The canonical request: method, canonical path, canonical query, canonical headers, signed headers and
    /// payload hash, one per line. <paramref name="path"/> and <paramref name="query"/> (with or without its
    /// <c>?</c>) are as sent; <paramref name="normalizePath"/> is false for S3 only.
    /// </summary>
    internal static string CanonicalRequest(
        string method, string path, string query, IReadOnlyList<KeyValuePair<string, string>> headers, string payloadHash,
        bool normalizePath, out string signedHeaders)
    {
        var text = new StringBuilder(256);
        text.Append(method).Append('\n');
        AppendPath(text, path, normalizePath);
        text.Append('\n');
        AppendQuery(text, query);
        text.Append('\n');

        // Lowercase names, sorted (ordinal); the values of a repeated name joined by ',' in the order sent.
        var byName = new SortedDictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (name, value) in headers)
        {
            var key = name.Trim().ToLowerInvariant();
            if (!byName.TryGetValue(key, out var values))
            {
                byName[key] = values = [];
            }

            values.Add(TrimAll(value));
        }

        foreach (var (name, values) in byName)
        {
            text.Append(name).Append(':').AppendJoin(',', values).Append('\n');
        }

        signedHeaders = string.Join(';', byName.Keys);
        text.Append('\n').Append(signedHeaders).Append('\n').Append(payloadHash);
        return text.ToString();
    }

    private static void AppendPath(StringBuilder text, string path, bool normalize)
    {
        if (!normalize)
        {
            text.Append(path.Length == 0 ? "/" : path);
            return;
        }

        // RFC 3986's dot-segment removal, and no empty segments (AWS removes repeated slashes).
        var segments = new List<string>();
        foreach (var segment in path.Split('/'))
        {
            if (segment.Length == 0 || segment == ".")
            {
                continue;
            }

            if (segment == "..")
            {
                if (segments.Count > 0)
                {
                    segments.RemoveAt(segments.Count - 1);
                }

                continue;
            }

            segments.Add(segment);
        }

        text.Append('/');
        for (var i = 0; i < segments.Count; i++)
        {
            if (i > 0)
            {
                text.Append('/');
            }

            // Encoded once more, as the path was sent (already encoded): AWS's rule for every service but S3.
            AppendEncoded(text, segments[i]);
        }

        if (segments.Count > 0 && path.EndsWith('/'))
        {
            text.Append('/');
        }
    }

    private static void AppendQuery(StringBuilder text, string query)
    {
        var raw = query.StartsWith('?') ? query[1..] : query;
        if (raw.Length == 0)
        {
            return;
        }

        var pairs = new List<(string Name, string Value)>();
        foreach (var pair in raw.Split('&'))
        {
            if (pair.Length == 0)
            {
                continue;
            }

            var equals = pair.IndexOf('=');
            var name = equals < 0 ? pair : pair[..equals];
            var value = equals < 0 ? "" : pair[(equals + 1)..];
            pairs.Add((Encode(Uri.UnescapeDataString(name)), Encode(Uri.UnescapeDataString(value))));
        }

        pairs.Sort(static (a, b) =>
        {
            var byName = string.CompareOrdinal(a.Name, b.Name);
            return byName != 0 ? byName : string.CompareOrdinal(a.Value, b.Value);
        });
        for (var i = 0; i < pairs.Count; i++)
        {
            if (i > 0)
            {
                text.Append('&');
            }

            text.Append(pairs[i].Name).Append('=').Append(pairs[i].Value);
        }
    }

    /// <summary>RFC 3986 encoding as AWS wants it: everything but A–Z, a–z, 0–9, '-', '.', '_' and '~', as UTF-8, uppercase hex.</summary>
    internal static string Encode(string value)
    {
        var text = new StringBuilder(value.Length + 8);
        AppendEncoded(text, value);
        return text.ToString();
    }

    private static void AppendEncoded(StringBuilder text, string value)
    {
        var bytes = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(value.Length));
        try
        {
            var count = Encoding.UTF8.GetBytes(value, bytes);
            for (var i = 0; i < count; i++)
            {
                var b = bytes[i];
                if (char.IsAsciiLetterOrDigit((char)b) || b is (byte)'-' or (byte)'.' or (byte)'_' or (byte)'~')
                {
                    text.Append((char)b);
                }
                else
                {
                    text.Append('%').Append(HexUpper[b >> 4]).Append(HexUpper[b & 0xF]);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    private const string HexUpper = "0123456789ABCDEF";

    /// <summary>Trims the value and turns every run of whitespace (folded lines included) into one space.</summary>
    private static string TrimAll(string value)
    {
        var text = new StringBuilder(value.Length);
        var space = false;
        foreach (var c in value.AsSpan().Trim())
        {
            if (c is ' ' or '\t' or '\r' or '\n')
            {
                space = true;
                continue;
            }

            if (space)
            {
                text.Append(' ');
                space = false;
            }

            text.Append(c);
        }

        return text.ToString();
    }

    /// <summary>The Host header HttpClient sends: the host, and the port when it is not the scheme's.</summary>
    internal static string HostOf(Uri uri) => uri.IsDefaultPort ? uri.IdnHost : $"{uri.IdnHost}:{uri.Port}";

    private byte[] KeyFor(string date)
    {
        var key = _key;
        if (key is not null && key.Date == date)
        {
            return key.Bytes;
        }

        var secret = Encoding.UTF8.GetBytes("AWS4" + _secretAccessKey.Reveal());
        try
        {
            var derived = HMACSHA256.HashData(secret, Encoding.UTF8.GetBytes(date));
            derived = HMACSHA256.HashData(derived, Encoding.UTF8.GetBytes(Region));
            derived = HMACSHA256.HashData(derived, Encoding.UTF8.GetBytes(Service));
            derived = HMACSHA256.HashData(derived, "aws4_request"u8);
            _key = new SigningKey(date, derived);
            return derived;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(secret);
        }
    }

    private sealed record SigningKey(string Date, byte[] Bytes);
}

using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using Keyway.Secrets;

namespace Keyway.Outbound;

/// <summary>
/// One Digest challenge a server gave (RFC 7616; RFC 2069 when it names no <c>qop</c>): its realm, nonce,
/// opaque value and algorithm, and the count of requests answered with its nonce so far (<c>nc</c>).
/// </summary>
internal sealed class DigestChallenge
{
    private int _count;

    public required string Realm { get; init; }

    public required string Nonce { get; init; }

    public string? Opaque { get; init; }

    /// <summary>The algorithm as the server named it (<c>MD5</c>, <c>MD5-sess</c>, <c>SHA-256</c>, <c>SHA-256-sess</c>), or null (MD5).</summary>
    public string? Algorithm { get; init; }

    public bool Sha256 { get; init; }

    public bool Session { get; init; }

    /// <summary>Whether the server offered <c>qop=auth</c>; false: an RFC 2069 server.</summary>
    public bool QopAuth { get; init; }

    /// <summary>The server wants the user name hashed (RFC 7616 <c>userhash=true</c>).</summary>
    public bool UserHash { get; init; }

    /// <summary>The server said the nonce the request carried had expired (<c>stale=true</c>): the credentials were right.</summary>
    public bool Stale { get; init; }

    /// <summary>The next <c>nc</c> for this nonce: 1 for its first request, then one more for each.</summary>
    public int NextCount() => Interlocked.Increment(ref _count);

    /// <summary>The first Digest challenge Keyway can answer in a <c>WWW-Authenticate</c> answer, in the server's order of preference; null if none.</summary>
    public static DigestChallenge? Select(HttpResponseMessage response)
    {
        if (!response.Headers.NonValidated.TryGetValues("WWW-Authenticate", out var values))
        {
            return null;
        }

        foreach (var value in values)
        {
            foreach (var (scheme, parameters) in AuthChallenges.Parse(value))
            {
                if (scheme.Equals("Digest", StringComparison.OrdinalIgnoreCase) && From(parameters) is { } challenge)
                {
                    return challenge;
                }
            }
        }

        return null;
    }

    /// <summary>A challenge from its parameters, or null when it asks for what Keyway does not do (an unknown algorithm, only <c>auth-int</c>).</summary>
    internal static DigestChallenge? From(IReadOnlyDictionary<string, string> parameters)
    {
        if (!parameters.TryGetValue("nonce", out var nonce) || nonce.Length == 0)
        {
            return null;
        }

        var algorithm = parameters.GetValueOrDefault("algorithm");
        bool sha256, session;
        switch (algorithm?.ToUpperInvariant())
        {
            case null or "MD5":
                (sha256, session) = (false, false);
                break;
            case "MD5-SESS":
                (sha256, session) = (false, true);
                break;
            case "SHA-256":
                (sha256, session) = (true, false);
                break;
            case "SHA-256-SESS":
                (sha256, session) = (true, true);
                break;
            default:
                return null;
        }

        var qopAuth = false;
        if (parameters.TryGetValue("qop", out var qop))
        {
            foreach (var option in qop.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                qopAuth |= option.Equals("auth", StringComparison.OrdinalIgnoreCase);
            }

            if (!qopAuth)
            {
                // auth-int only: the body would have to be hashed, which a streamed body cannot be.
                return null;
            }
        }

        return new DigestChallenge
        {
            Realm = parameters.GetValueOrDefault("realm") ?? "",
            Nonce = nonce,
            Opaque = parameters.GetValueOrDefault("opaque"),
            Algorithm = algorithm,
            Sha256 = sha256,
            Session = session,
            QopAuth = qopAuth,
            UserHash = parameters.TryGetValue("userhash", out var userHash) && userHash.Equals("true", StringComparison.OrdinalIgnoreCase),
            Stale = parameters.TryGetValue("stale", out var stale) && stale.Equals("true", StringComparison.OrdinalIgnoreCase),
        };
    }
}

/// <summary>Where the challenge a resource last received is kept, per environment, so its next request answers it at once.</summary>
internal sealed class DigestSlot
{
    private DigestChallenge? _current;

    public DigestChallenge? Current => Volatile.Read(ref _current);

    public void Set(DigestChallenge challenge) => Volatile.Write(ref _current, challenge);
}

/// <summary>What a 401 answer to a Digest request means.</summary>
internal enum DigestVerdict
{
    /// <summary>No Digest challenge Keyway can answer: the answer goes back as it is.</summary>
    None,

    /// <summary>A new challenge, and the request went without an answer to one or with a nonce now stale: send it again, once.</summary>
    Retry,

    /// <summary>The request answered a current challenge and was refused: the credentials are wrong (the new challenge is kept).</summary>
    Refused,
}

/// <summary>
/// HTTP Digest access authentication (RFC 7616, and RFC 2069 servers that name no <c>qop</c>) for one resource
/// in one environment: answers the challenge kept in its <see cref="DigestSlot"/> on every request, with the
/// nonce's next <c>nc</c> and a fresh <c>cnonce</c>, so only the first request (or one after the nonce went
/// stale) costs a 401. MD5, SHA-256 and their <c>-sess</c> variants; <c>qop=auth</c> (the body is not hashed).
/// </summary>
internal sealed class DigestAuthenticator(string username, Secret password, DigestSlot slot)
{
    /// <summary>H(username:realm:password), kept for the realm it was computed for: the password is read only then.</summary>
    private KeptHa1? _ha1;

    public DigestSlot Slot => slot;

    /// <summary>Sets <c>Authorization</c> on <paramref name="request"/> from the kept challenge; returns it (null: none yet, sent without).</summary>
    public DigestChallenge? Authorize(HttpRequestMessage request)
    {
        var challenge = slot.Current;
        request.Headers.Remove("Authorization");
        if (challenge is null)
        {
            return null;
        }

        Span<byte> random = stackalloc byte[16];
        RandomNumberGenerator.Fill(random);
        var cnonce = Convert.ToHexStringLower(random);
        request.Headers.TryAddWithoutValidation("Authorization",
            Header(challenge, request.Method.Method, request.RequestUri!.PathAndQuery, challenge.NextCount(), cnonce));
        return challenge;
    }

    /// <summary>Reads a 401 answer to a request that carried <paramref name="used"/> (null: none), keeping any new challenge.</summary>
    public DigestVerdict Challenged(HttpResponseMessage response, DigestChallenge? used)
    {
        if (DigestChallenge.Select(response) is not { } challenge)
        {
            return DigestVerdict.None;
        }

        slot.Set(challenge);
        return used is null || challenge.Stale ? DigestVerdict.Retry : DigestVerdict.Refused;
    }

    /// <summary>The <c>Authorization</c> value answering <paramref name="challenge"/> for a request (RFC 7616 3.4).</summary>
    internal string Header(DigestChallenge challenge, string method, string uri, int count, string cnonce)
    {
        var ha1 = Ha1(challenge);
        var nc = count.ToString("x8", System.Globalization.CultureInfo.InvariantCulture);
        if (challenge.Session)
        {
            ha1 = Hash(challenge.Sha256, $"{ha1}:{challenge.Nonce}:{cnonce}");
        }

        var ha2 = Hash(challenge.Sha256, $"{method}:{uri}");
        var response = challenge.QopAuth
            ? Hash(challenge.Sha256, $"{ha1}:{challenge.Nonce}:{nc}:{cnonce}:auth:{ha2}")
            : Hash(challenge.Sha256, $"{ha1}:{challenge.Nonce}:{ha2}");
        var user = challenge.UserHash ? Hash(challenge.Sha256, $"{username}:{challenge.Realm}") : username;

        var text = new StringBuilder(256);
        text.Append("Digest username=");
        Quoted(text, user);
        text.Append(", realm=");
        Quoted(text, challenge.Realm);
        text.Append(", nonce=");
        Quoted(text, challenge.Nonce);
        text.Append(", uri=");
        Quoted(text, uri);
        if (challenge.Algorithm is not null)
        {
            text.Append(", algorithm=").Append(challenge.Algorithm);
        }

        text.Append(", response=\"").Append(response).Append('"');
        if (challenge.Opaque is not null)
        {
            text.Append(", opaque=");
            Quoted(text, challenge.Opaque);
        }

        if (challenge.QopAuth)
        {
            text.Append(", qop=auth, nc=").Append(nc).Append(", cnonce=\"").Append(cnonce).Append('"');
        }

        if (challenge.UserHash)
        {
            text.Append(", userhash=true");
        }

        return text.ToString();
    }

    private string Ha1(DigestChallenge challenge)
    {
        if (Volatile.Read(ref _ha1) is { } kept && kept.Realm == challenge.Realm && kept.Sha256 == challenge.Sha256)
        {
            return kept.Value;
        }

        var ha1 = Hash(challenge.Sha256, $"{username}:{challenge.Realm}:{password.Reveal()}");
        Volatile.Write(ref _ha1, new KeptHa1(challenge.Realm, challenge.Sha256, ha1));
        return ha1;
    }

    private sealed record KeptHa1(string Realm, bool Sha256, string Value);

    /// <summary>MD5 or SHA-256 of the UTF-8 text, in lowercase hex, through a pooled buffer.</summary>
    internal static string Hash(bool sha256, string text)
    {
        var bytes = ArrayPool<byte>.Shared.Rent(Encoding.UTF8.GetMaxByteCount(text.Length));
        try
        {
            var count = Encoding.UTF8.GetBytes(text, bytes);
            Span<byte> hash = stackalloc byte[32];
#pragma warning disable CA5351 // MD5 is what RFC 7616 names, and what most Digest servers (Apache's among them) offer.
            var length = sha256 ? SHA256.HashData(bytes.AsSpan(0, count), hash) : MD5.HashData(bytes.AsSpan(0, count), hash);
#pragma warning restore CA5351
            CryptographicOperations.ZeroMemory(bytes.AsSpan(0, count));
            return Convert.ToHexStringLower(hash[..length]);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    private static void Quoted(StringBuilder text, string value)
    {
        text.Append('"');
        foreach (var c in value)
        {
            if (c is '"' or '\\')
            {
                text.Append('\\');
            }

            text.Append(c);
        }

        text.Append('"');
    }
}

/// <summary>Reads the challenges of a <c>WWW-Authenticate</c> value (RFC 9110 11.6.1): schemes, each with its auth-params.</summary>
internal static class AuthChallenges
{
    public static List<(string Scheme, Dictionary<string, string> Parameters)> Parse(string value)
    {
        var challenges = new List<(string, Dictionary<string, string>)>();
        var i = 0;
        Dictionary<string, string>? current = null;
        while (i < value.Length)
        {
            SkipSeparators(value, ref i);
            var token = Token(value, ref i);
            if (token.Length == 0)
            {
                // Not a token (a stray character): skip it.
                i++;
                continue;
            }

            var after = i;
            SkipSpaces(value, ref i);
            if (i < value.Length && value[i] == '=' && current is not null && !IsToken68End(value, i))
            {
                i++;
                SkipSpaces(value, ref i);
                current[token.ToLowerInvariant()] = i < value.Length && value[i] == '"' ? QuotedString(value, ref i) : Token(value, ref i);
                continue;
            }

            if (i < value.Length && value[i] == '=' && current is null)
            {
                // A parameter before any scheme: malformed; skip its value.
                i++;
                SkipSpaces(value, ref i);
                _ = i < value.Length && value[i] == '"' ? QuotedString(value, ref i) : Token(value, ref i);
                continue;
            }

            // A scheme name starts a new challenge.
            i = after;
            current = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            challenges.Add((token, current));
        }

        return challenges;
    }

    /// <summary>A '=' that ends a token68 (<c>Negotiate abc==</c>) rather than starting a parameter value.</summary>
    private static bool IsToken68End(string value, int equals)
    {
        var next = equals + 1;
        while (next < value.Length && value[next] == '=')
        {
            next++;
        }

        while (next < value.Length && value[next] is ' ' or '\t')
        {
            next++;
        }

        return next > equals + 1 && (next == value.Length || value[next] == ',');
    }

    private static void SkipSeparators(string value, ref int i)
    {
        while (i < value.Length && value[i] is ' ' or '\t' or ',')
        {
            i++;
        }
    }

    private static void SkipSpaces(string value, ref int i)
    {
        while (i < value.Length && value[i] is ' ' or '\t')
        {
            i++;
        }
    }

    private static string Token(string value, ref int i)
    {
        var start = i;
        while (i < value.Length && value[i] is not (' ' or '\t' or ',' or '=' or '"'))
        {
            i++;
        }

        return value[start..i];
    }

    private static string QuotedString(string value, ref int i)
    {
        var text = new StringBuilder();
        i++;
        while (i < value.Length && value[i] != '"')
        {
            if (value[i] == '\\' && i + 1 < value.Length)
            {
                i++;
            }

            text.Append(value[i]);
            i++;
        }

        i++;
        return text.ToString();
    }
}

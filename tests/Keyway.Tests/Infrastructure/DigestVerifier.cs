using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

#pragma warning disable CA5351 // MD5 is HTTP Digest's own algorithm: these check Keyway's answers to it.

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// A Digest server for what Apache's <c>mod_auth_digest</c> does not do: <c>algorithm=SHA-256</c> (Apache offers MD5
/// only). Installed on an <see cref="UpstreamServer"/> (<see cref="Install"/>), it protects every path: a request
/// without a valid answer gets a 401 with a fresh nonce, one that answers a nonce the test expired
/// (<see cref="ExpireNonces"/>) gets <c>stale=true</c>, a wrong password, a replayed or decreasing <c>nc</c>, or a
/// <c>uri</c> that is not the request's gets a plain 401; a valid one goes on to the echo. Written from RFC 7616,
/// independently of Keyway's code.
/// </summary>
public sealed class DigestVerifier(string user, string password, string algorithm = "SHA-256")
{
    public const string Realm = "keyway-sha256@example.test";

    private readonly ConcurrentDictionary<string, long> _nonces = new();
    private readonly ConcurrentDictionary<string, bool> _expired = new();
    private int _challenges;
    private int _accepted;

    /// <summary>How many 401 challenges it has sent.</summary>
    public int Challenges => Volatile.Read(ref _challenges);

    /// <summary>How many requests it let through.</summary>
    public int Accepted => Volatile.Read(ref _accepted);

    /// <summary>Every nonce issued so far now answers <c>stale=true</c>.</summary>
    public void ExpireNonces()
    {
        foreach (var nonce in _nonces.Keys)
            _expired[nonce] = true;
    }

    public void Install(WebApplication app) => app.Use(async (context, next) =>
    {
        var verdict = Check(context.Request);
        if (verdict is null)
        {
            Interlocked.Increment(ref _accepted);
            await next(context);
            return;
        }

        Interlocked.Increment(ref _challenges);
        var nonce = Convert.ToBase64String(RandomNumberGenerator.GetBytes(18));
        _nonces[nonce] = 0;
        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate =
            $"Digest realm=\"{Realm}\", qop=\"auth\", algorithm={algorithm}, nonce=\"{nonce}\", opaque=\"opaque-1\"{(verdict == "stale" ? ", stale=true" : "")}";
        context.Response.Headers["X-Digest-Verdict"] = verdict;
    });

    /// <summary>Null when the request carries a valid answer; else why not ("stale" for an expired nonce).</summary>
    private string? Check(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (!header.StartsWith("Digest ", StringComparison.Ordinal))
            return "no answer";

        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var part in SplitParameters(header["Digest ".Length..]))
        {
            var equals = part.IndexOf('=');
            if (equals > 0)
                fields[part[..equals].Trim()] = part[(equals + 1)..].Trim().Trim('"');
        }

        string Field(string name) => fields.TryGetValue(name, out var value) ? value : "";
        var nonce = Field("nonce");
        if (!_nonces.TryGetValue(nonce, out var lastCount))
            return "unknown nonce";
        if (_expired.ContainsKey(nonce))
            return "stale";
        if (Field("username") != user || Field("realm") != Realm || Field("algorithm") != algorithm || Field("opaque") != "opaque-1" || Field("qop") != "auth")
            return "wrong parameters";
        if (Field("uri") != request.Path.ToUriComponent() + request.QueryString.ToUriComponent())
            return "uri is not the request's";
        if (Field("nc").Length != 8 || Field("cnonce").Length == 0)
            return "no nc or cnonce";
        var count = Convert.ToInt64(Field("nc"), 16);
        if (count <= lastCount || !_nonces.TryUpdate(nonce, count, lastCount))
            return "nc replayed";

        var ha1 = Hash($"{user}:{Realm}:{password}");
        var ha2 = Hash($"{request.Method}:{Field("uri")}");
        var expected = Hash($"{ha1}:{nonce}:{Field("nc")}:{Field("cnonce")}:auth:{ha2}");
        return CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(expected), Encoding.ASCII.GetBytes(Field("response"))) ? null : "wrong response";
    }

    private string Hash(string text) => Convert.ToHexStringLower(algorithm.StartsWith("SHA-256", StringComparison.Ordinal)
        ? SHA256.HashData(Encoding.UTF8.GetBytes(text))
        : MD5.HashData(Encoding.UTF8.GetBytes(text)));

    /// <summary>Splits on commas outside quotes.</summary>
    private static IEnumerable<string> SplitParameters(string text)
    {
        var start = 0;
        var quoted = false;
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] == '"')
                quoted = !quoted;
            else if (text[i] == ',' && !quoted)
            {
                yield return text[start..i];
                start = i + 1;
            }
        }

        yield return text[start..];
    }
}

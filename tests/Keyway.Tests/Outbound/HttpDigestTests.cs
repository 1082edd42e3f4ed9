using System.Net;
using System.Security.Cryptography;
using System.Text;
using Keyway.Outbound;
using Keyway.Secrets;

#pragma warning disable CA5351 // MD5 is HTTP Digest's own algorithm: these check Keyway's answers to it.

namespace Keyway.Tests.Outbound;

/// <summary><see cref="DigestAuthenticator"/> against the examples of RFC 7616 (3.9.1) and RFC 2617 (3.5), and how it reads challenges.</summary>
public sealed class HttpDigestTests
{
    private static Dictionary<string, string> Parameters(params (string Name, string Value)[] pairs) =>
        pairs.ToDictionary(p => p.Name, p => p.Value, StringComparer.OrdinalIgnoreCase);

    private static DigestChallenge Rfc7616(string algorithm) => DigestChallenge.From(Parameters(
        ("realm", "http-auth@example.org"), ("qop", "auth, auth-int"), ("algorithm", algorithm),
        ("nonce", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"), ("opaque", "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")))!;

    [Theory]
    [InlineData("MD5", "8ca523f5e9506fed4657c9700eebdbec")]
    [InlineData("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")]
    public void The_response_is_rfc_7616s_example(string algorithm, string response)
    {
        var digest = new DigestAuthenticator("Mufasa", new Secret("Circle of Life"), new DigestSlot());

        var header = digest.Header(Rfc7616(algorithm), "GET", "/dir/index.html", 1, "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ");

        Assert.Equal(
            $"Digest username=\"Mufasa\", realm=\"http-auth@example.org\", nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", uri=\"/dir/index.html\", " +
            $"algorithm={algorithm}, response=\"{response}\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\", qop=auth, nc=00000001, " +
            "cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\"",
            header);
    }

    [Fact]
    public void The_response_is_rfc_2617s_example_and_an_rfc_2069_server_gets_one_without_qop()
    {
        var digest = new DigestAuthenticator("Mufasa", new Secret("Circle Of Life"), new DigestSlot());
        var withQop = DigestChallenge.From(Parameters(("realm", "testrealm@host.com"), ("qop", "auth"), ("nonce", "dcd98b7102dd2f0e8b11d0f600bfb0c093")))!;
        var without = DigestChallenge.From(Parameters(("realm", "testrealm@host.com"), ("nonce", "dcd98b7102dd2f0e8b11d0f600bfb0c093")))!;

        Assert.Contains("response=\"6629fae49393a05397450978507c4ef1\"", digest.Header(withQop, "GET", "/dir/index.html", 1, "0a4f113b"));

        var ha1 = Md5("Mufasa:testrealm@host.com:Circle Of Life");
        var expected = Md5($"{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{Md5("GET:/dir/index.html")}");
        var header = digest.Header(without, "GET", "/dir/index.html", 1, "ignored");
        Assert.Contains($"response=\"{expected}\"", header);
        Assert.DoesNotContain("qop", header);
        Assert.DoesNotContain("cnonce", header);
    }

    [Fact]
    public void A_sess_algorithm_hashes_the_nonce_and_cnonce_into_ha1()
    {
        var digest = new DigestAuthenticator("u", new Secret("p"), new DigestSlot());
        var challenge = DigestChallenge.From(Parameters(("realm", "r"), ("qop", "auth"), ("nonce", "n"), ("algorithm", "SHA-256-sess")))!;

        var header = digest.Header(challenge, "POST", "/x", 2, "c");

        var sha = (string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
        var ha1 = sha($"{sha("u:r:p")}:n:c");
        Assert.Contains($"response=\"{sha($"{ha1}:n:00000002:c:auth:{sha("POST:/x")}")}\"", header);
    }

    [Fact]
    public void The_first_challenge_keyway_can_answer_is_chosen_among_several()
    {
        using var response = new HttpResponseMessage(HttpStatusCode.Unauthorized);
        response.Headers.TryAddWithoutValidation("WWW-Authenticate", "Negotiate abc==, Basic realm=\"b\", Digest realm=\"x\", nonce=\"1\", algorithm=SHA-512-256, qop=\"auth\"");
        response.Headers.TryAddWithoutValidation("WWW-Authenticate", "Digest realm=\"a, \\\"quoted\\\"\", nonce=\"n2\", qop=\"auth-int,auth\", algorithm=SHA-256, stale=TRUE, opaque=\"o\"");

        var challenge = DigestChallenge.Select(response);

        Assert.NotNull(challenge);
        Assert.Equal("a, \"quoted\"", challenge.Realm);
        Assert.Equal("n2", challenge.Nonce);
        Assert.True(challenge.Sha256);
        Assert.True(challenge.QopAuth);
        Assert.True(challenge.Stale);
        Assert.Equal("o", challenge.Opaque);
    }

    [Fact]
    public void A_kept_challenge_is_answered_with_a_counted_nc_and_a_fresh_cnonce()
    {
        var slot = new DigestSlot();
        var digest = new DigestAuthenticator("u", new Secret("p"), slot);
        using var unsigned = new HttpRequestMessage(HttpMethod.Get, "http://h/a?b=1");
        Assert.Null(digest.Authorize(unsigned));
        Assert.False(unsigned.Headers.Contains("Authorization"));

        slot.Set(DigestChallenge.From(Parameters(("realm", "r"), ("qop", "auth"), ("nonce", "n")))!);
        var headers = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "http://h/a?b=1");
            Assert.NotNull(digest.Authorize(request));
            headers.Add(request.Headers.GetValues("Authorization").Single());
        }

        Assert.Contains("nc=00000001", headers[0]);
        Assert.Contains("nc=00000002", headers[1]);
        Assert.Contains("nc=00000003", headers[2]);
        Assert.All(headers, h => Assert.Contains("uri=\"/a?b=1\"", h));
        Assert.Equal(3, headers.Select(h => h[h.IndexOf("cnonce=", StringComparison.Ordinal)..]).Distinct().Count());
    }

    [Fact]
    public void A_401_is_retried_only_for_a_first_request_or_a_stale_nonce()
    {
        var slot = new DigestSlot();
        var digest = new DigestAuthenticator("u", new Secret("p"), slot);
        var kept = DigestChallenge.From(Parameters(("realm", "r"), ("nonce", "old")))!;

        Assert.Equal(DigestVerdict.Retry, digest.Challenged(Challenge("Digest realm=\"r\", nonce=\"n1\""), used: null));
        Assert.Equal("n1", slot.Current!.Nonce);
        Assert.Equal(DigestVerdict.Retry, digest.Challenged(Challenge("Digest realm=\"r\", nonce=\"n2\", stale=true"), kept));
        Assert.Equal(DigestVerdict.Refused, digest.Challenged(Challenge("Digest realm=\"r\", nonce=\"n3\""), kept));
        Assert.Equal("n3", slot.Current!.Nonce);
        Assert.Equal(DigestVerdict.None, digest.Challenged(Challenge("Basic realm=\"r\""), kept));
        Assert.Equal(DigestVerdict.None, digest.Challenged(Challenge("Digest realm=\"r\", nonce=\"n4\", qop=\"auth-int\""), kept));
    }

    private static HttpResponseMessage Challenge(string value)
    {
        var response = new HttpResponseMessage(HttpStatusCode.Unauthorized);
        response.Headers.TryAddWithoutValidation("WWW-Authenticate", value);
        return response;
    }

    private static string Md5(string text) => Convert.ToHexStringLower(MD5.HashData(Encoding.UTF8.GetBytes(text)));
}

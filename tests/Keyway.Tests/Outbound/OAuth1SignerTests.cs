using System.Security.Cryptography;
using System.Text;
using Keyway.Outbound;
using Keyway.Secrets;

namespace Keyway.Tests.Outbound;

/// <summary><see cref="OAuth1Signer"/> against RFC 5849's own examples (sections 1.2 and 3.4.1.1).</summary>
public sealed class OAuth1SignerTests
{
    private static List<KeyValuePair<string, string>> Parameters(params (string Name, string Value)[] pairs) =>
        pairs.Select(p => new KeyValuePair<string, string>(p.Name, p.Value)).ToList();

    [Fact]
    public void The_signature_base_string_is_rfc_5849_section_3_4_1_1s()
    {
        var protocol = Parameters(
            ("oauth_consumer_key", "9djdj82h48djs9d2"), ("oauth_token", "kkk9d7dh3k39sjv7"), ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131201"), ("oauth_nonce", "7d8f3e4a"));

        var baseString = OAuth1Signer.BaseString("POST", new Uri("http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b"), protocol, "c2&a3=2+q"u8);

        Assert.Equal(
            "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26" +
            "oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7",
            baseString);
    }

    [Theory]
    [InlineData("HTTP://Example.com:80/r%20v/X?id=123", "http://example.com/r%20v/X")]
    [InlineData("https://www.example.net:8080/?q=1", "https://www.example.net:8080/")]
    [InlineData("https://www.example.net:443/a", "https://www.example.net/a")]
    public void The_base_string_uri_drops_the_default_port_the_query_and_the_hosts_case(string url, string expected)
    {
        Assert.Equal(expected, OAuth1Signer.BaseUri(new Uri(url)));
    }

    [Fact]
    public void The_temporary_credentials_request_of_section_1_2_is_signed_as_the_rfc_shows()
    {
        var signer = new OAuth1Signer("dpf43f3p2l4k3l03", new Secret("kd94hf93k423kf44"), null, null, OAuth1Signer.HmacSha1, null, "Photos", inQuery: false);
        var protocol = Parameters(
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"), ("oauth_signature_method", "HMAC-SHA1"), ("oauth_timestamp", "137131200"),
            ("oauth_nonce", "wIjqoS"), ("oauth_callback", "http://printer.example.com/ready"));

        var signature = signer.Signature(OAuth1Signer.BaseString("POST", new Uri("https://photos.example.net/initiate"), protocol, default));

        Assert.Equal("74KNZJeDHnMBp0EMJ9ZHt/XKycU=", signature);
    }

    [Fact]
    public void The_protected_resource_request_of_section_1_2_is_signed_as_the_rfc_shows()
    {
        var signer = new OAuth1Signer("dpf43f3p2l4k3l03", new Secret("kd94hf93k423kf44"), "nnch734d00sl2jdk", new Secret("pfkkdhi9sl3r4s00"),
            OAuth1Signer.HmacSha1, null, "Photos", inQuery: false);
        var protocol = Parameters(
            ("oauth_consumer_key", "dpf43f3p2l4k3l03"), ("oauth_token", "nnch734d00sl2jdk"), ("oauth_signature_method", "HMAC-SHA1"),
            ("oauth_timestamp", "137131202"), ("oauth_nonce", "chapoH"));

        var signature = signer.Signature(OAuth1Signer.BaseString("GET", new Uri("http://photos.example.net/photos?file=vacation.jpg&size=original"), protocol, default));

        Assert.Equal("MdpQcU8iPSUjWoN/UDMsK2sui9I=", signature);
    }

    [Fact]
    public void A_signed_request_carries_every_protocol_parameter_in_the_authorization_header_and_a_new_nonce_each_time()
    {
        var signer = new OAuth1Signer("key", new Secret("consumer secret"), "token", new Secret("token/secret"), OAuth1Signer.HmacSha256, null, "Example", inQuery: false);
        var now = DateTimeOffset.FromUnixTimeSeconds(1_700_000_000);
        using var first = new HttpRequestMessage(HttpMethod.Get, "https://api.example.com/a?x=1");
        using var second = new HttpRequestMessage(HttpMethod.Get, "https://api.example.com/a?x=1");

        signer.Sign(first, default, now);
        signer.Sign(second, default, now);

        var header = Parse(first.Headers.GetValues("Authorization").Single());
        Assert.Equal("Example", header["realm"]);
        Assert.Equal("key", header["oauth_consumer_key"]);
        Assert.Equal("token", header["oauth_token"]);
        Assert.Equal("HMAC-SHA256", header["oauth_signature_method"]);
        Assert.Equal("1700000000", header["oauth_timestamp"]);
        Assert.Equal("1.0", header["oauth_version"]);
        Assert.NotEqual(header["oauth_nonce"], Parse(second.Headers.GetValues("Authorization").Single())["oauth_nonce"]);

        // Recomputed independently: HMAC-SHA256 over the base string with "consumer%20secret&token%2Fsecret".
        var baseString = "GET&https%3A%2F%2Fapi.example.com%2Fa&" + Uri.EscapeDataString(
            $"oauth_consumer_key=key&oauth_nonce={header["oauth_nonce"]}&oauth_signature_method=HMAC-SHA256&oauth_timestamp=1700000000&oauth_token=token&oauth_version=1.0&x=1");
        var expected = Convert.ToBase64String(HMACSHA256.HashData("consumer%20secret&token%2Fsecret"u8, Encoding.UTF8.GetBytes(baseString)));
        Assert.Equal(expected, header["oauth_signature"]);
    }

    [Fact]
    public void Query_placement_adds_the_protocol_parameters_to_the_url()
    {
        var signer = new OAuth1Signer("key", new Secret("s"), null, null, OAuth1Signer.HmacSha1, null, null, inQuery: true);
        using var request = new HttpRequestMessage(HttpMethod.Get, "https://api.example.com/a?x=1");

        signer.Sign(request, default, DateTimeOffset.FromUnixTimeSeconds(1_700_000_000));

        var query = request.RequestUri!.Query;
        Assert.StartsWith("?x=1&oauth_consumer_key=key&", query);
        Assert.Contains("&oauth_signature=", query);
        Assert.False(request.Headers.Contains("Authorization"));
    }

    [Fact]
    public void Rsa_sha1_signs_with_the_private_key_and_the_public_key_verifies()
    {
        using var rsa = RSA.Create(2048);
        var key = Keyway.Credentials.SigningKey.FromPem(rsa.ExportPkcs8PrivateKeyPem(), "RS256", null, "auth.privateKey");
        var signer = new OAuth1Signer("key", null, "token", null, OAuth1Signer.RsaSha1, key, null, inQuery: false);
        using var request = new HttpRequestMessage(HttpMethod.Post, "https://api.example.com/a")
        {
            Content = new StringContent("b=2&a=1", Encoding.UTF8, "application/x-www-form-urlencoded"),
        };

        signer.Sign(request, "b=2&a=1"u8, DateTimeOffset.FromUnixTimeSeconds(1_700_000_000));

        var header = Parse(request.Headers.GetValues("Authorization").Single());
        var baseString = "POST&https%3A%2F%2Fapi.example.com%2Fa&" + Uri.EscapeDataString(
            $"a=1&b=2&oauth_consumer_key=key&oauth_nonce={header["oauth_nonce"]}&oauth_signature_method=RSA-SHA1&oauth_timestamp=1700000000&oauth_token=token&oauth_version=1.0");
        Assert.True(rsa.VerifyData(Encoding.UTF8.GetBytes(baseString), Convert.FromBase64String(header["oauth_signature"]), HashAlgorithmName.SHA1, RSASignaturePadding.Pkcs1));
    }

    private static Dictionary<string, string> Parse(string header)
    {
        Assert.StartsWith("OAuth ", header);
        return header["OAuth ".Length..].Split(", ").Select(p => p.Split('=', 2))
            .ToDictionary(p => p[0], p => Uri.UnescapeDataString(p[1].Trim('"')));
    }
}

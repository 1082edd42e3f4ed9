using System.Security.Cryptography;
using System.Text;
using Keyway.Outbound;
using Keyway.Secrets;

namespace Keyway.Tests.Outbound;

/// <summary>
/// <see cref="AwsSigV4Signer"/> against AWS's published Signature Version 4 test suite (the copy botocore
/// keeps, in Aws4TestSuite): for each request, the canonical request, the string to sign and the
/// Authorization header must be exactly AWS's.
/// </summary>
public sealed class AwsSigV4Tests
{
    private const string AccessKeyId = "AKIDEXAMPLE";
    private const string SecretAccessKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    // The session token the suite's get-vanilla-with-session-token case adds to its request.
    private const string SuiteSessionToken = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";

    private static readonly string Suite = Path.Combine(AppContext.BaseDirectory, "Outbound", "Aws4TestSuite");

    public static TheoryData<string> Cases()
    {
        var cases = new TheoryData<string>();
        foreach (var request in Directory.EnumerateFiles(Suite, "*.req", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            cases.Add(Path.GetRelativePath(Suite, request)[..^".req".Length]);
        }

        return cases;
    }

    [Fact]
    public void The_suite_is_all_there() => Assert.True(Cases().Count >= 30, $"{Cases().Count} cases in {Suite}");

    [Theory]
    [MemberData(nameof(Cases))]
    public void Signs_as_the_suite_says(string name)
    {
        var request = SuiteRequest.Parse(File.ReadAllText(Path.Combine(Suite, name + ".req")));
        var headers = request.Headers.ToList();
        if (name.EndsWith("get-vanilla-with-session-token", StringComparison.Ordinal))
        {
            headers.Add(new("X-Amz-Security-Token", SuiteSessionToken));
        }

        var amzDate = headers.Single(h => h.Key.Equals("X-Amz-Date", StringComparison.OrdinalIgnoreCase)).Value;
        var payloadHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(request.Body)));
        var signer = new AwsSigV4Signer(AccessKeyId, new Secret(SecretAccessKey), null, "us-east-1", "service");

        var canonical = AwsSigV4Signer.CanonicalRequest(request.Method, request.Path, request.Query, headers, payloadHash, normalizePath: true, out _);
        Assert.Equal(Expected(name, "creq"), canonical);
        Assert.Equal(Expected(name, "sts"), AwsSigV4Signer.StringToSign(amzDate, "20150830/us-east-1/service/aws4_request", canonical));
        Assert.Equal(Expected(name, "authz"), signer.Authorization(request.Method, request.Path, request.Query, headers, payloadHash, amzDate));
    }

    [Fact]
    public void Signs_a_request_message_with_its_host_date_token_and_content_type()
    {
        var signer = new AwsSigV4Signer(AccessKeyId, new Secret(SecretAccessKey), new Secret(SuiteSessionToken), "us-east-1", "service");
        var request = new HttpRequestMessage(HttpMethod.Post, "https://example.amazonaws.com/")
        {
            Content = new StringContent("Param1=value1", Encoding.UTF8, "application/x-www-form-urlencoded"),
        };
        request.Content.Headers.ContentType!.CharSet = "utf8";
        request.Headers.TryAddWithoutValidation("User-Agent", "not signed");

        signer.Sign(request, Convert.ToHexStringLower(SHA256.HashData("Param1=value1"u8)), new DateTimeOffset(2015, 8, 30, 12, 36, 0, TimeSpan.Zero));

        Assert.Equal("20150830T123600Z", request.Headers.GetValues("X-Amz-Date").Single());
        Assert.Equal(SuiteSessionToken, request.Headers.GetValues("X-Amz-Security-Token").Single());
        var authorization = request.Headers.GetValues("Authorization").Single();
        Assert.StartsWith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, " +
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=", authorization);
        Assert.DoesNotContain(SecretAccessKey, authorization);
        Assert.False(request.Headers.Contains("X-Amz-Content-Sha256"));
    }

    [Fact]
    public void Signing_again_replaces_the_previous_signature()
    {
        var signer = new AwsSigV4Signer(AccessKeyId, new Secret(SecretAccessKey), null, "eu-west-1", "s3");
        var request = new HttpRequestMessage(HttpMethod.Get, "https://bucket.s3.eu-west-1.amazonaws.com/a%20b/c.txt");
        var at = new DateTimeOffset(2026, 12, 7, 10, 0, 0, TimeSpan.Zero);

        signer.Sign(request, AwsSigV4Signer.UnsignedPayload, at);
        signer.Sign(request, AwsSigV4Signer.UnsignedPayload, at.AddDays(1));

        Assert.Equal("20261208T100000Z", request.Headers.GetValues("X-Amz-Date").Single());
        Assert.Equal(AwsSigV4Signer.UnsignedPayload, request.Headers.GetValues("X-Amz-Content-Sha256").Single());
        Assert.Contains("/20261208/eu-west-1/s3/aws4_request", request.Headers.GetValues("Authorization").Single());
    }

    [Theory]
    // S3 signs the path as sent; every other service the normalized path, encoded once more.
    [InlineData("s3", "/a%20b/./c//d", "/a%20b/./c//d")]
    [InlineData("service", "/a%20b/./c//d", "/a%2520b/c/d")]
    [InlineData("service", "/a/b/../c/", "/a/c/")]
    [InlineData("service", "", "/")]
    public void Canonical_path_per_service(string service, string path, string expected)
    {
        var canonical = AwsSigV4Signer.CanonicalRequest("GET", path, "", [new("host", "h")], AwsSigV4Signer.EmptyPayloadHash, service != "s3", out _);
        Assert.Equal(expected, canonical.Split('\n')[1]);
    }

    [Fact]
    public void Query_is_encoded_strictly_whatever_its_sent_encoding()
    {
        var canonical = AwsSigV4Signer.CanonicalRequest("GET", "/", "?b=x%2Ay&a=1+2&a=%21&c", [new("host", "h")], AwsSigV4Signer.EmptyPayloadHash, true, out _);
        Assert.Equal("a=%21&a=1%2B2&b=x%2Ay&c=", canonical.Split('\n')[2]);
    }

    /// <summary>The suite's files end without a newline, or with one that is not part of the value.</summary>
    private static string Expected(string name, string extension) =>
        File.ReadAllText(Path.Combine(Suite, name + "." + extension)).ReplaceLineEndings("\n").TrimEnd('\n');

    /// <summary>A request of the suite: an HTTP/1.1 message whose path may hold raw spaces and UTF-8, and folded header lines.</summary>
    private sealed record SuiteRequest(string Method, string Path, string Query, List<KeyValuePair<string, string>> Headers, string Body)
    {
        public static SuiteRequest Parse(string text)
        {
            var lines = text.ReplaceLineEndings("\n").Split('\n');
            var first = lines[0];
            var method = first[..first.IndexOf(' ')];
            var target = first[(method.Length + 1)..first.LastIndexOf(" HTTP/", StringComparison.Ordinal)];
            var question = target.IndexOf('?');
            var headers = new List<KeyValuePair<string, string>>();
            var i = 1;
            for (; i < lines.Length && lines[i].Length > 0; i++)
            {
                if (lines[i][0] is ' ' or '\t')
                {
                    // A folded line continues the previous header's value.
                    var last = headers[^1];
                    headers[^1] = new(last.Key, last.Value + "\n" + lines[i]);
                    continue;
                }

                var colon = lines[i].IndexOf(':');
                headers.Add(new(lines[i][..colon], lines[i][(colon + 1)..]));
            }

            var body = i < lines.Length ? string.Join("\n", lines[(i + 1)..]) : "";
            return new SuiteRequest(method, question < 0 ? target : target[..question], question < 0 ? "" : target[question..], headers, body);
        }
    }
}

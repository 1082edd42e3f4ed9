using Keyway.Outbound;

namespace Keyway.Tests.Outbound;

public sealed class OutboundUrlTests
{
    private static readonly Uri Root = new("https://api.example.com");
    private static readonly Uri V2 = new("https://api.example.com/v2/");

    [Theory]
    // absolute URLs and schemes
    [InlineData("http://evil.example")]
    [InlineData("https://evil.example/x")]
    [InlineData("https:evil.example")]
    [InlineData("HTTP://evil.example")]
    [InlineData("javascript:alert(1)")]
    [InlineData("file:///etc/passwd")]
    [InlineData("mailto:a@b.example")]
    [InlineData("/http://evil.example")]
    [InlineData(" http://evil.example")]
    [InlineData("evil.example:443/x")]
    // scheme-relative and empty segments
    [InlineData("//evil.example")]
    [InlineData("///evil.example")]
    [InlineData("users//1")]
    // backslashes and encoded separators
    [InlineData("\\\\evil.example")]
    [InlineData("/\\evil.example")]
    [InlineData("users\\..\\admin")]
    [InlineData("users%2f..%2fadmin")]
    [InlineData("users%2Fadmin")]
    [InlineData("users%5cadmin")]
    [InlineData("%5C%5Cevil.example")]
    // dot segments, raw and encoded
    [InlineData("..")]
    [InlineData("../admin")]
    [InlineData("users/../../admin")]
    [InlineData("./users")]
    [InlineData("users/.")]
    [InlineData("%2e%2e")]
    [InlineData("%2E%2e/admin")]
    [InlineData(".%2e/admin")]
    [InlineData("%2e./admin")]
    [InlineData("..%2fadmin")]
    [InlineData("%2f../admin")]
    [InlineData("users/..;/admin")]
    [InlineData("users/.;x/admin")]
    [InlineData("users/...")]
    [InlineData("users/..%20")]
    [InlineData("users/%2e%2e%3b/admin")]
    // double encoding and malformed escapes
    [InlineData("%252e%252e/admin")]
    [InlineData("%252f")]
    [InlineData("%25%32%65%25%32%65")]
    [InlineData("%%32%65")]
    [InlineData("users/%")]
    [InlineData("users/%2")]
    [InlineData("users/%zz")]
    [InlineData("%u002e%u002e/admin")]
    [InlineData("%c0%ae%c0%ae/admin")]
    [InlineData("users/%C1%9C")]
    [InlineData("users/%FF")]
    // control characters, raw and encoded
    [InlineData("users\r\nHost: evil.example")]
    [InlineData("users\n")]
    [InlineData("users\0")]
    [InlineData("users\t1")]
    [InlineData("users\u007f")]
    [InlineData("users\u0085")]
    [InlineData("users%0d%0aHost:%20evil.example")]
    [InlineData("users%00")]
    [InlineData("users%7F")]
    [InlineData("users%09")]
    // userinfo tricks
    [InlineData("@evil.example")]
    [InlineData("user:pass@evil.example/x")]
    [InlineData("api.example.com@evil.example")]
    // query and fragment in the path
    [InlineData("users?admin=true")]
    [InlineData("users#fragment")]
    [InlineData("?x=1")]
    // Unicode look-alikes and broken UTF-16
    [InlineData("\uFF0E\uFF0E\uFF0Fadmin")]
    [InlineData("users\uFF3Cadmin")]
    [InlineData("users\u2215admin")]
    [InlineData("\u2025/admin")]
    public void A_hostile_path_is_rejected_with_path_not_allowed(string path)
    {
        var ex = Assert.Throws<OutboundRequestException>(() => OutboundUrl.Build(V2, path));
        Assert.Equal(OutboundRequestException.PathNotAllowed, ex.Code);
        Assert.StartsWith("Path not allowed: ", ex.Message, StringComparison.Ordinal);

        var fromRoot = Assert.Throws<OutboundRequestException>(() => OutboundUrl.Build(Root, path));
        Assert.Equal(OutboundRequestException.PathNotAllowed, fromRoot.Code);
    }

    [Fact]
    public void A_lone_surrogate_is_rejected()
    {
        // Built at run time: a lone surrogate does not survive an attribute's metadata.
        foreach (var path in new[] { "users" + '\uD800', "users" + '\uDC00' + "x", '\uD800' + "\uD800" })
        {
            var ex = Assert.Throws<OutboundRequestException>(() => OutboundUrl.Build(V2, path));
            Assert.Equal(OutboundRequestException.PathNotAllowed, ex.Code);
        }
    }

    [Fact]
    public void A_path_longer_than_8_KB_is_rejected()
    {
        var ex = Assert.Throws<OutboundRequestException>(() => OutboundUrl.Build(V2, new string('a', OutboundUrl.MaxPathLength + 1)));
        Assert.Equal(OutboundRequestException.PathNotAllowed, ex.Code);

        var longest = OutboundUrl.Build(V2, new string('a', OutboundUrl.MaxPathLength));
        Assert.Equal(OutboundUrl.MaxPathLength + "/v2/".Length, longest.AbsolutePath.Length);
    }

    [Fact]
    public void An_absolute_url_is_rejected_with_a_message_that_says_why()
    {
        var ex = Assert.Throws<OutboundRequestException>(() => OutboundUrl.Build(V2, "http://evil.example"));
        Assert.Contains("absolute URLs are not allowed", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("evil", ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("https://api.example.com", null, "https://api.example.com/")]
    [InlineData("https://api.example.com", "", "https://api.example.com/")]
    [InlineData("https://api.example.com", "/", "https://api.example.com/")]
    [InlineData("https://api.example.com", "users", "https://api.example.com/users")]
    [InlineData("https://api.example.com", "/users", "https://api.example.com/users")]
    [InlineData("https://api.example.com/", "/users/42", "https://api.example.com/users/42")]
    [InlineData("https://api.example.com/v2", null, "https://api.example.com/v2")]
    [InlineData("https://api.example.com/v2/", "", "https://api.example.com/v2/")]
    [InlineData("https://api.example.com/v2", "users", "https://api.example.com/v2/users")]
    [InlineData("https://api.example.com/v2", "/users", "https://api.example.com/v2/users")]
    [InlineData("https://api.example.com/v2/", "users", "https://api.example.com/v2/users")]
    [InlineData("https://api.example.com/v2/", "/users/", "https://api.example.com/v2/users/")]
    [InlineData("http://127.0.0.1:8080/a/b/", "c/d", "http://127.0.0.1:8080/a/b/c/d")]
    [InlineData("https://api.example.com/v2", "files/My%20File.txt", "https://api.example.com/v2/files/My%20File.txt")]
    [InlineData("https://api.example.com/v2", "files/My File.txt", "https://api.example.com/v2/files/My%20File.txt")]
    [InlineData("https://api.example.com/v2", "search/a+b", "https://api.example.com/v2/search/a+b")]
    [InlineData("https://api.example.com/v2", "caf\u00e9/\u65e5\u672c", "https://api.example.com/v2/caf%C3%A9/%E6%97%A5%E6%9C%AC")]
    [InlineData("https://api.example.com/v2", "caf%C3%A9", "https://api.example.com/v2/caf%C3%A9")]
    [InlineData("https://api.example.com/v2", "emoji/\U0001F600", "https://api.example.com/v2/emoji/%F0%9F%98%80")]
    [InlineData("https://api.example.com/v2", "a%3Fb%23c", "https://api.example.com/v2/a%3Fb%23c")]
    [InlineData("https://api.example.com/v2", "50%25off", "https://api.example.com/v2/50%25off")]
    [InlineData("https://api.example.com/v1", "projects/p:batchGet", "https://api.example.com/v1/projects/p:batchGet")]
    [InlineData("https://api.example.com/v1", "users/@me", "https://api.example.com/v1/users/@me")]
    [InlineData("https://api.example.com/v1", "file.json", "https://api.example.com/v1/file.json")]
    [InlineData("https://api.example.com/v1", "a..b/.hidden/x.", "https://api.example.com/v1/a..b/.hidden/x.")]
    // Uri itself decodes escaped unreserved characters; a lone one is harmless.
    [InlineData("https://api.example.com/v1", "a%2Eb", "https://api.example.com/v1/a.b")]
    [InlineData("https://api.example.com/v1", "m;v=1/x", "https://api.example.com/v1/m;v=1/x")]
    [InlineData("https://api.example.com/v1", "q/{id}|\"<>^`", "https://api.example.com/v1/q/%7Bid%7D%7C%22%3C%3E%5E%60")]
    [InlineData("https://api.example.com/v1?api-version=2", "items", "https://api.example.com/v1/items?api-version=2")]
    [InlineData("https://api.example.com/v1#frag", "items", "https://api.example.com/v1/items")]
    public void A_benign_path_builds_the_exact_url(string baseUrl, string? path, string expected)
    {
        var url = OutboundUrl.Build(new Uri(baseUrl), path);
        Assert.Equal(expected, url.AbsoluteUri);
    }

    [Theory]
    [InlineData("https://api.example.com/v1", "https://api.example.com/v1/items?a=1&b=x%20y&c=%2B%26%3D&empty=&flag")]
    [InlineData("https://api.example.com/v1?key=k", "https://api.example.com/v1/items?key=k&a=1&b=x%20y&c=%2B%26%3D&empty=&flag")]
    [InlineData("https://api.example.com/v1?", "https://api.example.com/v1/items?a=1&b=x%20y&c=%2B%26%3D&empty=&flag")]
    public void Query_parameters_follow_the_base_query_percent_encoded(string baseUrl, string expected)
    {
        KeyValuePair<string, string?>[] query = [new("a", "1"), new("b", "x y"), new("c", "+&="), new("empty", ""), new("flag", null)];
        var url = OutboundUrl.Build(new Uri(baseUrl), "items", query);
        Assert.Equal(expected, url.AbsoluteUri);
    }

    [Fact]
    public void A_query_value_with_CR_LF_is_sent_encoded()
    {
        var url = OutboundUrl.Build(V2, "items", [new("q", "a\r\nHost: evil")]);
        Assert.Equal("https://api.example.com/v2/items?q=a%0D%0AHost%3A%20evil", url.AbsoluteUri);
    }

    [Fact]
    public void A_query_name_with_unicode_is_encoded_as_utf8()
    {
        var url = OutboundUrl.Build(V2, null, [new("caf\u00e9", "\u00e9")]);
        Assert.Equal("https://api.example.com/v2/?caf%C3%A9=%C3%A9", url.AbsoluteUri);
    }

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    public void An_empty_query_name_is_rejected(string? name)
    {
        var ex = Assert.Throws<OutboundRequestException>(() => OutboundUrl.Build(V2, "items", [new(name!, "v")]));
        Assert.Equal(OutboundRequestException.InvalidQuery, ex.Code);
    }

    [Fact]
    public void The_result_keeps_the_base_scheme_host_port_and_path()
    {
        var baseUrl = new Uri("http://internal.example:8443/api/v2/");
        var url = OutboundUrl.Build(baseUrl, "/users/1");
        Assert.Equal(baseUrl.Scheme, url.Scheme);
        Assert.Equal(baseUrl.Host, url.Host);
        Assert.Equal(8443, url.Port);
        Assert.StartsWith("/api/v2/", url.AbsolutePath, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ftp://files.example/")]
    [InlineData("/relative")]
    public void A_base_url_that_is_not_absolute_http_is_a_configuration_error(string baseUrl)
    {
        Assert.Throws<ArgumentException>(() => OutboundUrl.Build(new Uri(baseUrl, UriKind.RelativeOrAbsolute), "x"));
    }
}

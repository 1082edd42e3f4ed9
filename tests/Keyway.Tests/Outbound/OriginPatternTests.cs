using Keyway.Outbound;

namespace Keyway.Tests.Outbound;

public sealed class OriginPatternTests
{
    [Theory]
    [InlineData("https://api.github.com", "https://api.github.com/repos/x", true)]
    [InlineData("https://api.github.com", "https://API.GitHub.com:443/", true)]
    [InlineData("https://api.github.com", "http://api.github.com/", false)]
    [InlineData("https://api.github.com", "https://api.github.com:8443/", false)]
    [InlineData("https://api.github.com", "https://api.github.com.evil.example/", false)]
    [InlineData("https://api.github.com", "https://evilapi.github.com/", false)]
    [InlineData("http://127.0.0.1:8080", "http://127.0.0.1:8080/x", true)]
    [InlineData("http://127.0.0.1:8080", "http://127.0.0.1:8081/x", false)]
    [InlineData("https://*.example.com", "https://a.example.com/", true)]
    [InlineData("https://*.example.com", "https://a.b.example.com/", true)]
    [InlineData("https://*.example.com", "https://example.com/", false)]
    [InlineData("https://*.example.com", "https://badexample.com/", false)]
    [InlineData("https://*.example.com", "https://a.example.com.evil.example/", false)]
    [InlineData("https://[::1]:9000", "https://[::1]:9000/", true)]
    public void An_origin_matches_scheme_host_and_port_exactly_or_below_a_wildcard(string pattern, string url, bool matches)
    {
        Assert.True(OriginPattern.TryParse(pattern, out var parsed, out var error), error);

        Assert.Equal(matches, parsed!.Matches(new Uri(url)));
    }

    [Theory]
    [InlineData("api.github.com")]
    [InlineData("ftp://files.example.com")]
    [InlineData("https://api.example.com/v1")]
    [InlineData("https://user:pw@api.example.com")]
    [InlineData("https://api.example.com?x=1")]
    [InlineData("https://api.example.com#x")]
    [InlineData("https://*.com")]
    [InlineData("https://*.10.0.0.1")]
    [InlineData("")]
    public void Anything_but_an_origin_is_refused_with_a_reason(string text)
    {
        Assert.False(OriginPattern.TryParse(text, out _, out var error));
        Assert.False(string.IsNullOrEmpty(error));
    }

    [Theory]
    [InlineData("HTTPS://API.Example.COM:443/", "https://api.example.com")]
    [InlineData("http://example.com:80", "http://example.com")]
    [InlineData("https://*.Example.com", "https://*.example.com")]
    [InlineData("http://10.0.0.5:8080", "http://10.0.0.5:8080")]
    public void An_origin_is_kept_in_one_canonical_form(string text, string canonical)
    {
        Assert.True(OriginPattern.TryParse(text, out var parsed, out _));
        Assert.Equal(canonical, parsed!.ToString());
    }

    [Fact]
    public void Bindings_name_the_secret_and_the_origin_they_refused_never_a_value()
    {
        Assert.True(OriginPattern.TryParse("https://api.example.com", out var home, out _));
        var bindings = new SecretBindings([new SecretBinding("GITHUB_TOKEN", "production", [home!])]);

        bindings.Demand(new Uri("https://api.example.com/x"), "the request");
        var refused = Assert.ThrowsAny<Keyway.Api.KeywayException>(() => bindings.Demand(new Uri("https://evil.example/steal"), "the request"));

        Assert.Equal("origin_not_allowed", refused.Code);
        Assert.Contains("GITHUB_TOKEN", refused.Message);
        Assert.Contains("https://evil.example", refused.Message);
        Assert.Contains("keyway var bind GITHUB_TOKEN https://evil.example --env production", refused.Message);
    }
}

using Keyway.Outbound;

namespace Keyway.Tests.Outbound;

public sealed class HeaderRulesTests
{
    [Theory]
    [InlineData("Accept")]
    [InlineData("X-Request-Id")]
    [InlineData("x")]
    [InlineData("!#$%&'*+-.^_`|~09AZaz")]
    public void A_token_is_a_valid_name(string name) => Assert.True(HeaderRules.IsValidName(name));

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("X Header")]
    [InlineData("X-Header:")]
    [InlineData("X-Header\r\nHost")]
    [InlineData("X-Header\n")]
    [InlineData("X\0")]
    [InlineData("X\tY")]
    [InlineData("(comment)")]
    [InlineData("a/b")]
    [InlineData("a@b")]
    [InlineData("\"quoted\"")]
    [InlineData("caf\u00e9")]
    [InlineData("X\u007f")]
    public void A_name_that_is_not_a_token_is_invalid(string? name) => Assert.False(HeaderRules.IsValidName(name));

    [Theory]
    [InlineData("")]
    [InlineData("text/plain; charset=utf-8")]
    [InlineData("a\tb")]
    [InlineData("  spaced  ")]
    [InlineData("caf\u00e9")]
    [InlineData("\"quoted, with comma\"")]
    public void A_value_without_control_characters_is_valid(string value) => Assert.True(HeaderRules.IsValidValue(value));

    [Theory]
    [InlineData(null)]
    [InlineData("a\r\nSet-Cookie: x")]
    [InlineData("a\rb")]
    [InlineData("a\nb")]
    [InlineData("a\0b")]
    [InlineData("a\u0001")]
    [InlineData("a\u001f")]
    [InlineData("a\u007f")]
    [InlineData("\u000b")]
    public void A_value_with_CR_LF_NUL_or_another_control_character_is_invalid(string? value) =>
        Assert.False(HeaderRules.IsValidValue(value));

    [Theory]
    [InlineData("Connection")]
    [InlineData("keep-alive")]
    [InlineData("PROXY-CONNECTION")]
    [InlineData("TE")]
    [InlineData("Trailer")]
    [InlineData("transfer-encoding")]
    [InlineData("Upgrade")]
    [InlineData("Proxy-Authenticate")]
    [InlineData("Proxy-Authorization")]
    public void The_hop_by_hop_headers_are_known_in_any_case(string name)
    {
        Assert.True(HeaderRules.IsHopByHop(name));
        Assert.False(HeaderRules.MayForwardFromCaller(name, null));
    }

    [Theory]
    [InlineData("X-Trace")]
    [InlineData("x-trace")]
    [InlineData("X-Other")]
    public void A_header_named_in_Connection_is_hop_by_hop(string name)
    {
        string?[] connection = ["keep-alive, X-Trace", null, " x-other\t"];
        Assert.True(HeaderRules.IsHopByHop(name, connection));
        Assert.False(HeaderRules.IsHopByHop(name));
    }

    [Theory]
    [InlineData("X-Trac")]
    [InlineData("Trace")]
    [InlineData("Accept")]
    public void A_header_not_named_in_Connection_is_not_hop_by_hop(string name) =>
        Assert.False(HeaderRules.IsHopByHop(name, ["keep-alive, X-Trace"]));

    [Theory]
    [InlineData("Authorization")]
    [InlineData("authorization")]
    [InlineData("Cookie")]
    [InlineData("Host")]
    [InlineData("X-Keyway-Environment")]
    [InlineData("x-keyway-anything")]
    public void The_callers_credentials_cookies_host_and_keyway_headers_are_never_forwarded(string name)
    {
        Assert.True(HeaderRules.IsNeverForwarded(name));
        Assert.False(HeaderRules.MayForwardFromCaller(name, null));
    }

    [Theory]
    [InlineData("Accept")]
    [InlineData("Content-Type")]
    [InlineData("X-Request-Id")]
    [InlineData("X-Keyway")]
    [InlineData("Cookie2")]
    public void An_ordinary_header_may_be_forwarded(string name)
    {
        Assert.False(HeaderRules.IsNeverForwarded(name));
        Assert.True(HeaderRules.MayForwardFromCaller(name, ["close"]));
    }

    [Fact]
    public void A_header_with_an_invalid_name_may_not_be_forwarded() =>
        Assert.False(HeaderRules.MayForwardFromCaller("Bad Name", null));
}

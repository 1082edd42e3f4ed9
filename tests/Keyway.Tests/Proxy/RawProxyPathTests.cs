using Keyway.Outbound;
using Keyway.Proxy;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Keyway.Tests.Proxy;

public sealed class RawProxyPathTests
{
    [Theory]
    [InlineData("/proxy/api/files/a%3Fb?x=1", "api", "files/a?b", "files/a%3Fb")]
    [InlineData("/proxy/api/a%2541", "api", "a%41", "a%2541")]
    [InlineData("/proxy/api/caf%C3%A9", "api", "café", "caf%C3%A9")]
    [InlineData("/proxy/api/.well-known/x", "api", ".well-known/x", ".well-known/x")]
    [InlineData("/proxy/api/plain/path?q=1", "api", "plain/path", "plain/path")]
    [InlineData("/proxy/api", "api", null, null)]
    [InlineData("/PROXY/my%2Dapi/x%3F", "my-api", "x?", "x%3F")]
    public void The_proxy_forwards_the_path_as_the_caller_encoded_it(string rawTarget, string resource, string? routed, string? expected) =>
        Assert.Equal(expected, ProxyIsolation.RawRelativePath(Request(rawTarget), resource, routed));

    [Theory]
    [InlineData("/proxy/other/../api/secret", "api", "secret")]
    [InlineData("/proxy/./api/secret", "api", "secret")]
    [InlineData("/proxy/%2E%2E/api/secret", "api", "secret")]
    public void A_path_the_server_normalized_into_another_resource_is_refused(string rawTarget, string resource, string routed)
    {
        var refused = Assert.Throws<OutboundRequestException>(() => ProxyIsolation.RawRelativePath(Request(rawTarget), resource, routed));
        Assert.Equal(OutboundRequestException.PathNotAllowed, refused.Code);
    }

    [Fact]
    public void A_dot_segment_after_the_resource_name_is_left_to_the_path_rules_which_refuse_it()
    {
        var path = ProxyIsolation.RawRelativePath(Request("/proxy/api/a/../b"), "api", "b");
        Assert.Equal("a/../b", path);
        Assert.Throws<OutboundRequestException>(() => OutboundUrl.Build(new Uri("https://api.example.test/v1/"), path));
    }

    private static DefaultHttpContext Request(string rawTarget)
    {
        var context = new DefaultHttpContext();
        context.Features.Get<IHttpRequestFeature>()!.RawTarget = rawTarget;
        return context;
    }
}

using Keyway.Hosting;

namespace Keyway.Tests.Hosting;

public sealed class ProxyListenerTests
{
    [Fact]
    public void The_proxy_listeners_are_known_by_their_ports() =>
        Assert.Equal([7511, 8443], ProxyListener.Ports("http://0.0.0.0:7511; https://proxy.example.test:8443", "http://127.0.0.1:7510").Order());

    [Theory]
    [InlineData("http://127.0.0.1:7510", "http://127.0.0.1:7510", "port of its own")]
    [InlineData("http://127.0.0.2:7510", "http://127.0.0.1:7510;http://[::1]:7512", "port of its own")]
    [InlineData("http://127.0.0.1:0", "http://127.0.0.1:7510", "fixed TCP port")]
    [InlineData("not a url", "http://127.0.0.1:7510", "--proxy-urls")]
    [InlineData(";", "http://127.0.0.1:7510", "names no address")]
    public void Proxy_urls_that_cannot_be_told_apart_from_urls_stop_the_start(string proxyUrls, string urls, string message)
    {
        var refused = Assert.Throws<StartupException>(() => ProxyListener.Ports(proxyUrls, urls));
        Assert.Contains(message, refused.Message, StringComparison.Ordinal);
    }
}

using Keyway.Proxy;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Template;

namespace Keyway.Tests.Proxy;

/// <summary>UseProxy answers /proxy ahead of routing: it must match exactly what the mapped route would.</summary>
public sealed class ProxyRouteTests
{
    private static readonly TemplateMatcher Route = new(TemplateParser.Parse("/proxy/{resource}/{**path}"), new RouteValueDictionary());

    [Theory]
    [InlineData("/proxy/billing")]
    [InlineData("/proxy/billing/")]
    [InlineData("/proxy/billing/v1/invoices")]
    [InlineData("/proxy/billing/v1/invoices/")]
    [InlineData("/proxy/billing//double")]
    [InlineData("/PROXY/Billing/v1")]
    [InlineData("/proxy/a%2Fb/v1")]
    [InlineData("/proxy/bill ing/v1 x")]
    [InlineData("/proxy")]
    [InlineData("/proxy/")]
    [InlineData("/proxy//v1")]
    [InlineData("/proxyx/billing")]
    [InlineData("/api/v1/resources")]
    [InlineData("/")]
    public void The_fast_path_matches_what_routing_matches(string requestPath)
    {
        var values = new RouteValueDictionary();
        var routed = Route.TryMatch(requestPath, values);

        var matched = ProxyEndpoints.TryMatch(new PathString(requestPath), out var resource, out var path);

        Assert.Equal(routed, matched);
        if (routed)
        {
            Assert.Equal(values["resource"] as string, resource);
            Assert.Equal(values["path"] as string, path);
        }
    }
}

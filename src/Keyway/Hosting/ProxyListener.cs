using Keyway.Api;
using Keyway.Proxy;

namespace Keyway.Hosting;

/// <summary>
/// <c>--proxy-urls</c>: the proxy on listeners of its own, so that what an upstream answers lives on
/// another origin than the console and the API. Requests are told apart by the local port they
/// arrived on: the proxy's listeners serve <c>/proxy</c> and the health checks, the others serve
/// everything but <c>/proxy</c>. Each refusal is a 404 that names where the other half lives.
/// </summary>
internal static class ProxyListener
{
    /// <summary>The ports of <paramref name="proxyUrls"/>; a port shared with <paramref name="urls"/> or left to the system is an error.</summary>
    /// <exception cref="StartupException">The addresses cannot be told apart by port.</exception>
    public static HashSet<int> Ports(string proxyUrls, string urls)
    {
        var proxy = PortsOf(proxyUrls, "--proxy-urls");
        var shared = proxy.Intersect(PortsOf(urls, "--urls")).ToList();
        if (shared.Count > 0)
        {
            throw new StartupException(
                $"--proxy-urls and --urls both use port {string.Join(", ", shared)}; the proxy's listener needs a port of its own (e.g. --proxy-urls http://127.0.0.1:7511).");
        }

        return proxy;
    }

    private static HashSet<int> PortsOf(string urls, string option)
    {
        var ports = new HashSet<int>();
        foreach (var url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            BindingAddress address;
            try
            {
                address = BindingAddress.Parse(url);
            }
            catch (FormatException)
            {
                throw new StartupException($"{option}: '{url}' is not an address such as http://127.0.0.1:7511.");
            }

            if (address.IsNamedPipe || address.IsUnixPipe || address.Port == 0)
            {
                throw new StartupException($"{option}: '{url}' needs a fixed TCP port, so that requests to the proxy and to the API can be told apart.");
            }

            ports.Add(address.Port);
        }

        if (ports.Count == 0)
        {
            throw new StartupException($"{option} names no address.");
        }

        return ports;
    }

    /// <summary>Serves /proxy only on the proxy's ports, and everything else only on the others.</summary>
    public static IApplicationBuilder UseProxyListener(this IApplicationBuilder app, HashSet<int> proxyPorts) =>
        app.Use(next => context =>
        {
            var onProxyListener = proxyPorts.Contains(context.Connection.LocalPort);
            var path = context.Request.Path;
            if (path.StartsWithSegments("/proxy"))
            {
                if (onProxyListener)
                {
                    return next(context);
                }

                ProxyIsolation.Apply(context.Response.Headers);
                return Problems.Create(StatusCodes.Status404NotFound, "not_found",
                    "The proxy is served on its own listener (--proxy-urls, KEYWAY_PROXY_URLS), not on this address: send proxied requests there.")
                    .ExecuteAsync(context);
            }

            if (!onProxyListener || path.StartsWithSegments("/healthz") || path.StartsWithSegments("/readyz"))
            {
                return next(context);
            }

            ProxyIsolation.Apply(context.Response.Headers);
            return Problems.Create(StatusCodes.Status404NotFound, "not_found",
                "This listener (--proxy-urls) serves only /proxy/{resource}/…; the API and the console are on the addresses of --urls.")
                .ExecuteAsync(context);
        });
}

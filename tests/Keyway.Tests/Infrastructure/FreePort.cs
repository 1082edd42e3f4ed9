using System.Net;
using System.Net.Sockets;

namespace Keyway.Tests.Infrastructure;

/// <summary>Finds a TCP port on 127.0.0.1 that is free right now.</summary>
public static class FreePort
{
    /// <summary>
    /// Binds 127.0.0.1:0, reads the port the kernel chose and releases it. Another process may
    /// take it before the caller binds it; callers that can should bind port 0 themselves.
    /// </summary>
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}

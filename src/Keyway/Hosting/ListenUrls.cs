using System.Net;
using System.Net.Sockets;

namespace Keyway.Hosting;

/// <summary>
/// Checks <c>--urls</c> and <c>--proxy-urls</c> before anything starts, so that a typo or a port
/// in use ends in one plain line (<see cref="StartupException"/>) instead of Kestrel's stack trace,
/// which the host logs before its exception reaches the command.
/// </summary>
internal static class ListenUrls
{
    /// <summary>Throws a <see cref="StartupException"/> naming the first address that is malformed or taken.</summary>
    public static void Check(string urls, string option)
    {
        var entries = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (entries.Length == 0)
        {
            throw new StartupException($"{option} is empty; give an address such as {ServeOptions.DefaultUrls}.");
        }

        foreach (var url in entries)
        {
            if (!url.StartsWith("http://", StringComparison.OrdinalIgnoreCase) && !url.StartsWith("https://", StringComparison.OrdinalIgnoreCase))
            {
                throw new StartupException($"{option}: '{url}' has no scheme; write it as http://{url} (or https://).");
            }

            // Kestrel's wildcards are not hosts Uri accepts: '*' and '+' listen on every address.
            var parsable = url.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal);
            if (!Uri.TryCreate(parsable, UriKind.Absolute, out var uri) || uri.AbsolutePath != "/" || uri.Query.Length > 0)
            {
                throw new StartupException($"{option}: '{url}' is not an address to listen on; write it as {ServeOptions.DefaultUrls}.");
            }

            EnsureFree(url, uri, option);
        }
    }

    private static void EnsureFree(string url, Uri uri, string option)
    {
        if (uri.Port == 0)
        {
            return;
        }

        var address = uri.IsLoopback && !IPAddress.TryParse(uri.DnsSafeHost, out _) ? IPAddress.Loopback
            : IPAddress.TryParse(uri.DnsSafeHost, out var parsed) ? parsed
            : null;
        if (address is null)
        {
            return; // A host name: Kestrel resolves it, and reports what it cannot bind.
        }

        try
        {
            using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(address, uri.Port));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            throw new StartupException($"{url} is already in use (another keyway serve?). Choose another address with {option}.");
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.AccessDenied or SocketError.AddressNotAvailable)
        {
            throw new StartupException($"cannot listen on {url}: {e.Message}.");
        }
    }
}

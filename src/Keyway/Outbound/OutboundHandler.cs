using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;

namespace Keyway.Outbound;

/// <summary>Connection settings of the outbound handler.</summary>
internal sealed record OutboundHandlerOptions
{
    /// <summary>How long resolving and connecting may take, all addresses together.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long a pooled connection lives. Short enough that a DNS change is seen (the policy is
    /// checked again on every new connection), long enough to keep connections warm.
    /// </summary>
    public TimeSpan PooledConnectionLifetime { get; init; } = TimeSpan.FromMinutes(2);
}

/// <summary>
/// The <see cref="SocketsHttpHandler"/> every upstream request goes through: no redirects,
/// cookies, system proxy or decompression, and a connect callback that enforces the
/// <see cref="DestinationPolicy"/> on the address actually connected to.
/// </summary>
internal static class OutboundHandler
{
    /// <summary>
    /// A handler; with <paramref name="tls"/>, one that presents its client certificate and trusts only its
    /// certificate authorities (when set), under the same destination policy as every other.
    /// </summary>
    public static SocketsHttpHandler Create(DestinationPolicy policy, OutboundHandlerOptions options, ClientTls? tls = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(options);

        var handler = new SocketsHttpHandler
        {
            // A redirect is returned to the caller as it is: following it could carry the
            // credentials Keyway attached to another origin.
            AllowAutoRedirect = false,
            UseCookies = false,
            // A system proxy would connect for us, and the policy would see the proxy's address.
            UseProxy = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = options.ConnectTimeout,
            PooledConnectionLifetime = options.PooledConnectionLifetime,
            EnableMultipleHttp2Connections = true,
            ConnectCallback = (context, cancellationToken) => ConnectAsync(policy, context.DnsEndPoint, cancellationToken),
        };
        if (tls is not null)
        {
            handler.SslOptions = SslOptionsFor(tls);
        }

        return handler;
    }

    /// <summary>The client certificate to present, and the roots the server's certificate must chain to when the resource names them.</summary>
    internal static SslClientAuthenticationOptions SslOptionsFor(ClientTls tls)
    {
        var options = new SslClientAuthenticationOptions { ClientCertificateContext = tls.Context };
        if (tls.Authorities is { } authorities)
        {
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                // As for the system's roots (SslStream checks no revocation by default): a private CA seldom publishes a CRL.
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(authorities);
            policy.ExtraStore.AddRange(authorities);
            options.CertificateChainPolicy = policy;
        }

        return options;
    }

    /// <summary>
    /// Resolves the host, drops every address the policy denies, and connects to the first
    /// allowed one that answers. Checking here rather than before sending is what makes the
    /// check hold against DNS rebinding: it is the address the socket connects to.
    /// </summary>
    internal static async ValueTask<Stream> ConnectAsync(DestinationPolicy policy, DnsEndPoint endPoint, CancellationToken cancellationToken)
    {
        var host = endPoint.Host;
        var addresses = TryParseLiteral(host, out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(host, cancellationToken);

        Exception? lastFailure = null;
        IPAddress? deniedAddress = null;
        DestinationDenial deniedBy = default;

        foreach (var address in addresses)
        {
            if (policy.Check(address, endPoint.Port) is { } denial)
            {
                if (deniedAddress is null)
                {
                    deniedAddress = address;
                    deniedBy = denial;
                }

                continue;
            }

            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(new IPEndPoint(address, endPoint.Port), cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch (SocketException ex)
            {
                // Try the next address; keep the failure in case none answers.
                socket.Dispose();
                lastFailure = ex;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }

        if (lastFailure is not null)
            throw lastFailure;

        if (deniedAddress is not null)
        {
            throw new OutboundRequestException(
                OutboundRequestException.DestinationDenied,
                $"Keyway does not connect to '{host}': {(addresses.Length == 1 ? "its address" : "every address it resolves to")} " +
                $"is denied by the outbound destination policy: {deniedBy.Explain(deniedAddress, endPoint.Port)}.");
        }

        throw new SocketException((int)SocketError.HostNotFound);
    }

    private static bool TryParseLiteral(string host, out IPAddress address)
    {
        // An IPv6 literal may come with its URL brackets.
        var span = host.AsSpan();
        if (span.Length > 2 && span[0] == '[' && span[^1] == ']')
            span = span[1..^1];
        return IPAddress.TryParse(span, out address!);
    }
}

using System.Net;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// A real HTTPS API on 127.0.0.1 that requires a client certificate (Kestrel, <see cref="ClientCertificateMode.RequireCertificate"/>)
/// issued by its <see cref="TestCertificates"/> CA: a connection without one, or with one from another CA, is refused in the
/// handshake. Its own certificate is issued by the same CA, so a client trusts it only when told to (<c>tls.caCertificate</c>).
/// Every request answers JSON naming the client certificate presented (<see cref="MtlsIdentity"/>).
/// </summary>
public sealed class MtlsServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Lock _lock = new();
    private readonly List<MtlsIdentity> _requests = [];

    private MtlsServer(WebApplication app, string baseUrl, TestCertificates certificates)
    {
        _app = app;
        BaseUrl = baseUrl;
        Certificates = certificates;
    }

    /// <summary>The server's address, e.g. <c>https://127.0.0.1:41234</c> (no trailing slash).</summary>
    public string BaseUrl { get; }

    /// <summary>The CA that issued the server's certificate and the client certificates it accepts.</summary>
    public TestCertificates Certificates { get; }

    /// <summary>Every request that got past the handshake, oldest first (a snapshot).</summary>
    public IReadOnlyList<MtlsIdentity> Requests
    {
        get
        {
            lock (_lock)
                return [.. _requests];
        }
    }

    /// <summary>Starts a server with a new CA.</summary>
    public static async Task<MtlsServer> StartAsync(CancellationToken cancellationToken = default)
    {
        var certificates = TestCertificates.Create("Mtls");
        var serverCertificate = certificates.IssueServer();
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.UseHttps(https =>
        {
            https.ServerCertificate = serverCertificate;
            https.ClientCertificateMode = ClientCertificateMode.RequireCertificate;
            https.ClientCertificateValidation = (certificate, _, _) => ChainsTo(certificate, certificates.Authority);
        })));
        var app = builder.Build();
        MtlsServer? server = null;
        app.MapFallback("{**path}", (HttpContext context) =>
        {
            var certificate = context.Connection.ClientCertificate!;
            var identity = new MtlsIdentity(certificate.Subject, TestCertificates.Thumbprint(certificate), context.Request.Path + context.Request.QueryString);
            lock (server!._lock)
                server._requests.Add(identity);
            return Results.Json(identity);
        });
        await app.StartAsync(cancellationToken);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        server = new MtlsServer(app, address.TrimEnd('/'), certificates);
        return server;
    }

    /// <summary>Whether the certificate chains to <paramref name="authority"/> alone (not to the system's roots).</summary>
    internal static bool ChainsTo(X509Certificate2 certificate, X509Certificate2 authority)
    {
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(authority);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>What <see cref="MtlsServer"/> saw of a request: the client certificate's subject and SHA-256 thumbprint (base64url), and the path.</summary>
public sealed record MtlsIdentity(string Subject, string Thumbprint, string Path);

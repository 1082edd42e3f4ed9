using System.Net.Http.Headers;
using System.Security.Claims;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Abstractions;
using OpenIddict.Validation.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// RFC 8705 on the <see cref="AuthServer"/>, when it has a <see cref="AuthServerOptions.ServerCertificate"/>: HTTPS that asks
/// for a client certificate, OpenIddict's <c>self_signed_tls_client_auth</c> and certificate-bound access tokens, and
/// <c>/api/bound</c>, a protected resource that accepts an access token only on a connection presenting the certificate
/// the token is bound to (its <c>cnf.x5t#S256</c>).
/// </summary>
public sealed partial class AuthServer
{
    private const string BoundApiPath = "/api/bound";

    /// <summary>The certificate-bound API, <c>/api/bound</c>.</summary>
    public string BoundApiEndpoint => BaseUrl + BoundApiPath;

    /// <summary>Every access token presented to <c>/api/bound</c>, oldest first.</summary>
    public IReadOnlyList<string> BoundApiTokens => [.. _state.BoundApiTokens];

    private static void ListenTls(ListenOptions listen, AuthServerOptions options)
    {
        if (options.ServerCertificate is not { } certificate)
            return;
        listen.UseHttps(https =>
        {
            https.ServerCertificate = certificate;
            // Asked for, not required: OpenIddict decides what a certificate (or its absence) means for each request.
            https.ClientCertificateMode = ClientCertificateMode.AllowCertificate;
            https.AllowAnyClientCertificate();
        });
    }

    private static void EnableMutualTls(OpenIddictServerBuilder server, AuthServerOptions options)
    {
        if (options.ServerCertificate is null)
            return;
        server.EnableSelfSignedTlsClientAuthentication()
            .UseClientCertificateBoundAccessTokens();
    }

    /// <summary>The key set of a client that authenticates with a self-signed certificate: the certificate, as <c>x5c</c>.</summary>
    private static JsonWebKeySet? SelfSignedKeySet(AuthServerClient client)
    {
        if (client.Certificate is not { } certificate)
            return null;
        using var publicOnly = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(certificate.RawData);
        var keys = new JsonWebKeySet();
        keys.Keys.Add(JsonWebKeyConverter.ConvertFromX509SecurityKey(new X509SecurityKey(publicOnly), representAsRsaKey: false));
        return keys;
    }

    /// <summary>The <c>cnf.x5t#S256</c> of a JWT access token, or null.</summary>
    public static string? Confirmation(string token)
    {
        var parts = token.Split('.');
        if (parts.Length != 3)
            return null;
        using var payload = System.Text.Json.JsonDocument.Parse(Base64UrlEncoder.DecodeBytes(parts[1]));
        return payload.RootElement.TryGetProperty("cnf", out var cnf) && cnf.TryGetProperty("x5t#S256", out var x5t) ? x5t.GetString() : null;
    }

    private static void MapBoundApi(WebApplication app)
    {
        app.MapGet(BoundApiPath, (HttpContext context, ClaimsPrincipal user, AuthServerState state) =>
            {
                var token = AuthenticationHeaderValue.TryParse(context.Request.Headers.Authorization, out var header) ? header.Parameter ?? "" : "";
                state.BoundApiTokens.Enqueue(token);
                var bound = Confirmation(token);
                var presented = context.Connection.ClientCertificate is { } certificate ? TestCertificates.Thumbprint(certificate) : null;
                if (bound is null || bound != presented)
                {
                    // RFC 8705 3: a bound token on a connection without its certificate is an invalid token.
                    context.Response.Headers.WWWAuthenticate = "Bearer error=\"invalid_token\", error_description=\"the token is bound to another certificate\"";
                    return Results.StatusCode(StatusCodes.Status401Unauthorized);
                }

                return Results.Ok(new AuthServerApiIdentity(
                    user.GetClaim(Claims.Subject) ?? "", user.GetClaim(Claims.ClientId) ?? user.GetPresenters().FirstOrDefault(), [.. user.GetScopes()]));
            })
            .RequireAuthorization(policy => policy
                .AddAuthenticationSchemes(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme)
                .RequireAuthenticatedUser());
    }
}

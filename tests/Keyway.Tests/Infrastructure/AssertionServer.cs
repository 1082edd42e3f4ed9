using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// A stand-in that verifies signed JWTs with the public keys it was given, as a real provider does, and
/// refuses a wrong signature, issuer, audience or lifetime (Microsoft.IdentityModel does the checking):
/// <list type="bullet">
/// <item><c>POST /token</c>: the RFC 7523 <c>jwt-bearer</c> grant (the assertion's key found by its <c>iss</c>; <c>aud</c>
/// the token endpoint; a Google-style assertion's <c>scope</c> claim recorded), and <c>client_credentials</c> with
/// <c>private_key_jwt</c> client authentication (<c>iss</c> = <c>sub</c> = the client id). A <c>jti</c> seen before is refused.</item>
/// <item><c>POST /app/installations/{id}/access_tokens</c>: GitHub's installation token endpoint: the app JWT verified with
/// the app's public key, <c>iss</c> the app id, <c>iat</c> not in the future, <c>exp</c> at most 10 minutes after <c>iat</c>;
/// answers 201 with <c>token</c> and <c>expires_at</c> an hour on.</item>
/// <item><c>GET /api/me</c>: 200 with who a token it issued is for, 401 for any other.</item>
/// </list>
/// </summary>
public sealed class AssertionServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, SecurityKey> _keys = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _tokens = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> _jtis = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<AssertionRequest> _requests = new();

    private AssertionServer(WebApplication app) => _app = app;

    public string BaseUrl { get; private set; } = "";

    public string TokenEndpoint => BaseUrl + "/token";

    /// <summary>Every token request, oldest first: what it was, and whether it was accepted.</summary>
    public IReadOnlyList<AssertionRequest> Requests => [.. _requests];

    /// <summary>Trusts <paramref name="key"/>'s public half for JWTs issued by <paramref name="issuer"/> (a client id, a service account, an app id).</summary>
    public void Trust(string issuer, AsymmetricAlgorithm key) =>
        _keys[issuer] = key switch
        {
            RSA rsa => new RsaSecurityKey(rsa.ExportParameters(false)),
            ECDsa ec => new ECDsaSecurityKey(ECDsa.Create(ec.ExportParameters(false))),
            _ => throw new ArgumentException("RSA or ECDsa", nameof(key)),
        };

    public static async Task<AssertionServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var server = new AssertionServer(app);
        app.MapPost("/token", (Func<HttpContext, Task<IResult>>)server.TokenAsync);
        app.MapPost("/app/installations/{id}/access_tokens", (HttpContext context, string id) => server.InstallationTokenAsync(context, id));
        app.MapGet("/api/me", (HttpContext context) =>
            context.Request.Headers.Authorization.ToString() is { } header && header.StartsWith("Bearer ", StringComparison.Ordinal) &&
            server._tokens.TryGetValue(header["Bearer ".Length..], out var subject)
                ? Results.Json(new { subject })
                : Results.Json(new { error = "invalid_token" }, statusCode: 401));
        await app.StartAsync();
        server.BaseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single().TrimEnd('/');
        return server;
    }

    private async Task<IResult> TokenAsync(HttpContext context)
    {
        var form = await context.Request.ReadFormAsync();
        var grant = form["grant_type"].ToString();
        if (grant == "urn:ietf:params:oauth:grant-type:jwt-bearer")
        {
            var (claims, error) = await VerifyAsync(form["assertion"].ToString(), TokenEndpoint, maxLifetime: TimeSpan.FromHours(1));
            var scope = claims?.TryGetValue("scope", out var s) == true ? s?.ToString() : form["scope"].ToString();
            _requests.Enqueue(new AssertionRequest(grant, IssuerOf(form["assertion"].ToString()), error, scope, claims?.GetValueOrDefault("sub")?.ToString()));
            return error is null
                ? Issue(claims!.TryGetValue("sub", out var sub) ? sub.ToString()! : claims["iss"].ToString()!)
                : Results.Json(new { error = "invalid_grant", error_description = error }, statusCode: 400);
        }

        if (grant == "client_credentials")
        {
            var clientId = form["client_id"].ToString();
            string? error = null;
            Dictionary<string, object>? claims = null;
            if (form["client_assertion_type"] != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            {
                error = "no client assertion";
            }
            else
            {
                (claims, error) = await VerifyAsync(form["client_assertion"].ToString(), TokenEndpoint, maxLifetime: TimeSpan.FromMinutes(10));
                if (error is null && (claims!["iss"].ToString() != clientId || claims.GetValueOrDefault("sub")?.ToString() != clientId))
                {
                    error = "iss and sub must be the client id";
                }
            }

            _requests.Enqueue(new AssertionRequest(grant, clientId, error, form["scope"].ToString(), null));
            return error is null ? Issue(clientId) : Results.Json(new { error = "invalid_client", error_description = error }, statusCode: 401);
        }

        return Results.Json(new { error = "unsupported_grant_type" }, statusCode: 400);
    }

    private async Task<IResult> InstallationTokenAsync(HttpContext context, string installation)
    {
        var header = context.Request.Headers.Authorization.ToString();
        var jwt = header.StartsWith("Bearer ", StringComparison.Ordinal) ? header["Bearer ".Length..] : "";
        var (claims, error) = await VerifyAsync(jwt, audience: null, maxLifetime: TimeSpan.FromMinutes(10));
        if (error is null)
        {
            var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            var iat = Convert.ToInt64(claims!["iat"], System.Globalization.CultureInfo.InvariantCulture);
            var exp = Convert.ToInt64(claims["exp"], System.Globalization.CultureInfo.InvariantCulture);
            if (iat > now + 5 || exp - iat > 600 || exp <= now)
            {
                error = $"iat {iat - now} s from now, exp {exp - now} s from now: out of bounds";
            }
        }

        _requests.Enqueue(new AssertionRequest("github_app", IssuerOf(jwt), error, null, installation));
        if (error is not null)
        {
            return Results.Json(new { message = "A JSON web token could not be decoded", documentation_url = "https://docs.github.com/rest" }, statusCode: 401);
        }

        var token = "ghs_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(18));
        _tokens[token] = $"installation {installation} of app {claims!["iss"]}";
        return Results.Json(new { token, expires_at = DateTimeOffset.UtcNow.AddHours(1).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture) },
            statusCode: 201);
    }

    /// <summary>The <c>iss</c> a JWT claims, unverified: what a refusal is recorded under.</summary>
    private static string? IssuerOf(string jwt) =>
        new JsonWebTokenHandler().CanReadToken(jwt) ? new JsonWebTokenHandler().ReadJsonWebToken(jwt).Issuer : null;

    private IResult Issue(string subject)
    {
        var token = "at-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        _tokens[token] = subject;
        return Results.Json(new { access_token = token, token_type = "Bearer", expires_in = 3600 });
    }

    /// <summary>The claims of a JWT whose signature the issuer's trusted key verifies, or why not.</summary>
    private async Task<(Dictionary<string, object>? Claims, string? Error)> VerifyAsync(string jwt, string? audience, TimeSpan maxLifetime)
    {
        var handler = new JsonWebTokenHandler();
        if (!handler.CanReadToken(jwt))
        {
            return (null, "not a JWT");
        }

        var issuer = handler.ReadJsonWebToken(jwt).Issuer;
        if (!_keys.TryGetValue(issuer, out var key))
        {
            return (null, $"unknown issuer '{issuer}'");
        }

        var result = await handler.ValidateTokenAsync(jwt, new TokenValidationParameters
        {
            IssuerSigningKey = key,
            ValidIssuer = issuer,
            ValidateAudience = audience is not null,
            ValidAudience = audience,
            RequireExpirationTime = true,
            ClockSkew = TimeSpan.FromSeconds(5),
            ValidAlgorithms = ["RS256", "ES256"],
        });
        if (!result.IsValid)
        {
            return (null, result.Exception?.GetType().Name ?? "invalid");
        }

        var token = (JsonWebToken)result.SecurityToken;
        if (token.ValidTo - token.IssuedAt > maxLifetime + TimeSpan.FromMinutes(1))
        {
            return (null, "lifetime too long");
        }

        if (token.Id is { Length: > 0 } jti && !_jtis.TryAdd(jti, true))
        {
            return (null, "jti replayed");
        }

        return (result.Claims.ToDictionary(c => c.Key, c => c.Value), null);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>One token request the <see cref="AssertionServer"/> received: <c>Error</c> null when it was accepted.</summary>
public sealed record AssertionRequest(string Grant, string? Issuer, string? Error, string? Scope, string? Subject);

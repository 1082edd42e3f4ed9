using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.Tokens;
using OpenIddict.Abstractions;
using OpenIddict.Server.AspNetCore;
using OpenIddict.Validation.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// A real OAuth 2.0 / OpenID Connect authorization server (OpenIddict, EF Core stores on an
/// in-memory SQLite database, token storage on) in Kestrel on 127.0.0.1, standing in for the
/// identity provider behind a Keyway <c>oauth2</c> resource. Access tokens are JWTs signed with
/// a development RSA key (one per test run), not encrypted, so their <c>exp</c> can be read.
/// <list type="bullet">
/// <item>Grants: <c>client_credentials</c>, <c>password</c>, <c>authorization_code</c> (PKCE S256 required), <c>refresh_token</c>.</item>
/// <item>Rolling refresh tokens with reuse detection (see <see cref="AuthServerOptions.RotateRefreshTokens"/>).</item>
/// <item>The authorization endpoint needs no person: it signs in the user named by <c>login_hint</c>
/// (else <see cref="SignInUser"/>, else <see cref="DefaultLoginHint"/>) and redirects to the <c>redirect_uri</c>
/// with <c>code</c> and <c>state</c> (in the query, or as a form post when asked). With the <c>openid</c>
/// scope it issues an ID token (signed, <c>nonce</c> echoed) carrying <c>sub</c>, <c>name</c>,
/// <c>preferred_username</c>, <c>email</c> and <c>groups</c>; discovery and JWKS are served, so an
/// OpenID Connect relying party (Keyway's single sign-on) signs people in against it.</item>
/// <item><c>/api/me</c>: a protected API that validates the bearer access token (expiry, revocation)
/// and answers the subject and client as JSON (<see cref="AuthServerApiIdentity"/>), 401 otherwise.</item>
/// </list>
/// Ask for <c>offline_access</c> to get a refresh token. Scopes: <c>openid</c>, <c>profile</c>,
/// <c>email</c>, <c>offline_access</c>, <c>api</c>.
/// </summary>
public sealed partial class AuthServer : IAsyncDisposable
{
    /// <summary>The user signed in at the authorization endpoint when the request has no <c>login_hint</c>.</summary>
    public const string DefaultLoginHint = "alice";

    /// <summary>The claim that lists a user's <see cref="AuthServerUser.Groups"/>.</summary>
    public const string GroupsClaim = "groups";

    /// <summary>The API scope.</summary>
    public const string ApiScope = "api";

    private const string AuthorizationPath = "/connect/authorize";
    private const string TokenPath = "/connect/token";
    private const string RevocationPath = "/connect/revoke";
    private const string UserInfoPath = "/connect/userinfo";
    private const string DiscoveryPath = "/.well-known/openid-configuration";
    private const string ApiPath = "/api/me";
    private const string AnywherePath = "/api/anywhere";

    // One RSA key for every server of the test run: generating one takes from 0.1 s to seconds
    // on a busy machine, and OpenIddict's ephemeral keys would make one per server.
    private static readonly Lazy<RsaSecurityKey> _developmentSigningKey = new(() => new RsaSecurityKey(RSA.Create(2048)) { KeyId = "keyway-tests" });

    private readonly WebApplication _app;
    private readonly SqliteConnection _database;
    private readonly AuthServerState _state;

    private AuthServer(WebApplication app, SqliteConnection database, AuthServerState state, string baseUrl, TimeSpan startDuration)
    {
        _app = app;
        _database = database;
        _state = state;
        BaseUrl = baseUrl;
        StartDuration = startDuration;
    }

    /// <summary>The server's address, e.g. <c>http://127.0.0.1:41234</c> (no trailing slash).</summary>
    public string BaseUrl { get; }

    /// <summary>
    /// The issuer, <c>BaseUrl/</c>. OpenIddict derives it from the request's host, which is
    /// always this address since the server listens only there.
    /// </summary>
    public string Issuer => BaseUrl + "/";

    /// <summary>The discovery document, <c>/.well-known/openid-configuration</c>.</summary>
    public string DiscoveryEndpoint => BaseUrl + DiscoveryPath;

    /// <summary>The token endpoint.</summary>
    public string TokenEndpoint => BaseUrl + TokenPath;

    /// <summary>The authorization endpoint.</summary>
    public string AuthorizationEndpoint => BaseUrl + AuthorizationPath;

    /// <summary>The revocation endpoint (RFC 7009).</summary>
    public string RevocationEndpoint => BaseUrl + RevocationPath;

    /// <summary>The userinfo endpoint.</summary>
    public string UserInfoEndpoint => BaseUrl + UserInfoPath;

    /// <summary>The protected API, <c>/api/me</c>.</summary>
    public string ApiEndpoint => BaseUrl + ApiPath;

    /// <summary>
    /// A protected API that takes its access token anywhere but the Authorization header, as some APIs do:
    /// <c>X-Access-Token</c>, the <c>access_token</c> query parameter, or a <c>token</c> field of a JSON or form body.
    /// It answers where it found a valid token (<see cref="AuthServerAnywhere"/>), 401 when none is valid.
    /// </summary>
    public string AnywhereEndpoint => BaseUrl + AnywherePath;

    /// <summary>The options the server started with.</summary>
    public AuthServerOptions Options => _state.Options;

    /// <summary>How long <see cref="StartAsync"/> took, until the server listened with its clients registered.</summary>
    public TimeSpan StartDuration { get; }

    /// <summary>Whether token responses leave <c>expires_in</c> out (starts as <see cref="AuthServerOptions.OmitExpiresIn"/>).</summary>
    public bool OmitExpiresIn
    {
        get => _state.OmitExpiresIn;
        set => _state.OmitExpiresIn = value;
    }

    /// <summary>
    /// The user (a <see cref="AuthServerUser.Username"/> of <see cref="AuthServerOptions.Users"/>) the
    /// authorization endpoint signs in when the request has no <c>login_hint</c>, as a person at the
    /// provider's login page would: <see cref="DefaultLoginHint"/> when null. Single sign-on tests set it.
    /// </summary>
    public string? SignInUser
    {
        get => _state.SignInUser;
        set => _state.SignInUser = value;
    }

    /// <summary>Every token endpoint request so far, oldest first (a snapshot), failed ones included.</summary>
    public IReadOnlyList<AuthServerTokenRequest> TokenRequests => _state.TokenRequests;

    /// <summary>Every redeemed refresh token presented again, which revoked its authorization's tokens.</summary>
    public IReadOnlyList<AuthServerRefreshTokenReuse> RefreshTokenReuses => _state.Reuses;

    /// <summary>Every successful revocation request.</summary>
    public IReadOnlyList<AuthServerRevocation> Revocations => _state.Revocations;

    /// <summary>Every refresh token issued so far, oldest first.</summary>
    public IReadOnlyList<string> IssuedRefreshTokens => _state.IssuedRefreshTokens;

    /// <summary>How many refresh tokens were issued.</summary>
    public int IssuedRefreshTokenCount => _state.IssuedRefreshTokens.Count;

    /// <summary>
    /// The refresh tokens redeemed by a successful rolling refresh, oldest first. One later
    /// revoked by reuse detection stays listed; <see cref="GetRefreshTokenStatusAsync"/> tells its state now.
    /// </summary>
    public IReadOnlyList<string> RedeemedRefreshTokens => _state.RedeemedRefreshTokens;

    /// <summary>The status of every <c>/api/me</c> answer so far, oldest first.</summary>
    public IReadOnlyList<int> ApiStatusCodes => _state.ApiStatusCodes;

    /// <summary>
    /// How many <c>/api/me</c> requests were refused with 401: an access token presented after its
    /// JWT <c>exp</c> (checked without clock skew), revoked, forged or missing.
    /// </summary>
    public int ApiRejectionCount => _state.ApiStatusCodes.Count(s => s == StatusCodes.Status401Unauthorized);

    /// <summary>Every 401 of <c>/api/me</c>, oldest first, with the presented token's <c>exp</c>: tells an expired token from a revoked one.</summary>
    public IReadOnlyList<AuthServerApiRejection> ApiRejections => _state.ApiRejections;

    /// <summary>Starts a server and returns once it listens with its clients registered.</summary>
    public static async Task<AuthServer> StartAsync(AuthServerOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new AuthServerOptions();
        var clock = Stopwatch.StartNew();
        var state = new AuthServerState(options);

        // A named in-memory database lives as long as one connection to it is open; each
        // DbContext opens its own connection to it (shared cache), so requests run in parallel.
        var database = new SqliteConnection($"Data Source=authserver-{Guid.NewGuid():N};Mode=Memory;Cache=Shared");
        await database.OpenAsync(cancellationToken);
        WebApplication? app = null;
        try
        {
            app = Build(state, database.ConnectionString);
            await using (var scope = app.Services.CreateAsyncScope())
            {
                await scope.ServiceProvider.GetRequiredService<AuthServerDbContext>().Database.EnsureCreatedAsync(cancellationToken);
                foreach (var client in options.Clients)
                    await CreateClientAsync(scope.ServiceProvider.GetRequiredService<IOpenIddictApplicationManager>(), client, cancellationToken);
            }
            await app.StartAsync(cancellationToken);
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
            return new AuthServer(app, database, state, address.TrimEnd('/'), clock.Elapsed);
        }
        catch
        {
            if (app is not null)
                await app.DisposeAsync();
            await database.DisposeAsync();
            throw;
        }
    }

    /// <summary>An absolute URL on this server.</summary>
    public Uri Url(string pathAndQuery) => new(BaseUrl + pathAndQuery);

    /// <summary>Registers another client while the server runs.</summary>
    public async Task AddClientAsync(AuthServerClient client, CancellationToken cancellationToken = default)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        await CreateClientAsync(scope.ServiceProvider.GetRequiredService<IOpenIddictApplicationManager>(), client, cancellationToken);
    }

    /// <summary>
    /// Lets a client use one more redirect URI (e.g. Keyway's callback, known only once Keyway
    /// listens). Redirect URIs are compared exactly.
    /// </summary>
    public async Task AddRedirectUriAsync(string clientId, Uri redirectUri, CancellationToken cancellationToken = default)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var applications = scope.ServiceProvider.GetRequiredService<IOpenIddictApplicationManager>();
        var application = await applications.FindByClientIdAsync(clientId, cancellationToken)
            ?? throw new InvalidOperationException($"No client '{clientId}'.");
        var descriptor = new OpenIddictApplicationDescriptor();
        await applications.PopulateAsync(descriptor, application, cancellationToken);
        descriptor.RedirectUris.Add(redirectUri);
        await applications.UpdateAsync(application, descriptor, cancellationToken);
    }

    /// <summary>
    /// Makes the next <paramref name="count"/> token requests fail with <paramref name="status"/>
    /// (e.g. 503, or 429 with <c>Retry-After: 1</c>) and a <c>temporarily_unavailable</c> error body, before OpenIddict sees them.
    /// </summary>
    public void FailNextTokenRequests(int count, int status = StatusCodes.Status503ServiceUnavailable) => _state.FailNext(count, status);

    /// <summary>Answers 401 <c>invalid_client</c> to every token request of <paramref name="clientId"/> until <see cref="AcceptClient"/>.</summary>
    public void RejectClient(string clientId) => _state.SetRejected(clientId, rejected: true);

    /// <summary>Undoes <see cref="RejectClient"/>.</summary>
    public void AcceptClient(string clientId) => _state.SetRejected(clientId, rejected: false);

    /// <summary>
    /// Holds the token endpoint's answers to requests with that <c>grant_type</c> (and client, when
    /// given) after the server has processed them, until <see cref="AuthServerHold.Release"/> or
    /// disposal: the refresh token presented is already redeemed and the new one sits in the held
    /// answer. <c>using var hold = server.HoldTokenAnswers("refresh_token"); await hold.Arrived;</c>
    /// </summary>
    public AuthServerHold HoldTokenAnswers(string? grantType = null, string? clientId = null) => _state.AddHold(grantType, clientId);

    /// <summary>
    /// How many authorizations (grants) are revoked: by reuse detection, or by revoking a token
    /// through the revocation endpoint. A grant revoked is one a person must connect again.
    /// </summary>
    public async Task<int> CountRevokedGrantsAsync(CancellationToken cancellationToken = default)
    {
        await using var scope = _app.Services.CreateAsyncScope();
        var authorizations = scope.ServiceProvider.GetRequiredService<IOpenIddictAuthorizationManager>();
        var revoked = 0;
        await foreach (var authorization in authorizations.ListAsync(count: null, offset: null, cancellationToken))
        {
            if (await authorizations.HasStatusAsync(authorization, Statuses.Revoked, cancellationToken))
                revoked++;
        }
        return revoked;
    }

    /// <summary>How many token requests had that <c>grant_type</c>.</summary>
    public int TokenRequestCount(string grantType) => TokenRequests.Count(r => r.GrantType == grantType);

    /// <summary>Forgets the requests, reuses, revocations and tokens recorded so far (not the tokens themselves).</summary>
    public void ClearRecords() => _state.Clear();

    /// <summary>
    /// The status OpenIddict holds now for a refresh token this server issued: <c>valid</c>,
    /// <c>redeemed</c> or <c>revoked</c>; null when it does not know the token.
    /// </summary>
    public async Task<string?> GetRefreshTokenStatusAsync(string refreshToken, CancellationToken cancellationToken = default)
    {
        if (_state.RefreshTokenId(refreshToken) is not { } identifier)
            return null;
        await using var scope = _app.Services.CreateAsyncScope();
        var tokens = scope.ServiceProvider.GetRequiredService<IOpenIddictTokenManager>();
        return await tokens.FindByIdAsync(identifier, cancellationToken) is { } token
            ? await tokens.GetStatusAsync(token, cancellationToken)
            : null;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _state.ReleaseHolds();
        await _app.StopAsync();
        await _app.DisposeAsync();
        await _database.DisposeAsync();
    }

    private static WebApplication Build(AuthServerState state, string connectionString)
    {
        var options = state.Options;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => ListenTls(listen, options)));
        builder.Services.AddSingleton(state);
        builder.Services.AddDbContext<AuthServerDbContext>(db => db.UseSqlite(connectionString).UseOpenIddict());
        builder.Services.AddOpenIddict()
            .AddCore(core => core.UseEntityFrameworkCore().UseDbContext<AuthServerDbContext>())
            .AddServer(server =>
            {
                server.SetAuthorizationEndpointUris(AuthorizationPath)
                    .SetTokenEndpointUris(TokenPath)
                    .SetRevocationEndpointUris(RevocationPath)
                    .SetUserInfoEndpointUris(UserInfoPath);
                server.AllowClientCredentialsFlow()
                    .AllowPasswordFlow()
                    .AllowAuthorizationCodeFlow()
                    .AllowRefreshTokenFlow()
                    .RequireProofKeyForCodeExchange();
                // S256 only: "plain" PKCE protects nothing.
                server.Configure(o => o.CodeChallengeMethods.Remove(CodeChallengeMethods.Plain));
                server.RegisterScopes(Scopes.OpenId, Scopes.Profile, Scopes.Email, Scopes.OfflineAccess, ApiScope);
                server.SetAccessTokenLifetime(options.AccessTokenLifetime)
                    .SetRefreshTokenLifetime(options.RefreshTokenLifetime)
                    // Null: a redeemed refresh token presented again is always reuse (OpenIddict's default allows 30 s).
                    .SetRefreshTokenReuseLeeway(options.RefreshTokenReuseLeeway);
                if (!options.RotateRefreshTokens)
                {
                    server.DisableRollingRefreshTokens()
                        .DisableSlidingRefreshTokenExpiration()
                        .AddEventHandler(KeepRefreshTokenWithoutRotation.Descriptor);
                }
                server.AddEncryptionKey(new SymmetricSecurityKey(RandomNumberGenerator.GetBytes(32)))
                    .AddSigningKey(_developmentSigningKey.Value)
                    .DisableAccessTokenEncryption();
                if (options.RotateRefreshTokens && options.RefreshTokenReuseLeeway is null)
                    server.AddEventHandler(SpendRefreshTokenOnce.Descriptor);
                server.AddEventHandler(DetectRefreshTokenReuse.Descriptor)
                    .AddEventHandler(RecordRefreshTokens.Descriptor)
                    .AddEventHandler(RejectClients.Descriptor)
                    .AddEventHandler(ShapeTokenResponse.Descriptor)
                    .AddEventHandler(RecordRevocations.Descriptor);
                EnableMutualTls(server, options);
                server.UseAspNetCore()
                    .DisableTransportSecurityRequirement()
                    .EnableAuthorizationEndpointPassthrough()
                    .EnableTokenEndpointPassthrough()
                    .EnableUserInfoEndpointPassthrough();
            })
            .AddValidation(validation =>
            {
                validation.UseLocalServer();
                // Revoked access tokens and grants (reuse detection, RFC 7009) stop working at once.
                validation.EnableTokenEntryValidation().EnableAuthorizationEntryValidation();
                validation.UseAspNetCore();
            });
        builder.Services.AddAuthentication();
        builder.Services.AddAuthorization();

        var app = builder.Build();
        app.Use((context, next) => RecordAndFailTokenRequestsAsync(state, context, next));
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapMethods(AuthorizationPath, [HttpMethods.Get, HttpMethods.Post], (HttpContext context, AuthServerState state) => Authorize(context, state));
        app.MapPost(TokenPath, (HttpContext context, AuthServerState state) => TokenAsync(context, state.Options));
        app.MapMethods(UserInfoPath, [HttpMethods.Get, HttpMethods.Post], (Func<HttpContext, Task<IResult>>)UserInfoAsync);
        app.MapGet(ApiPath, (ClaimsPrincipal user) => TypedResults.Ok(new AuthServerApiIdentity(
                user.GetClaim(Claims.Subject) ?? "",
                user.GetClaim(Claims.ClientId) ?? user.GetPresenters().FirstOrDefault(),
                [.. user.GetScopes()])))
            .RequireAuthorization(policy => policy
                .AddAuthenticationSchemes(OpenIddictValidationAspNetCoreDefaults.AuthenticationScheme)
                .RequireAuthenticatedUser());
        app.MapMethods(AnywherePath, [HttpMethods.Get, HttpMethods.Post], AnywhereAsync);
        MapBoundApi(app);
        return app;
    }

    private static async Task<IResult> AnywhereAsync(HttpContext context, OpenIddict.Validation.OpenIddictValidationService validation)
    {
        var request = context.Request;
        var found = new List<(string Where, string Token)>();
        if (request.Headers["X-Access-Token"].ToString() is { Length: > 0 } header)
            found.Add(("header", header));
        if (request.Query["access_token"].ToString() is { Length: > 0 } query)
            found.Add(("query", query));
        if (request.HasFormContentType && (await request.ReadFormAsync(context.RequestAborted))["token"].ToString() is { Length: > 0 } form)
            found.Add(("form", form));
        else if (request.HasJsonContentType() && await request.ReadFromJsonAsync<System.Text.Json.Nodes.JsonObject>(context.RequestAborted) is { } json &&
                 json["token"]?.GetValue<string>() is { Length: > 0 } body)
            found.Add(("json", body));
        if (request.Headers.Authorization.Count > 0)
            return TypedResults.BadRequest("this API takes no Authorization header");

        var valid = new List<string>();
        string? subject = null;
        foreach (var (where, token) in found)
        {
            try
            {
                var principal = await validation.ValidateAccessTokenAsync(token, context.RequestAborted);
                subject = principal.GetClaim(Claims.Subject);
                valid.Add(where);
            }
            catch (OpenIddictExceptions.ValidationException)
            {
                return TypedResults.Unauthorized();
            }
        }

        return valid.Count == 0 ? TypedResults.Unauthorized() : TypedResults.Ok(new AuthServerAnywhere(subject ?? "", valid));
    }

    private static async Task RecordAndFailTokenRequestsAsync(AuthServerState state, HttpContext context, RequestDelegate next)
    {
        if (context.Request.Path.StartsWithSegments(ApiPath))
        {
            // Recorded as the answer starts, so a test that has the answer sees it recorded.
            context.Response.OnStarting(() =>
            {
                state.RecordApiStatus(context.Response.StatusCode);
                if (context.Response.StatusCode == StatusCodes.Status401Unauthorized)
                    state.RecordApiRejection(new AuthServerApiRejection(DateTimeOffset.UtcNow, BearerExpiry(context.Request)));
                return Task.CompletedTask;
            });
            await next(context);
            return;
        }
        if (!HttpMethods.IsPost(context.Request.Method) || !context.Request.Path.StartsWithSegments(TokenPath))
        {
            await next(context);
            return;
        }

        // The form is cached on the request, so OpenIddict reads it again for free.
        var form = context.Request.HasFormContentType ? await context.Request.ReadFormAsync(context.RequestAborted) : null;
        var grantType = form?[Parameters.GrantType].ToString() ?? "";
        var clientId = form?[Parameters.ClientId].ToString() is { Length: > 0 } posted ? posted : BasicClientId(context.Request);

        if (state.TryTakeFailure(out var status))
        {
            state.RecordTokenRequest(new AuthServerTokenRequest(grantType, clientId, status, Errors.TemporarilyUnavailable));
            context.Response.StatusCode = status;
            if (status == StatusCodes.Status429TooManyRequests)
                context.Response.Headers.RetryAfter = "1";
            await context.Response.WriteAsJsonAsync(
                new Dictionary<string, string> { [Parameters.Error] = Errors.TemporarilyUnavailable, [Parameters.ErrorDescription] = "Failure injected by the test." },
                context.RequestAborted);
            return;
        }

        context.Response.OnStarting(() =>
        {
            state.RecordTokenRequest(new AuthServerTokenRequest(
                grantType, clientId, context.Response.StatusCode, context.Items[AuthServerState.ErrorItem] as string));
            return Task.CompletedTask;
        });
        if (state.HoldFor(grantType, clientId) is { } hold)
            await hold.PassAsync(context, next);
        else
            await next(context);
    }

    /// <summary>The JWT <c>exp</c> of the request's bearer token, if it has one that reads as a JWT.</summary>
    private static DateTimeOffset? BearerExpiry(HttpRequest request)
    {
        if (!AuthenticationHeaderValue.TryParse(request.Headers.Authorization, out var header)
            || !string.Equals(header.Scheme, "Bearer", StringComparison.OrdinalIgnoreCase)
            || header.Parameter is null)
        {
            return null;
        }
        try
        {
            var jwt = new Microsoft.IdentityModel.JsonWebTokens.JsonWebToken(header.Parameter);
            return jwt.TryGetPayloadValue<long>("exp", out var exp) ? DateTimeOffset.FromUnixTimeSeconds(exp) : null;
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    private static string? BasicClientId(HttpRequest request)
    {
        if (!AuthenticationHeaderValue.TryParse(request.Headers.Authorization, out var header)
            || !string.Equals(header.Scheme, "Basic", StringComparison.OrdinalIgnoreCase)
            || header.Parameter is null)
        {
            return null;
        }
        try
        {
            var pair = Encoding.UTF8.GetString(Convert.FromBase64String(header.Parameter));
            var colon = pair.IndexOf(':', StringComparison.Ordinal);
            return Uri.UnescapeDataString(colon < 0 ? pair : pair[..colon]);
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private static IResult Authorize(HttpContext context, AuthServerState state)
    {
        var options = state.Options;
        var request = context.GetOpenIddictServerRequest() ?? throw new InvalidOperationException("Not an OpenID Connect request.");
        var hint = request.LoginHint ?? state.SignInUser ?? DefaultLoginHint;
        var user = options.Users.FirstOrDefault(u => u.Username == hint);
        if (user is null)
            return Forbid(Errors.AccessDenied, $"No user '{hint}'.");
        // No consent screen: the test user approves everything asked.
        return SignIn(UserIdentity(user), request.GetScopes());
    }

    private static async Task<IResult> TokenAsync(HttpContext context, AuthServerOptions options)
    {
        var request = context.GetOpenIddictServerRequest() ?? throw new InvalidOperationException("Not an OpenID Connect request.");
        if (request.IsClientCredentialsGrantType())
        {
            var identity = NewIdentity();
            identity.SetClaim(Claims.Subject, request.ClientId);
            return SignIn(identity, request.GetScopes());
        }
        if (request.IsPasswordGrantType())
        {
            var user = options.Users.FirstOrDefault(u => u.Username == request.Username && u.Password == request.Password);
            return user is null
                ? Forbid(Errors.InvalidGrant, "The user name or password is wrong.")
                : SignIn(UserIdentity(user), request.GetScopes());
        }
        if (request.IsAuthorizationCodeGrantType() || request.IsRefreshTokenGrantType())
        {
            // OpenIddict has already validated the code (with PKCE) or the refresh token; issue
            // new tokens for the principal it carried.
            var result = await context.AuthenticateAsync(OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
            return result.Principal is null
                ? Forbid(Errors.InvalidGrant, "The grant is no longer valid.")
                : TypedResults.SignIn(result.Principal, authenticationScheme: OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
        }
        return Forbid(Errors.UnsupportedGrantType, "The grant type is not supported.");
    }

    private static async Task<IResult> UserInfoAsync(HttpContext context)
    {
        var result = await context.AuthenticateAsync(OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
        if (result.Principal is not { } principal)
            return TypedResults.Challenge(authenticationSchemes: [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme]);
        var claims = new Dictionary<string, string>(StringComparer.Ordinal) { [Claims.Subject] = principal.GetClaim(Claims.Subject) ?? "" };
        foreach (var type in (string[])[Claims.Name, Claims.Email])
        {
            if (principal.GetClaim(type) is { } value)
                claims[type] = value;
        }
        return TypedResults.Ok(claims);
    }

    private static ClaimsIdentity NewIdentity() =>
        new(TokenValidationParameters.DefaultAuthenticationType, Claims.Name, Claims.Role);

    private static ClaimsIdentity UserIdentity(AuthServerUser user)
    {
        var identity = NewIdentity();
        identity.SetClaim(Claims.Subject, user.Username)
            .SetClaim(Claims.Name, user.DisplayName ?? user.Username)
            .SetClaim(Claims.PreferredUsername, user.Username)
            .SetClaim(Claims.Email, user.Email);
        if (user.Groups.Count > 0)
            identity.SetClaims(GroupsClaim, [.. user.Groups]);
        return identity;
    }

    private static SignInHttpResult SignIn(ClaimsIdentity identity, IEnumerable<string> scopes)
    {
        identity.SetScopes(scopes);
        identity.SetDestinations(claim => claim.Type is Claims.Name or Claims.Email or Claims.PreferredUsername or GroupsClaim
            ? [Destinations.AccessToken, Destinations.IdentityToken]
            : [Destinations.AccessToken]);
        return TypedResults.SignIn(new ClaimsPrincipal(identity), authenticationScheme: OpenIddictServerAspNetCoreDefaults.AuthenticationScheme);
    }

    private static ForbidHttpResult Forbid(string error, string description) =>
        TypedResults.Forbid(
            new AuthenticationProperties(new Dictionary<string, string?>
            {
                [OpenIddictServerAspNetCoreConstants.Properties.Error] = error,
                [OpenIddictServerAspNetCoreConstants.Properties.ErrorDescription] = description,
            }),
            [OpenIddictServerAspNetCoreDefaults.AuthenticationScheme]);

    private static async Task CreateClientAsync(IOpenIddictApplicationManager applications, AuthServerClient client, CancellationToken cancellationToken)
    {
        var descriptor = new OpenIddictApplicationDescriptor
        {
            ClientId = client.ClientId,
            ClientSecret = client.ClientSecret.Length == 0 ? null : client.ClientSecret,
            ClientType = ClientTypes.Confidential,
            DisplayName = client.ClientId,
            JsonWebKeySet = SelfSignedKeySet(client),
        };
        descriptor.Permissions.UnionWith(
        [
            Permissions.Endpoints.Authorization,
            Permissions.Endpoints.Token,
            Permissions.Endpoints.Revocation,
            Permissions.GrantTypes.AuthorizationCode,
            Permissions.GrantTypes.ClientCredentials,
            Permissions.GrantTypes.Password,
            Permissions.GrantTypes.RefreshToken,
            Permissions.ResponseTypes.Code,
            Permissions.Scopes.Profile,
            Permissions.Scopes.Email,
            Permissions.Prefixes.Scope + ApiScope,
        ]);
        descriptor.Requirements.Add(Requirements.Features.ProofKeyForCodeExchange);
        descriptor.RedirectUris.UnionWith(client.RedirectUris);
        await applications.CreateAsync(descriptor, cancellationToken);
    }
}

/// <summary>A 401 of <c>/api/me</c>.</summary>
/// <param name="At">When the server answered.</param>
/// <param name="TokenExpiry">The presented access token's JWT <c>exp</c>; null when it had none (missing or not a JWT).</param>
public sealed record AuthServerApiRejection(DateTimeOffset At, DateTimeOffset? TokenExpiry)
{
    /// <summary>How long after its <c>exp</c> the token was presented; negative or zero when it had not expired (revoked).</summary>
    public TimeSpan? Late => TokenExpiry is { } exp ? At - exp : null;

    /// <inheritdoc />
    public override string ToString() => Late is { } late
        ? late > TimeSpan.Zero ? $"{late.TotalMilliseconds:0} ms after its exp" : $"{-late.TotalMilliseconds:0} ms before its exp (revoked?)"
        : "no JWT";
}

/// <summary>What <c>/api/me</c> answers: whom the access token was issued to.</summary>
/// <param name="Subject">The <c>sub</c> claim: the user, or the client id for <c>client_credentials</c>.</param>
/// <param name="ClientId">The client the token was issued to.</param>
/// <param name="Scopes">The scopes granted.</param>
public sealed record AuthServerApiIdentity(string Subject, string? ClientId, IReadOnlyList<string> Scopes);

/// <summary>What <c>/api/anywhere</c> answers: whose token it was, and every place a valid one was found.</summary>
public sealed record AuthServerAnywhere(string Subject, IReadOnlyList<string> FoundIn);

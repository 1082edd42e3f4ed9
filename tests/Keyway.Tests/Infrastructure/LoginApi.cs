using System.Collections.Concurrent;
using System.Net;
using System.Security.Claims;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Keyway.Tests.Infrastructure;

/// <summary>How a <see cref="LoginApi"/> issues sessions.</summary>
public sealed record LoginApiOptions
{
    /// <summary>How long a session token lives; <c>expiresIn</c> is this in whole seconds.</summary>
    public TimeSpan SessionLifetime { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Session tokens are signed JWTs (HS256, a random key) with <c>sub</c>, <c>iat</c>, <c>exp</c> and <c>jti</c>, instead of opaque random strings.</summary>
    public bool JwtTokens { get; init; }

    /// <summary>
    /// <c>GET /data</c> with an expired session answers 200 with <c>{"error":"session expired"}</c>
    /// instead of 401, as some APIs do (for response-body refresh conditions).
    /// </summary>
    public bool ExpiredSessionAnswersOkWithError { get; init; }

    /// <summary>The users that can log in.</summary>
    public IReadOnlyList<AuthServerUser> Users { get; init; } = [AuthServerUser.Alice, AuthServerUser.Bob];

    /// <summary>The clock sessions expire by.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;
}

/// <summary>
/// A real "custom login" API in Kestrel on 127.0.0.1, for Keyway's <c>custom</c> auth flows:
/// <list type="bullet">
/// <item><c>POST /login</c> <c>{"username","password"}</c> → <c>{"session":{"token","expiresIn"}}</c> and a <c>session</c> cookie; 401 for a wrong password.</item>
/// <item><c>POST /refresh</c> with the current token (JSON <c>{"token"}</c>, <c>Authorization: Bearer</c> or the <c>session</c> cookie) →
/// a new session of the same shape; the old token stops working. An expired token can be refreshed; a replaced or unknown one answers 401.</item>
/// <item><c>GET /data</c> with <c>Authorization: Bearer</c> or the <c>session</c> cookie → <c>{"user","data"}</c>;
/// 401 when the token is unknown or expired (or 200 <c>{"error":"session expired"}</c>, see <see cref="LoginApiOptions.ExpiredSessionAnswersOkWithError"/>).</item>
/// </list>
/// </summary>
public sealed class LoginApi : IAsyncDisposable
{
    /// <summary>The cookie <c>/login</c> and <c>/refresh</c> set, and <c>/data</c> and <c>/refresh</c> accept.</summary>
    public const string SessionCookie = "session";

    private readonly ConcurrentDictionary<string, Session> _sessions = new(StringComparer.Ordinal);
    private readonly SymmetricSecurityKey _signingKey = new(RandomNumberGenerator.GetBytes(32));
    private readonly JsonWebTokenHandler _jwt = new() { SetDefaultTimesOnTokenCreation = false };
    private WebApplication? _app;
    private int _logins;
    private int _failedLogins;
    private int _refreshes;
    private int _dataRequests;
    private int _rejectedDataRequests;

    private LoginApi(LoginApiOptions options) => Options = options;

    /// <summary>The server's address, e.g. <c>http://127.0.0.1:41234</c> (no trailing slash).</summary>
    public string BaseUrl { get; private set; } = "";

    /// <summary>The options the server started with.</summary>
    public LoginApiOptions Options { get; }

    /// <summary>Successful <c>/login</c> requests.</summary>
    public int LoginCount => Volatile.Read(ref _logins);

    /// <summary><c>/login</c> requests refused (wrong user name or password).</summary>
    public int FailedLoginCount => Volatile.Read(ref _failedLogins);

    /// <summary>Successful <c>/refresh</c> requests.</summary>
    public int RefreshCount => Volatile.Read(ref _refreshes);

    /// <summary>Every <c>/data</c> request.</summary>
    public int DataRequestCount => Volatile.Read(ref _dataRequests);

    /// <summary><c>/data</c> requests refused (401, or the 200 <c>session expired</c> answer).</summary>
    public int RejectedDataRequestCount => Volatile.Read(ref _rejectedDataRequests);

    /// <summary>Starts a server and returns once it listens.</summary>
    public static async Task<LoginApi> StartAsync(LoginApiOptions? options = null, CancellationToken cancellationToken = default)
    {
        var api = new LoginApi(options ?? new LoginApiOptions());
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        app.MapPost("/login", (LoginRequest body, HttpContext context) => api.Login(body, context));
        app.MapPost("/refresh", (HttpContext context, CancellationToken cancellationToken) => api.RefreshAsync(context, cancellationToken));
        app.MapGet("/data", (HttpContext context) => api.Data(context));

        await app.StartAsync(cancellationToken);
        api._app = app;
        api.BaseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single().TrimEnd('/');
        return api;
    }

    /// <summary>An absolute URL on this server, e.g. <c>Url("/login")</c>.</summary>
    public Uri Url(string pathAndQuery) => new(BaseUrl + pathAndQuery);

    /// <summary>Expires every session now, so the next <c>/data</c> is refused without waiting.</summary>
    public void ExpireAllSessions()
    {
        var now = Options.TimeProvider.GetUtcNow();
        foreach (var (token, session) in _sessions)
            _sessions.TryUpdate(token, session with { ExpiresAt = now }, session);
    }

    /// <summary>Whether <paramref name="token"/> would be accepted by <c>/data</c> now.</summary>
    public bool IsValid(string token) =>
        _sessions.TryGetValue(token, out var session) && !session.Replaced && Options.TimeProvider.GetUtcNow() < session.ExpiresAt;

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_app is null)
            return;
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private Results<Ok<SessionResponse>, UnauthorizedHttpResult> Login(LoginRequest body, HttpContext context)
    {
        var user = Options.Users.FirstOrDefault(u => u.Username == body.Username && u.Password == body.Password);
        if (user is null)
        {
            Interlocked.Increment(ref _failedLogins);
            return TypedResults.Unauthorized();
        }
        Interlocked.Increment(ref _logins);
        return TypedResults.Ok(NewSession(user.Username, context));
    }

    private async Task<Results<Ok<SessionResponse>, UnauthorizedHttpResult>> RefreshAsync(HttpContext context, CancellationToken cancellationToken)
    {
        var token = PresentedToken(context.Request);
        if (token is null && context.Request.HasJsonContentType())
            token = (await context.Request.ReadFromJsonAsync<RefreshRequest>(cancellationToken))?.Token;

        // Replacing atomically: of two refreshes racing on one token, one wins and the other gets 401.
        if (token is null || !_sessions.TryGetValue(token, out var session) || session.Replaced
            || !_sessions.TryUpdate(token, session with { Replaced = true }, session))
        {
            return TypedResults.Unauthorized();
        }
        Interlocked.Increment(ref _refreshes);
        return TypedResults.Ok(NewSession(session.User, context));
    }

    private IResult Data(HttpContext context)
    {
        Interlocked.Increment(ref _dataRequests);
        var token = PresentedToken(context.Request);
        if (token is null || !_sessions.TryGetValue(token, out var session) || session.Replaced)
            return Reject(TypedResults.Unauthorized());
        if (Options.TimeProvider.GetUtcNow() >= session.ExpiresAt)
        {
            return Reject(Options.ExpiredSessionAnswersOkWithError
                ? TypedResults.Ok(new Dictionary<string, string> { ["error"] = "session expired" })
                : TypedResults.Unauthorized());
        }
        return TypedResults.Ok(new Dictionary<string, string> { ["user"] = session.User, ["data"] = $"data of {session.User}" });
    }

    private IResult Reject(IResult result)
    {
        Interlocked.Increment(ref _rejectedDataRequests);
        return result;
    }

    private SessionResponse NewSession(string user, HttpContext context)
    {
        var now = Options.TimeProvider.GetUtcNow();
        var expiresAt = now + Options.SessionLifetime;
        var token = Options.JwtTokens
            ? _jwt.CreateToken(new SecurityTokenDescriptor
            {
                Subject = new ClaimsIdentity([new Claim(JwtRegisteredClaimNames.Sub, user), new Claim(JwtRegisteredClaimNames.Jti, Guid.NewGuid().ToString("N"))]),
                IssuedAt = now.UtcDateTime,
                NotBefore = now.UtcDateTime,
                Expires = expiresAt.UtcDateTime,
                SigningCredentials = new SigningCredentials(_signingKey, SecurityAlgorithms.HmacSha256),
            })
            : Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(32));
        _sessions[token] = new Session(user, expiresAt, Replaced: false);
        context.Response.Cookies.Append(SessionCookie, token, new CookieOptions { HttpOnly = true, Path = "/" });
        return new SessionResponse(new SessionBody(token, (int)Options.SessionLifetime.TotalSeconds));
    }

    private static string? PresentedToken(HttpRequest request)
    {
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            return authorization["Bearer ".Length..].Trim();
        return request.Cookies.TryGetValue(SessionCookie, out var cookie) ? cookie : null;
    }

    private sealed record Session(string User, DateTimeOffset ExpiresAt, bool Replaced);

    private sealed record LoginRequest(string? Username, string? Password);

    private sealed record RefreshRequest(string? Token);

    private sealed record SessionResponse(SessionBody Session);

    private sealed record SessionBody(string Token, int ExpiresIn);
}

using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Keyway.Tests.Integration;

/// <summary>
/// A real API with a session login, on Kestrel at 127.0.0.1, for custom auth flows:
/// <list type="bullet">
/// <item><c>POST /login</c> <c>{"username", "password"}</c> → <c>{"session": {"token", "expiresIn"}}</c> and an <c>X-CSRF</c> header; 401 on a wrong password.</item>
/// <item><c>POST /refresh</c> with a live bearer session → <c>{"token", "expiresIn"}</c> (the old session ends); 401 otherwise.</item>
/// <item><c>GET /data</c> with a live bearer session and its CSRF → 200 <c>{"ok": true, "authorization": "…"}</c> (it echoes the header); 401 otherwise.</item>
/// <item><c>GET /soft</c>: as <c>/data</c>, but a dead session gets 200 <c>{"error": "session expired"}</c>.</item>
/// </list>
/// </summary>
public sealed class CustomLoginApi : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, (string Csrf, DateTimeOffset Until)> _sessions = new();
    private readonly ConcurrentQueue<string> _issued = new();
    private int _logins;
    private int _refreshes;
    private int _rejected;

    private CustomLoginApi(WebApplication app) => _app = app;

    public required string BaseUrl { get; init; }

    public required string User { get; init; }

    public required string Password { get; init; }

    /// <summary>How long new sessions live.</summary>
    public int ExpiresInSeconds { get; set; } = 3600;

    public int Logins => Volatile.Read(ref _logins);

    public int Refreshes => Volatile.Read(ref _refreshes);

    /// <summary>Requests to /data or /soft turned away for a dead or unknown session.</summary>
    public int Rejected => Volatile.Read(ref _rejected);

    /// <summary>Every session token and CSRF value handed out.</summary>
    public IReadOnlyCollection<string> Issued => [.. _issued];

    /// <summary>Ends every session, as a server restart or a logout elsewhere would.</summary>
    public void InvalidateSessions() => _sessions.Clear();

    public static async Task<CustomLoginApi> StartAsync(string user, string password)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        CustomLoginApi? api = null;
        app.MapPost("/login", async (HttpContext context) =>
        {
            var body = await JsonNode.ParseAsync(context.Request.Body);
            if ((string?)body?["username"] != api!.User || (string?)body?["password"] != api.Password)
            {
                return Results.Json(new { error = "invalid credentials" }, statusCode: 401);
            }

            Interlocked.Increment(ref api._logins);
            var (token, csrf) = api.NewSession();
            context.Response.Headers["X-CSRF"] = csrf;
            return Results.Json(new { session = new { token, expiresIn = api.ExpiresInSeconds } });
        });
        app.MapPost("/refresh", (HttpContext context) =>
        {
            if (api!.Live(context) is not { } token)
            {
                return Results.Json(new { error = "no session" }, statusCode: 401);
            }

            Interlocked.Increment(ref api._refreshes);
            api._sessions.TryRemove(token, out var old);
            var (renewed, _) = api.NewSession(old.Csrf);
            return Results.Json(new { token = renewed, expiresIn = api.ExpiresInSeconds });
        });
        app.MapGet("/data", (HttpContext context) => api!.Live(context, checkCsrf: true) is null
            ? api.Reject(Results.Json(new { error = "unauthorized" }, statusCode: 401))
            : Results.Json(new { ok = true, authorization = context.Request.Headers.Authorization.ToString() }));
        app.MapGet("/soft", (HttpContext context) => api!.Live(context, checkCsrf: true) is null
            ? api.Reject(Results.Json(new { error = "session expired" }))
            : Results.Json(new { ok = true }));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single().TrimEnd('/');
        api = new CustomLoginApi(app) { BaseUrl = address, User = user, Password = password };
        return api;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private (string Token, string Csrf) NewSession(string? csrf = null)
    {
        var token = "sess-" + Guid.NewGuid().ToString("N");
        csrf ??= "csrf-" + Guid.NewGuid().ToString("N");
        _sessions[token] = (csrf, DateTimeOffset.UtcNow.AddSeconds(ExpiresInSeconds));
        _issued.Enqueue(token);
        _issued.Enqueue(csrf);
        return (token, csrf);
    }

    private string? Live(HttpContext context, bool checkCsrf = false)
    {
        var header = context.Request.Headers.Authorization.ToString();
        var token = header.StartsWith("Bearer ", StringComparison.Ordinal) ? header["Bearer ".Length..] : "";
        return _sessions.TryGetValue(token, out var session) && session.Until > DateTimeOffset.UtcNow &&
               (!checkCsrf || context.Request.Headers["X-CSRF"] == session.Csrf)
            ? token
            : null;
    }

    private IResult Reject(IResult result)
    {
        Interlocked.Increment(ref _rejected);
        return result;
    }
}

using System.Security.Claims;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Keyway.Access;

/// <summary>
/// Authenticates <c>Authorization: Bearer &lt;api key&gt;</c>, or <c>X-Keyway-Token</c> for SDKs that
/// insist on setting an Authorization header of their own. Keyway strips both before the upstream.
/// On <c>/proxy</c> and <c>/api/v1</c>, <see cref="ApiKeyMiddleware"/> does the same work without
/// ASP.NET Core's authentication pipeline; this handler serves every other path.
/// </summary>
internal sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, ApiKeyService keys)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string TokenHeader = "X-Keyway-Token";

    protected override async Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        var token = ReadToken(Request.Headers);
        if (token is null)
        {
            return AuthenticateResult.NoResult();
        }

        var caller = await keys.AuthenticateAsync(token, Context.RequestAborted);
        return caller is null
            ? AuthenticateResult.Fail("The API key is unknown, revoked or expired.")
            : AuthenticateResult.Success(new AuthenticationTicket(PrincipalOf(caller), SchemeName));
    }

    // A cache hit hands back the same Caller instance for up to 30 s; its principal (an identity
    // and a claim per field) is built once for it rather than on every request. Nothing in
    // Keyway mutates a principal, and the entry goes when the cached Caller does.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Caller, ClaimsPrincipal> Principals = new();

    internal static ClaimsPrincipal PrincipalOf(Caller caller) =>
        Principals.GetValue(caller, static c => c.ToPrincipal(SchemeName));

    protected override Task HandleChallengeAsync(AuthenticationProperties properties) => Task.CompletedTask;

    internal static string? ReadToken(IHeaderDictionary headers) => TryReadToken(headers, out var token) ? token.ToString() : null;

    /// <summary>The API key the request carries, without copying it out of the header value.</summary>
    internal static bool TryReadToken(IHeaderDictionary headers, out ReadOnlySpan<char> token) => TryReadToken(headers, out _, out token);

    /// <summary>The API key the request carries, and the header value it was read from.</summary>
    internal static bool TryReadToken(IHeaderDictionary headers, out string header, out ReadOnlySpan<char> token)
    {
        var explicitToken = headers[TokenHeader];
        if (explicitToken.Count == 1 && !string.IsNullOrWhiteSpace(explicitToken[0]))
        {
            header = explicitToken[0]!;
            token = header.AsSpan().Trim();
            return true;
        }

        header = "";
        token = default;
        var authorization = headers.Authorization;
        if (authorization.Count != 1 || authorization[0] is not { } value)
        {
            return false;
        }

        var trimmed = value.AsSpan().Trim();
        if (!trimmed.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        header = value;
        token = trimmed[7..].Trim();
        return true;
    }
}

/// <summary>
/// The API-key fast path, in place of ASP.NET Core's <see cref="AuthenticationMiddleware"/>: a request
/// to <c>/proxy</c> or <c>/api/v1</c> that carries an API key is verified here, straight through
/// <see cref="ApiKeyService"/> (a cache hit allocates nothing), and gets the principal cached for its
/// <see cref="Caller"/>. It is what the "Keyway" policy scheme would have done, without resolving
/// handlers, results and tickets per request. Every other request (a console session, a sign-in, the
/// single sign-on callback, anything outside those prefixes) goes through the standard middleware,
/// except on <c>/proxy</c>, which never reads the session cookie: it takes API keys only.
/// An unknown, revoked or expired key leaves the request anonymous, as the handler's failure does:
/// <see cref="AccessFilter"/> and the proxy answer 401. Authorization stays where it was.
/// </summary>
internal static class ApiKeyMiddleware
{
    // The key UseAuthentication sets on the application builder (not a public constant). Without it,
    // WebApplication would add a second AuthenticationMiddleware at the start of the pipeline.
    private const string AuthenticationMiddlewareSetKey = "__AuthenticationMiddlewareSet";

    /// <summary>Authentication for the whole pipeline: API keys on the fast path, the rest through the schemes.</summary>
    public static IApplicationBuilder UseKeywayAuthentication(this IApplicationBuilder app)
    {
        var keys = app.ApplicationServices.GetRequiredService<ApiKeyService>();
        var schemes = app.ApplicationServices.GetRequiredService<IAuthenticationSchemeProvider>();
        app.Properties[AuthenticationMiddlewareSetKey] = true;
        return app.Use(next =>
        {
            var standard = new AuthenticationMiddleware(next, schemes);
            return context => OnFastPath(context.Request)
                ? AuthenticateAsync(context, keys, next)
                : IsProxy(context.Request)
                    // The proxy takes API keys only: a cookie rides along with every request a browser
                    // makes, so a page could spend the console's session through it. Without a key the
                    // request stays anonymous, whatever cookie it carries, and the proxy answers 401.
                    ? next(context)
                    : standard.Invoke(context);
        });
    }

    /// <summary>
    /// The paths whose callers are API clients, never the single sign-on handler's callbacks
    /// (<c>/auth/oidc/…</c>, <c>/signout-…</c>), which must see every request.
    /// </summary>
    private static bool OnFastPath(HttpRequest request) =>
        (IsProxy(request) || request.Path.StartsWithSegments("/api/v1"))
        && SignIn.Sessions.HasApiKey(request.Headers);

    private static bool IsProxy(HttpRequest request) => request.Path.StartsWithSegments("/proxy");

    private static Task AuthenticateAsync(HttpContext context, ApiKeyService keys, RequestDelegate next)
    {
        if (!ApiKeyAuthenticationHandler.TryReadToken(context.Request.Headers, out var token))
        {
            // A key header the handler could not read either (an empty X-Keyway-Token, say): anonymous.
            return next(context);
        }

        if (keys.TryCached(token) is { } cached)
        {
            context.User = ApiKeyAuthenticationHandler.PrincipalOf(cached);
            return next(context);
        }

        return AuthenticateSlowAsync(context, keys, token.ToString(), next);
    }

    private static async Task AuthenticateSlowAsync(HttpContext context, ApiKeyService keys, string token, RequestDelegate next)
    {
        if (await keys.AuthenticateAsync(token, context.RequestAborted) is { } caller)
        {
            context.User = ApiKeyAuthenticationHandler.PrincipalOf(caller);
        }

        await next(context);
    }
}

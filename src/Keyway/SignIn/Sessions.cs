using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Claims;
using System.Security.Cryptography;
using Keyway.Access;
using Keyway.Environments;
using Keyway.Storage;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;

namespace Keyway.SignIn;

/// <summary>
/// Console sessions: an ASP.NET Core authentication cookie (<c>keyway-session</c>) that holds only
/// the user id, the user's session version and the session's antiforgery token. Every request
/// re-checks the user (cached briefly) and gets the same <see cref="Caller"/> an API key gets.
/// </summary>
internal static class Sessions
{
    /// <summary>The default scheme: an API key when the request carries one, else the session cookie.</summary>
    public const string DefaultScheme = "Keyway";

    public const string SchemeName = "Session";
    public const string CookieName = "keyway-session";

    /// <summary>The antiforgery cookie: readable by the console's scripts, echoed in <see cref="CsrfHeader"/>.</summary>
    public const string CsrfCookie = "keyway-csrf";
    public const string CsrfHeader = "X-Keyway-CSRF";

    internal const string SessionVersionClaim = "keyway:session_version";
    internal const string SessionIdClaim = "keyway:sid";
    internal const string SessionIdItem = "keyway.sid";
    internal const string CsrfProperty = "keyway.csrf";
    internal const string CsrfItem = "keyway.csrf";

    /// <summary>Whether the request carries an API key, so the API-key handler (not the cookie) authenticates it.</summary>
    public static bool HasApiKey(IHeaderDictionary headers)
    {
        if (headers.TryGetValue(ApiKeyAuthenticationHandler.TokenHeader, out var token) && token.Count > 0)
        {
            return true;
        }

        var authorization = headers.Authorization;
        return authorization.Count == 1 && authorization[0] is { } value && value.AsSpan().TrimStart().StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// What the session cookie holds: the user, the session version it was issued under, and a new
    /// session id (what signing out revokes, <see cref="SessionRevocations"/>).
    /// </summary>
    public static ClaimsPrincipal Principal(string userId, long sessionVersion) =>
        new(new ClaimsIdentity(
            [
                new Claim(ClaimTypes.NameIdentifier, userId),
                new Claim(SessionVersionClaim, sessionVersion.ToString(CultureInfo.InvariantCulture)),
                new Claim(SessionIdClaim, ApiKeyService.Base64Url(RandomNumberGenerator.GetBytes(16))),
            ],
            SchemeName));

    /// <summary>
    /// Issues the session cookie and the antiforgery cookie for a user; returns the antiforgery token.
    /// The cookie lives as long as the browser session, and the session itself for the configured
    /// lifetime, renewed while it is used.
    /// </summary>
    public static async Task<string> SignInAsync(HttpContext http, string userId, long sessionVersion)
    {
        var properties = NewProperties(out var csrf);
        await http.SignInAsync(SchemeName, Principal(userId, sessionVersion), properties);
        SetCsrfCookie(http, csrf);
        return csrf;
    }

    public static AuthenticationProperties NewProperties(out string csrf)
    {
        csrf = ApiKeyService.Base64Url(RandomNumberGenerator.GetBytes(24));
        var properties = new AuthenticationProperties { IsPersistent = false, AllowRefresh = true };
        properties.Items[CsrfProperty] = csrf;
        return properties;
    }

    public static void SetCsrfCookie(HttpContext http, string csrf) =>
        http.Response.Cookies.Append(CsrfCookie, csrf, new CookieOptions
        {
            HttpOnly = false,
            Secure = http.Request.IsHttps,
            SameSite = SameSiteMode.Strict,
            Path = "/",
            IsEssential = true,
        });

    public static async Task SignOutAsync(HttpContext http)
    {
        await http.SignOutAsync(SchemeName);
        http.Response.Cookies.Delete(CsrfCookie, new CookieOptions { Path = "/", Secure = http.Request.IsHttps, SameSite = SameSiteMode.Strict });
    }

    /// <summary>The antiforgery token of the session that authenticated this request; null for API keys and anonymous calls.</summary>
    public static string? CsrfToken(HttpContext http) => http.Items[CsrfItem] as string;

    /// <summary>The id of the session that authenticated this request; null for API keys and anonymous calls.</summary>
    public static string? SessionId(HttpContext http) => http.Items[SessionIdItem] as string;

    /// <summary>Whether this request was authenticated by a session cookie (not an API key).</summary>
    public static bool IsSession(HttpContext http) => http.User.Identity is { IsAuthenticated: true, AuthenticationType: SchemeName };

    public static void Configure(CookieAuthenticationOptions options, TimeSpan lifetime)
    {
        options.Cookie.Name = CookieName;
        options.Cookie.HttpOnly = true;
        options.Cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
        options.Cookie.SameSite = SameSiteMode.Lax;
        options.Cookie.Path = "/";
        options.Cookie.IsEssential = true;
        options.ExpireTimeSpan = lifetime;
        options.SlidingExpiration = true;
        options.Events.OnValidatePrincipal = ValidateAsync;
        // An API answers, it does not redirect to a login page.
        options.Events.OnRedirectToLogin = context =>
        {
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            return Task.CompletedTask;
        };
        options.Events.OnRedirectToAccessDenied = context =>
        {
            context.Response.StatusCode = StatusCodes.Status403Forbidden;
            return Task.CompletedTask;
        };
    }

    private static async Task ValidateAsync(CookieValidatePrincipalContext context)
    {
        var userId = context.Principal?.FindFirstValue(ClaimTypes.NameIdentifier);
        var versionText = context.Principal?.FindFirstValue(SessionVersionClaim);
        var sessionId = context.Principal?.FindFirstValue(SessionIdClaim);
        var services = context.HttpContext.RequestServices;
        // A cookie from before session ids cannot be signed out: it is refused, and its holder signs in again.
        var caller = userId is null || sessionId is null || !long.TryParse(versionText, CultureInfo.InvariantCulture, out var version)
            || services.GetRequiredService<SessionRevocations>().IsRevoked(sessionId)
            ? null
            : await services.GetRequiredService<SessionValidator>().ValidateAsync(userId, version, context.HttpContext.RequestAborted);
        if (caller is null)
        {
            // Gone, disabled, signed out, or the password changed since: the session ends here, and the cookie with it.
            context.RejectPrincipal();
            await SignOutAsync(context.HttpContext);
            return;
        }

        // The cookie handler renews the ticket it read, not this principal (sliding expiry keeps the cookie small).
        context.ReplacePrincipal(caller.ToPrincipal(SchemeName));
        context.HttpContext.Items[SessionIdItem] = sessionId;
        if (context.Properties.Items.TryGetValue(CsrfProperty, out var csrf))
        {
            context.HttpContext.Items[CsrfItem] = csrf;
        }
    }
}

/// <summary>
/// Re-checks a session's user on every request: it exists, is not disabled, and its session version
/// is the one the cookie was issued under. Answers are cached briefly; a <c>users</c> change (from
/// this replica or, on PostgreSQL, another) drops the user's entry at once. While the store is
/// unreachable, an entry whose lifetime ran out is kept (stale-if-error, within
/// <see cref="StoreOutage.Staleness"/>) and re-checked every <see cref="StoreFailure.RetryAfter"/>.
/// </summary>
internal sealed class SessionValidator(UserStore users, ChangeFeed changes, TimeProvider time, StoreOutage? outage = null)
{
    private static readonly TimeSpan CacheLifetime = TimeSpan.FromSeconds(15);
    private const int CacheCapacity = 10_000;

    private readonly ConcurrentDictionary<string, Entry> _cache = new(StringComparer.Ordinal);
    private long _generation;

    public void Subscribe() => changes.Changed += change =>
    {
        if (change.IsAll || change.Kind == UserStore.ChangeKind)
        {
            Interlocked.Increment(ref _generation);
            if (change.IsAll)
            {
                _cache.Clear();
            }
            else
            {
                _cache.TryRemove(change.Name, out _);
            }
        }
    };

    /// <summary>The caller for a session of <paramref name="userId"/> issued under <paramref name="sessionVersion"/>; null when it no longer stands.</summary>
    public async ValueTask<Caller?> ValidateAsync(string userId, long sessionVersion, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (_cache.TryGetValue(userId, out var cached) && cached.Until > now)
        {
            return cached.SessionVersion == sessionVersion ? cached.Caller : null;
        }

        var generation = Interlocked.Read(ref _generation);
        UserRecord? user;
        IReadOnlyList<string> groups = [];
        try
        {
            user = await users.FindByIdAsync(userId, cancellationToken);
            if (user is not null)
            {
                groups = await users.GroupsOfAsync(user.Id, cancellationToken);
            }

            outage?.Reached();
        }
        catch (Exception e) when (cached is not null && outage is not null && outage.Observe(e) && outage.MayServeStale()
                                  // Only the answer still cached: a change (the user disabled, demoted) that dropped it meanwhile wins.
                                  && _cache.TryGetValue(userId, out var current) && ReferenceEquals(current, cached)
                                  && Interlocked.Read(ref _generation) == generation)
        {
            // The store cannot be reached: the last answer stands for a while longer, re-checked after a pause.
            _cache.TryUpdate(userId, cached with { Until = now + StoreFailure.RetryAfter }, cached);
            return cached.SessionVersion == sessionVersion ? cached.Caller : null;
        }

        if (user is null || user.DisabledAt is not null || user.Source == UserSources.Service)
        {
            _cache.TryRemove(userId, out _);
            return null;
        }

        var caller = new Caller(user.Id, user.Name, user.Role, null, user.Email)
        {
            Groups = groups,
            DisplayName = user.DisplayName,
            Claims = user.ClaimMap,
        };
        if (_cache.Count >= CacheCapacity)
        {
            _cache.Clear();
        }

        var entry = new Entry(caller, user.SessionVersion, now + CacheLifetime);
        _cache[userId] = entry;
        if (Interlocked.Read(ref _generation) != generation)
        {
            // A user changed while this was read: answer this request, cache nothing.
            _cache.TryRemove(new KeyValuePair<string, Entry>(userId, entry));
        }

        return user.SessionVersion == sessionVersion ? caller : null;
    }

    private sealed record Entry(Caller Caller, long SessionVersion, DateTimeOffset Until);
}

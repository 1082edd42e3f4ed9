using System.Security.Cryptography;
using System.Text;
using Keyway.Access;
using Keyway.Api;
using Keyway.Audit;
using Microsoft.AspNetCore.Authentication;

namespace Keyway.SignIn;

/// <summary><c>POST /api/v1/auth/login</c>: a user name and password.</summary>
internal sealed record LoginRequest(string? Name, string? Password);

/// <summary><c>POST /api/v1/me/password</c>: the current password and the new one.</summary>
internal sealed record PasswordChangeRequest(string? Current, string? New);

/// <summary>Who the caller is, as <c>GET /api/v1/me</c> shows it.</summary>
internal sealed record MeResponse(
    string Id, string Name, string? Email, string? DisplayName, string Role, IReadOnlyList<string> Groups, string Source,
    string Authentication, string? KeyId);

/// <summary>A successful sign-in: who, and the antiforgery token to echo in <c>X-Keyway-CSRF</c>.</summary>
internal sealed record SignedInResponse(MeResponse User, string CsrfToken);

internal static class SignInEndpoints
{
    /// <summary>Sign-in, sign-out, <c>/me</c> and password change, on the <c>/api/v1</c> group.</summary>
    public static void MapSignIn(this IEndpointRouteBuilder api)
    {
        api.MapPost("/auth/login", LoginAsync).Anonymous().WithTags("Sign-in")
            .Produces<SignedInResponse>()
            .WithSummary("Sign in with a local account's password; sets the session cookie (keyway-session) and the antiforgery cookie (keyway-csrf).");
        api.MapPost("/auth/logout", LogoutAsync).Requires(Permission.Read).WithTags("Sign-in").WithSummary("End this console session, on the server too; with ?everywhere=true every other session of the same person as well.");
        api.MapGet("/me", MeAsync).Requires(Permission.Read).WithTags("Sign-in").Produces<MeResponse>().WithSummary("Who is calling: the signed-in user or the API key's owner.");
        api.MapPost("/me/password", ChangePasswordAsync).Requires(Permission.Read).WithTags("Sign-in")
            .WithSummary("Change your password (at least 12 characters, not your user name); your other sessions end.");
    }

    /// <summary><c>GET /auth/oidc/login?returnUrl=</c>, outside the API group (a browser navigates to it).</summary>
    public static void MapSingleSignOn(this IEndpointRouteBuilder app, bool enabled)
    {
        app.MapGet(SingleSignOn.LoginPath, (string? returnUrl) =>
        {
            if (!enabled)
            {
                return (IResult)Problems.Create(StatusCodes.Status404NotFound, "sso_not_configured",
                    "Single sign-on is not configured on this server (set KEYWAY_OIDC_AUTHORITY and KEYWAY_OIDC_CLIENT_ID).");
            }

            if (returnUrl is not null && !LocalPaths.IsLocal(returnUrl))
            {
                return Problems.BadRequest("returnUrl must be a path on this server, such as /console.");
            }

            return TypedResults.Challenge(new AuthenticationProperties { RedirectUri = returnUrl ?? "/" }, [SingleSignOn.SchemeName]);
        }).ExcludeFromDescription();
    }

    private static async Task<IResult> LoginAsync(HttpContext http, PasswordSignIn signIn, UserStore users, IAuditLog audit, CancellationToken ct)
    {
        // A cross-site form cannot send JSON without a CORS preflight, so requiring it stops login CSRF.
        if (!http.Request.HasJsonContentType())
        {
            return Problems.Create(StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type",
                "Send the sign-in as JSON: Content-Type: application/json with {\"name\": \"…\", \"password\": \"…\"}.");
        }

        LoginRequest? request;
        try
        {
            request = await http.Request.ReadFromJsonAsync<LoginRequest>(ct);
        }
        catch (System.Text.Json.JsonException)
        {
            // The parser's message may quote the body, password included: none of it is repeated.
            request = null;
        }

        if (request is null || string.IsNullOrEmpty(request.Name) || string.IsNullOrEmpty(request.Password))
        {
            return Problems.BadRequest("Send {\"name\": \"…\", \"password\": \"…\"}.");
        }

        var client = http.Connection.RemoteIpAddress?.ToString() ?? "unknown";
        UserRecord user;
        try
        {
            user = await signIn.SignInAsync(request.Name, request.Password, client, ct);
        }
        catch (KeywayException e) when (e.Status == StatusCodes.Status429TooManyRequests)
        {
            // Returned, not thrown: the exception handler would clear the Retry-After header.
            http.Response.Headers.RetryAfter = e.Extensions?["retryAfter"]?.ToString();
            return Problems.From(e);
        }

        var csrf = await Sessions.SignInAsync(http, user.Id, user.SessionVersion);
        var groups = await users.GroupsOfAsync(user.Id, ct);
        var caller = new Caller(user.Id, user.Name, user.Role, null, user.Email) { Groups = groups, DisplayName = user.DisplayName };
        await audit.RecordDurableAsync(new AuditEntry("signin.password")
        {
            Actor = caller,
            Target = user.Name,
            Detail = new Dictionary<string, object?> { ["client"] = client },
        }, CancellationToken.None);
        return TypedResults.Ok(new SignedInResponse(Me(caller, user.Source, Sessions.SchemeName), csrf));
    }

    private static async Task<IResult> LogoutAsync(
        HttpContext http, bool? everywhere, IAuditLog audit, SessionRevocations revocations, UserStore users, CancellationToken ct)
    {
        if (Sessions.IsSession(http))
        {
            var caller = Caller.From(http.User)!;
            if (everywhere == true)
            {
                // Every session of this person, this one included, on every browser and replica (a new session version).
                await users.EndSessionsAsync(caller.UserId, ct);
            }
            else if (Sessions.SessionId(http) is { } sessionId)
            {
                // Server-side too: a copy of this cookie taken before now is refused on every replica.
                await revocations.RevokeAsync(sessionId, ct);
            }

            await Sessions.SignOutAsync(http);
            await audit.RecordDurableAsync(new AuditEntry("signout")
            {
                Actor = caller,
                Target = caller.UserName,
                Detail = everywhere == true ? new Dictionary<string, object?> { ["everywhere"] = true } : null,
            }, CancellationToken.None);
        }

        return TypedResults.NoContent();
    }

    private static async Task<IResult> MeAsync(HttpContext http, UserStore users, CancellationToken ct)
    {
        var caller = Caller.From(http.User)!;
        var user = await users.FindByIdAsync(caller.UserId, ct);
        if (Sessions.IsSession(http) && Sessions.CsrfToken(http) is { } csrf)
        {
            // The console may have lost its antiforgery cookie (a browser restart keeps neither, usually): here it is again.
            Sessions.SetCsrfCookie(http, csrf);
        }

        return TypedResults.Ok(Me(caller, user?.Source ?? UserSources.Local, Sessions.IsSession(http) ? Sessions.SchemeName : ApiKeyAuthenticationHandler.SchemeName));
    }

    private static async Task<IResult> ChangePasswordAsync(HttpContext http, PasswordChangeRequest request, PasswordSignIn signIn, CancellationToken ct)
    {
        // A key scoped to some resources or actions could otherwise lock its owner out of their account.
        AccessPolicy.DemandAccount(Caller.From(http.User)!, "change its owner's password");
        if (string.IsNullOrEmpty(request.Current) || request.New is null)
        {
            return Problems.BadRequest("Send {\"current\": \"…\", \"new\": \"…\"}.");
        }

        var caller = Caller.From(http.User)!;
        var version = await signIn.ChangePasswordAsync(caller, request.Current, request.New, ct);
        if (Sessions.IsSession(http))
        {
            // This session goes on under the new version; every other one ends.
            var csrf = await Sessions.SignInAsync(http, caller.UserId, version);
            return TypedResults.Ok(new { changed = true, csrfToken = csrf });
        }

        return TypedResults.Ok(new { changed = true, csrfToken = (string?)null });
    }

    private static MeResponse Me(Caller caller, string source, string authentication) => new(
        caller.UserId, caller.UserName, caller.Email, caller.DisplayName, caller.Role, caller.Groups, source,
        authentication == Sessions.SchemeName ? "session" : "apiKey", caller.ApiKeyId);

    /// <summary>Constant-time comparison of the antiforgery header with the session's token.</summary>
    internal static bool CsrfMatches(string expected, string? sent) =>
        sent is not null && CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(expected), Encoding.UTF8.GetBytes(sent));
}

using System.Security.Claims;
using Keyway.Access;
using Keyway.Api;
using Keyway.Audit;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authentication.OpenIdConnect;
using Microsoft.IdentityModel.Protocols.OpenIdConnect;

namespace Keyway.SignIn;

/// <summary>
/// OpenID Connect single sign-on with ASP.NET Core's handler: authorization code flow with PKCE,
/// state and nonce, the ID token validated against the provider's keys, no token kept
/// (<c>SaveTokens</c> off). On success the person becomes (or is updated as) a Keyway user of
/// source <c>oidc</c>, with groups from the groups claim, and gets the same session cookie as a
/// password sign-in.
/// </summary>
internal static partial class SingleSignOn
{
    public const string SchemeName = "oidc";
    public const string LoginPath = "/auth/oidc/login";
    public const string CallbackPath = "/auth/oidc/callback";

    // Protocol claims of the ID token that say nothing about the person; not kept with the user.
    private static readonly HashSet<string> ProtocolClaims = new(StringComparer.Ordinal)
    {
        "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "s_hash", "auth_time", "azp", "sid", "jti", "acr", "amr",
        "oi_au_id", "oi_tkn_id", "oi_tkn_typ", "uti", "rh", "tid", "ver", "idp", "ipaddr", "aio", "xms_tcdt",
    };

    public static void Configure(OpenIdConnectOptions options, OidcSettings settings, string? publicUrl)
    {
        options.Authority = settings.Authority.ToString();
        options.ClientId = settings.ClientId;
        options.ClientSecret = settings.ClientSecret?.Reveal();
        options.RequireHttpsMetadata = !settings.AllowHttp;
        options.ResponseType = OpenIdConnectResponseType.Code;
        // Query, not form_post: the callback is then a top-level GET, which SameSite=Lax cookies survive.
        options.ResponseMode = OpenIdConnectResponseMode.Query;
        options.UsePkce = true;
        options.SaveTokens = false;
        options.GetClaimsFromUserInfoEndpoint = false;
        options.MapInboundClaims = false;
        options.DisableTelemetry = true;
        options.CallbackPath = CallbackPath;
        options.SignInScheme = Sessions.SchemeName;
        options.Scope.Clear();
        foreach (var scope in settings.Scopes)
        {
            options.Scope.Add(scope);
        }

        options.TokenValidationParameters.NameClaimType = "name";
        foreach (var cookie in (CookieBuilder[])[options.CorrelationCookie, options.NonceCookie])
        {
            cookie.SameSite = SameSiteMode.Lax;
            cookie.SecurePolicy = CookieSecurePolicy.SameAsRequest;
            cookie.HttpOnly = true;
        }

        options.Events.OnRedirectToIdentityProvider = context =>
        {
            if (publicUrl is not null)
            {
                var redirect = publicUrl.TrimEnd('/') + CallbackPath;
                context.ProtocolMessage.RedirectUri = redirect;
                context.Properties.Items[OpenIdConnectDefaults.RedirectUriForCodePropertiesKey] = redirect;
            }

            return Task.CompletedTask;
        };
        options.Events.OnTicketReceived = context => SignedOnAsync(context, settings);
        options.Events.OnRemoteFailure = RemoteFailureAsync;
        options.Events.OnAccessDenied = async context =>
        {
            context.HandleResponse();
            await Problems.Create(StatusCodes.Status403Forbidden, "sso_failed",
                "The identity provider did not sign you in (access denied). Try again, or ask your administrator for access.").ExecuteAsync(context.HttpContext);
        };
    }

    private static async Task SignedOnAsync(TicketReceivedContext context, OidcSettings settings)
    {
        var http = context.HttpContext;
        var services = http.RequestServices;
        var users = services.GetRequiredService<UserStore>();
        var audit = services.GetRequiredService<IAuditLog>();
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(SingleSignOn));
        var principal = context.Principal!;
        var ct = http.RequestAborted;

        var subject = principal.FindFirstValue("sub");
        var issuer = principal.FindFirstValue("iss") ?? principal.FindFirst("sub")?.Issuer;
        if (string.IsNullOrEmpty(subject) || string.IsNullOrEmpty(issuer))
        {
            await RejectAsync(context, audit, null, "no_subject", StatusCodes.Status401Unauthorized,
                "The identity provider's ID token has no subject or issuer.");
            return;
        }

        var externalId = $"{issuer}|{subject}";
        var email = principal.FindFirstValue("email");
        var displayName = principal.FindFirstValue("name");
        var name = principal.FindFirstValue("preferred_username") is { Length: > 0 } preferred ? preferred : email ?? subject;
        var idpGroups = principal.FindAll(settings.GroupsClaim).Select(c => c.Value).Where(v => v.Length > 0).ToList();
        var groups = settings.MapGroups(idpGroups);
        var claims = principal.Claims
            .Where(c => !ProtocolClaims.Contains(c.Type))
            .GroupBy(c => c.Type, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => string.Join(",", g.Select(c => c.Value)), StringComparer.Ordinal);

        var user = await users.FindByExternalIdAsync(externalId, ct);
        var role = settings.AdminGroups.Count == 0
            ? user?.Role ?? Caller.MemberRole
            : settings.IsAdmin(idpGroups, groups) ? Caller.AdminRole : Caller.MemberRole;
        if (user is null)
        {
            user = await CreateAsync(users, new NewUser(name, role, UserSources.Oidc)
            {
                Email = email,
                DisplayName = displayName,
                ExternalId = externalId,
                Claims = claims,
            }, ct);
            Log.Provisioned(logger, user.Name, user.Role);
        }
        else if (user.DisabledAt is not null)
        {
            await RejectAsync(context, audit, user, SignInFailures.Disabled, StatusCodes.Status403Forbidden,
                "This Keyway account is disabled. Ask an administrator.");
            return;
        }
        else
        {
            await users.UpdateProfileAsync(user.Id, email, displayName, role, claims, ct);
        }

        await users.SyncGroupsAsync(user.Id, groups, "sso", createMissing: true, ct);
        var caller = new Caller(user.Id, user.Name, role, null, email) { Groups = groups, DisplayName = displayName };
        await audit.RecordDurableAsync(new AuditEntry("signin.sso")
        {
            Actor = caller,
            Target = user.Name,
            Detail = new Dictionary<string, object?> { ["issuer"] = issuer, ["groups"] = groups, ["role"] = role },
        }, CancellationToken.None);
        Log.SignedOn(logger, user.Name);

        // What the cookie holds is Keyway's session, not the provider's identity.
        var properties = Sessions.NewProperties(out var csrf);
        properties.RedirectUri = context.ReturnUri is { } returnUri && LocalPaths.IsLocal(returnUri) ? returnUri : "/";
        context.Principal = Sessions.Principal(user.Id, user.SessionVersion);
        context.Properties = properties;
        context.ReturnUri = properties.RedirectUri;
        Sessions.SetCsrfCookie(http, csrf);
    }

    private static async Task<UserRecord> CreateAsync(UserStore users, NewUser user, CancellationToken ct)
    {
        try
        {
            return await users.CreateAsync(user, ct);
        }
        catch (KeywayException e) when (e.Status == StatusCodes.Status409Conflict)
        {
            // The name belongs to another account (a local one, say): never link by name, which would
            // hand that account to whoever controls the name at the provider. A suffix keeps them apart.
            var suffix = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(user.ExternalId!)))[..6];
            return await users.CreateAsync(user with { Name = $"{user.Name}-{suffix}" }, ct);
        }
    }

    private static async Task RejectAsync(TicketReceivedContext context, IAuditLog audit, UserRecord? user, string reason, int status, string message)
    {
        context.HandleResponse();
        await audit.RecordDurableAsync(new AuditEntry("signin.sso", AuditOutcome.Failure)
        {
            Target = user?.Name,
            Detail = new Dictionary<string, object?> { ["reason"] = reason },
        }, CancellationToken.None);
        await Problems.Create(status, "sso_failed", message).ExecuteAsync(context.HttpContext);
    }

    private static async Task RemoteFailureAsync(RemoteFailureContext context)
    {
        context.HandleResponse();
        var logger = context.HttpContext.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(SingleSignOn));
        // The handler's messages name protocol errors (state, nonce, signature), never a secret.
        Log.Failed(logger, context.Failure?.GetType().Name ?? "?", context.Failure?.Message ?? "");
        await context.HttpContext.RequestServices.GetRequiredService<IAuditLog>().RecordDurableAsync(
            new AuditEntry("signin.sso", AuditOutcome.Failure) { Detail = new Dictionary<string, object?> { ["reason"] = "protocol_error" } },
            CancellationToken.None);
        await Problems.Create(StatusCodes.Status401Unauthorized, "sso_failed",
            $"Single sign-on failed. Start again from {LoginPath}; if it keeps failing, the server log has the details under trace id {context.HttpContext.TraceIdentifier}.")
            .ExecuteAsync(context.HttpContext);
    }

    private static partial class Log
    {
        [LoggerMessage(20, LogLevel.Information, "Single sign-on created user {User} (role {Role})")]
        public static partial void Provisioned(ILogger logger, string user, string role);

        [LoggerMessage(21, LogLevel.Information, "User {User} signed in through single sign-on")]
        public static partial void SignedOn(ILogger logger, string user);

        [LoggerMessage(22, LogLevel.Warning, "Single sign-on failed: {ErrorType}: {Error}")]
        public static partial void Failed(ILogger logger, string errorType, string error);
    }
}

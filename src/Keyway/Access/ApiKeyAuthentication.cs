using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace Keyway.Access;

/// <summary>
/// Authenticates <c>Authorization: Bearer &lt;api key&gt;</c>, or <c>X-Keyway-Token</c> for SDKs that
/// insist on setting an Authorization header of their own. Keyway strips both before the upstream.
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
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Caller, System.Security.Claims.ClaimsPrincipal> Principals = new();

    private static System.Security.Claims.ClaimsPrincipal PrincipalOf(Caller caller) =>
        Principals.GetValue(caller, static c => c.ToPrincipal(SchemeName));

    protected override Task HandleChallengeAsync(AuthenticationProperties properties) => Task.CompletedTask;

    internal static string? ReadToken(IHeaderDictionary headers)
    {
        var explicitToken = headers[TokenHeader];
        if (explicitToken.Count == 1 && !string.IsNullOrWhiteSpace(explicitToken[0]))
        {
            return explicitToken[0]!.Trim();
        }

        var authorization = headers.Authorization;
        if (authorization.Count != 1)
        {
            return null;
        }

        var value = authorization[0].AsSpan().Trim();
        return value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? value[7..].Trim().ToString() : null;
    }
}

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
            : AuthenticateResult.Success(new AuthenticationTicket(caller.ToPrincipal(SchemeName), SchemeName));
    }

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

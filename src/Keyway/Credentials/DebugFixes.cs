using Keyway.Api;
using Keyway.Secrets;

namespace Keyway.Credentials;

/// <summary>
/// What to do about a failed step of the resource test, where Keyway knows: the OAuth error codes of RFC 6749
/// section 5.2, the credential engine's states, the answers of a login step and of the final request. A fix names
/// settings and variables, never a value.
/// </summary>
internal static class DebugFixes
{
    /// <summary>For a traced step (a flow step, discovery, a token request).</summary>
    public static string? ForStep(TracedStep step, Redactor redactor)
    {
        var error = step.Error ?? "";
        if (step.Kind == "discovery")
        {
            return "Discovery failed: check auth.issuer (Keyway reads its /.well-known/openid-configuration), or set auth.tokenUrl instead.";
        }

        if (step.Kind == "token")
        {
            return ForTokenError(error, step.Name, step.Status);
        }

        if (error.Contains("destination", StringComparison.OrdinalIgnoreCase) && error.Contains("KEYWAY_OUTBOUND_ALLOW", StringComparison.Ordinal))
        {
            return "Keyway's outbound policy refuses this address (loopback, private and metadata addresses are refused): allow it with KEYWAY_OUTBOUND_ALLOW if it is meant.";
        }

        if (error.Contains("bound to", StringComparison.OrdinalIgnoreCase) || error.Contains("origin", StringComparison.OrdinalIgnoreCase) && error.Contains("secret", StringComparison.OrdinalIgnoreCase))
        {
            return "A secret this step sends is bound to other origins: send it only there, or bind the variable to this origin too.";
        }

        return step.Status switch
        {
            401 or 403 => $"The login API refused step '{step.Name}': check the credentials it sends (the variables its url, headers and body read), and that they are current.",
            404 or 405 => $"Nothing answers step '{step.Name}' there: check its method and url.",
            >= 400 and < 500 => $"The login API rejected step '{step.Name}': check its headers and body against the API's documentation.",
            >= 500 => $"The login API failed (HTTP {step.Status}) in step '{step.Name}'; Keyway retries with backoff. Try again later, or ask the API's owners.",
            _ when error.Contains("could not be reached", StringComparison.Ordinal) || error.Contains("no answer", StringComparison.Ordinal) || error.Contains("in time", StringComparison.Ordinal) =>
                $"Step '{step.Name}' got no answer: check its url and that the login API is up.",
            _ when error.Length > 0 => $"Check step '{step.Name}': its templates may read something an earlier step did not produce (see each step's extracted names).",
            _ => null,
        };
    }

    /// <summary>For an OAuth token request's error.</summary>
    public static string? ForTokenError(string error, string step, int? status)
    {
        var refresh = step.Contains("refresh_token", StringComparison.Ordinal) || step.Contains("authorization_code", StringComparison.Ordinal);
        if (error.Contains("invalid_client", StringComparison.Ordinal))
        {
            return "The provider did not accept the client: check the client secret variable (the one auth.clientSecret reads) and auth.clientId; " +
                   "if both are right, try the other auth.clientAuth (basic or post).";
        }

        if (error.Contains("invalid_grant", StringComparison.Ordinal))
        {
            return refresh
                ? "The grant is gone (revoked, expired or already used): connect the account again (Connect account, or keyway resource credential connect)."
                : "The provider refused the grant's credentials: check auth.username and the password variable auth.password reads.";
        }

        if (error.Contains("invalid_scope", StringComparison.Ordinal))
        {
            return "The provider refused a scope: check auth.scope (and auth.audience or auth.resource) against what the client may ask for.";
        }

        if (error.Contains("unauthorized_client", StringComparison.Ordinal) || error.Contains("unsupported_grant_type", StringComparison.Ordinal))
        {
            return "The client may not use this grant: allow it for the client at the provider, or change auth.grant.";
        }

        if (error.Contains("bound to", StringComparison.OrdinalIgnoreCase))
        {
            return "A secret the token request carries is bound to other origins: check auth.tokenUrl, or bind the variable to the token endpoint's origin too.";
        }

        if (status is >= 500 or 429 || error.Contains("could not be reached", StringComparison.Ordinal) || error.Contains("did not answer", StringComparison.Ordinal))
        {
            return "The token endpoint failed or could not be reached; Keyway retries with backoff. Check auth.tokenUrl (or auth.issuer) and that the provider is up.";
        }

        return error.Length > 0 || status is >= 400 ? "The provider refused the token request: compare its error with the provider's documentation for this grant." : null;
    }

    /// <summary>For the engine's refusal to hand out a credential.</summary>
    public static string ForCredential(KeywayException e) => e.Code switch
    {
        "not_connected" => "Nobody has connected an account yet: Connect account (console), keyway resource credential connect, or import a token.",
        "reconnect_required" => "The grant is gone: connect the account again (Connect account, or keyway resource credential connect).",
        "credential_failed" => (ForTokenError(e.Message, "", null) is { } oauth && !oauth.StartsWith("The provider refused the token", StringComparison.Ordinal) ? oauth + " " : "") +
                               "Keyway stopped asking the provider after this error: a change to the resource or to a secret it reads tries again.",
        "credential_refresh_failed" => "The provider is failing; Keyway retries with backoff. Test again after the time the error gives.",
        "credential_refresh_pending" => "A refresh is under way (here or on another replica): test again in a moment.",
        _ => "See the error above.",
    };

    /// <summary>For the final request's answer.</summary>
    public static string? ForAnswer(int status, bool refreshed, bool dynamic) => status switch
    {
        401 or 403 when refreshed =>
            "The upstream refuses even a fresh credential: check where it goes (auth.tokenIn, auth.tokenName, auth.tokenPrefix, or auth.apply), its scopes or audience; or connect the account again.",
        401 or 403 when dynamic => "The upstream refuses the credential: check where it goes (auth.tokenIn, auth.tokenName, auth.tokenPrefix, or auth.apply) and its scopes; or connect the account again.",
        401 or 403 => "The upstream refuses the credentials: check the variables the auth section reads (a rotated or expired key?) and where they go.",
        404 => "Nothing answers at this path: check the path and the resource's base URL.",
        >= 400 and < 500 => "The upstream rejected the request: check its method, path, query, headers and body.",
        >= 500 => "The upstream failed (a server error): try again later, or ask its owners.",
        _ => null,
    };

    /// <summary>For a Keyway error the final request met (unreachable, timeout, a refused destination or origin).</summary>
    public static string ForRequestError(KeywayException e) => e.Code switch
    {
        "upstream_unreachable" => "Keyway could not reach the upstream: check the base URL and that it is up.",
        "upstream_timeout" => "The upstream did not answer in time: check it, or raise timeouts.requestMs.",
        "origin_not_allowed" => "A secret this request carries is bound to other origins: check the base URL, or bind the variable to it.",
        "destination_denied" => "Keyway's outbound policy refuses this address (loopback, private and metadata addresses are refused): allow it with KEYWAY_OUTBOUND_ALLOW if it is meant.",
        "payload_too_large" => "The answer is larger than maxResponseBytes: raise it, or use the proxy, which streams.",
        _ => e is CredentialException ? ForCredential(e) : "See the error above.",
    };
}

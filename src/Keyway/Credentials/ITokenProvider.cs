using Keyway.Secrets;

namespace Keyway.Credentials;

/// <summary>
/// What an auth method does to get tokens: the engine decides when, this decides how (an OAuth 2.0
/// grant, a custom login flow). Implementations are stateless and never store anything.
/// </summary>
internal interface ITokenProvider
{
    /// <summary>Whether tokens can be had without a person (client credentials, password, custom login) or need a connect step (authorization code).</summary>
    bool CanAcquire { get; }

    /// <summary>A hash of every parameter that shapes the tokens (endpoint, client, scope, audience…): stored tokens minted under other parameters are discarded.</summary>
    string ParametersHash { get; }

    /// <summary>How long a token lives when neither the response nor the token says (null: until rejected).</summary>
    TimeSpan? DefaultLifetime { get; }

    /// <summary>Refresh at least this often, so a provider that expires idle refresh tokens keeps this one alive (null: no keep-alive).</summary>
    TimeSpan? KeepAlive => null;

    /// <summary>The next scheduled refresh after <paramref name="after"/> (a cron schedule), or null for none.</summary>
    DateTimeOffset? NextScheduledRefresh(DateTimeOffset after) => null;

    /// <summary>A copy of this provider that reports each step and exchange to <paramref name="trace"/> (the resource test); this one when it has nothing to report.</summary>
    ITokenProvider WithTrace(AuthTrace trace) => this;

    Task<TokenResult> AcquireAsync(CredentialKey key, CancellationToken cancellationToken);

    Task<TokenResult> RefreshAsync(CredentialKey key, TokenSet current, CancellationToken cancellationToken);
}

/// <summary>How a failed token request should be treated (DESIGN 4).</summary>
internal enum FailureKind
{
    /// <summary>5xx, 429, a timeout, a network error: retry later with backoff; keep serving a valid token.</summary>
    Transient,

    /// <summary>The grant is gone (<c>invalid_grant</c>): a person must connect again.</summary>
    GrantRevoked,

    /// <summary>The configuration is wrong (<c>invalid_client</c>, other 4xx): stop calling the provider until it changes.</summary>
    Misconfigured,
}

/// <summary>A token request's outcome. Error texts are the provider's codes and descriptions, never a token.</summary>
internal sealed record TokenResult
{
    public TokenSet? Tokens { get; private init; }

    public FailureKind? Failure { get; private init; }

    public string? Error { get; private init; }

    public TimeSpan? RetryAfter { get; private init; }

    public bool Succeeded => Tokens is not null;

    public static TokenResult Success(TokenSet tokens) => new() { Tokens = tokens };

    public static TokenResult Fail(FailureKind kind, string error, TimeSpan? retryAfter = null) =>
        new() { Failure = kind, Error = error, RetryAfter = retryAfter };
}

/// <summary>Token expiry rules shared by every provider (DESIGN 4, "Expiry").</summary>
internal static class TokenExpiry
{
    /// <summary>
    /// From <c>expires_in</c> measured from <paramref name="since"/> (when the token request was sent,
    /// so the round trip counts against the token), else the JWT <c>exp</c> of the access token, else
    /// the configured lifetime, else null (the token lives until an upstream rejects it).
    /// </summary>
    public static DateTimeOffset? Compute(DateTimeOffset since, long? expiresIn, Secret accessToken, TimeSpan? configured)
    {
        if (expiresIn is > 0)
        {
            return since.AddSeconds(expiresIn.Value);
        }

        if (JwtExpiry(accessToken.Reveal()) is { } exp)
        {
            return exp;
        }

        return configured is { } lifetime ? since + lifetime : null;
    }

    /// <summary>The <c>exp</c> claim of a JWT, or null when the value is not a JWT or has none. The signature is not checked: the value only schedules a refresh.</summary>
    public static DateTimeOffset? JwtExpiry(string token)
    {
        var first = token.IndexOf('.', StringComparison.Ordinal);
        var second = first < 0 ? -1 : token.IndexOf('.', first + 1);
        if (first <= 0 || second < 0)
        {
            return null;
        }

        try
        {
            var payload = token[(first + 1)..second].Replace('-', '+').Replace('_', '/');
            payload = payload.PadRight(payload.Length + ((4 - (payload.Length % 4)) % 4), '=');
            using var document = System.Text.Json.JsonDocument.Parse(Convert.FromBase64String(payload));
            return document.RootElement.TryGetProperty("exp", out var exp) && exp.TryGetInt64(out var seconds)
                ? DateTimeOffset.FromUnixTimeSeconds(seconds)
                : null;
        }
        catch (Exception e) when (e is FormatException or System.Text.Json.JsonException or ArgumentException)
        {
            return null;
        }
    }
}

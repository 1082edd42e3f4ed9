using Keyway.Api;
using Keyway.Secrets;

namespace Keyway.Credentials;

/// <summary>Whose credential: <see cref="Shared"/> for the resource's one shared credential, else a user id.</summary>
internal readonly record struct CredentialKey(string Resource, string Environment, string Owner)
{
    public const string Shared = "shared";

    public override string ToString() => $"{Resource}/{Environment}/{Owner}";
}

/// <summary>The states a credential can be in (<c>GET …/credential</c> reports them).</summary>
internal enum CredentialState
{
    NotConnected,
    Valid,
    Expiring,
    Expired,
    Refreshing,
    Failed,
    ReconnectRequired,
}

/// <summary>What an auth method produced: tokens and when they stop working.</summary>
internal sealed record TokenSet
{
    public required Secret AccessToken { get; init; }

    public Secret? RefreshToken { get; init; }

    public string? TokenType { get; init; }

    /// <summary>When the access token expires, or null when nothing says it does.</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    public required DateTimeOffset ObtainedAt { get; init; }

    /// <summary>Other values a custom flow produced (e.g. a CSRF token), usable as <c>{{ NAME }}</c>.</summary>
    public IReadOnlyDictionary<string, Secret> Extras { get; init; } = new Dictionary<string, Secret>();
}

/// <summary>
/// A credential ready to attach: the tokens plus what the engine knows about them. Instances are
/// shared between requests (the cache hands out the same object) and never change.
/// </summary>
internal sealed class Credential(CredentialKey key, TokenSet tokens, long version, DateTimeOffset? refreshAt, string parametersHash)
{
    public CredentialKey Key { get; } = key;

    /// <summary>The provider parameters the tokens were minted under.</summary>
    public string ParametersHash { get; } = parametersHash;

    public TokenSet Tokens { get; } = tokens;

    /// <summary>The store version these tokens were read or written at.</summary>
    public long Version { get; } = version;

    /// <summary>When to refresh ahead of expiry (expiry − margin − jitter), or null for never.</summary>
    public DateTimeOffset? RefreshAt { get; } = refreshAt;

    private (Redactor Base, Redactor Combined)? _redactor;

    /// <summary>A redactor for this credential's tokens on top of <paramref name="resourceRedactor"/>, made once.</summary>
    public Redactor RedactorFor<TState>(Redactor resourceRedactor, TState state, Func<TState, Redactor> build)
    {
        var cached = _redactor;
        if (cached is { } c && ReferenceEquals(c.Base, resourceRedactor))
        {
            return c.Combined;
        }

        var combined = build(state);
        _redactor = (resourceRedactor, combined);
        return combined;
    }

    private Applied? _applied;

    /// <summary>
    /// Something derived from these tokens by <paramref name="owner"/> (a binding's rendered
    /// <c>apply</c> values), made once per credential and owner. Swapped as one reference, so
    /// concurrent readers see either the old pair or the new one.
    /// </summary>
    public T DerivedBy<T>(object owner, Func<T> build) where T : class
    {
        if (_applied is { } applied && ReferenceEquals(applied.Owner, owner))
        {
            return (T)applied.Value;
        }

        var value = build();
        _applied = new Applied(owner, value);
        return value;
    }

    private sealed record Applied(object Owner, object Value);

    /// <summary>Set when an upstream rejected the token: it is never served again.</summary>
    public bool Rejected { get; private set; }

    public void Reject() => Rejected = true;

    public bool IsDue(DateTimeOffset now) => Rejected || (RefreshAt is { } at && now >= at);
}

/// <summary>A credential could not be had. Its <c>Code</c> says why; its message what to do.</summary>
internal sealed class CredentialException(int status, string code, string message, IDictionary<string, object?>? extensions = null)
    : KeywayException(status, code, message, extensions)
{
    public static CredentialException ReconnectRequired(CredentialKey key, string why, string? connectUrl = null) =>
        new(StatusCodes.Status409Conflict, "reconnect_required",
            $"The credential of resource '{key.Resource}' in '{key.Environment}' must be connected again: {why}",
            connectUrl is null ? null : new Dictionary<string, object?> { ["connectUrl"] = connectUrl });

    public static CredentialException NotConnected(CredentialKey key, string? connectUrl) =>
        new(StatusCodes.Status409Conflict, "not_connected",
            key.Owner == CredentialKey.Shared
                ? $"The resource '{key.Resource}' has no credential in '{key.Environment}' yet. Connect it, or import a token set (keyway credential import)."
                : $"You have not connected your account to resource '{key.Resource}' in '{key.Environment}'. Connect it first.",
            connectUrl is null ? null : new Dictionary<string, object?> { ["connectUrl"] = connectUrl });

    public static CredentialException RefreshFailed(CredentialKey key, string why, TimeSpan? retryAfter) =>
        new(StatusCodes.Status503ServiceUnavailable, "credential_refresh_failed",
            $"The credential of resource '{key.Resource}' in '{key.Environment}' expired and could not be refreshed: {why}",
            retryAfter is { } r ? new Dictionary<string, object?> { ["retryAfterSeconds"] = (int)Math.Ceiling(r.TotalSeconds) } : null);

    /// <summary>Another replica is refreshing this credential, or holds an answer it has not stored yet, and no valid token is at hand.</summary>
    public static CredentialException RefreshPending(CredentialKey key, bool heldByAnotherReplica, TimeSpan retryAfter) =>
        RefreshPending(key.Resource, key.Environment,
            heldByAnotherReplica
                ? "another replica refreshed it and has not stored the answer yet (the store was unreachable); it stores it as soon as it can."
                : "another replica is refreshing it right now.",
            retryAfter);

    /// <summary>The caller's own timeout (<c>timeouts.requestMs</c>) ran out while it waited for the credential.</summary>
    public static CredentialException RefreshPending(string resource, string environment, string why, TimeSpan retryAfter) =>
        new(StatusCodes.Status503ServiceUnavailable, "credential_refresh_pending",
            $"The credential of resource '{resource}' in '{environment}' is not ready: {why} Try again shortly.",
            new Dictionary<string, object?> { ["retryAfterSeconds"] = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)) });

    public static CredentialException Failed(CredentialKey key, string why) =>
        new(StatusCodes.Status502BadGateway, "credential_failed",
            $"The credential of resource '{key.Resource}' in '{key.Environment}' cannot be obtained: {why} Fix the resource's auth settings; Keyway will not call the provider again until they change.");
}

namespace Keyway.Credentials;

/// <summary>What happened to a credential.</summary>
internal enum CredentialEventKind
{
    Connected,
    Refreshed,
    RefreshFailed,
    Recovered,
    ReconnectRequired,
    Failed,
    Disconnected,
}

/// <summary>A credential transition. <c>Detail</c> is the provider's error, never a token.</summary>
internal sealed record CredentialEvent(CredentialKey Key, CredentialEventKind Kind, string? Detail)
{
    public TimeSpan? Duration { get; init; }
}

/// <summary>
/// Credential transitions, for the audit log, alerts and metrics. Subscribers must be quick and
/// must not throw: they run on the refresh path.
/// </summary>
internal sealed class CredentialEvents
{
    public event Action<CredentialEvent>? Raised;

    public void Publish(CredentialEvent e) => Raised?.Invoke(e);
}

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

    /// <summary>
    /// On a failure, the stored count of failures in a row, this one included: 1 is the first since the
    /// credential last worked, which is what alerts are raised on (once per transition, not per attempt).
    /// </summary>
    public long? Failures { get; init; }
}

/// <summary>
/// Credential transitions, for the audit log, alerts and metrics. Subscribers must be quick and
/// must not throw: they run on the refresh path.
/// </summary>
internal sealed class CredentialEvents
{
    public event Action<CredentialEvent>? Raised;

    /// <summary>
    /// Records a transition durably (the audit log's outbox): <see cref="PublishAsync"/> awaits it, so the
    /// engine goes on only once the transition's event is in the store. It must not throw.
    /// </summary>
    public Func<CredentialEvent, Task>? Record { get; set; }

    /// <summary>Records a transition that happened while the store was unreachable: it is written once the store is back. It must not block or throw.</summary>
    public Action<CredentialEvent>? RecordLater { get; set; }

    /// <summary>For a transition while the store does not answer: tells the subscribers and hands it to <see cref="RecordLater"/>, without waiting on the store.</summary>
    public void PublishWhileStoreDown(CredentialEvent e)
    {
        Raised?.Invoke(e);
        RecordLater?.Invoke(e);
    }

    /// <summary>Tells the subscribers, then waits for <see cref="Record"/>.</summary>
    public Task PublishAsync(CredentialEvent e)
    {
        Raised?.Invoke(e);
        return Record?.Invoke(e) ?? Task.CompletedTask;
    }
}

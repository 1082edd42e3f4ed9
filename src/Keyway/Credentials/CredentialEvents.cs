using System.Data.Common;

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
/// Credential transitions, for the audit log, alerts and metrics. A transition's audit event is staged
/// inside the store transaction that makes the transition (<see cref="StageFor"/>), so the two commit
/// together; <see cref="Committed"/> then tells the subscribers. Subscribers must be quick and must not
/// throw: they run on the refresh path.
/// </summary>
internal sealed class CredentialEvents
{
    public event Action<CredentialEvent>? Raised;

    /// <summary>Stages a transition's audit event in the given transaction (the audit log's outbox).</summary>
    public Func<CredentialEvent, DbTransaction, Task>? Stage { get; set; }

    /// <summary>Runs once a transaction that staged events has committed (wakes the audit writer). It must not block or throw.</summary>
    public Action? Staged { get; set; }

    /// <summary>Records a transition that happened while the store was unreachable: it is written once the store is back. It must not block or throw.</summary>
    public Action<CredentialEvent>? RecordLater { get; set; }

    /// <summary>What a store write passes its transaction to, so <paramref name="e"/>'s audit event commits with the write.</summary>
    public Func<DbTransaction, Task>? StageFor(CredentialEvent e) => Stage is { } stage ? transaction => stage(e, transaction) : null;

    /// <summary>After the write that staged <paramref name="e"/> committed: tells the subscribers.</summary>
    public void Committed(CredentialEvent e)
    {
        Staged?.Invoke();
        Raised?.Invoke(e);
    }

    /// <summary>For a transition while the store does not answer: tells the subscribers and hands it to <see cref="RecordLater"/>, without waiting on the store.</summary>
    public void PublishWhileStoreDown(CredentialEvent e)
    {
        Raised?.Invoke(e);
        RecordLater?.Invoke(e);
    }
}

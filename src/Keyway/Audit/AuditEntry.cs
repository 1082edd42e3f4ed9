using System.Data.Common;
using Keyway.Access;

namespace Keyway.Audit;

/// <summary>How an audited action ended.</summary>
internal static class AuditOutcome
{
    public const string Success = "success";
    public const string Failure = "failure";
    public const string Denied = "denied";
}

/// <summary>
/// One thing to record. <see cref="Action"/> is a dotted verb such as <c>resource.put</c>,
/// <c>variable.set</c>, <c>grant.add</c>, <c>user.create</c>, <c>key.revoke</c>, <c>signin.password</c>,
/// <c>signin.sso</c>, <c>credential.refreshed</c> or <c>run</c>. <see cref="Detail"/> holds plain
/// facts (method, path, status, duration, error code) and never a secret value: it passes the
/// redactor before it is stored.
/// </summary>
internal sealed record AuditEntry(string Action, string Outcome = AuditOutcome.Success)
{
    /// <summary>Who did it; null for Keyway itself (a scheduled refresh, say).</summary>
    public Caller? Actor { get; init; }

    public string? Resource { get; init; }
    public string? Environment { get; init; }

    /// <summary>What was acted on when it is not a resource: a user, group, key, variable or query name.</summary>
    public string? Target { get; init; }

    /// <summary>
    /// The plain facts. For a run (<see cref="Run"/> set) it is built from the run when read: the writer
    /// never reads it for a run, so the request thread never builds it.
    /// </summary>
    public IReadOnlyDictionary<string, object?>? Detail
    {
        get => _detail ?? Run?.ToDictionary();
        init => _detail = value;
    }

    /// <summary>
    /// A run's detail in typed form, set instead of <see cref="Detail"/> by <see cref="AuditEntries.Run"/>:
    /// a run is recorded on every proxied request, and a dictionary of boxed values there costs the
    /// request thread more than the rest of recording. It is stored as the same JSON text.
    /// </summary>
    public RunDetail? Run { get; init; }

    /// <summary>For a run, the bytes sent back to the caller when cheaply known (the access log's, not stored in the audit log).</summary>
    public long? BytesOut { get; init; }

    /// <summary>For a run, the bytes the caller sent when cheaply known (the access log's, not stored in the audit log).</summary>
    public long? BytesIn { get; init; }

    private readonly IReadOnlyDictionary<string, object?>? _detail;
}

/// <summary>
/// What a run's detail holds, stored as <c>{"kind","method","path","status","durationMs","refreshed","error"}</c>
/// in that order (<see cref="AuditRedaction"/>), exactly as the dictionary form was.
/// </summary>
internal readonly record struct RunDetail(
    string Kind, string Method, string Path, int? Status, long DurationMs, bool Refreshed, string? Error)
{
    /// <summary>The dictionary form, key for key in the stored order (for readers of <see cref="AuditEntry.Detail"/>).</summary>
    public IReadOnlyDictionary<string, object?> ToDictionary() => new Dictionary<string, object?>(8, StringComparer.Ordinal)
    {
        ["kind"] = Kind,
        ["method"] = Method,
        [AuditRedaction.PathKey] = Path,
        ["status"] = Status,
        ["durationMs"] = DurationMs,
        ["refreshed"] = Refreshed,
        ["error"] = Error,
    };
}

/// <summary>The append-only, hash-chained audit log. Recording waits when the queue is full; it never drops an event.</summary>
internal interface IAuditLog
{
    /// <summary>
    /// Queues <paramref name="entry"/> for the writer: for runs, which are many and record no change of
    /// their own. An event still queued when the process is killed is lost.
    /// </summary>
    ValueTask RecordAsync(AuditEntry entry, CancellationToken cancellationToken = default);

    /// <summary>
    /// Inserts <paramref name="entry"/> into the audit outbox inside <paramref name="transaction"/>, the
    /// transaction of the change it records: the change and its event commit together or not at all.
    /// Once the transaction commits, call <see cref="NotifyStaged"/> so the writer chains it at once.
    /// </summary>
    Task StageAsync(DbTransaction transaction, AuditEntry entry, CancellationToken cancellationToken) => RecordAsync(entry, cancellationToken).AsTask();

    /// <summary>Wakes the writer for events just committed by <see cref="StageAsync"/> (it also looks for them every few seconds).</summary>
    void NotifyStaged()
    {
    }

    /// <summary>
    /// Records an event that has no change of its own to ride with (a denial, a sign-in, an outcome the
    /// caller is about to be told of): it is in the outbox, committed, when this returns.
    /// </summary>
    Task RecordDurableAsync(AuditEntry entry, CancellationToken cancellationToken) => RecordAsync(entry, cancellationToken).AsTask();

    /// <summary>
    /// <see cref="RecordDurableAsync"/> while the store answers; while it is unreachable the entry is queued
    /// instead, and written once the store is back: for what is still served during an outage (a denial,
    /// a key's use, a credential transition), which must not wait on a store that does not answer.
    /// </summary>
    Task RecordDurableOrQueuedAsync(AuditEntry entry, CancellationToken cancellationToken) => RecordAsync(entry, cancellationToken).AsTask();

    /// <summary>
    /// Whether the queue is full while the store cannot be reached: an event recorded now would wait
    /// until the store is back, so work that must be recorded is refused up front
    /// (<c>503 store_unavailable</c>) instead of hanging.
    /// </summary>
    bool IsStalled => false;
}

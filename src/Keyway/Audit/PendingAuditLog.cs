namespace Keyway.Audit;

/// <summary>Placeholder until the chained audit log lands in this session's audit branch.</summary>
internal sealed class PendingAuditLog : IAuditLog
{
    public ValueTask RecordAsync(AuditEntry entry, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
}

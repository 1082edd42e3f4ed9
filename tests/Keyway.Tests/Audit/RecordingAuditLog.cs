using Keyway.Audit;

namespace Keyway.Tests.Audit;

/// <summary>An audit log that keeps what it is given, for tests of what a feature records.</summary>
internal sealed class RecordingAuditLog : IAuditLog
{
    private readonly Lock _lock = new();
    private readonly List<AuditEntry> _entries = [];

    public IReadOnlyList<AuditEntry> Entries
    {
        get
        {
            lock (_lock)
                return [.. _entries];
        }
    }

    public ValueTask RecordAsync(AuditEntry entry, CancellationToken cancellationToken = default)
    {
        lock (_lock)
            _entries.Add(entry);
        return ValueTask.CompletedTask;
    }
}

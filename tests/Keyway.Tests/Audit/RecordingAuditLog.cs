using System.Data.Common;
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

    /// <summary>Staging an event of this action throws, failing the transaction it is staged in (a crash at that point).</summary>
    public string? FailStagingOf { get; set; }

    public Task StageAsync(DbTransaction transaction, AuditEntry entry, CancellationToken cancellationToken) =>
        entry.Action == FailStagingOf
            ? throw new InvalidOperationException($"staging {entry.Action} failed (test)")
            : RecordAsync(entry, cancellationToken).AsTask();

    public ValueTask RecordAsync(AuditEntry entry, CancellationToken cancellationToken = default)
    {
        lock (_lock)
            _entries.Add(entry);
        return ValueTask.CompletedTask;
    }
}

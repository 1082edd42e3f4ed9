using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Keyway.Audit;

/// <summary>
/// What a prune leaves in place of the events it deleted (docs/audit.md, "Retention and checkpoints"):
/// the chain's hash at the cut (event <see cref="Seq"/>, the newest event the prune looked at), the
/// horizons it pruned to, how many events it deleted, and a digest of the events at or before the cut
/// it kept, sealed (<see cref="AuditSeal"/>) under the key the head's seal uses. Verification starts at
/// the newest checkpoint: the events after it must link to <see cref="Hash"/>, and those kept before it
/// must still give <see cref="KeptDigest"/>.
/// </summary>
internal sealed record AuditCheckpoint
{
    /// <summary>1 for the first prune's checkpoint, then one more for each: the newest is the highest.</summary>
    public long Number { get; init; }

    /// <summary>The seq of the event at the cut: every later event is kept.</summary>
    public long Seq { get; init; }

    public string? EventId { get; init; }

    /// <summary>The hash of the event at the cut: the next event's prev_hash.</summary>
    public string Hash { get; init; } = "";

    /// <summary>When the event at the cut happened (Unix ms).</summary>
    public long At { get; init; }

    /// <summary>When the prune ran (Unix ms).</summary>
    public long MadeAt { get; init; }

    /// <summary>Traffic events at or before the cut that happened before this (Unix ms) were pruned.</summary>
    public long TrafficBefore { get; init; }

    /// <summary>Change events at or before the cut that happened before this (Unix ms) were pruned.</summary>
    public long ChangesBefore { get; init; }

    /// <summary>How many events this prune deleted.</summary>
    public long Pruned { get; init; }

    /// <summary>How many events at or before the cut are kept (still within their retention).</summary>
    public long Kept { get; init; }

    /// <summary>SHA-256 over the kept events' seq and hash, oldest first (<see cref="KeptDigestBuilder"/>).</summary>
    public string KeptDigest { get; init; } = "";

    /// <summary>The archive file (its name in <c>KEYWAY_AUDIT_ARCHIVE_DIR</c>) that holds the pruned events, if one was written.</summary>
    public string? Archive { get; init; }

    public string? Seal { get; init; }

    public string? SealKey { get; init; }

    /// <summary>Whether an event at or before the cut is past the retention this checkpoint pruned to.</summary>
    public bool Expired(AuditEvent e) => e.At < (AuditRetention.IsTraffic(e.Action) ? TrafficBefore : ChangesBefore);

    /// <summary>What the seal covers: every field but the seal.</summary>
    internal string SealedText() => string.Create(CultureInfo.InvariantCulture,
        $"keyway audit checkpoint v1\n{Number}\n{Seq}\n{EventId}\n{Hash}\n{At}\n{MadeAt}\n{TrafficBefore}\n{ChangesBefore}\n{Pruned}\n{Kept}\n{KeptDigest}\n{Archive}");
}

/// <summary>The digest of the events a prune kept at or before its cut: SHA-256 over <c>seq:hash\n</c> of each, oldest first.</summary>
internal sealed class KeptDigestBuilder : IDisposable
{
    private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public long Count { get; private set; }

    public void Add(AuditEvent e)
    {
        _hash.AppendData(Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{e.Seq}:{e.Hash}\n")));
        Count++;
    }

    public string Finish() => Convert.ToHexStringLower(_hash.GetHashAndReset());

    public void Dispose() => _hash.Dispose();
}

using System.Data.Common;
using System.Globalization;
using System.Text.Json;
using Keyway.Access;
using Keyway.Storage;

namespace Keyway.Audit;

/// <summary>What a prune did, or with <see cref="DryRun"/> would do.</summary>
internal sealed record AuditPruneResult(
    bool DryRun, long Pruned, long TrafficPruned, long ChangesPruned, long Kept, long? CutSeq,
    DateTimeOffset? TrafficBefore, DateTimeOffset? ChangesBefore, AuditCheckpoint? Checkpoint, string? Archive);

/// <summary>
/// Cuts the audit log to its retention (docs/audit.md, "Retention and checkpoints"). The chain is one
/// sequence, so a prune walks it oldest first up to the <b>cut</b>: the last event before the first one
/// that is younger than the shorter of the two retentions (and never short of the previous cut). At or
/// before the cut it deletes every event past its own class's retention and keeps the rest — change
/// events younger than theirs, typically — whose seqs and hashes it folds into a digest. First it seals
/// a checkpoint (the chain's hash at the cut, the horizons, the counts, the digest); with an archive
/// directory it writes the events it will delete to a file, flushed to disk, before anything is deleted;
/// then it deletes them in batches, the first in the checkpoint's transaction.
/// <para>
/// A prune that stops half-way (a crash) leaves events the checkpoint says are past their retention:
/// verification passes over them, and the next prune deletes them. One prune runs at a time: on
/// PostgreSQL under a session advisory lock, so of several replicas one prunes; on SQLite in-process.
/// </para>
/// </summary>
internal sealed partial class AuditPruner(
    Database database, AuditStore store, AuditSeal seal, AuditRetention retention, TimeProvider time, IAuditLog audit, ILogger<AuditPruner> logger)
{
    // An arbitrary constant beside the append lock's: held (session-scoped) while one replica prunes.
    internal const long PruneLockId = 0x4b65_7977_6179_0014;

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, SemaphoreSlim> LocalLocks = new(StringComparer.Ordinal);
    private const int PageSize = 1000;

    /// <summary>
    /// Prunes what is past its retention; null when another prune holds the lock. <paramref name="actor"/>
    /// is who asked (null for the server's own schedule), recorded in the <c>audit.prune</c> event.
    /// </summary>
    public async Task<AuditPruneResult?> PruneAsync(bool dryRun, Caller? actor, CancellationToken cancellationToken)
    {
        await using var held = await TryLockAsync(cancellationToken);
        if (held is null)
        {
            return null;
        }

        var result = await PruneHeldAsync(dryRun, actor, cancellationToken);
        if (!dryRun && result.Checkpoint is { } checkpoint)
        {
            Log.Pruned(logger, result.Pruned, checkpoint.Seq, result.Kept, result.Archive ?? "none");
            // Its event committed with the checkpoint (DeleteAsync): let the writer chain it.
            audit.NotifyStaged();
        }

        return result;
    }

    private async Task<AuditPruneResult> PruneHeldAsync(bool dryRun, Caller? actor, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        // "Forever" is a horizon at the epoch: nothing happened before it.
        var trafficBefore = retention.Traffic is { } t ? (now - t).ToStore() : 0;
        var changesBefore = retention.Changes is { } c ? (now - c).ToStore() : 0;
        var cutBefore = Math.Max(trafficBefore, changesBefore);
        var previous = await store.NewestCheckpointAsync(cancellationToken);
        var rule = new AuditCheckpoint { TrafficBefore = trafficBefore, ChangesBefore = changesBefore };

        string? archiveName = null;
        string? partial = null;
        FileStream? archive = null;
        try
        {
            // The walk: to the cut, deciding each event; the archive is written as it goes.
            using var digest = new KeptDigestBuilder();
            AuditEvent? cut = null;
            long traffic = 0, changes = 0, firstPruned = 0;
            var after = 0L;
            var walking = true;
            while (walking)
            {
                var page = await store.PageAsync(after, PageSize, cancellationToken);
                if (page.Count == 0)
                {
                    break;
                }

                foreach (var e in page)
                {
                    if (e.At >= cutBefore && e.Seq > (previous?.Seq ?? 0))
                    {
                        walking = false;
                        break;
                    }

                    cut = e;
                    if (!rule.Expired(e))
                    {
                        digest.Add(e);
                        continue;
                    }

                    _ = AuditRetention.IsTraffic(e.Action) ? traffic++ : changes++;
                    if (firstPruned == 0)
                    {
                        firstPruned = e.Seq;
                    }

                    if (!dryRun && retention.ArchiveDirectory is { } directory)
                    {
                        if (archive is null)
                        {
                            archiveName = string.Create(CultureInfo.InvariantCulture, $"audit-{now:yyyyMMdd'T'HHmmss'Z'}-from-{e.Seq}.ndjson");
                            partial = Path.Combine(directory, archiveName + ".partial");
                            archive = new FileStream(partial, FileMode.Create, FileAccess.Write, FileShare.None, 64 * 1024, FileOptions.Asynchronous);
                        }

                        // The export's format, line for line (GET /api/v1/audit/export).
                        await archive.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(AuditEventView.From(e), JsonSerializerOptions.Web), cancellationToken);
                        archive.WriteByte((byte)'\n');
                    }
                }

                after = page[^1].Seq;
            }

            // The cut never moves back: the previous checkpoint's event may be gone, and the chain after it links to its hash.
            if (previous is not null && (cut is null || cut.Seq < previous.Seq))
            {
                cut = new AuditEvent { Seq = previous.Seq, Id = previous.EventId ?? "", Hash = previous.Hash, At = previous.At };
            }

            var pruned = traffic + changes;
            var result = new AuditPruneResult(dryRun, pruned, traffic, changes, digest.Count, cut?.Seq,
                retention.Traffic is null ? null : Time.From(trafficBefore), retention.Changes is null ? null : Time.From(changesBefore), null, null);
            if (dryRun || pruned == 0 || cut is null)
            {
                return result;
            }

            if (archive is not null)
            {
                // On disk before the first delete: a crash after it cannot lose an event the archive lacks.
                archive.Flush(flushToDisk: true);
                await archive.DisposeAsync();
                archive = null;
                File.Move(partial!, Path.Combine(retention.ArchiveDirectory!, archiveName!), overwrite: true);
                partial = null;
            }

            var checkpoint = rule with
            {
                Number = (previous?.Number ?? 0) + 1,
                Seq = cut.Seq,
                EventId = cut.Id.Length == 0 ? null : cut.Id,
                Hash = cut.Hash,
                At = cut.At,
                MadeAt = now.ToStore(),
                Pruned = pruned,
                Kept = digest.Count,
                KeptDigest = digest.Finish(),
                Archive = archiveName,
                SealKey = seal.KeyId,
            };
            checkpoint = checkpoint with { Seal = seal.Seal(checkpoint) };
            var pruneEvent = new AuditEntry("audit.prune")
            {
                Actor = actor,
                Detail = new Dictionary<string, object?>
                {
                    ["checkpoint"] = checkpoint.Number,
                    ["cutSeq"] = checkpoint.Seq,
                    ["pruned"] = result.Pruned,
                    ["traffic"] = result.TrafficPruned,
                    ["changes"] = result.ChangesPruned,
                    ["kept"] = result.Kept,
                    ["archive"] = checkpoint.Archive,
                },
            };
            await DeleteAsync(checkpoint, firstPruned, transaction => audit.StageAsync(transaction, pruneEvent, CancellationToken.None), cancellationToken);
            return result with { Checkpoint = checkpoint, Archive = archiveName };
        }
        finally
        {
            if (archive is not null)
            {
                await archive.DisposeAsync();
            }

            if (partial is not null)
            {
                File.Delete(partial);
            }
        }
    }

    /// <summary>
    /// The checkpoint, then the expired events at or before its cut, a batch per transaction, the first with
    /// the checkpoint and the prune's event (<paramref name="stage"/>): a checkpoint never stands without it.
    /// </summary>
    private async Task DeleteAsync(AuditCheckpoint checkpoint, long from, Func<DbTransaction, Task> stage, CancellationToken cancellationToken)
    {
        var traffic = string.Join(", ", AuditRetention.TrafficActions.Select(a => "'" + a + "'"));
        var delete = "DELETE FROM audit_events WHERE seq IN (SELECT seq FROM audit_events WHERE seq >= @from AND seq <= @cut AND " +
                     $"((action IN ({traffic}) AND at < @traffic) OR (action NOT IN ({traffic}) AND at < @changes)) ORDER BY seq LIMIT @batch)";
        var first = true;
        while (true)
        {
            await using var connection = await database.OpenAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            if (first)
            {
                await connection.ExecuteAsync(
                    "INSERT INTO audit_checkpoints (number, seq, event_id, hash, at, made_at, traffic_before, changes_before, pruned, kept, kept_digest, archive, seal, seal_key) " +
                    "VALUES (@Number, @Seq, @EventId, @Hash, @At, @MadeAt, @TrafficBefore, @ChangesBefore, @Pruned, @Kept, @KeptDigest, @Archive, @Seal, @SealKey)",
                    checkpoint, transaction);
                await stage(transaction);
                first = false;
            }

            var deleted = await connection.ExecuteAsync(delete,
                new { from, cut = checkpoint.Seq, traffic = checkpoint.TrafficBefore, changes = checkpoint.ChangesBefore, batch = retention.BatchSize }, transaction);
            await transaction.CommitAsync(cancellationToken);
            if (deleted < retention.BatchSize)
            {
                return;
            }
        }
    }

    private async Task<IAsyncDisposable?> TryLockAsync(CancellationToken cancellationToken)
    {
        if (database.Kind == StoreKind.Sqlite)
        {
            var gate = LocalLocks.GetOrAdd(database.Description, _ => new SemaphoreSlim(1, 1));
            return await gate.WaitAsync(TimeSpan.Zero, cancellationToken) ? new LocalHeld(gate) : null;
        }

        var connection = await database.OpenAsync(cancellationToken);
        try
        {
            if (await connection.ExecuteScalarAsync<bool>("SELECT pg_try_advisory_lock(@id)", new { id = PruneLockId }))
            {
                return new Held(connection);
            }
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        await connection.DisposeAsync();
        return null;
    }

    private sealed class LocalHeld(SemaphoreSlim gate) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            gate.Release();
            return ValueTask.CompletedTask;
        }
    }

    private sealed class Held(DbConnection connection) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            try
            {
                // The connection goes back to the pool: the session lock must not go with it.
                await connection.ExecuteAsync("SELECT pg_advisory_unlock(@id)", new { id = PruneLockId });
            }
            finally
            {
                await connection.DisposeAsync();
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Information,
            Message = "Pruned {Pruned} audit events through seq {CutSeq}; {Kept} kept there within their retention; archive {Archive}.")]
        public static partial void Pruned(ILogger logger, long pruned, long cutSeq, long kept, string archive);
    }
}

/// <summary>
/// Prunes the audit log on a schedule: a minute after start, then every <see cref="AuditRetention.Interval"/>.
/// A failed prune is logged and tried at the next tick; one another replica is running is left to it.
/// </summary>
internal sealed partial class AuditPruneService(AuditPruner pruner, AuditRetention retention, TimeProvider time, ILogger<AuditPruneService> logger) : BackgroundService
{
    private static readonly TimeSpan FirstDelay = TimeSpan.FromMinutes(1);

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if ((retention.Traffic is null && retention.Changes is null) || retention.Interval is not { } interval)
        {
            return;
        }

        using var timer = new PeriodicTimer(interval, time);
        try
        {
            // The first a minute after start, once the server has settled: a server restarted more often
            // than the interval still prunes.
            await Task.Delay(Min(FirstDelay, interval), time, stoppingToken);
            do
            {
                try
                {
                    await pruner.PruneAsync(dryRun: false, actor: null, stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Log.Failed(logger, e);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Pruning the audit log failed; it is tried again at the next interval.")]
        public static partial void Failed(ILogger logger, Exception exception);
    }
}

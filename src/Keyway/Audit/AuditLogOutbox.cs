using System.Data.Common;
using Keyway.Storage;

namespace Keyway.Audit;

/// <summary>
/// The audit log's outbox side: a change stages its event in its own transaction
/// (<see cref="AuditOutbox"/>), wakes the writer once it commits, and the writer also looks for
/// events that nobody woke it for. The writer itself (<c>WriteAsync</c>) takes them with each batch.
/// </summary>
internal sealed partial class AuditLog
{
    /// <inheritdoc />
    public async Task StageAsync(DbTransaction transaction, AuditEntry entry, CancellationToken cancellationToken)
    {
        // Redacted now, with the secrets known now: the outbox is a table like any other and must not hold one.
        var redactor = await _knownSecrets(cancellationToken);
        await AuditOutbox.StageAsync(transaction, entry, _time.GetUtcNow().ToUnixTimeMilliseconds(), redactor);
    }

    /// <inheritdoc />
    public void NotifyStaged()
    {
        Volatile.Write(ref _outboxWaiting, 1);
        // When the queue is full the writer is busy anyway, and its next batch sees the flag.
        _queue.Writer.TryWrite(new Pending(s_wake, 0));
    }

    /// <inheritdoc />
    public async Task RecordDurableAsync(AuditEntry entry, CancellationToken cancellationToken)
    {
        await using (var connection = await _database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await StageAsync(transaction, entry, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        NotifyStaged();
    }

    /// <inheritdoc />
    public async Task RecordDurableOrQueuedAsync(AuditEntry entry, CancellationToken cancellationToken)
    {
        if (_outage?.Since is null)
        {
            try
            {
                await RecordDurableAsync(entry, cancellationToken);
                return;
            }
            catch (Exception e) when (StoreFailure.IsUnavailable(e))
            {
                _outage?.Observe(e);
            }
        }

        await RecordAsync(entry, cancellationToken);
    }

    /// <summary>Wakes the writer when the outbox holds events nobody woke it for (another replica's, left when it died).</summary>
    private async Task PollOutboxAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.OutboxPoll, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    if (Volatile.Read(ref _outboxWaiting) == 0 && await AuditOutbox.AnyAsync(_database, stoppingToken))
                    {
                        NotifyStaged();
                    }
                }
                catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
                {
                    // The store is away: the writer's own retries say so, and the next tick looks again.
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }
}

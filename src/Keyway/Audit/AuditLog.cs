using System.Data.Common;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Keyway.Access;
using Keyway.Hosting;
using Keyway.Secrets;
using Keyway.Storage;

namespace Keyway.Audit;

/// <summary>How the audit log queues and writes.</summary>
internal sealed record AuditOptions
{
    /// <summary>
    /// Events waiting to be written. When the queue is full, <see cref="AuditLog.RecordAsync"/> waits
    /// for room (the request that records is slowed down), so an event is never dropped.
    /// </summary>
    public int QueueCapacity { get; init; } = 10_000;

    /// <summary>The most events written in one transaction.</summary>
    public int BatchSize { get; init; } = 500;

    /// <summary>
    /// Group commit: when the writer wakes to fewer events than a full batch (and nobody is waiting for
    /// room), it waits this long for more before writing, so a trickle of requests costs one transaction
    /// per linger instead of one per event. Zero writes at once. Against 2 ms, 10 ms took the writer's
    /// WAL writes from 0.83 to 0.54 per proxied request, its futex calls from 0.35 to 0.17 and its file
    /// locks from 0.17 to 0.07; 20 ms saved a little more but each batch's write, a longer burst, showed
    /// in the p99 latency at concurrency 1 (docs/benchmarks.md, "What the audit costs in place, and bigger batches").
    /// </summary>
    public TimeSpan Linger { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>
    /// How often the writer looks for events in the outbox that nobody woke it for: those another replica
    /// staged and did not chain before it died (on PostgreSQL). Events staged here wake it at once.
    /// </summary>
    public TimeSpan OutboxPoll { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The longest wait between two attempts when the store refuses a batch.</summary>
    public TimeSpan MaxRetryDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Reads <c>KEYWAY_AUDIT_QUEUE</c> (the queue's capacity) and <c>KEYWAY_AUDIT_LINGER_MS</c> (<see cref="Linger"/>).</summary>
    /// <exception cref="StartupException">A value is not a number in range.</exception>
    public static AuditOptions FromEnvironment(Func<string, string?>? variable = null)
    {
        variable ??= Environment.GetEnvironmentVariable;
        var options = new AuditOptions();
        var capacity = variable("KEYWAY_AUDIT_QUEUE");
        if (!string.IsNullOrEmpty(capacity))
        {
            options = int.TryParse(capacity, System.Globalization.CultureInfo.InvariantCulture, out var value) && value > 0
                ? options with { QueueCapacity = value }
                : throw new StartupException($"KEYWAY_AUDIT_QUEUE must be a positive number of events, not '{capacity}'.");
        }

        var linger = variable("KEYWAY_AUDIT_LINGER_MS");
        if (!string.IsNullOrEmpty(linger))
        {
            options = int.TryParse(linger, System.Globalization.CultureInfo.InvariantCulture, out var ms) && ms is >= 0 and <= 1000
                ? options with { Linger = TimeSpan.FromMilliseconds(ms) }
                : throw new StartupException($"KEYWAY_AUDIT_LINGER_MS must be a number of milliseconds from 0 to 1000, not '{linger}'.");
        }

        return options;
    }
}

/// <summary>
/// The hash-chained audit log. <see cref="RecordAsync"/> stamps the time and puts the entry on a
/// bounded queue; a background writer takes what is queued, redacts, serializes and hashes it, and
/// appends it in one transaction that also moves the chain head. On PostgreSQL the append holds a
/// transaction-scoped advisory lock and reads the head inside the transaction, so replicas writing
/// at once still form one linear chain. Stopping flushes the queue.
/// Changes do not queue their events: they stage them in the audit outbox in their own transaction
/// (<see cref="StageAsync"/>, <see cref="RecordDurableAsync"/>), and each batch also takes what waits
/// there, first thing after start too, so no acknowledged change loses its event to a crash.
/// </summary>
internal sealed partial class AuditLog : BackgroundService, IAuditLog
{
    // An arbitrary constant: the advisory lock id that serializes appends across replicas.
    internal const long AppendLockId = 0x4b65_7977_6179_0004;

    private readonly Database _database;
    private readonly StoreOutage? _outage;
    private readonly AccessLog? _access;
    private readonly AuditSeal _seal;
    private readonly TimeProvider _time;
    private readonly Func<CancellationToken, Task<Redactor>> _knownSecrets;
    private readonly AuditOptions _options;
    private readonly ILogger<AuditLog> _logger;
    private readonly Channel<Pending> _queue;
    private readonly SemaphoreSlim _writing = new(1, 1);
    private readonly Meter _meter = new(KeywayMetrics.MeterName);
    private readonly Counter<long> _written;
    private readonly Counter<long> _waited;
    private readonly Counter<long> _failures;
    private readonly Histogram<double> _runs;
    private volatile bool _stopping;
    private int _batches;
    private List<Pending>? _carried;

    // 1 when the outbox may hold events (set at start, when one is staged, and by the poll); the next batch takes them.
    private int _outboxWaiting = 1;

    // Queued to wake the writer for the outbox; never written to the chain.
    private static readonly AuditEntry s_wake = new("outbox.wake");

    // The writer's scratch, used only while holding _writing.
    private readonly AuditEncoder _encoder = new();
    private AuditRow[] _rows = [];

    // On SQLite the writer keeps a connection of its own (see SqliteWriterAsync) and its prepared statements.
    private DbConnection? _sqlite;
    private SqliteAuditAppend? _sqliteAppend;

    public AuditLog(
        Database database, AuditSeal seal, TimeProvider time, Func<CancellationToken, Task<Redactor>> knownSecrets, AuditOptions options, ILogger<AuditLog> logger,
        StoreOutage? outage = null, AccessLog? access = null)
    {
        _outage = outage;
        _access = access;
        _database = database;
        _seal = seal;
        _time = time;
        _knownSecrets = knownSecrets;
        _options = options;
        _logger = logger;
        _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(options.QueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = false,
        });
        _meter.CreateObservableGauge("keyway.audit.queue.depth", () => _queue.Reader.Count,
            description: "Audit events waiting to be written.");
        _written = _meter.CreateCounter<long>("keyway.audit.events", description: "Audit events written to the chain.");
        _waited = _meter.CreateCounter<long>("keyway.audit.queue.full", description: "Times a caller waited because the audit queue was full.");
        _failures = _meter.CreateCounter<long>("keyway.audit.write.failures", description: "Batches the store refused (they are retried).");
        // Recorded by the writer once a run is in the chain: the metric agrees with the audit log and
        // costs the request nothing. Millisecond resolution, as the audit records it.
        _runs = _meter.CreateHistogram("keyway.run.duration", unit: "s",
            description: "Runs (proxied requests, /run and saved queries) by kind, resource, environment and status class, as recorded in the audit log.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] });
    }

    /// <summary>Transactions the writer has committed (for the group-commit tests).</summary>
    internal int BatchesWritten => Volatile.Read(ref _batches);

    /// <summary>Events queued and not yet written.</summary>
    public int QueueDepth => _queue.Reader.Count;

    /// <inheritdoc />
    public bool IsStalled => Volatile.Read(ref _writerFailing) != 0 && _queue.Reader.Count >= _options.QueueCapacity;

    // 1 while the writer's last attempt failed (the store is down, or takes reads but not writes), 0 once a batch is written.
    private int _writerFailing;

    /// <summary>The queue's reading end, for the enqueue benchmark (which drains it instead of the writer).</summary>
    internal ChannelReader<Pending> Queue => _queue.Reader;

    /// <inheritdoc />
    public ValueTask RecordAsync(AuditEntry entry, CancellationToken cancellationToken = default)
    {
        var pending = new Pending(entry, _time.GetUtcNow().ToUnixTimeMilliseconds());
        _access?.Write(entry, pending.At);
        if (!_stopping && _queue.Writer.TryWrite(pending))
        {
            return ValueTask.CompletedTask;
        }

        return RecordSlowAsync(pending, cancellationToken);
    }

    private async ValueTask RecordSlowAsync(Pending pending, CancellationToken cancellationToken)
    {
        if (!_stopping)
        {
            // Full: wait for room. Dropping would leave a hole nobody sees; failing would fail the caller's
            // request for a reason that is not theirs. Waiting slows callers down while the store catches up.
            _waited.Add(1);
            Log.QueueFull(_logger, _options.QueueCapacity);
            try
            {
                await _queue.Writer.WriteAsync(pending, cancellationToken);
                return;
            }
            catch (ChannelClosedException)
            {
                // Stopping began while we waited: fall through.
            }
        }

        // The writer has stopped reading (the host is stopping): write this one ourselves rather than leave it in the queue.
        await WriteAsync([pending], cancellationToken);
    }

    private void RecordRuns(IReadOnlyList<Pending> batch)
    {
        foreach (var pending in batch)
        {
            if (pending.Entry.Run is { } run)
            {
                RecordRunMetric(pending.Entry.Resource, pending.Entry.Environment, run);
            }
        }
    }

    /// <summary>
    /// Measures a run in <c>keyway.run.duration</c>: for a run in the chain, once written; for one rolled up
    /// (<see cref="TrafficAudit"/>), on the request thread, and only while something listens.
    /// </summary>
    internal void RecordRunMetric(string? resource, string? environment, in RunDetail run)
    {
        if (!_runs.Enabled)
        {
            return;
        }

        var tags = new TagList
        {
            { "kind", run.Kind },
            { "resource", resource },
            { "environment", environment },
            { "status", StatusClass(run) },
        };
        _runs.Record(run.DurationMs / 1000.0, tags);
    }

    /// <summary>"2xx" … "5xx" for an upstream answer, "error" when Keyway failed the run itself.</summary>
    internal static string StatusClass(RunDetail run) => run.Error is not null && (run.Status is null or < 100) ? "error" : run.Status switch
    {
        < 200 => "1xx",
        < 300 => "2xx",
        < 400 => "3xx",
        < 500 => "4xx",
        _ => "5xx",
    };

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var batch = new List<Pending>(_options.BatchSize);
        var poll = PollOutboxAsync(stoppingToken);
        // Events a killed process staged and never chained are taken by the first batch.
        NotifyStaged();
        try
        {
            while (await _queue.Reader.WaitToReadAsync(stoppingToken))
            {
                var waiting = _queue.Reader.Count;
                if (_options.Linger > TimeSpan.Zero && waiting < _options.BatchSize && waiting < _options.QueueCapacity)
                {
                    await Task.Delay(_options.Linger, _time, stoppingToken);
                }

                while (batch.Count < _options.BatchSize && _queue.Reader.TryRead(out var item))
                {
                    if (!ReferenceEquals(item.Entry, s_wake))
                    {
                        batch.Add(item);
                    }
                }

                await WriteWithRetryAsync(batch, stoppingToken);
                batch.Clear();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // A batch still in hand goes back to the front of the line: StopAsync writes it first.
            _carried = batch.Count > 0 ? [.. batch] : null;
        }

        await poll;
    }

    /// <summary>Stops the loop, then writes everything still queued before the host exits.</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        // From here on a recorder that finds the queue closed writes its event itself (RecordSlowAsync).
        _queue.Writer.TryComplete();
        await base.StopAsync(cancellationToken);
        var remaining = _carried ?? [];
        while (_queue.Reader.TryRead(out var item))
        {
            if (!ReferenceEquals(item.Entry, s_wake))
            {
                remaining.Add(item);
            }
        }

        for (var i = 0; i < remaining.Count; i += _options.BatchSize)
        {
            var batch = remaining.GetRange(i, Math.Min(_options.BatchSize, remaining.Count - i));
            try
            {
                await WriteAsync(batch, cancellationToken);
            }
            catch (Exception e) when (e is DbException or OperationCanceledException or InvalidOperationException)
            {
                // Said loudly: these events are lost, and the log says how many.
                Log.Lost(_logger, remaining.Count - i, e.GetType().Name);
                return;
            }
        }

        if (remaining.Count > 0)
        {
            Log.Flushed(_logger, remaining.Count);
        }

        try
        {
            // Staged events are durable already; chaining them now only spares the next start the work.
            Volatile.Write(ref _outboxWaiting, 1);
            await WriteAsync([], cancellationToken);
        }
        catch (Exception e) when (e is DbException or OperationCanceledException or InvalidOperationException)
        {
            Log.OutboxLeft(_logger, e.GetType().Name);
        }

        await _writing.WaitAsync(CancellationToken.None);
        try
        {
            await CloseSqliteWriterAsync();
        }
        finally
        {
            _writing.Release();
        }
    }

    private async Task WriteWithRetryAsync(List<Pending> batch, CancellationToken cancellationToken)
    {
        var delay = TimeSpan.FromMilliseconds(250);
        while (true)
        {
            try
            {
                // Not cancelled by stopping: a batch half-committed could not be told from one never written.
                await WriteAsync(batch, CancellationToken.None);
                Volatile.Write(ref _writerFailing, 0);
                _outage?.Reached();
                return;
            }
            catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
            {
                // The store is down or busy, or the batch failed otherwise: keep it (callers wait once the queue fills,
                // or are refused while the store is unreachable) and try again, at the latest after the backoff, and
                // sooner once this replica reaches the store again. Never let the writer die: that would stop the server.
                Volatile.Write(ref _writerFailing, 1);
                _failures.Add(1);
                Log.WriteFailed(_logger, batch.Count, e.GetType().Name, delay.TotalMilliseconds);
                if (_outage is not null && _outage.Observe(e))
                {
                    await _outage.DelayAsync(delay, TimeSpan.FromMilliseconds(250), cancellationToken);
                }
                else
                {
                    await Task.Delay(delay, _time, cancellationToken);
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.MaxRetryDelay.Ticks));
            }
        }
    }

    /// <summary>
    /// At start: a chain whose head has no seal this server can check (a store from before seals, or
    /// one sealed under a master key since rotated away) gets an <c>audit.seal</c> event, and writing it
    /// seals the head. The event says why, so one that nobody expects stands out in the log. A seal that
    /// does not match is never resealed: that is tampering, and <c>keyway audit verify</c> reports it.
    /// </summary>
    public async Task SealAtStartAsync(AuditStore store, CancellationToken cancellationToken)
    {
        var head = await store.HeadAsync(cancellationToken);
        var check = _seal.Check(head);
        if (check == SealCheck.Mismatch)
        {
            Log.SealMismatch(_logger, head.Seq);
            return;
        }

        if (head.Seq == 0 || check == SealCheck.Valid)
        {
            return;
        }

        var reason = check == SealCheck.Missing ? "unsealed" : "sealed_under_another_master_key";
        Log.Sealing(_logger, head.Seq, reason);
        await RecordDurableAsync(new AuditEntry("audit.seal")
        {
            Detail = new Dictionary<string, object?> { ["reason"] = reason, ["headSeq"] = head.Seq, ["previousSealKey"] = head.SealKey, ["sealKey"] = _seal.KeyId },
        }, cancellationToken);
    }

    /// <summary>Appends what waits in the outbox (when it may hold events), then <paramref name="batch"/>, to the chain in one transaction.</summary>
    internal async Task WriteAsync(IReadOnlyList<Pending> batch, CancellationToken cancellationToken)
    {
        var drain = Interlocked.Exchange(ref _outboxWaiting, 0) != 0;
        if (batch.Count == 0 && !drain)
        {
            return;
        }

        var redactor = await _knownSecrets(cancellationToken);
        await _writing.WaitAsync(cancellationToken);
        var sqlite = _database.Kind == StoreKind.Sqlite;
        DbConnection? pooled = null;
        var count = 0;
        try
        {
            var connection = sqlite ? await SqliteWriterAsync(cancellationToken) : pooled = await _database.OpenAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var append = sqlite ? _sqliteAppend ??= new SqliteAuditAppend((Microsoft.Data.Sqlite.SqliteConnection)connection) : null;
            long seq;
            string previous;
            if (append is not null)
            {
                (seq, previous) = append.ReadHead();
            }
            else
            {
                await connection.ExecuteAsync("SELECT pg_advisory_xact_lock(@id)", new { id = AppendLockId }, transaction);
                var head = await connection.QuerySingleAsync<HeadRow>("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE", transaction: transaction);
                (seq, previous) = (head.Seq, head.Hash);
            }

            // Under the lock, so no other replica chains the same staged events.
            var staged = drain ? await AuditOutbox.TakeAsync(connection, transaction, _options.BatchSize) : [];
            count = staged.Count + batch.Count;
            if (count == 0)
            {
                return;
            }

            // Under the lock: the rows and the encoder's buffers are reused from batch to batch.
            var rows = Rows(count);
            for (var i = 0; i < count; i++)
            {
                ref var row = ref rows[i];
                if (i < staged.Count)
                {
                    row = staged[i].ToRow();
                }
                else
                {
                    (row.Entry, row.At) = batch[i - staged.Count];
                    row.Id = NewId(row.At);
                    row.Staged = false;
                }

                row.Seq = ++seq;
                row.PrevHash = previous;
                _encoder.Encode(ref row, redactor);
                previous = row.Hash;
            }

            var last = rows[count - 1];
            var seal = _seal.Seal(last.Seq, last.Id, last.Hash);
            if (append is not null)
            {
                append.Insert(rows.AsSpan(0, count));
                append.MoveHead(last, seal, _seal.KeyId);
            }
            else
            {
                await AuditInsert.InsertPostgresAsync(connection, transaction, rows.AsMemory(0, count), cancellationToken);
                await connection.ExecuteAsync(
                    "UPDATE audit_head SET seq = @Seq, event_id = @Id, hash = @Hash, seal = @seal, seal_key = @sealKey WHERE id = 1",
                    new { last.Seq, last.Id, last.Hash, seal, sealKey = _seal.KeyId }, transaction);
            }

            if (staged.Count > 0)
            {
                await AuditOutbox.DeleteAsync(connection, transaction, staged);
            }

            await transaction.CommitAsync(cancellationToken);
            _written.Add(count);
            Interlocked.Increment(ref _batches);
            if (staged.Count == _options.BatchSize)
            {
                // More may wait: the next batch takes them.
                NotifyStaged();
            }

            if (_runs.Enabled)
            {
                RecordRuns(batch);
            }
        }
        catch
        {
            if (drain)
            {
                // What was not chained still waits: the retry takes it.
                Volatile.Write(ref _outboxWaiting, 1);
            }

            if (sqlite)
            {
                // The next batch starts from a fresh connection rather than one in an unknown state.
                await CloseSqliteWriterAsync();
            }

            throw;
        }
        finally
        {
            if (pooled is not null)
            {
                await pooled.DisposeAsync();
            }

            // The rows hold entries (and their callers) until the next batch overwrites them: let them go now.
            Array.Clear(_rows, 0, Math.Min(count, _rows.Length));
            _writing.Release();
        }
    }

    /// <summary>
    /// The writer's own SQLite connection, outside the pool, with <c>synchronous=NORMAL</c>: in WAL mode
    /// a commit is then not flushed to disk by itself but by the next checkpoint or the next
    /// <c>FULL</c> commit of another connection. An event survives Keyway crashing (it is in the
    /// operating system's cache) but the last moments before a power loss or an OS crash may be lost,
    /// never half-written: the chain stays whole. Every other write (credentials, configuration)
    /// keeps the pool's <c>FULL</c>, which is why this connection is not pooled.
    /// </summary>
    private async Task<DbConnection> SqliteWriterAsync(CancellationToken cancellationToken)
    {
        if (_sqlite is not null)
        {
            return _sqlite;
        }

        var connection = _database.CreateUnpooledConnection();
        try
        {
            await connection.OpenAsync(cancellationToken);
            await connection.ExecuteAsync("PRAGMA synchronous=NORMAL");
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        return _sqlite = connection;
    }

    private async ValueTask CloseSqliteWriterAsync()
    {
        _sqliteAppend?.Dispose();
        _sqliteAppend = null;

        if (_sqlite is not null)
        {
            await _sqlite.DisposeAsync();
            _sqlite = null;
        }
    }

    private AuditRow[] Rows(int count)
    {
        if (_rows.Length < count)
        {
            _rows = new AuditRow[Math.Max(count, _options.BatchSize)];
        }

        return _rows;
    }

    /// <summary>
    /// "ev_" and a version 7 UUID: 48 bits of Unix milliseconds, then 74 random bits. The bits come
    /// from <see cref="Random.Shared"/>, not the cryptographic generator Guid.CreateVersion7 calls into
    /// OpenSSL for on every id: an event id must be unique, not unguessable, and that call was a fifth
    /// of the writer's CPU under proxy load.
    /// </summary>
    internal static string NewId(long at)
    {
        Span<byte> bytes = stackalloc byte[16];
        Random.Shared.NextBytes(bytes);
        for (var i = 0; i < 6; i++)
        {
            bytes[i] = (byte)(at >> (40 - (8 * i)));
        }

        bytes[6] = (byte)((bytes[6] & 0x0F) | 0x70); // version 7
        bytes[8] = (byte)((bytes[8] & 0x3F) | 0x80); // RFC 9562 variant
        return string.Create(35, new Guid(bytes, bigEndian: true), static (span, guid) =>
        {
            "ev_".CopyTo(span);
            guid.TryFormat(span[3..], out _, "N");
        });
    }

    /// <summary>The stored form of an entry, before its hash.</summary>
    internal static AuditEvent ToEvent(AuditEntry entry, long at, long seq, string id, string? detail, string previousHash)
    {
        var row = new AuditRow { Entry = entry };
        return new AuditEvent
        {
            Seq = seq,
            Id = id,
            At = at,
            ActorId = row.ActorId,
            ActorName = row.ActorName,
            ActorKind = row.ActorKindName,
            KeyId = row.KeyId,
            Action = entry.Action,
            Outcome = entry.Outcome,
            Resource = entry.Resource,
            Environment = entry.Environment,
            Target = entry.Target,
            Detail = detail,
            PrevHash = previousHash,
        };
    }

    public override void Dispose()
    {
        _sqliteAppend?.Dispose();
        _sqlite?.Dispose();
        _meter.Dispose();
        _writing.Dispose();
        _encoder.Dispose();
        base.Dispose();
    }

    internal readonly record struct Pending(AuditEntry Entry, long At);

    private sealed class HeadRow
    {
        public long Seq { get; init; }
        public string Hash { get; init; } = "";
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "The audit queue is full ({Capacity} events): the caller waits until the writer catches up")]
        public static partial void QueueFull(ILogger logger, int capacity);

        [LoggerMessage(2, LogLevel.Warning, "Writing {Count} audit events failed ({Error}); retrying in {DelayMs} ms")]
        public static partial void WriteFailed(ILogger logger, int count, string error, double delayMs);

        [LoggerMessage(3, LogLevel.Information, "Flushed {Count} queued audit events at shutdown")]
        public static partial void Flushed(ILogger logger, int count);

        [LoggerMessage(4, LogLevel.Error, "{Count} audit events could not be written at shutdown ({Error}); they are lost")]
        public static partial void Lost(ILogger logger, int count, string error);

        [LoggerMessage(5, LogLevel.Warning, "The audit chain head (event {Seq}) has no seal this server can check ({Reason}); an audit.seal event seals it now")]
        public static partial void Sealing(ILogger logger, long seq, string reason);

        [LoggerMessage(7, LogLevel.Information, "Staged audit events could not be chained at shutdown ({Error}); the next start chains them")]
        public static partial void OutboxLeft(ILogger logger, string error);

        [LoggerMessage(6, LogLevel.Error, "The audit chain head's seal does not match event {Seq}: the log may have been rewritten in the database. Run `keyway audit verify`")]
        public static partial void SealMismatch(ILogger logger, long seq);
    }
}

using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Keyway.Access;
using Keyway.Hosting;

namespace Keyway.Audit;

/// <summary>
/// Rolls runs up into one <c>traffic.rollup</c> event per caller, resource, environment, kind, saved
/// query, method and status class per interval (docs/audit.md, "Traffic modes").
/// <para>
/// The request thread (<see cref="Add"/>) finds its bucket in the open interval's dictionary (no
/// allocation once the bucket exists) and adds to it with interlocked operations. Closing an interval
/// swaps in a new dictionary, marks the old one closed, waits for the few adders still inside a bucket
/// of it, and records one event per bucket. An adder that finds its interval closed adds again to the
/// new one, so no run is counted twice or lost between intervals.
/// </para>
/// <para>
/// Intervals are aligned to the clock and closed by a timer on the injected <see cref="TimeProvider"/>;
/// stopping closes the open one. This service is registered after the audit log, so it stops (and
/// records its last events) before the audit log stops and flushes its queue. A process killed outright
/// loses the open interval's counts: the access log has those requests one by one.
/// </para>
/// </summary>
internal sealed partial class TrafficRollup : BackgroundService
{
    public const string Action = "traffic.rollup";

    private readonly IAuditLog _audit;
    private readonly TimeProvider _time;
    private readonly long _intervalMs;
    private readonly ILogger<TrafficRollup> _logger;
    private readonly SemaphoreSlim _closing = new(1, 1);
    private readonly Meter _meter = new(KeywayMetrics.MeterName);
    private readonly Counter<long> _requests;
    private readonly Counter<long> _events;
    private Interval _open;

    public TrafficRollup(IAuditLog audit, TrafficOptions options, TimeProvider time, ILogger<TrafficRollup> logger)
    {
        _audit = audit;
        _time = time;
        _intervalMs = (long)options.Interval.TotalMilliseconds;
        _logger = logger;
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        _open = new Interval(now - (now % _intervalMs));
        // Counted when an interval closes, never on the request thread.
        _requests = _meter.CreateCounter<long>("keyway.audit.rollup.requests", description: "Runs counted in traffic.rollup events.");
        _events = _meter.CreateCounter<long>("keyway.audit.rollup.events", description: "traffic.rollup events recorded.");
    }

    /// <summary>Counts a run in the open interval.</summary>
    public void Add(Caller caller, string resource, string environment, string? query, in RunDetail run, long atMs, long? bytesIn, long? bytesOut)
    {
        var key = new RollupKey(run.Kind, caller.ApiKeyId ?? caller.UserId, resource, environment, query, run.Method, AuditLog.StatusClass(run));
        while (true)
        {
            var open = Volatile.Read(ref _open);
            if (!open.Buckets.TryGetValue(key, out var bucket))
            {
                bucket = open.Buckets.GetOrAdd(key, static (_, c) => new Bucket(c), caller);
            }

            if (bucket.TryAdd(open, run, atMs, bytesIn, bytesOut))
            {
                return;
            }

            // The interval closed between reading it and adding: the next one is already open.
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (true)
            {
                // The boundary after the open interval's start, whenever this loop gets to run.
                var next = Volatile.Read(ref _open).StartMs + _intervalMs;
                next -= next % _intervalMs;
                var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
                if (next > now)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(next - now), _time, stoppingToken);
                }
                else
                {
                    // Behind (the process was paused): close at the last boundary passed.
                    next = now - (now % _intervalMs);
                }

                // Not cancelled by stopping: the counts are in hand, and stopping waits for this close.
                await CloseAsync(next, CancellationToken.None);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Stops the timer, then records the open interval (up to now) before the audit log stops.</summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        var recorded = await CloseAsync(null, cancellationToken);
        if (recorded > 0)
        {
            Log.Flushed(_logger, recorded);
        }
    }

    /// <summary>
    /// Closes the open interval at <paramref name="endMs"/> (a boundary; null: now, and the next interval
    /// starts now) and records one event per bucket. Returns how many events were recorded.
    /// </summary>
    internal async Task<int> CloseAsync(long? endMs, CancellationToken cancellationToken)
    {
        await _closing.WaitAsync(cancellationToken);
        try
        {
            var end = endMs ?? _time.GetUtcNow().ToUnixTimeMilliseconds();
            var closed = Interlocked.Exchange(ref _open, new Interval(end));
            // A full fence: an adder that entered a bucket after this sees the interval closed and moves on.
            Interlocked.Exchange(ref closed.Closed, 1);
            var entries = new List<AuditEntry>(closed.Buckets.Count);
            long requests = 0;
            foreach (var (key, bucket) in closed.Buckets)
            {
                bucket.WaitForAdders();
                if (bucket.Count > 0)
                {
                    entries.Add(bucket.ToEntry(key, closed.StartMs, end));
                    requests += bucket.Count;
                }
            }

            var recorded = 0;
            try
            {
                foreach (var entry in entries)
                {
                    await _audit.RecordAsync(entry, cancellationToken);
                    recorded++;
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Said loudly, with the count: the requests themselves are in the access log.
                Log.Lost(_logger, entries.Count - recorded, e.GetType().Name);
            }

            _requests.Add(requests);
            _events.Add(recorded);
            return recorded;
        }
        finally
        {
            _closing.Release();
        }
    }

    public override void Dispose()
    {
        _meter.Dispose();
        _closing.Dispose();
        base.Dispose();
    }

    /// <summary>What one rollup event is about.</summary>
    internal readonly record struct RollupKey(
        string Kind, string Actor, string Resource, string Environment, string? Query, string Method, string StatusClass);

    /// <summary>One interval's buckets; <see cref="Closed"/> is set (with a full fence) once it is swapped out.</summary>
    private sealed class Interval(long startMs)
    {
        public readonly ConcurrentDictionary<RollupKey, Bucket> Buckets = new();
        public readonly long StartMs = startMs;
        public int Closed;
    }

    /// <summary>The counters of one key in one interval.</summary>
    private sealed class Bucket(Caller caller)
    {
        private int _adders;
        private long _count;
        private long _bytesIn;
        private long _bytesOut;
        private long _firstAt = long.MaxValue;
        private long _lastAt = long.MinValue;
        private long _slowestMs;
        private long _refreshed;
        private long _errors;
        private Dictionary<string, long>? _errorCodes;
        private readonly Lock _errorLock = new();

        public long Count => Volatile.Read(ref _count);

        public bool TryAdd(Interval interval, in RunDetail run, long atMs, long? bytesIn, long? bytesOut)
        {
            // The increment is a full fence: either the closer sees this adder, or this adder sees the interval closed.
            Interlocked.Increment(ref _adders);
            try
            {
                if (Volatile.Read(ref interval.Closed) != 0)
                {
                    return false;
                }

                Interlocked.Increment(ref _count);
                if (bytesIn is { } received)
                {
                    Interlocked.Add(ref _bytesIn, received);
                }

                if (bytesOut is { } sent)
                {
                    Interlocked.Add(ref _bytesOut, sent);
                }

                Min(ref _firstAt, atMs);
                Max(ref _lastAt, atMs);
                Max(ref _slowestMs, run.DurationMs);
                if (run.Refreshed)
                {
                    Interlocked.Increment(ref _refreshed);
                }

                if (run.Error is { } code)
                {
                    Interlocked.Increment(ref _errors);
                    lock (_errorLock)
                    {
                        _errorCodes ??= new Dictionary<string, long>(StringComparer.Ordinal);
                        _errorCodes[code] = _errorCodes.GetValueOrDefault(code) + 1;
                    }
                }

                return true;
            }
            finally
            {
                Interlocked.Decrement(ref _adders);
            }
        }

        /// <summary>Waits out the adders that entered before the interval closed (a few interlocked operations each).</summary>
        public void WaitForAdders()
        {
            var spin = default(SpinWait);
            while (Volatile.Read(ref _adders) != 0)
            {
                spin.SpinOnce();
            }
        }

        public AuditEntry ToEntry(RollupKey key, long startMs, long endMs)
        {
            var detail = new Dictionary<string, object?>(16, StringComparer.Ordinal)
            {
                ["kind"] = key.Kind,
                ["method"] = key.Method,
                ["statusClass"] = key.StatusClass,
                ["count"] = _count,
                ["bytesIn"] = _bytesIn,
                ["bytesOut"] = _bytesOut,
                ["firstAt"] = DateTimeOffset.FromUnixTimeMilliseconds(_firstAt),
                ["lastAt"] = DateTimeOffset.FromUnixTimeMilliseconds(_lastAt),
                ["slowestMs"] = _slowestMs,
                ["refreshed"] = _refreshed,
                ["errors"] = _errors,
            };
            if (_errorCodes is { } codes)
            {
                detail["errorCodes"] = new SortedDictionary<string, long>(codes, StringComparer.Ordinal);
            }

            detail["intervalStart"] = DateTimeOffset.FromUnixTimeMilliseconds(startMs);
            detail["intervalEnd"] = DateTimeOffset.FromUnixTimeMilliseconds(endMs);
            return new AuditEntry(Action, _errors > 0 ? AuditOutcome.Failure : AuditOutcome.Success)
            {
                Actor = caller,
                Resource = key.Resource,
                Environment = key.Environment,
                Target = key.Query,
                Detail = detail,
            };
        }

        private static void Min(ref long target, long value)
        {
            var current = Volatile.Read(ref target);
            while (value < current)
            {
                var seen = Interlocked.CompareExchange(ref target, value, current);
                if (seen == current)
                {
                    return;
                }

                current = seen;
            }
        }

        private static void Max(ref long target, long value)
        {
            var current = Volatile.Read(ref target);
            while (value > current)
            {
                var seen = Interlocked.CompareExchange(ref target, value, current);
                if (seen == current)
                {
                    return;
                }

                current = seen;
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Recorded {Count} traffic.rollup events for the open interval at shutdown")]
        public static partial void Flushed(ILogger logger, int count);

        [LoggerMessage(2, LogLevel.Error, "{Count} traffic.rollup events could not be recorded ({Error}); their counts are lost (the access log has the requests)")]
        public static partial void Lost(ILogger logger, int count, string error);
    }
}

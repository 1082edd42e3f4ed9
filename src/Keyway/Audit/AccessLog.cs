using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Keyway.Hosting;
using Keyway.Secrets;

namespace Keyway.Audit;

/// <summary>How the access log stream behaves: <c>KEYWAY_ACCESS_LOG</c> and <c>KEYWAY_ACCESS_LOG_QUEUE</c>.</summary>
internal sealed record AccessLogOptions
{
    /// <summary>Whether a line is written per run (proxied request, <c>/run</c>, saved query run).</summary>
    public bool Enabled { get; init; } = true;

    /// <summary>Lines waiting to be written. When the queue is full a line is dropped and counted, never waited for.</summary>
    public int QueueCapacity { get; init; } = 10_000;

    /// <exception cref="StartupException">A value is not valid.</exception>
    public static AccessLogOptions FromEnvironment(Func<string, string?>? variable = null)
    {
        variable ??= Environment.GetEnvironmentVariable;
        var options = new AccessLogOptions();
        var enabled = variable("KEYWAY_ACCESS_LOG");
        options = enabled?.Trim().ToLowerInvariant() switch
        {
            null or "" or "on" => options,
            "off" => options with { Enabled = false },
            _ => throw new StartupException($"KEYWAY_ACCESS_LOG must be on or off, not '{enabled}'."),
        };

        var capacity = variable("KEYWAY_ACCESS_LOG_QUEUE");
        if (!string.IsNullOrEmpty(capacity))
        {
            options = int.TryParse(capacity, System.Globalization.CultureInfo.InvariantCulture, out var value) && value > 0
                ? options with { QueueCapacity = value }
                : throw new StartupException($"KEYWAY_ACCESS_LOG_QUEUE must be a positive number of lines, not '{capacity}'.");
        }

        return options;
    }
}

/// <summary>
/// One line per run under the log category <c>Keyway.Access</c>: who, which resource and environment,
/// method, redacted path, status, duration, whether the credential was refreshed, the error code and the
/// bytes when cheaply known. <see cref="Write(AuditEntry, long)"/> never blocks: it queues on a bounded channel and, when
/// the channel is full, drops the line and counts it (<c>keyway.access_log.dropped</c>). A background
/// service drains the queue, redacts the path (secret-bearing query parameters and every known secret
/// value) and logs.
/// </summary>
internal sealed partial class AccessLog : BackgroundService
{
    public const string Category = "Keyway.Access";

    private readonly Channel<AccessRecord> _queue;
    private readonly Func<CancellationToken, Task<Redactor>> _knownSecrets;
    private readonly ILogger _logger;
    private readonly Meter _meter = new(KeywayMetrics.MeterName);
    private readonly Counter<long> _dropped;
    private readonly bool _enabled;

    public AccessLog(AccessLogOptions options, Func<CancellationToken, Task<Redactor>> knownSecrets, ILoggerFactory loggers)
    {
        _enabled = options.Enabled;
        _knownSecrets = knownSecrets;
        _logger = loggers.CreateLogger(Category);
        _queue = Channel.CreateBounded<AccessRecord>(new BoundedChannelOptions(options.QueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait, // with TryWrite: a full queue refuses, so the line is counted as dropped
            SingleReader = true,
            SingleWriter = false,
        });
        _dropped = _meter.CreateCounter<long>("keyway.access_log.dropped", description: "Access log lines dropped because the access log queue was full.");
    }

    /// <summary>Lines dropped so far (for tests; the metric is what operators read).</summary>
    internal long Dropped => Interlocked.Read(ref _droppedCount);

    private long _droppedCount;

    /// <summary>Queues a line for a recorded run; a no-op for other entries or when the access log is off.</summary>
    public void Write(AuditEntry entry, long timeMs)
    {
        if (entry.Run is { } run)
        {
            Write(timeMs, entry.Actor, entry.Resource, entry.Environment, entry.Target, run, entry.BytesOut, entry.BytesIn);
        }
    }

    /// <summary>Queues a line for a run that is not written to the audit log one by one (rolled up, or not recorded).</summary>
    public void Write(long timeMs, Access.Caller? caller, string? resource, string? environment, string? query, in RunDetail run, long? bytesOut, long? bytesIn)
    {
        // A line the logging configuration would filter out (Keyway.Access below Information) is not queued at all.
        if (!_enabled || !_logger.IsEnabled(LogLevel.Information))
        {
            return;
        }

        if (!_queue.Writer.TryWrite(new AccessRecord(timeMs, caller?.ApiKeyId ?? caller?.UserId, resource, environment, query, run, bytesOut, bytesIn)))
        {
            Interlocked.Increment(ref _droppedCount);
            _dropped.Add(1);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (await _queue.Reader.WaitToReadAsync(stoppingToken))
            {
                await DrainAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: write what is queued.
            await DrainAsync(CancellationToken.None);
        }
    }

    /// <summary>Writes every queued line.</summary>
    internal async Task DrainAsync(CancellationToken cancellationToken)
    {
        if (_queue.Reader.Count == 0)
        {
            return;
        }

        // Known secrets unreadable (the store is down, say): the query, which cannot be checked, is not written.
        Redactor? redactor = null;
        try
        {
            redactor = await _knownSecrets(cancellationToken);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
        }

        while (_queue.Reader.TryRead(out var record))
        {
            var path = AuditRedaction.RedactPath(record.Run.Path);
            path = redactor is null ? StripQuery(path) : redactor.Redact(path);
            var run = record.Run;
            Log.Access(_logger, FormatTime(record.TimeMs),
                run.Kind, record.Caller, record.Resource, record.Environment, record.Query, run.Method, path, run.Status, run.DurationMs,
                run.Refreshed, run.Error, record.BytesOut, record.BytesIn);
        }
    }

    /// <summary>The length of a run's answer body as returned (its JSON, text or base64 form).</summary>
    public static long? BodyBytes(Runs.RunResult result) =>
        result.Body is { } body ? System.Text.Encoding.UTF8.GetByteCount(body.GetRawText()) : null;

    /// <summary>ISO 8601 UTC with milliseconds, as the JSON log's own <c>Timestamp</c>.</summary>
    internal static string FormatTime(long unixMs) =>
        DateTimeOffset.FromUnixTimeMilliseconds(unixMs).UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture);

    private static string StripQuery(string path)
    {
        var q = path.IndexOf('?', StringComparison.Ordinal);
        return q < 0 ? path : path[..q] + "?" + Secret.Redacted;
    }

    public override void Dispose()
    {
        _meter.Dispose();
        base.Dispose();
    }

    private readonly record struct AccessRecord(
        long TimeMs, string? Caller, string? Resource, string? Environment, string? Query, RunDetail Run, long? BytesOut, long? BytesIn);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information,
            "{Kind} {Method} {Path} {Status} {DurationMs} ms resource={Resource} environment={Environment} caller={Caller} query={Query} refreshed={Refreshed} error={Error} out={BytesOut} in={BytesIn} at {Time}")]
        public static partial void Access(
            ILogger logger, string time, string kind, string? caller, string? resource, string? environment, string? query, string method, string path,
            int? status, long durationMs, bool refreshed, string? error, long? bytesOut, long? bytesIn);
    }
}

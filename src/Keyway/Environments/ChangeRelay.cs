using System.Buffers;
using System.Text;
using System.Text.Json;
using Keyway.Storage;
using Npgsql;

namespace Keyway.Environments;

/// <summary>
/// Keeps replicas on one PostgreSQL database in step: sends this replica's changes with
/// <c>pg_notify</c> and raises the other replicas' changes on the local <see cref="ChangeFeed"/>.
/// </summary>
/// <remarks>
/// Two loops. The listener holds one dedicated connection (application name
/// <see cref="ApplicationName"/>) with <c>LISTEN keyway_changes</c>; when it drops, it reconnects
/// with bounded, jittered backoff. Meanwhile the caches keep serving what they hold (the store may be
/// down, and they are what keeps requests answered), but only for the outage staleness bound
/// (<see cref="StoreOutage.Staleness"/>): a replica deaf for that long raises <see cref="ChangeFeed.All"/>,
/// and again after each further such period. Once listening again it raises <see cref="ChangeFeed.All"/>
/// once: whatever changed meanwhile was missed, so every cache is reloaded (reconciled) from the store.
/// The sender drains the feed's outbox in batches over pooled connections and retries a failed batch
/// with the same backoff, so a write is never lost to a brief outage. Not registered on SQLite.
/// </remarks>
internal sealed partial class ChangeRelay(Database database, ChangeFeed feed, TimeProvider time, ILogger<ChangeRelay> logger, StoreOutage? outage = null)
    : BackgroundService
{
    public const string ChannelName = "keyway_changes";
    public const string ApplicationName = "keyway-listener";

    /// <summary>PostgreSQL refuses payloads of 8000 bytes or more; a bigger change is sent as <see cref="ChangeFeed.All"/>.</summary>
    internal const int MaxPayloadBytes = 7999;

    private const int MaxBatch = 100;
    private static readonly TimeSpan IdleCheck = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan FirstRetry = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan MaxRetry = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan FlushOnStop = TimeSpan.FromSeconds(3);

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(ListenAsync(stoppingToken), SendAsync(stoppingToken));

    /// <summary>The notification payload: <c>{"kind":"resources","name":"github","origin":"…"}</c>, always under 8000 bytes.</summary>
    internal static string Payload(Change change, string origin)
    {
        var payload = Write(change, origin);
        return Encoding.UTF8.GetByteCount(payload) <= MaxPayloadBytes ? payload : Write(ChangeFeed.All, origin);

        static string Write(Change change, string origin)
        {
            var buffer = new ArrayBufferWriter<byte>(128);
            using (var json = new Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                json.WriteString("kind", change.Kind);
                json.WriteString("name", change.Name);
                json.WriteString("origin", origin);
                json.WriteEndObject();
            }

            return Encoding.UTF8.GetString(buffer.WrittenSpan);
        }
    }

    /// <summary>Reads a payload; a malformed one means "something changed", which only <see cref="ChangeFeed.All"/> covers.</summary>
    internal static (Change Change, string? Origin) Parse(string payload)
    {
        try
        {
            using var document = JsonDocument.Parse(payload);
            var root = document.RootElement;
            var kind = root.GetProperty("kind").GetString();
            var name = root.GetProperty("name").GetString();
            var origin = root.TryGetProperty("origin", out var o) ? o.GetString() : null;
            return kind is null || name is null ? (ChangeFeed.All, origin) : (new Change(kind, name), origin);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return (ChangeFeed.All, null);
        }
    }

    /// <summary>Exponential from <see cref="FirstRetry"/> to <see cref="MaxRetry"/>, each delay drawn from its upper half so a fleet does not retry in step.</summary>
    internal static TimeSpan Backoff(int failures)
    {
        var ceiling = Math.Min(MaxRetry.TotalMilliseconds, FirstRetry.TotalMilliseconds * Math.Pow(2, Math.Min(failures - 1, 20)));
        return TimeSpan.FromMilliseconds(ceiling / 2 + Random.Shared.NextDouble() * ceiling / 2);
    }

    private async Task ListenAsync(CancellationToken stoppingToken)
    {
        var failures = 0;
        var staleness = outage?.Staleness ?? StoreOutage.DefaultStaleness;
        // While deaf: when the caches, which may have missed changes, are dropped (the staleness bound).
        DateTimeOffset? dropAt = null;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = database.CreateDedicatedConnection(ApplicationName);
                connection.Notification += OnNotification;
                await connection.OpenAsync(stoppingToken);
                await using (var listen = new NpgsqlCommand($"LISTEN {ChannelName}", connection))
                {
                    await listen.ExecuteNonQueryAsync(stoppingToken);
                }

                Log.Listening(logger, database.Description, failures);
                failures = 0;
                dropAt = null;
                outage?.Reached();

                // Raised only now that LISTEN is active: a change committed from here on is heard,
                // and one committed before (while this replica was deaf) is dropped with the rest.
                feed.Raise(ChangeFeed.All);
                while (true)
                {
                    if (!await connection.WaitAsync(IdleCheck, stoppingToken))
                    {
                        // Quiet for a while: prove the connection still answers, or a half-open
                        // socket would leave this replica deaf without anyone noticing.
                        await using var ping = new NpgsqlCommand("SELECT 1", connection);
                        await ping.ExecuteScalarAsync(stoppingToken);
                    }
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                failures++;
                outage?.Observe(e);
                var now = time.GetUtcNow();
                dropAt ??= now + staleness;
                if (now >= dropAt)
                {
                    // Deaf past the staleness bound: what the caches hold may be out of date by more than
                    // an operator allowed. Requests that need anything dropped now go to the store (503 while it is down).
                    Log.StaleCachesDropped(logger, (long)staleness.TotalSeconds);
                    feed.Raise(ChangeFeed.All);
                    dropAt = now + staleness;
                }

                // Woken no later than the bound, whatever the backoff says.
                var delay = Min(Backoff(failures), dropAt.Value - now);
                Log.ListenerLost(logger, database.Description, e.GetType().Name, (e as PostgresException)?.SqlState, failures, (long)delay.TotalMilliseconds);
                if (!await DelayAsync(delay, outage, stoppingToken))
                {
                    return;
                }
            }
        }
    }

    private void OnNotification(object sender, NpgsqlNotificationEventArgs e)
    {
        var (change, origin) = Parse(e.Payload);
        if (origin != feed.Origin)
        {
            feed.Raise(change);
        }
    }

    private async Task SendAsync(CancellationToken stoppingToken)
    {
        var outbox = feed.Outbox ?? throw new InvalidOperationException("The change feed is not replicated.");
        var batch = new List<string>(MaxBatch);
        var failures = 0;
        try
        {
            while (true)
            {
                if (batch.Count == 0)
                {
                    await outbox.WaitToReadAsync(stoppingToken);
                }

                while (batch.Count < MaxBatch && outbox.TryRead(out var change))
                {
                    batch.Add(Payload(change, feed.Origin));
                }

                try
                {
                    await NotifyAsync(batch, stoppingToken);
                    batch.Clear();
                    failures = 0;
                }
                catch (Exception e) when (e is not OperationCanceledException || !stoppingToken.IsCancellationRequested)
                {
                    failures++;
                    var delay = Backoff(failures);
                    Log.SendFailed(logger, database.Description, e.GetType().Name, (e as PostgresException)?.SqlState, batch.Count, (long)delay.TotalMilliseconds);
                    await Task.Delay(delay, time, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: send what is still queued, briefly, so the other replicas hear this one's last writes.
            while (batch.Count < MaxBatch * 10 && outbox.TryRead(out var change))
            {
                batch.Add(Payload(change, feed.Origin));
            }

            if (batch.Count > 0)
            {
                using var flush = new CancellationTokenSource(FlushOnStop, time);
                try
                {
                    await NotifyAsync(batch, flush.Token);
                }
                catch (Exception e)
                {
                    Log.SendFailed(logger, database.Description, e.GetType().Name, (e as PostgresException)?.SqlState, batch.Count, 0);
                }
            }
        }
    }

    private async Task NotifyAsync(List<string> payloads, CancellationToken cancellationToken)
    {
        await using var connection = (NpgsqlConnection)await database.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", connection)
        {
            Parameters = { new() { Value = ChannelName }, new() { Value = payloads.ToArray() } },
        };
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;

    /// <summary>Waits out a backoff, or less once something else in this replica reached the store again.</summary>
    private async Task<bool> DelayAsync(TimeSpan delay, StoreOutage? outage, CancellationToken stoppingToken)
    {
        try
        {
            await (outage is null ? Task.Delay(delay, time, stoppingToken) : outage.DelayAsync(delay, FirstRetry, stoppingToken));
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(40, LogLevel.Information, "Listening for other replicas' changes on {Store} (after {Failures} failed attempts)")]
        public static partial void Listening(ILogger logger, string store, int failures);

        // The exception's type and SQLSTATE only: Keyway never logs a connection string.
        [LoggerMessage(41, LogLevel.Warning, "Lost the change listener on {Store} ({ExceptionType}, SQLSTATE {SqlState}); attempt {Failures} to reconnect in {DelayMs} ms; caches keep serving meanwhile, and are reloaded once listening again")]
        public static partial void ListenerLost(ILogger logger, string store, string exceptionType, string? sqlState, int failures, long delayMs);

        [LoggerMessage(43, LogLevel.Warning, "The change listener has been lost for {StalenessSeconds} s (the store outage staleness bound): every cache is dropped, and what is not in memory needs the store again")]
        public static partial void StaleCachesDropped(ILogger logger, long stalenessSeconds);

        [LoggerMessage(42, LogLevel.Warning, "Could not notify other replicas on {Store} ({ExceptionType}, SQLSTATE {SqlState}); {Count} changes retried in {DelayMs} ms")]
        public static partial void SendFailed(ILogger logger, string store, string exceptionType, string? sqlState, int count, long delayMs);
    }
}

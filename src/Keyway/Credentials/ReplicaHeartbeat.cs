using Keyway.Hosting;
using Keyway.Storage;

namespace Keyway.Credentials;

/// <summary>How the credential engine times its refreshes (<c>KEYWAY_CREDENTIAL_*</c>; docs/configuration.md).</summary>
internal sealed record CredentialOptions
{
    /// <summary>
    /// How far the provider's clock, and so a token's real expiry, may be ahead of Keyway's:
    /// <c>KEYWAY_CREDENTIAL_CLOCK_SKEW</c>, at least (and by default) one second. A token is
    /// refreshed that much earlier, on top of a second for <c>expires_in</c> stated in whole seconds.
    /// </summary>
    public TimeSpan ClockSkew { get; init; } = MinimumClockSkew;

    /// <summary>
    /// How long a replica's refresh mark is honoured after the replica was last seen alive (its
    /// heartbeat), counted only while this replica reaches the store: a replica whose answer waits
    /// in its journal has that long, once the store is back, to store it.
    /// </summary>
    public TimeSpan OwnerGrace { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>How long one refresh waits for another replica's (its lock, its mark) before it answers <c>credential_refresh_pending</c>.</summary>
    public TimeSpan RefreshWait { get; init; } = TimeSpan.FromSeconds(30);

    public static readonly TimeSpan MinimumClockSkew = TimeSpan.FromSeconds(1);

    public static CredentialOptions FromEnvironment(Func<string, string?>? variable = null)
    {
        variable ??= Environment.GetEnvironmentVariable;
        var options = new CredentialOptions();
        if (SignIn.SignInSettings.ParseDuration(variable("KEYWAY_CREDENTIAL_CLOCK_SKEW"), "KEYWAY_CREDENTIAL_CLOCK_SKEW") is { } skew)
        {
            options = skew >= MinimumClockSkew && skew <= TimeSpan.FromMinutes(5)
                ? options with { ClockSkew = skew }
                : throw new StartupException("KEYWAY_CREDENTIAL_CLOCK_SKEW must be from 1s to 5m: a provider's clock is never trusted to the millisecond.");
        }

        return options;
    }
}

/// <summary>
/// This replica's heartbeat in the <c>replicas</c> table, and the question the credential engine
/// asks of it: may the replica that marked a refresh in flight still store its answer? A replica
/// whose provider answered while the store was down keeps the answer in memory and in its journal
/// and stores it when the store is back; until then no other replica may spend the refresh token
/// it replaced, or a provider that detects reuse revokes the grant.
/// <para>
/// "Alive" is judged only once this replica has reached the store for <see cref="CredentialOptions.OwnerGrace"/>:
/// right after an outage every heartbeat is old, the owner's included, and the owner needs a moment to
/// store its answer. On SQLite there is one process per store: a mark that is not this process's was
/// left by one that has ended, and its journal was replayed at start.
/// </para>
/// </summary>
internal sealed partial class ReplicaHeartbeat(Database database, TimeProvider time, CredentialOptions options, ServeOptions serve, ILogger<ReplicaHeartbeat> logger)
    : BackgroundService
{
    private const string IdFile = "replica-id";
    private static readonly TimeSpan Forgotten = TimeSpan.FromDays(1);

    // The store's own clock, in Unix milliseconds: heartbeats are written and judged by one clock, whatever the replicas' say.
    internal const string StoreNow = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

    private readonly DateTimeOffset _started = time.GetUtcNow();
    // Ticks of the local clock since when every beat reached the store; 0 while the last one did not.
    private long _reachableSince = time.GetUtcNow().UtcTicks;
    private long _beats;
    private Func<int> _pendingCount = () => 0;

    /// <summary>
    /// Who this replica is, in heartbeats and in the store's in-flight marks: kept in <c>DATA_DIR/replica-id</c>, so a
    /// replica that restarts (and replays its journal) is the same owner of the marks it left. Each replica needs a
    /// data directory of its own.
    /// </summary>
    public string InstanceId { get; } = LoadOrCreateId(serve.DataDirectory);

    private TimeSpan Interval => options.OwnerGrace / 5;

    /// <summary>Where each beat reads how many token answers this replica holds that the store has not taken.</summary>
    public void CountPendingWith(Func<int> count) => _pendingCount = count;

    /// <summary>
    /// Whether the replica <paramref name="owner"/>, which marked a refresh in flight at <paramref name="markedAt"/>
    /// (the store's clock), may still store its answer. Ages are taken on the store's clock. Yes while it is alive
    /// and its refresh may still be at the provider (marked less than <see cref="InFlightLimit"/> ago) or it holds
    /// answers for the store; and, once it is silent, for <see cref="HolderGrace"/> after its last heartbeat if that
    /// heartbeat said it held answers or came while its refresh may have been at the provider: its answer may be in
    /// its journal, or it may have lost the store while the others did not. A live replica's mark left by a refresh
    /// that failed without clearing it is not honoured past the in-flight limit.
    /// </summary>
    public async Task<bool> MayStillWriteAsync(string owner, DateTimeOffset markedAt, CancellationToken cancellationToken)
    {
        if (database.Kind == StoreKind.Sqlite)
        {
            return false;
        }

        var since = Volatile.Read(ref _reachableSince);
        if (since == 0 || time.GetUtcNow().UtcTicks - since < options.OwnerGrace.Ticks)
        {
            // Too soon to tell a dead replica from one that has not had the chance to speak.
            return true;
        }

        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<(long Silent, long Pending, long MarkAge, long SeenAfterMark)>(
            $"SELECT {StoreNow} - seen_at, pending, {StoreNow} - @marked, seen_at - @marked FROM replicas WHERE id = @owner",
            new { owner, marked = markedAt.ToStore() });
        if (rows is not [var row])
        {
            return false;
        }

        var silent = TimeSpan.FromMilliseconds(row.Silent);
        if (row.Pending > 0)
        {
            return silent < HolderGrace;
        }

        if (silent < options.OwnerGrace)
        {
            return TimeSpan.FromMilliseconds(row.MarkAge) < InFlightLimit;
        }

        // Silent: if it fell silent while its refresh may have been at the provider, it may hold the answer.
        return TimeSpan.FromMilliseconds(row.SeenAfterMark) < InFlightLimit && silent < HolderGrace;
    }

    /// <summary>How long a token request, or a custom flow's steps, may take: a mark younger than this may still be at the provider.</summary>
    public static readonly TimeSpan InFlightLimit = TimeSpan.FromMinutes(2);

    /// <summary>How long a replica that last said it held answers for the store is waited for: time to restart and replay its journal.</summary>
    public static readonly TimeSpan HolderGrace = TimeSpan.FromMinutes(10);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (database.Kind == StoreKind.Sqlite)
        {
            return;
        }

        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            do
            {
                await BeatAsync(stoppingToken);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task BeatAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            bounded.CancelAfter(Interval);
            await using var connection = await database.OpenAsync(bounded.Token);
            await connection.ExecuteAsync(
                new SqlStatement(
                    $"""
                    INSERT INTO replicas (id, started_at, seen_at, pending) VALUES (@id, @started, {StoreNow}, @pending)
                    ON CONFLICT (id) DO UPDATE SET seen_at = {StoreNow}, pending = @pending
                    """,
                    new { id = InstanceId, started = _started.ToStore(), pending = (long)_pendingCount() },
                    cancellationToken: bounded.Token));
            if (Interlocked.CompareExchange(ref _reachableSince, time.GetUtcNow().UtcTicks, 0) == 0)
            {
                Log.StoreBack(logger);
            }

            if (_beats++ % 1000 == 0)
            {
                await connection.ExecuteAsync($"DELETE FROM replicas WHERE seen_at < {StoreNow} - @forgotten", new { forgotten = (long)Forgotten.TotalMilliseconds });
            }
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is not OutOfMemoryException)
        {
            // Whatever the reason (down, read-only, a timeout), a beat that did not land restarts the grace; the loop goes on.
            if (Interlocked.Exchange(ref _reachableSince, 0) != 0)
            {
                Log.StoreLost(logger, e.GetType().Name);
            }
        }
    }

    private static string LoadOrCreateId(string dataDirectory)
    {
        var path = Path.Combine(dataDirectory, IdFile);
        try
        {
            if (File.Exists(path) && File.ReadAllText(path).Trim() is { Length: 12 } kept && kept.All(char.IsAsciiHexDigitLower))
            {
                return kept;
            }

            var id = Guid.NewGuid().ToString("N")[..12];
            Directory.CreateDirectory(dataDirectory);
            File.WriteAllText(path, id + "\n");
            return id;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A read-only data directory: this run is its own replica.
            return Guid.NewGuid().ToString("N")[..12];
        }
    }

    private static partial class Log
    {
        [LoggerMessage(330, LogLevel.Warning, "The store stopped answering this replica's heartbeat ({Error}); refreshes marked by other replicas are left to them until it is back")]
        public static partial void StoreLost(ILogger logger, string error);

        [LoggerMessage(331, LogLevel.Information, "The store answers this replica's heartbeat again")]
        public static partial void StoreBack(ILogger logger);
    }
}

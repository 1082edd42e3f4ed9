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
internal sealed partial class ReplicaHeartbeat(Database database, TimeProvider time, CredentialOptions options, ILogger<ReplicaHeartbeat> logger) : BackgroundService
{
    private static readonly TimeSpan Forgotten = TimeSpan.FromDays(1);
    private readonly DateTimeOffset _started = time.GetUtcNow();
    private DateTimeOffset? _reachableSince = time.GetUtcNow();
    private long _beats;
    private int _pending;

    /// <summary>Who this process is, in heartbeats and in the store's in-flight marks.</summary>
    public string InstanceId { get; } = Guid.NewGuid().ToString("N")[..12];

    private TimeSpan Interval => options.OwnerGrace / 5;

    /// <summary>Something reached for the store failed: the grace starts again when it answers.</summary>
    public void StoreFailed() => _reachableSince = null;

    /// <summary>How many token answers this replica holds that the store has not taken (the engine keeps it current).</summary>
    public int Pending
    {
        get => Volatile.Read(ref _pending);
        set => Volatile.Write(ref _pending, value);
    }

    /// <summary>
    /// Whether the replica <paramref name="owner"/>, which marked a refresh in flight at <paramref name="markedAt"/>,
    /// may still store its answer: it is alive, and its refresh may still be at the provider (marked less than
    /// <see cref="InFlightLimit"/> ago) or it holds answers the store has not taken. A live replica's mark left by
    /// a refresh that failed without clearing it is not honoured past that limit.
    /// </summary>
    public async Task<bool> MayStillWriteAsync(string owner, DateTimeOffset markedAt, CancellationToken cancellationToken)
    {
        if (database.Kind == StoreKind.Sqlite)
        {
            return false;
        }

        var now = time.GetUtcNow();
        if (_reachableSince is not { } since || now - since < options.OwnerGrace)
        {
            // Too soon to tell a dead replica from one that has not had the chance to speak.
            return true;
        }

        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<(long SeenAt, long Pending)>("SELECT seen_at, pending FROM replicas WHERE id = @owner", new { owner });
        return rows is [var row] && now - Time.From(row.SeenAt) < options.OwnerGrace && (row.Pending > 0 || now - markedAt < InFlightLimit);
    }

    /// <summary>How long a token request, or a custom flow's steps, may take: a mark younger than this may still be at the provider.</summary>
    public static readonly TimeSpan InFlightLimit = TimeSpan.FromMinutes(2);

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
        var now = time.GetUtcNow();
        try
        {
            await using var connection = await database.OpenAsync(cancellationToken);
            await connection.ExecuteAsync(
                new SqlStatement(
                    """
                    INSERT INTO replicas (id, started_at, seen_at, pending) VALUES (@id, @started, @now, @pending)
                    ON CONFLICT (id) DO UPDATE SET seen_at = @now, pending = @pending
                    """,
                    new { id = InstanceId, started = _started.ToStore(), now = now.ToStore(), pending = (long)Pending },
                    cancellationToken: cancellationToken));
            if (_reachableSince is null)
            {
                _reachableSince = now;
                Log.StoreBack(logger);
            }

            if (_beats++ % 1000 == 0)
            {
                await connection.ExecuteAsync("DELETE FROM replicas WHERE seen_at < @before", new { before = (now - Forgotten).ToStore() });
            }
        }
        catch (Exception e) when (StoreFailure.IsUnavailable(e) && !cancellationToken.IsCancellationRequested)
        {
            if (_reachableSince is not null)
            {
                Log.StoreLost(logger, e.GetType().Name);
            }

            _reachableSince = null;
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

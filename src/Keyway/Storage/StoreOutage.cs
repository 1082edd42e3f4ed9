namespace Keyway.Storage;

/// <summary>
/// Whether this replica can reach its store, and for how long it may go on serving what it holds in
/// memory while it cannot: the staleness bound (<c>KEYWAY_STORE_OUTAGE_STALENESS</c>, five minutes
/// unless set).
/// </summary>
/// <remarks>
/// An outage starts at the first failure that <see cref="StoreFailure.IsUnavailable"/> recognizes and
/// ends at the next success, whoever observes them: a cache reload, the readiness probe. While it lasts
/// and for no longer than <see cref="Staleness"/>, the caches that would otherwise reload keep their last
/// answer (stale-if-error); the <c>ChangeRelay</c> drops every cache when it has been deaf that long.
/// Past the bound a request that needs anything not in memory answers <c>503 store_unavailable</c>.
/// </remarks>
internal sealed class StoreOutage(TimeProvider time, TimeSpan staleness)
{
    public const string StalenessSetting = "KEYWAY_STORE_OUTAGE_STALENESS";

    public static readonly TimeSpan DefaultStaleness = TimeSpan.FromMinutes(5);

    // Unix milliseconds of the outage's first failure; 0 while the store answers.
    private long _since;

    /// <summary>How long, from the start of an outage, what is in memory may still be served.</summary>
    public TimeSpan Staleness { get; } = staleness;

    /// <summary>When the current outage began; null while the store answers.</summary>
    public DateTimeOffset? Since => Interlocked.Read(ref _since) is var since and not 0 ? DateTimeOffset.FromUnixTimeMilliseconds(since) : null;

    /// <summary>
    /// Records <paramref name="exception"/> if it says the store is unreachable (the first such failure
    /// starts the outage) and tells whether it did.
    /// </summary>
    public bool Observe(Exception exception)
    {
        if (!StoreFailure.IsUnavailable(exception))
        {
            return false;
        }

        Interlocked.CompareExchange(ref _since, Math.Max(1, time.GetUtcNow().ToUnixTimeMilliseconds()), 0);
        return true;
    }

    /// <summary>The store answered: the outage, if there was one, is over.</summary>
    public void Reached() => Interlocked.Exchange(ref _since, 0);

    /// <summary>Whether an entry that cannot be reloaded may still be served: no outage, or one younger than <see cref="Staleness"/>.</summary>
    public bool MayServeStale() =>
        Interlocked.Read(ref _since) is var since && (since == 0 || time.GetUtcNow().ToUnixTimeMilliseconds() - since <= (long)Staleness.TotalMilliseconds);
}

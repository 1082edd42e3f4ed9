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

    private readonly Lock _lock = new();

    // Unix milliseconds of the outage's first failure; 0 while the store answers.
    private long _since;

    // Completed when the current outage ends; a completed one while there is none.
    private TaskCompletionSource _recovered = Completed();

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

        if (Interlocked.Read(ref _since) == 0)
        {
            lock (_lock)
            {
                if (_since == 0)
                {
                    _recovered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    Interlocked.Exchange(ref _since, Math.Max(1, time.GetUtcNow().ToUnixTimeMilliseconds()));
                }
            }
        }

        return true;
    }

    /// <summary>The store answered: the outage, if there was one, is over.</summary>
    public void Reached()
    {
        // Called on every successful reload: nothing to do, and no lock taken, while there is no outage.
        if (Interlocked.Read(ref _since) == 0)
        {
            return;
        }

        lock (_lock)
        {
            Interlocked.Exchange(ref _since, 0);
            _recovered.TrySetResult();
        }
    }

    /// <summary>
    /// Completes when the current outage ends (at once when there is none): loops that back off while the
    /// store is down (the change listener, the audit writer) wake on it instead of sleeping out their backoff.
    /// </summary>
    public Task Recovered
    {
        get
        {
            lock (_lock)
            {
                return _recovered.Task;
            }
        }
    }

    /// <summary>
    /// Waits <paramref name="delay"/>, or less if the current outage ends first, but at least
    /// <paramref name="atLeast"/>: a store that flaps cannot turn a backoff into a busy loop.
    /// </summary>
    public async Task DelayAsync(TimeSpan delay, TimeSpan atLeast, CancellationToken cancellationToken)
    {
        var recovered = Recovered;
        if (recovered.IsCompleted || delay <= atLeast)
        {
            await Task.Delay(delay, time, cancellationToken);
            return;
        }

        await Task.Delay(atLeast, time, cancellationToken);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        await Task.WhenAny(Task.Delay(delay - atLeast, time, stop.Token), recovered);
        await stop.CancelAsync();
        cancellationToken.ThrowIfCancellationRequested();
    }

    private static TaskCompletionSource Completed()
    {
        var completed = new TaskCompletionSource();
        completed.SetResult();
        return completed;
    }

    /// <summary>Whether an entry that cannot be reloaded may still be served: no outage, or one younger than <see cref="Staleness"/>.</summary>
    public bool MayServeStale() =>
        Interlocked.Read(ref _since) is var since && (since == 0 || time.GetUtcNow().ToUnixTimeMilliseconds() - since <= (long)Staleness.TotalMilliseconds);
}

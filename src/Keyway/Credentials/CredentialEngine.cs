using System.Collections.Concurrent;
using Keyway.Api;
using Keyway.Secrets;
using Keyway.Storage;

namespace Keyway.Credentials;

/// <summary>
/// The credential engine (DESIGN 4). It hands out credentials from memory, refreshes them once
/// per credential across the cluster, persists rotated tokens before anyone uses them, and turns
/// provider failures into clear states.
/// <list type="bullet">
/// <item>Hot path: a cached credential that is not due is returned as is (no allocation).</item>
/// <item>Due but still valid: returned as is while one background refresh runs (keep serving).</item>
/// <item>Expired, rejected or missing: callers join the one in-process flight for that key; the
/// flight takes the cluster lock, re-reads the store (another replica may have refreshed), and
/// only then asks the provider.</item>
/// <item>A provider's answer is written to the <see cref="CredentialJournal"/> before it is used or
/// stored. An answer the store cannot take (it is down) is kept in memory and in the journal, served,
/// refreshed further if need be, and stored as soon as the store answers; meanwhile the in-flight
/// mark in the store tells every other replica not to spend the refresh token it replaced.</item>
/// <item>Waits for another replica's refresh (its lock, its mark) are bounded: a caller gets a valid
/// token, or <c>credential_refresh_pending</c> within its own timeout.</item>
/// </list>
/// </summary>
internal sealed partial class CredentialEngine(
    CredentialStore store, ClusterLock clusterLock, TimeProvider time, ILogger<CredentialEngine> logger, CredentialEvents events,
    Environments.ChangeFeed? changes = null, CredentialJournal? journal = null, ReplicaHeartbeat? heartbeat = null, CredentialOptions? options = null)
{
    public const string ChangeKind = "credentials";

    private static readonly TimeSpan MaxMargin = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan MaxJitter = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan BackoffBase = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan BackoffCap = TimeSpan.FromMinutes(5);

    // expires_in is stated in whole seconds: the token may die up to one second before the expiry it gives.
    private static readonly TimeSpan WholeSecond = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan FirstWait = TimeSpan.FromMilliseconds(25);
    private static readonly TimeSpan LongestWait = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan LongestLandingWait = TimeSpan.FromSeconds(2);

    // A store that drops packets instead of refusing must not hold a held answer's caller for the driver's timeouts.
    private static readonly TimeSpan LandingTimeout = TimeSpan.FromSeconds(2);

    private readonly CredentialOptions _options = options ?? new CredentialOptions();
    private readonly ConcurrentDictionary<CredentialKey, Credential> _cache = new();
    private readonly ConcurrentDictionary<CredentialKey, Task<Credential>> _flights = new();

    // Token answers this replica holds that the store does not have yet (it was down), by credential.
    private readonly ConcurrentDictionary<CredentialKey, JournalEntry> _pending = new();
    private readonly ConcurrentDictionary<CredentialKey, SemaphoreSlim> _pendingGates = new();
    private readonly ConcurrentDictionary<CredentialKey, byte> _landing = new();

    /// <summary>Who this process is, in the store's in-flight marks and in heartbeats.</summary>
    public string InstanceId { get; } = heartbeat?.InstanceId ?? Guid.NewGuid().ToString("N")[..12];

    /// <summary>Whether the replica that marked a refresh may still store its answer; replaceable so tests can say.</summary>
    internal Func<string, DateTimeOffset, CancellationToken, Task<bool>> OwnerMayStillWrite { get; set; } =
        heartbeat is null ? (_, _, _) => Task.FromResult(false) : heartbeat.MayStillWriteAsync;

    /// <summary>How many token answers wait for the store (for metrics and readiness).</summary>
    public int PendingWrites => _pending.Count;

    /// <summary>A number in [0, 1) for jitter; replaceable so tests are deterministic.</summary>
    internal Func<double> Random { get; set; } = System.Random.Shared.NextDouble;

    /// <summary>The credential to attach now. Throws <see cref="CredentialException"/> when there is none to give.</summary>
    public ValueTask<Credential> GetAsync(CredentialKey key, ITokenProvider provider, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (_cache.TryGetValue(key, out var cached) && !cached.Rejected && cached.ParametersHash == provider.ParametersHash)
        {
            if (!cached.IsDue(now))
            {
                return ValueTask.FromResult(cached);
            }

            if (Usable(cached.Tokens, now))
            {
                // Due but valid: keep serving it while one refresh runs in the background.
                _ = RefreshInBackgroundAsync(key, provider);
                return ValueTask.FromResult(cached);
            }
        }

        return new ValueTask<Credential>(Join(key, provider, rejected: null).WaitAsync(cancellationToken));
    }

    /// <summary>
    /// An upstream rejected <paramref name="token"/>: drop exactly that token and get a fresh one.
    /// Concurrent rejections of one token cause one refresh; a rejection of a token already
    /// replaced is answered with the replacement.
    /// </summary>
    public Task<Credential> RejectAsync(CredentialKey key, ITokenProvider provider, Secret token, CancellationToken cancellationToken)
    {
        if (_cache.TryGetValue(key, out var cached) && !ReferenceEquals(cached.Tokens.AccessToken, token) && !cached.Tokens.AccessToken.Equals(token) && !cached.Rejected)
        {
            return Task.FromResult(cached);
        }

        cached?.Reject();
        return Join(key, provider, token).WaitAsync(cancellationToken);
    }

    /// <summary>Refreshes now, whatever the expiry (<c>POST …/credential/refresh</c>, schedules).</summary>
    public Task<Credential> RefreshAsync(CredentialKey key, ITokenProvider provider, CancellationToken cancellationToken)
    {
        if (_cache.TryGetValue(key, out var cached))
        {
            cached.Reject();
        }

        return Join(key, provider, cached?.Tokens.AccessToken ?? Forced).WaitAsync(cancellationToken);
    }

    /// <summary>Stores a token set obtained elsewhere (import) or by a connect flow, replacing whatever was there.</summary>
    public async Task<Credential> StoreAsync(CredentialKey key, ITokenProvider provider, TokenSet tokens, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var stored = await store.ReadAsync(key, cancellationToken);
            var refreshAt = RefreshAt(tokens);
            var connected = new CredentialEvent(key, CredentialEventKind.Connected, null);
            var version = await store.SaveTokensAsync(
                key, stored?.Version, provider.ParametersHash, tokens, refreshAt, countRefresh: false, cancellationToken, KeepAliveAt(tokens, provider), events.StageFor(connected));
            if (version is { } v)
            {
                var credential = new Credential(key, tokens, v, refreshAt, provider.ParametersHash);
                // Publish first: it evicts here too (synchronously), then the new credential is cached.
                changes?.Publish(new Environments.Change(ChangeKind, key.ToString()));
                _cache[key] = credential;
                await DropPendingAsync(key);
                events.Committed(connected);
                return credential;
            }

            if (attempt == 3)
            {
                throw new InvalidOperationException("The credential kept changing while it was being stored.");
            }
        }
    }

    /// <summary>Forgets a credential here and in the store.</summary>
    public async Task<bool> ForgetAsync(CredentialKey key, CancellationToken cancellationToken)
    {
        _cache.TryRemove(key, out _);
        var disconnected = new CredentialEvent(key, CredentialEventKind.Disconnected, null);
        var deleted = await store.DeleteAsync(key, cancellationToken, events.StageFor(disconnected));
        await DropPendingAsync(key);
        changes?.Publish(new Environments.Change(ChangeKind, key.ToString()));
        events.Committed(disconnected);
        return deleted;
    }

    /// <summary>Drops the in-memory copy (another replica changed the credential).</summary>
    public void Evict(CredentialKey key) => _cache.TryRemove(key, out _);

    /// <summary>Evicts credentials that another replica imported, connected or disconnected.</summary>
    public void Subscribe()
    {
        // Other replicas honour this one's in-flight marks while it holds answers for the store: its heartbeat says how many.
        heartbeat?.CountPendingWith(() => _pending.Count);
        if (changes is null)
        {
            return;
        }

        changes.Changed += change =>
        {
            if (change.IsAll)
            {
                _cache.Clear();
            }
            else if (change.Kind == ChangeKind && change.Name.Split('/') is [var resource, var environment, var owner])
            {
                _cache.TryRemove(new CredentialKey(resource, environment, owner), out _);
            }
            else if (change.Kind == "resources")
            {
                // A resource deleted, or moved to another destination, takes its tokens with it: a resource
                // created later under its name, or its new destination, must not be handed them from memory.
                foreach (var key in _cache.Keys)
                {
                    if (key.Resource == change.Name)
                    {
                        _cache.TryRemove(key, out _);
                    }
                }
            }
        };
    }

    /// <summary>Whether a refresh of this credential is under way in this process.</summary>
    public bool IsRefreshing(CredentialKey key) => _flights.ContainsKey(key);

    /// <summary>Refreshes a credential if its schedule says so (the proactive sweep); otherwise does nothing.</summary>
    public Task<Credential> RefreshIfDueAsync(CredentialKey key, ITokenProvider provider, CancellationToken cancellationToken) =>
        Join(key, provider, rejected: null).WaitAsync(cancellationToken);

    /// <summary>
    /// When to refresh ahead of expiry: expiry − 1 s (<c>expires_in</c> is whole seconds) − the clock-skew
    /// allowance − min(60 s, 10% of the lifetime) − jitter; never before a quarter of the lifetime has
    /// passed, so a token shorter than the allowances is still used a while. The expiry itself counts
    /// from when the token request was sent (<see cref="TokenExpiry"/>), so its round trip is inside.
    /// </summary>
    internal DateTimeOffset? RefreshAt(TokenSet tokens)
    {
        if (tokens.ExpiresAt is not { } expires)
        {
            return null;
        }

        var lifetime = expires - tokens.ObtainedAt;
        if (lifetime <= TimeSpan.Zero)
        {
            return expires;
        }

        var margin = TimeSpan.FromTicks(Math.Min(MaxMargin.Ticks, lifetime.Ticks / 10));
        var jitter = TimeSpan.FromTicks((long)(Math.Min(MaxJitter.Ticks, lifetime.Ticks / 20) * Random()));
        var at = expires - WholeSecond - _options.ClockSkew - margin - jitter;
        var earliest = tokens.ObtainedAt + lifetime / 4;
        return at < earliest ? earliest : at;
    }

    /// <summary>
    /// Until when a token is handed out: its expiry less a second for a whole-second <c>expires_in</c> and the
    /// clock-skew allowance (it may be dead by then), but at least half its lifetime. Past it, callers wait for the
    /// refresh (bounded by their timeout) rather than carry a token the upstream may already refuse.
    /// </summary>
    internal DateTimeOffset? UsableUntil(TokenSet tokens)
    {
        if (tokens.ExpiresAt is not { } expires)
        {
            return null;
        }

        var safe = expires - WholeSecond - _options.ClockSkew;
        var half = tokens.ObtainedAt + (expires - tokens.ObtainedAt) / 2;
        return safe > half ? safe : half;
    }

    /// <summary>Whether <paramref name="tokens"/> are what the caller asked to be rid of: the rejected token, or anything on a forced refresh.</summary>
    private static bool IsRejected(TokenSet tokens, Secret? rejected) =>
        rejected is not null && (ReferenceEquals(rejected, Forced) || tokens.AccessToken.Equals(rejected));

    private bool Usable(TokenSet tokens, DateTimeOffset now) => UsableUntil(tokens) is not { } until || now < until;

    /// <summary>
    /// When the sweep must refresh regardless of expiry: the keep-alive of an idle refresh token,
    /// or the next time of the resource's refresh schedule, whichever comes first.
    /// </summary>
    private static DateTimeOffset? KeepAliveAt(TokenSet tokens, ITokenProvider provider)
    {
        DateTimeOffset? keepAlive = provider.KeepAlive is { } interval && tokens.RefreshToken is not null ? tokens.ObtainedAt + interval : null;
        var scheduled = provider.NextScheduledRefresh(tokens.ObtainedAt);
        return keepAlive is null ? scheduled : scheduled is null ? keepAlive : (keepAlive < scheduled ? keepAlive : scheduled);
    }

    /// <summary>Exponential backoff with full jitter, capped.</summary>
    internal TimeSpan Backoff(long failures)
    {
        var ceiling = Math.Min(BackoffCap.Ticks, BackoffBase.Ticks * (1L << (int)Math.Min(failures, 20)));
        return TimeSpan.FromTicks(Math.Max(BackoffBase.Ticks / 2, (long)(ceiling * Random())));
    }

    // A marker token meaning "refresh whatever is stored": never equal to a real token.
    private static readonly Secret Forced = new("\0forced");

    private async Task RefreshInBackgroundAsync(CredentialKey key, ITokenProvider provider)
    {
        try
        {
            await Join(key, provider, rejected: null);
        }
        catch (KeywayException e)
        {
            // Recorded in the store and published as an event by the flight (or the store is unreachable); callers still have a valid token.
            Log.BackgroundRefreshFailed(logger, key.ToString(), e.Code);
        }
    }

    /// <summary>Joins the one flight for this key, starting it if none runs.</summary>
    private Task<Credential> Join(CredentialKey key, ITokenProvider provider, Secret? rejected)
    {
        while (true)
        {
            if (_flights.TryGetValue(key, out var running))
            {
                return running;
            }

            var flight = new TaskCompletionSource<Credential>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (_flights.TryAdd(key, flight.Task))
            {
                _ = FlyAsync(key, provider, rejected, flight);
                return flight.Task;
            }
        }
    }

    private async Task FlyAsync(CredentialKey key, ITokenProvider provider, Secret? rejected, TaskCompletionSource<Credential> flight)
    {
        Credential? credential = null;
        Exception? failure = null;
        try
        {
            credential = await ObtainAsync(key, provider, rejected);
            // The cache is updated before the flight ends, so a caller that arrives next finds it.
            _cache[key] = credential;
        }
        catch (Exception e) when (StoreFailure.IsUnavailable(e))
        {
            failure = StoreFailure.Unavailable();
        }
        catch (Exception e)
        {
            failure = e;
        }

        // Ended before its callers are told: one that calls again at once (its token just expired) starts a new
        // flight instead of joining this finished one and getting its answer again.
        _flights.TryRemove(new KeyValuePair<CredentialKey, Task<Credential>>(key, flight.Task));
        if (failure is null)
        {
            flight.SetResult(credential!);
        }
        else
        {
            flight.SetException(failure);
        }
    }

    private async Task<Credential> ObtainAsync(CredentialKey key, ITokenProvider provider, Secret? rejected)
    {
        // Flights are not cancelled by one caller going away: other callers are waiting on them.
        var ct = CancellationToken.None;
        if (_pending.ContainsKey(key))
        {
            // This replica holds the newest tokens there are, and the store does not have them yet.
            if (await FromPendingAsync(key, provider, rejected, ct) is { } pending)
            {
                return pending;
            }
        }

        var stored = await store.ReadAsync(key, ct);
        if (Adopt(stored, provider, rejected) is { } fresh)
        {
            return fresh;
        }

        ThrowIfStopped(stored, provider);
        if (InBackoff(stored, provider, rejected) is { } served)
        {
            return served;
        }

        var deadline = time.GetUtcNow() + _options.RefreshWait;
        var wait = FirstWait;
        IAsyncDisposable? held = null;
        try
        {
            for (var attempt = 0; ;)
            {
                held ??= await clusterLock.TryAcquireAsync(key, deadline - time.GetUtcNow(), ct);
                if (held is not null)
                {
                    // Re-read under the lock: another replica may have refreshed while we waited.
                    stored = await store.ReadAsync(key, ct);
                }

                if (Adopt(stored, provider, rejected) is { } adopted)
                {
                    Log.Adopted(logger, key.ToString());
                    return adopted;
                }

                ThrowIfStopped(stored, provider);
                if (InBackoff(stored, provider, rejected) is { } stillServed)
                {
                    return stillServed;
                }

                var marked = stored is { RefreshStartedAt: { } markedAt, RefreshOwner: { } owner } && owner != InstanceId && stored.ParametersHash == provider.ParametersHash
                    && await OwnerMayStillWrite(owner, markedAt, ct);
                if (held is not null && !marked)
                {
                    var result = await AskProviderAsync(key, provider, stored, ct);
                    if (result is not null)
                    {
                        return result;
                    }

                    if (++attempt == 3)
                    {
                        throw CredentialException.RefreshFailed(key, "the stored credential kept changing during the refresh.", null);
                    }

                    continue;
                }

                if (marked && ServeWhileOwnerStores(stored!, rejected) is { } meanwhile)
                {
                    // Another replica spent the refresh token and may hold the answer: its access token still works.
                    return meanwhile;
                }

                // Another replica is refreshing (it holds the lock), or its answer waits to be stored (its mark):
                // never spend the refresh token it replaced. Wait for it, reading what it stores, within bounds.
                if (held is not null)
                {
                    await held.DisposeAsync();
                    held = null;
                }

                if (time.GetUtcNow() >= deadline)
                {
                    throw CredentialException.RefreshPending(key, marked, LongestWait);
                }

                await Task.Delay(wait, time, ct);
                wait = TimeSpan.FromTicks(Math.Min(wait.Ticks * 2, LongestWait.Ticks));
                stored = await store.ReadAsync(key, ct);
            }
        }
        finally
        {
            if (held is not null)
            {
                await held.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// While another replica's refresh mark stands, its predecessor access token is served for as long
    /// as it is valid (looked at again within a second), unless it is the one an upstream rejected.
    /// </summary>
    private Credential? ServeWhileOwnerStores(StoredCredential stored, Secret? rejected)
    {
        var now = time.GetUtcNow();
        if (stored.Tokens is not { } tokens || IsRejected(tokens, rejected) ||
            !Usable(tokens, now))
        {
            return null;
        }

        var again = now + WholeSecond;
        return new Credential(stored.Key, tokens, stored.Version, UsableUntil(tokens) is { } until && until < again ? until : again, stored.ParametersHash);
    }

    /// <summary>
    /// This replica holds tokens the store does not have yet. Store them if the store answers now (then
    /// null: the caller goes on as usual); otherwise serve them, or refresh them further (the store still
    /// holds this replica's mark, so no other replica refreshes meanwhile) and keep the new answer pending.
    /// An answer whose write may have committed unacknowledged is never refreshed from memory: once
    /// committed, it cleared the mark, and another replica may spend its refresh token.
    /// </summary>
    private async Task<Credential?> FromPendingAsync(CredentialKey key, ITokenProvider provider, Secret? rejected, CancellationToken ct)
    {
        var gate = Gate(key);
        await gate.WaitAsync(ct);
        try
        {
            if (!_pending.TryGetValue(key, out var entry) || await TryLandAsync(entry) != Landing.StoreDown)
            {
                return null;
            }

            var tokens = entry.Tokens;
            var now = time.GetUtcNow();
            if (entry.ParametersHash != provider.ParametersHash)
            {
                // The resource's auth settings changed while the store was down; nothing can be decided without it.
                throw StoreFailure.Unavailable();
            }

            var valid = Usable(tokens, now);
            var isRejected = IsRejected(tokens, rejected);
            if (valid && !isRejected && !(entry.NextRefreshAt is { } due && now >= due))
            {
                return new Credential(key, tokens, entry.ExpectedVersion, entry.NextRefreshAt, entry.ParametersHash);
            }

            if (tokens.RefreshToken is null || entry.Uncertain)
            {
                return valid && !isRejected ? new Credential(key, tokens, entry.ExpectedVersion, now + WholeSecond, entry.ParametersHash) : throw StoreFailure.Unavailable();
            }

            var started = time.GetTimestamp();
            var result = await provider.RefreshAsync(key, tokens, ct);
            if (result.Tokens is not { } next)
            {
                // Nothing is recorded (the store is down); the pending tokens are stored when it is back.
                if (valid && !isRejected)
                {
                    return new Credential(key, tokens, entry.ExpectedVersion, now + Backoff(1), entry.ParametersHash);
                }

                throw result.Failure == FailureKind.GrantRevoked
                    ? CredentialException.ReconnectRequired(key, result.Error ?? "the grant was revoked.")
                    : CredentialException.RefreshFailed(key, result.Error ?? "the provider is unavailable.", Backoff(1));
            }

            if (next.RefreshToken is null)
            {
                next = next with { RefreshToken = tokens.RefreshToken };
            }

            var refreshAt = RefreshAt(next);
            var newer = entry with
            {
                Id = Guid.NewGuid().ToString("N"),
                Tokens = next,
                NextRefreshAt = refreshAt,
                KeepAliveAt = KeepAliveAt(next, provider),
                CountRefresh = true,
                Spent = [.. entry.Spent, tokens.RefreshToken],
            };
            Journal(newer);
            _pending[key] = newer;
            events.PublishWhileStoreDown(new CredentialEvent(key, CredentialEventKind.Refreshed, null) { Duration = time.GetElapsedTime(started) });
            Log.RefreshedWhileStoreDown(logger, key.ToString());
            EnsureLanding(key);
            return new Credential(key, next, entry.ExpectedVersion, refreshAt, entry.ParametersHash);
        }
        finally
        {
            gate.Release();
        }
    }

    private enum Landing
    {
        Landed,
        Superseded,
        StoreDown,
    }

    private SemaphoreSlim Gate(CredentialKey key) => _pendingGates.GetOrAdd(key, _ => new SemaphoreSlim(1, 1));

    /// <summary>
    /// Stores a pending answer (the caller holds its key's gate): landed (it is in the store now), superseded
    /// (the store holds something newer), or the store is still down. A version that moved is read: if the
    /// store holds this very answer, or an answer this replica spent on the way to it (a write that
    /// committed while its acknowledgement was lost), the answer is ours to store over it.
    /// </summary>
    private async Task<Landing> TryLandAsync(JournalEntry entry)
    {
        var key = entry.Key;
        using var bounded = new CancellationTokenSource(LandingTimeout, time);
        try
        {
            for (var attempt = 0; attempt < 3; attempt++)
            {
                var written = await store.SaveTokensAsync(key, entry.ExpectedVersion, entry.ParametersHash, entry.Tokens, entry.NextRefreshAt, entry.CountRefresh, bounded.Token, entry.KeepAliveAt);
                if (written is { } version)
                {
                    Settle(entry);
                    changes?.Publish(new Environments.Change(ChangeKind, key.ToString()));
                    _cache[key] = new Credential(key, entry.Tokens, version, entry.NextRefreshAt, entry.ParametersHash);
                    Log.Landed(logger, key.ToString());
                    return Landing.Landed;
                }

                var stored = await store.ReadAsync(key, bounded.Token);
                if (stored?.Tokens is { } current && current.AccessToken.Equals(entry.Tokens.AccessToken))
                {
                    // This very answer is stored (an earlier write of it committed unacknowledged).
                    Settle(entry);
                    _cache[key] = new Credential(key, current, stored.Version, stored.NextRefreshAt, stored.ParametersHash);
                    Log.Landed(logger, key.ToString());
                    return Landing.Landed;
                }

                if (stored?.Tokens?.RefreshToken is { } storedRefresh && entry.Spent.Any(storedRefresh.Equals))
                {
                    // The store holds an answer this replica already spent: ours is its successor.
                    entry = entry with { ExpectedVersion = stored.Version };
                    _pending[key] = entry;
                    Journal(entry);
                    continue;
                }

                break;
            }
        }
        catch (Exception e) when (StoreFailure.IsUnavailable(e) || e is OperationCanceledException)
        {
            if (e is StoreOutcomeUnknownException && !entry.Uncertain && _pending.TryGetValue(key, out var same) && same.Id == entry.Id)
            {
                _pending[key] = entry with { Uncertain = true };
            }

            return Landing.StoreDown;
        }

        // Someone stored newer tokens (an import, a connect, a disconnect, or a replica that gave up waiting for this one).
        Settle(entry);
        _cache.TryRemove(key, out _);
        Log.Superseded(logger, key.ToString());
        return Landing.Superseded;
    }

    /// <summary>The answer is settled: out of the journal and out of the pending set (unless a newer one replaced it).</summary>
    private void Settle(JournalEntry entry)
    {
        journal?.Remove(entry.Key, entry.Id);
        if (_pending.TryGetValue(entry.Key, out var current) && current.Id == entry.Id)
        {
            _pending.TryRemove(new KeyValuePair<CredentialKey, JournalEntry>(entry.Key, current));
        }
    }

    /// <summary>The store took tokens from elsewhere (an import, a connect) or forgot the credential: a held answer is moot.</summary>
    private async Task DropPendingAsync(CredentialKey key)
    {
        if (!_pending.ContainsKey(key))
        {
            return;
        }

        var gate = Gate(key);
        await gate.WaitAsync();
        try
        {
            _pending.TryRemove(key, out _);
            journal?.Forget(key);
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>Retries storing a pending answer in the background, with backoff, until it lands or is superseded.</summary>
    private void EnsureLanding(CredentialKey key)
    {
        if (_landing.TryAdd(key, 0))
        {
            _ = LandInBackgroundAsync(key);
        }
    }

    private async Task LandInBackgroundAsync(CredentialKey key)
    {
        var wait = TimeSpan.FromMilliseconds(250);
        var gate = Gate(key);
        try
        {
            while (_pending.ContainsKey(key))
            {
                await Task.Delay(wait, time);
                wait = TimeSpan.FromTicks(Math.Min(wait.Ticks * 2, LongestLandingWait.Ticks));
                await gate.WaitAsync();
                try
                {
                    if (_pending.TryGetValue(key, out var entry))
                    {
                        await TryLandAsync(entry);
                    }
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    // Not an outage (a bug, a full disk, a read-only store): said loudly, and tried again; the answer is kept.
                    Log.LandingFailed(logger, key.ToString(), e.GetType().Name);
                }
                finally
                {
                    gate.Release();
                }
            }
        }
        finally
        {
            _landing.TryRemove(key, out _);
            if (_pending.ContainsKey(key))
            {
                EnsureLanding(key);
            }
        }
    }

    /// <summary>
    /// At start, before the server listens: stores what the journal holds (answers a previous run of this
    /// replica got and could not store). What the store cannot take yet stays pending and is retried.
    /// </summary>
    public async Task<int> ReplayJournalAsync(CancellationToken cancellationToken)
    {
        if (journal is null)
        {
            return 0;
        }

        var entries = journal.ReadAll();
        foreach (var entry in entries)
        {
            _pending[entry.Key] = entry;
            var outcome = Landing.StoreDown;
            try
            {
                outcome = await TryLandAsync(entry);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                Log.LandingFailed(logger, entry.Key.ToString(), e.GetType().Name);
            }

            Log.Replayed(logger, entry.Key.ToString(), outcome.ToString());
            if (_pending.ContainsKey(entry.Key))
            {
                EnsureLanding(entry.Key);
            }
        }

        return entries.Count;
    }

    /// <summary>Writes an answer to the journal; a journal that cannot be written is logged, never a reason to drop the answer.</summary>
    private void Journal(JournalEntry entry)
    {
        try
        {
            journal?.Write(entry);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Log.JournalFailed(logger, entry.Key.ToString(), e.GetType().Name);
        }
    }

    /// <summary>Asks the provider and stores the answer; null when the store changed under us (the caller re-reads).</summary>
    private async Task<Credential?> AskProviderAsync(CredentialKey key, ITokenProvider provider, StoredCredential? stored, CancellationToken ct)
    {
        var sameParameters = stored?.ParametersHash == provider.ParametersHash;
        var current = sameParameters ? stored!.Tokens : null;
        var version = stored?.Version;
        var interrupted = stored?.RefreshStartedAt is not null;
        var useRefreshToken = current?.RefreshToken is not null;
        if (!useRefreshToken && !provider.CanAcquire)
        {
            throw stored?.State == CredentialState.ReconnectRequired
                ? CredentialException.ReconnectRequired(key, stored.LastError ?? "the grant was revoked.")
                : CredentialException.NotConnected(key, null);
        }

        if (useRefreshToken && version is { } v)
        {
            // Say, before spending the refresh token, that it is being spent: if this process dies
            // before the answer is stored, the next refresh knows the stored token may be used up.
            version = await store.MarkRefreshStartedAsync(key, v, InstanceId, ct);
            if (version is null)
            {
                return null;
            }
        }

        var started = time.GetTimestamp();
        var result = useRefreshToken
            ? await provider.RefreshAsync(key, current!, ct)
            : await provider.AcquireAsync(key, ct);
        var elapsed = time.GetElapsedTime(started);
        if (result.Tokens is { } tokens)
        {
            if (tokens.RefreshToken is null && current?.RefreshToken is { } kept)
            {
                // The provider did not rotate: the old refresh token stays good.
                tokens = tokens with { RefreshToken = kept };
            }

            var refreshAt = RefreshAt(tokens);
            var keepAliveAt = KeepAliveAt(tokens, provider);
            var countRefresh = useRefreshToken || stored is not null;
            // Only an answer that spent a refresh token is irreplaceable: it goes to disk before anything else,
            // so from here on neither a crash nor an outage can lose it. Any other answer can be asked for again.
            var entry = useRefreshToken
                ? new JournalEntry(key, version!.Value, provider.ParametersHash, tokens, refreshAt, keepAliveAt, countRefresh)
                : null;
            if (entry is not null)
            {
                Journal(entry);
            }

            var refreshed = new CredentialEvent(key, stored?.FailureCount > 0 ? CredentialEventKind.Recovered : CredentialEventKind.Refreshed, null) { Duration = elapsed };
            long? written;
            try
            {
                written = await store.SaveTokensAsync(key, version, provider.ParametersHash, tokens, refreshAt, countRefresh, ct, keepAliveAt, events.StageFor(refreshed));
            }
            catch (Exception e) when (entry is not null && e is not OutOfMemoryException)
            {
                // The store did not take it (down, or failing otherwise): serve the answer from memory and store it when
                // it can. The mark written before asking stays, so no other replica spends the refresh token just replaced.
                _pending[key] = entry with { Uncertain = e is StoreOutcomeUnknownException };
                EnsureLanding(key);
                events.PublishWhileStoreDown(new CredentialEvent(key, CredentialEventKind.Refreshed, null) { Duration = elapsed });
                Log.Pending(logger, key.ToString(), e.GetType().Name);
                return new Credential(key, tokens, version!.Value, refreshAt, provider.ParametersHash);
            }

            if (entry is not null)
            {
                journal?.Remove(key, entry.Id);
            }

            if (written is null)
            {
                // Only a writer without the lock (an import) can get here; its tokens win.
                return null;
            }

            events.Committed(refreshed);
            Log.Refreshed(logger, key.ToString(), useRefreshToken ? "refresh_token" : "acquire", (long)elapsed.TotalMilliseconds);
            return new Credential(key, tokens, written.Value, refreshAt, provider.ParametersHash);
        }

        return await RecordFailureAsync(key, provider, stored, version, current, result, interrupted, elapsed, ct);
    }

    private async Task<Credential?> RecordFailureAsync(
        CredentialKey key, ITokenProvider provider, StoredCredential? stored, long? version, TokenSet? current,
        TokenResult result, bool interrupted, TimeSpan elapsed, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var error = result.Error ?? "the provider refused.";
        var failures = (stored?.FailureCount ?? 0) + 1;
        switch (result.Failure)
        {
            case FailureKind.GrantRevoked:
                {
                    if (interrupted)
                    {
                        error += $" A refresh by replica {stored!.RefreshOwner ?? "?"} was interrupted earlier (it ended between asking the provider and storing the answer, and no journal held the answer), so the stored refresh token may have been spent.";
                    }

                    await RecordAsync(CredentialState.ReconnectRequired, null, clearTokens: true, CredentialEventKind.ReconnectRequired);
                    Log.ReconnectRequired(logger, key.ToString(), result.Error ?? "");
                    throw CredentialException.ReconnectRequired(key, error);
                }

            case FailureKind.Misconfigured:
                {
                    await RecordAsync(CredentialState.Failed, null, clearTokens: false, CredentialEventKind.Failed);
                    Log.Misconfigured(logger, key.ToString(), result.Error ?? "");
                    throw CredentialException.Failed(key, error);
                }

            default:
                {
                    var wait = result.RetryAfter is { } r && r > TimeSpan.Zero ? r : Backoff(failures);
                    var stillValid = current is not null && !(current.ExpiresAt is { } e && now >= e);
                    await RecordAsync(stillValid ? CredentialState.Expiring : CredentialState.Expired, now + wait, clearTokens: false, CredentialEventKind.RefreshFailed);
                    Log.TransientFailure(logger, key.ToString(), result.Error ?? "", (long)wait.TotalMilliseconds);
                    if (stillValid && stored?.ParametersHash == provider.ParametersHash)
                    {
                        // Keep serving the current token while it is valid.
                        var reread = await store.ReadAsync(key, ct);
                        return new Credential(key, current!, reread?.Version ?? stored.Version, now + wait, provider.ParametersHash);
                    }

                    throw CredentialException.RefreshFailed(key, error, wait);
                }
        }

        // The failure and its audit event commit together.
        async Task RecordAsync(CredentialState state, DateTimeOffset? next, bool clearTokens, CredentialEventKind kind)
        {
            var failed = new CredentialEvent(key, kind, error) { Duration = elapsed, Failures = failures };
            if (version is { } v)
            {
                await store.RecordFailureAsync(key, v, state, error, next, clearTokens, ct, events.StageFor(failed));
            }
            else
            {
                await store.InsertFailureAsync(key, provider.ParametersHash, state, error, next, ct, events.StageFor(failed));
            }

            events.Committed(failed);
        }
    }

    /// <summary>A stored credential good to use as it is: minted under the same parameters, not the rejected token, not expired, not due.</summary>
    private Credential? Adopt(StoredCredential? stored, ITokenProvider provider, Secret? rejected)
    {
        if (stored?.Tokens is not { } tokens || stored.ParametersHash != provider.ParametersHash ||
            stored.State is CredentialState.ReconnectRequired or CredentialState.Failed ||
            IsRejected(tokens, rejected))
        {
            return null;
        }

        var now = time.GetUtcNow();
        // The schedule written with the tokens, so every replica agrees on when they are due.
        var refreshAt = stored.NextRefreshAt ?? RefreshAt(tokens);
        if (!Usable(tokens, now) || (refreshAt is { } at && now >= at))
        {
            return null;
        }

        return new Credential(stored.Key, tokens, stored.Version, refreshAt, stored.ParametersHash);
    }

    /// <summary>A credential that failed for good is not retried until its parameters change or someone reconnects.</summary>
    private static void ThrowIfStopped(StoredCredential? stored, ITokenProvider provider)
    {
        if (stored is null || stored.ParametersHash != provider.ParametersHash)
        {
            return;
        }

        switch (stored.State)
        {
            case CredentialState.ReconnectRequired:
                throw CredentialException.ReconnectRequired(stored.Key, stored.LastError ?? "the grant was revoked.");
            case CredentialState.Failed:
                throw CredentialException.Failed(stored.Key, stored.LastError ?? "the provider refused the configuration.");
        }
    }

    /// <summary>During a transient-failure backoff: serve the still-valid token, or say when to try again.</summary>
    private Credential? InBackoff(StoredCredential? stored, ITokenProvider provider, Secret? rejected)
    {
        var now = time.GetUtcNow();
        if (stored is null || stored.FailureCount == 0 || stored.NextRefreshAt is not { } next || now >= next || stored.ParametersHash != provider.ParametersHash)
        {
            return null;
        }

        if (stored.Tokens is { } tokens && rejected is null && !(tokens.ExpiresAt is { } e && now >= e))
        {
            return new Credential(stored.Key, tokens, stored.Version, next, stored.ParametersHash);
        }

        throw CredentialException.RefreshFailed(stored.Key, stored.LastError ?? "the provider is unavailable.", next - now);
    }

    private static partial class Log
    {
        [LoggerMessage(300, LogLevel.Information, "Credential {Credential} obtained by {How} in {Milliseconds} ms")]
        public static partial void Refreshed(ILogger logger, string credential, string how, long milliseconds);

        [LoggerMessage(301, LogLevel.Debug, "Credential {Credential} was already refreshed by another replica")]
        public static partial void Adopted(ILogger logger, string credential);

        [LoggerMessage(302, LogLevel.Warning, "Credential {Credential}: transient failure ({Error}); next try in {Milliseconds} ms")]
        public static partial void TransientFailure(ILogger logger, string credential, string error, long milliseconds);

        [LoggerMessage(303, LogLevel.Error, "Credential {Credential} needs to be connected again ({Error})")]
        public static partial void ReconnectRequired(ILogger logger, string credential, string error);

        [LoggerMessage(304, LogLevel.Error, "Credential {Credential} cannot be obtained with its configuration ({Error})")]
        public static partial void Misconfigured(ILogger logger, string credential, string error);

        [LoggerMessage(305, LogLevel.Warning, "Background refresh of {Credential} failed ({Code}); the current token is still served")]
        public static partial void BackgroundRefreshFailed(ILogger logger, string credential, string code);

        [LoggerMessage(306, LogLevel.Warning, "Credential {Credential}: the provider's answer could not be stored ({Error}); it is served from memory, kept in the journal, and stored when the store answers")]
        public static partial void Pending(ILogger logger, string credential, string error);

        [LoggerMessage(307, LogLevel.Information, "Credential {Credential}: the answer held while the store was down is stored")]
        public static partial void Landed(ILogger logger, string credential);

        [LoggerMessage(308, LogLevel.Warning, "Credential {Credential}: the answer held while the store was down was superseded by newer tokens in the store and dropped")]
        public static partial void Superseded(ILogger logger, string credential);

        [LoggerMessage(309, LogLevel.Information, "Credential {Credential} refreshed while the store is down; the answer is pending")]
        public static partial void RefreshedWhileStoreDown(ILogger logger, string credential);

        [LoggerMessage(310, LogLevel.Error, "Credential {Credential}: the journal could not be written ({Error}); the answer is kept in memory only")]
        public static partial void JournalFailed(ILogger logger, string credential, string error);

        [LoggerMessage(311, LogLevel.Warning, "Credential {Credential}: storing the held answer failed ({Error}); retrying")]
        public static partial void LandingFailed(ILogger logger, string credential, string error);

        [LoggerMessage(312, LogLevel.Information, "Credential {Credential}: journal entry replayed at start ({Outcome})")]
        public static partial void Replayed(ILogger logger, string credential, string outcome);
    }
}

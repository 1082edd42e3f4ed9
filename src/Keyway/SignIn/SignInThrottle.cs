using System.Collections.Concurrent;
using Keyway.Storage;

namespace Keyway.SignIn;

/// <summary>How many sign-in attempts are allowed: a burst, refilled evenly over a minute.</summary>
internal sealed record SignInLimits
{
    /// <summary>Attempts per minute from one client address.</summary>
    public int PerClientPerMinute { get; init; } = 20;

    /// <summary>Attempts per minute for one user name, from anywhere.</summary>
    public int PerUserPerMinute { get; init; } = 10;
}

/// <summary>
/// Token buckets, one per client address and one per user name, on the injected clock. An attempt
/// takes a token from both; when either is empty the attempt is refused with the time until the
/// next token, for <c>Retry-After</c>. Each process keeps its buckets in memory; on PostgreSQL an
/// attempt that passes them also takes its tokens from buckets in the store (<c>signin_buckets</c>),
/// which every replica shares, so N replicas do not allow N times the limit.
/// </summary>
internal sealed class SignInThrottle(SignInLimits limits, TimeProvider time, Database? shared = null)
{
    private const int MaxBuckets = 100_000;

    // Shared buckets untouched for this long are full again: deleting them changes nothing.
    private static readonly long StaleMilliseconds = (long)TimeSpan.FromMinutes(10).TotalMilliseconds;

    private readonly ConcurrentDictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);
    private int _attempts;

    /// <summary>
    /// Takes one attempt for <paramref name="client"/> and <paramref name="userName"/> here and, on
    /// PostgreSQL, in the buckets every replica shares; null when allowed, else how long to wait.
    /// </summary>
    public async ValueTask<TimeSpan?> TryAcquireAsync(string client, string userName, CancellationToken cancellationToken)
    {
        if (TryAcquire(client, userName) is { } wait)
        {
            return wait;
        }

        return shared is { Kind: StoreKind.Postgres } database ? await TryAcquireSharedAsync(database, client, userName, cancellationToken) : null;
    }

    private async Task<TimeSpan?> TryAcquireSharedAsync(Database database, string client, string userName, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        // Locked in key order, so two replicas taking the same pair cannot deadlock.
        var wanted = new[] { ("ip:" + client, limits.PerClientPerMinute), ("user:" + userName.ToLowerInvariant(), limits.PerUserPerMinute) }
            .OrderBy(k => k.Item1, StringComparer.Ordinal).ToArray();
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        foreach (var (key, perMinute) in wanted)
        {
            await connection.ExecuteAsync(
                "INSERT INTO signin_buckets (key, tokens, updated_at) VALUES (@key, @tokens, @now) ON CONFLICT (key) DO NOTHING",
                new { key, tokens = (double)Math.Max(1, perMinute), now }, transaction);
        }

        var rows = (await connection.QueryAsync<SharedBucket>(
            "SELECT key, tokens, updated_at FROM signin_buckets WHERE key IN (@first, @second) ORDER BY key FOR UPDATE",
            new { first = wanted[0].Item1, second = wanted[1].Item1 }, transaction)).ToDictionary(r => r.Key, StringComparer.Ordinal);
        TimeSpan? wait = null;
        var refilled = new double[wanted.Length];
        for (var i = 0; i < wanted.Length; i++)
        {
            var (key, perMinute) = wanted[i];
            var capacity = Math.Max(1, perMinute);
            var refillMs = 60_000.0 / capacity;
            // A row another replica just pruned as stale was a full bucket.
            refilled[i] = rows.TryGetValue(key, out var row)
                ? Math.Min(capacity, row.Tokens + (Math.Max(0, now - row.UpdatedAt) / refillMs))
                : capacity;
            if (refilled[i] < 1)
            {
                var mine = TimeSpan.FromMilliseconds(refillMs * (1 - refilled[i]));
                wait = wait is null || mine > wait ? mine : wait;
            }
        }

        for (var i = 0; i < wanted.Length; i++)
        {
            await connection.ExecuteAsync(
                """
                INSERT INTO signin_buckets (key, tokens, updated_at) VALUES (@key, @tokens, @now)
                ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, updated_at = excluded.updated_at
                """,
                new { key = wanted[i].Item1, tokens = wait is null ? refilled[i] - 1 : refilled[i], now }, transaction);
        }

        if (Interlocked.Increment(ref _attempts) % 100 == 0)
        {
            await connection.ExecuteAsync("DELETE FROM signin_buckets WHERE updated_at < @stale", new { stale = now - StaleMilliseconds }, transaction);
        }

        await transaction.CommitAsync(cancellationToken);
        return wait;
    }

    private sealed class SharedBucket
    {
        public string Key { get; init; } = "";
        public double Tokens { get; init; }
        public long UpdatedAt { get; init; }
    }

    /// <summary>Takes one attempt for <paramref name="client"/> and <paramref name="userName"/>; null when allowed, else how long to wait.</summary>
    public TimeSpan? TryAcquire(string client, string userName)
    {
        var now = time.GetTimestamp();
        if (_buckets.Count > MaxBuckets)
        {
            // Bounded memory under a spray of names: forgetting grants at most one more burst each.
            _buckets.Clear();
        }

        var byClient = _buckets.GetOrAdd("ip:" + client, _ => new Bucket(limits.PerClientPerMinute, now));
        var byUser = _buckets.GetOrAdd("user:" + userName.ToLowerInvariant(), _ => new Bucket(limits.PerUserPerMinute, now));
        var wait = byClient.Peek(now, time);
        var userWait = byUser.Peek(now, time);
        if (wait is not null || userWait is not null)
        {
            return wait is null ? userWait : userWait is null ? wait : wait > userWait ? wait : userWait;
        }

        byClient.Take();
        byUser.Take();
        return null;
    }

    private sealed class Bucket(int perMinute, long start)
    {
        private readonly Lock _lock = new();
        private readonly int _capacity = Math.Max(1, perMinute);
        private readonly TimeSpan _refill = TimeSpan.FromMinutes(1) / Math.Max(1, perMinute);
        private double _tokens = Math.Max(1, perMinute);
        private long _last = start;

        public TimeSpan? Peek(long now, TimeProvider time)
        {
            lock (_lock)
            {
                var elapsed = time.GetElapsedTime(_last, now);
                if (elapsed > TimeSpan.Zero)
                {
                    _tokens = Math.Min(_capacity, _tokens + (elapsed / _refill));
                    _last = now;
                }

                return _tokens >= 1 ? null : _refill * (1 - _tokens);
            }
        }

        public void Take()
        {
            lock (_lock)
            {
                _tokens = Math.Max(0, _tokens - 1);
            }
        }
    }
}

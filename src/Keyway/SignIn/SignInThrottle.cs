using System.Collections.Concurrent;

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
/// next token, for <c>Retry-After</c>. In memory, per replica: lockout (in the store) is what holds
/// across replicas; this only keeps one source from hammering the password hasher.
/// </summary>
internal sealed class SignInThrottle(SignInLimits limits, TimeProvider time)
{
    private const int MaxBuckets = 100_000;

    private readonly ConcurrentDictionary<string, Bucket> _buckets = new(StringComparer.Ordinal);

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

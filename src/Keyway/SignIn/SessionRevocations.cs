using System.Collections.Frozen;
using Keyway.Environments;
using Keyway.Storage;

namespace Keyway.SignIn;

/// <summary>
/// Sessions ended by signing out, by session id. A session cookie is self-contained, so a copy taken
/// before sign-out (a shared machine, a stolen cookie) would otherwise stay valid until it expired.
/// The id is kept until the last moment such a copy could still be valid, the sign-out time plus the
/// session lifetime (a copy refused once cannot renew itself), and every replica refuses it: each
/// keeps the set in memory (one row per sign-out within a lifetime) and reloads it when the change
/// feed says one was added, on PostgreSQL from another replica too.
/// </summary>
internal sealed partial class SessionRevocations(
    Database database, ChangeFeed changes, TimeProvider time, SignInSettings settings, ILogger<SessionRevocations> logger)
{
    public const string ChangeKind = "sessions";

    // Session id → when refusing it stops mattering (Unix ms): past that, no copy of its cookie is valid.
    private FrozenDictionary<string, long> _revoked = FrozenDictionary<string, long>.Empty;
    private readonly Lock _lock = new();

    public void Subscribe() => changes.Changed += change =>
    {
        if (change.IsAll || change.Kind == ChangeKind)
        {
            _ = ReloadQuietlyAsync();
        }
    };

    /// <summary>Whether the session <paramref name="sessionId"/> was signed out.</summary>
    public bool IsRevoked(string sessionId) => Volatile.Read(ref _revoked).ContainsKey(sessionId);

    /// <summary>Ends <paramref name="sessionId"/> on every replica: this one at once, the others when the change reaches them.</summary>
    public async Task RevokeAsync(string sessionId, CancellationToken cancellationToken)
    {
        var at = time.GetUtcNow();
        var (now, until) = (at.ToStore(), (at + settings.SessionLifetime).ToStore());
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await connection.ExecuteAsync("DELETE FROM revoked_sessions WHERE expires_at <= @now", new { now });
            await connection.ExecuteAsync(
                "INSERT INTO revoked_sessions (id, expires_at) VALUES (@sessionId, @until) ON CONFLICT (id) DO NOTHING", new { sessionId, until });
        }

        Merge([new KeyValuePair<string, long>(sessionId, until)], now);

        changes.Publish(new Change(ChangeKind, sessionId));
    }

    /// <summary>Reads the sessions still worth refusing (at start, and when another replica adds one).</summary>
    public async Task ReloadAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow().ToStore();
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<Row>("SELECT id, expires_at FROM revoked_sessions WHERE expires_at > @now", new { now });
        Merge(rows.Select(r => new KeyValuePair<string, long>(r.Id, r.ExpiresAt)), now);
    }

    // What is known already stays (a reload never forgets a sign-out this replica has seen) until it
    // expires; expired ids are dropped here, so the set holds one lifetime of sign-outs at most.
    private void Merge(IEnumerable<KeyValuePair<string, long>> added, long now)
    {
        lock (_lock)
        {
            var merged = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var (id, until) in _revoked.Concat(added))
            {
                if (until > now)
                {
                    merged[id] = Math.Max(until, merged.GetValueOrDefault(id));
                }
            }

            Volatile.Write(ref _revoked, merged.ToFrozenDictionary(StringComparer.Ordinal));
        }
    }

    private sealed class Row
    {
        public string Id { get; init; } = "";
        public long ExpiresAt { get; init; }
    }

    /// <summary>
    /// Reloads after a change, and keeps trying until a reload succeeds: a sign-out elsewhere that this
    /// replica failed to read would otherwise stand unread until the next change, however long that is.
    /// </summary>
    private async Task ReloadQuietlyAsync()
    {
        if (Interlocked.Exchange(ref _retrying, 1) == 1)
        {
            // A reload loop runs already; it reads whatever changed by the time it succeeds.
            Interlocked.Exchange(ref _again, 1);
            return;
        }

        var wait = TimeSpan.FromMilliseconds(250);
        try
        {
            while (true)
            {
                Interlocked.Exchange(ref _again, 0);
                try
                {
                    await ReloadAsync(CancellationToken.None);
                    if (Interlocked.Exchange(ref _again, 0) == 0)
                    {
                        return;
                    }

                    continue;
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    Log.ReloadFailed(logger, e.GetType().Name);
                }

                await Task.Delay(wait, time);
                wait = TimeSpan.FromTicks(Math.Min(wait.Ticks * 2, TimeSpan.FromSeconds(5).Ticks));
            }
        }
        finally
        {
            Interlocked.Exchange(ref _retrying, 0);
        }
    }

    private int _retrying;
    private int _again;

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Warning, "Reading the signed-out sessions failed ({Error}); the ones this replica knows stay refused, and it tries again")]
        public static partial void ReloadFailed(ILogger logger, string error);
    }
}

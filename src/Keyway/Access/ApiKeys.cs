using System.Collections.Concurrent;
using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using Keyway.Audit;
using Keyway.Environments;
using Keyway.Storage;

namespace Keyway.Access;

/// <summary>What is shown about an API key: never its value, which exists only once, at creation.</summary>
internal sealed record ApiKeyInfo(
    string Id, string Name, string UserId, string Hint, DateTimeOffset CreatedAt, DateTimeOffset? ExpiresAt,
    DateTimeOffset? LastUsedAt, DateTimeOffset? RevokedAt)
{
    /// <summary>The owner's name (a user or a service identity).</summary>
    public string? Owner { get; init; }

    /// <summary>What the key is limited to; null when it may do everything its owner may.</summary>
    public KeyScope? Scopes { get; init; }
}

/// <summary>
/// API keys: random tokens shown once and stored as SHA-256 hashes (a high-entropy token needs no
/// slow hash; a lookup by hash is one index probe). Verified callers are cached briefly so the
/// proxy's hot path does not touch the store on every request; a revocation reaches every
/// replica's cache through the <see cref="ChangeFeed"/> (kind <c>keys</c>), not after 30 s.
/// A key that is not cached is looked up once however many requests present it at the same time.
/// While the store is unreachable a cached key whose lifetime ran out is kept (stale-if-error, within
/// <see cref="StoreOutage.Staleness"/>) and looked up again every <see cref="StoreFailure.RetryAfter"/>;
/// a key never seen cannot be verified and its request answers <c>503 store_unavailable</c>.
/// </summary>
internal sealed class ApiKeyService(Database database, TimeProvider time, ChangeFeed changes, IAuditLog? audit = null, StoreOutage? outage = null)
{
    public const string TokenPrefix = "kw_";
    private static readonly TimeSpan CacheLifetime = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan LastUsedResolution = TimeSpan.FromMinutes(1);

    // SHA-256, one context per thread and kept (see Sha256).
    [ThreadStatic]
    private static IncrementalHash? t_sha256;

    private readonly ConcurrentDictionary<string, CachedCaller> _cache = new(StringComparer.Ordinal);

    // When a refused key (revoked, expired, its owner disabled) was last recorded, by key id: one
    // event a minute per key, so a script retrying a dead key cannot flood the audit log.
    private readonly ConcurrentDictionary<string, long> _refusalsRecorded = new(StringComparer.Ordinal);

    // The lookups in progress, by token hash: the requests that miss the cache together share one.
    private readonly ConcurrentDictionary<string, Task<Caller?>> _lookups = new(StringComparer.Ordinal);

    /// <summary>How many verified callers are kept; at the limit the expired go first, then a few arbitrary ones.</summary>
    internal int CacheCapacity { get; init; } = 10_000;

    // Bumped by every key change: a caller read before a revocation must not be cached after it.
    private long _generation;

    public void Subscribe() => changes.Changed += change =>
    {
        // Keys (revocation), users (disabled, role, groups) and grants all change what a cached caller may do.
        if (change.Kind is "keys" or UserStore.ChangeKind or GrantStore.ChangeKind || change.IsAll)
        {
            // The cache is keyed by token hash, which a change (by key id) does not name; revocations are rare.
            Interlocked.Increment(ref _generation);
            _cache.Clear();
            // A lookup that began before the change answers the requests already waiting on it
            // (they arrived before the change); later requests start a new one.
            _lookups.Clear();
        }
    };

    public static string NewToken() => TokenPrefix + Base64Url(RandomNumberGenerator.GetBytes(32));

    /// <summary>
    /// The one digest a token's hash comes from, on the fast path and the slow one alike: a SHA-256 context
    /// kept per thread, because on Linux the one-shot <c>SHA256.HashData</c> creates and frees an OpenSSL
    /// digest context on every call, which costs more than hashing a key.
    /// </summary>
    private static void Sha256(ReadOnlySpan<byte> data, Span<byte> hash)
    {
        var sha256 = t_sha256 ??= IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        sha256.AppendData(data);
        sha256.GetHashAndReset(hash);
    }

    public static string Hash(string token)
    {
        Span<byte> hash = stackalloc byte[32];
        Sha256(Encoding.UTF8.GetBytes(token), hash);
        return Convert.ToHexStringLower(hash);
    }

    /// <summary>Creates a key; returns its one and only sight of the token.</summary>
    public Task<(ApiKeyInfo Key, string Token)> CreateAsync(
        string userId, string name, DateTimeOffset? expiresAt, string? presetToken, CancellationToken cancellationToken) =>
        CreateAsync(userId, name, expiresAt, presetToken, null, cancellationToken);

    /// <summary>Creates a key limited to <paramref name="scope"/> (null: everything its owner may do).</summary>
    /// <summary>Creates a key; <paramref name="audit"/> runs in the same transaction, given the key (never its token).</summary>
    public async Task<(ApiKeyInfo Key, string Token)> CreateAsync(
        string userId, string name, DateTimeOffset? expiresAt, string? presetToken, KeyScope? scope, CancellationToken cancellationToken,
        Func<DbTransaction, ApiKeyInfo, Task>? audit = null)
    {
        var token = presetToken ?? NewToken();
        var id = "key_" + Base64Url(RandomNumberGenerator.GetBytes(9));
        var now = time.GetUtcNow();
        var hint = token.Length > 10 ? token[..7] + "…" : "…";
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await connection.ExecuteAsync(
            """
            INSERT INTO api_keys (id, name, user_id, hash, hint, created_at, expires_at, scopes)
            VALUES (@id, @name, @userId, @hash, @hint, @now, @expires, @scopes)
            """,
            new { id, name, userId, hash = Hash(token), hint, now = now.ToUnixTimeMilliseconds(), expires = expiresAt?.ToUnixTimeMilliseconds(), scopes = SerializeScope(scope) },
            transaction);
        var owner = await connection.ExecuteScalarAsync<string?>("SELECT name FROM users WHERE id = @userId", new { userId }, transaction);
        var key = new ApiKeyInfo(id, name, userId, hint, now, expiresAt, null, null) { Owner = owner, Scopes = scope };
        if (audit is not null)
        {
            await audit(transaction, key);
        }

        await transaction.CommitAsync(cancellationToken);
        return (key, token);
    }

    public async Task<IReadOnlyList<ApiKeyInfo>> ListAsync(string? userId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<KeyRow>(
            $"{KeySelect} WHERE @userId IS NULL OR k.user_id = @userId ORDER BY k.created_at, k.id",
            new { userId });
        return rows.Select(r => r.ToInfo()).ToList();
    }

    public async Task<ApiKeyInfo?> GetAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return (await connection.QuerySingleOrDefaultAsync<KeyRow>($"{KeySelect} WHERE k.id = @id", new { id }))?.ToInfo();
    }

    private const string KeySelect =
        "SELECT k.id, k.name, k.user_id, u.name AS owner, k.hint, k.created_at, k.expires_at, k.last_used_at, k.revoked_at, k.scopes FROM api_keys k JOIN users u ON u.id = k.user_id";

    private static readonly System.Text.Json.JsonSerializerOptions ScopeJson = new(System.Text.Json.JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    internal static string? SerializeScope(KeyScope? scope) => scope is null ? null : System.Text.Json.JsonSerializer.Serialize(scope, ScopeJson);

    internal static KeyScope? ParseScope(string? json) => json is null ? null : System.Text.Json.JsonSerializer.Deserialize<KeyScope>(json, ScopeJson);

    /// <summary>Revokes a key; <paramref name="audit"/> runs in the same transaction when it was active.</summary>
    public async Task<bool> RevokeAsync(string id, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        int changed;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            changed = await connection.ExecuteAsync(
                "UPDATE api_keys SET revoked_at = @now WHERE id = @id AND revoked_at IS NULL",
                new { id, now = time.GetUtcNow().ToUnixTimeMilliseconds() }, transaction);
            if (changed > 0 && audit is not null)
            {
                await audit(transaction);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        if (changed > 0)
        {
            changes.Publish(new Change("keys", id));
        }

        return changed > 0;
    }

    /// <summary>The caller a token belongs to, or null for an unknown, revoked or expired token.</summary>
    public ValueTask<Caller?> AuthenticateAsync(string token, CancellationToken cancellationToken) =>
        TryCached(token) is { } caller ? ValueTask.FromResult<Caller?>(caller) : AuthenticateSlowAsync(token, cancellationToken);

    /// <summary>
    /// The hot path: hash the token on the stack and look it up without allocating (a verified
    /// caller is cached under the hex of its hash). Null when the key is not cached (it may still be valid).
    /// </summary>
    public Caller? TryCached(ReadOnlySpan<char> token) => Cached(token, time.GetUtcNow())?.Caller;

    /// <summary>
    /// <see cref="TryCached(ReadOnlySpan{char})"/> for a request on a keep-alive HTTP/1.x connection, without hashing the
    /// token again when the connection's previous request carried the same header. Kestrel hands back the very same
    /// string instance for a known header whose bytes repeat on a connection, so a reference comparison with the
    /// string remembered on the connection proves the token is the same; the remembered entry still has to be
    /// valid now and no key, user or grant may have changed since (<see cref="_generation"/>). Only HTTP/1.x: its
    /// requests on one connection come one after another, so the connection's items are never touched by two at once.
    /// </summary>
    public Caller? TryCached(HttpContext context, string header, ReadOnlySpan<char> token)
    {
        var now = time.GetUtcNow();
        var generation = Interlocked.Read(ref _generation);
        var items = HttpProtocol.IsHttp11(context.Request.Protocol) || HttpProtocol.IsHttp10(context.Request.Protocol)
            ? context.Features.Get<Microsoft.AspNetCore.Connections.Features.IConnectionItemsFeature>()?.Items
            : null;
        if (items is null)
        {
            return Cached(token, now)?.Caller;
        }

        if (items.TryGetValue(typeof(ConnectionMemo), out var remembered) && remembered is ConnectionMemo memo
            && ReferenceEquals(memo.Header, header) && memo.Generation == generation && memo.Entry.IsValidAt(now))
        {
            return memo.Entry.Caller;
        }

        if (Cached(token, now) is not { } entry)
        {
            return null;
        }

        items[typeof(ConnectionMemo)] = new ConnectionMemo(header, entry, generation);
        return entry.Caller;
    }

    /// <summary>The verified caller cached for a token (by the hex of its hash, looked up without allocating), if still valid.</summary>
    private CachedCaller? Cached(ReadOnlySpan<char> token, DateTimeOffset now)
    {
        var byteCount = Encoding.UTF8.GetMaxByteCount(token.Length);
        if (byteCount > 512)
        {
            return null;
        }

        Span<byte> utf8 = stackalloc byte[byteCount];
        var written = Encoding.UTF8.GetBytes(token, utf8);
        Span<byte> hash = stackalloc byte[32];
        Sha256(utf8[..written], hash);
        Span<char> hex = stackalloc char[64];
        Convert.TryToHexStringLower(hash, hex, out _);
        return _cache.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(hex, out var cached) && cached.IsValidAt(now) ? cached : null;
    }

    /// <summary>The header a connection's last request was verified by, what it verified to, and the key generation then.</summary>
    private sealed record ConnectionMemo(string Header, CachedCaller Entry, long Generation);

    private async ValueTask<Caller?> AuthenticateSlowAsync(string token, CancellationToken cancellationToken)
    {
        var hash = Hash(token);
        while (true)
        {
            if (_lookups.TryGetValue(hash, out var running))
            {
                return await running.WaitAsync(cancellationToken);
            }

            var lookup = new TaskCompletionSource<Caller?>(TaskCreationOptions.RunContinuationsAsynchronously);
            if (_lookups.TryAdd(hash, lookup.Task))
            {
                // Shared by every request that joins it, so it runs on its own rather than on one
                // caller's thread and cancellation; a caller that leaves just stops waiting.
                _ = Task.Run(() => RunLookupAsync(hash, lookup), CancellationToken.None);
                return await lookup.Task.WaitAsync(cancellationToken);
            }
        }
    }

    private async Task RunLookupAsync(string hash, TaskCompletionSource<Caller?> lookup)
    {
        Caller? caller = null;
        Exception? failure = null;
        try
        {
            caller = await LookupAsync(hash);
        }
        catch (Exception e)
        {
            failure = e;
        }

        if (failure is not null && StaleIfUnreachable(hash, failure) is { } stale)
        {
            caller = stale;
            failure = null;
        }

        // Out of the table after the answer is cached and before anyone gets it: a request arriving
        // meanwhile finds the one or the other, and a caller that was answered never joins this
        // lookup again (a later request, even at once, reads the cache or looks the key up afresh).
        _lookups.TryRemove(new KeyValuePair<string, Task<Caller?>>(hash, lookup.Task));
        if (failure is null)
        {
            lookup.SetResult(caller);
        }
        else
        {
            // Every waiter sees the failure; nothing is cached, so the next request tries again.
            lookup.SetException(failure);
        }
    }

    /// <summary>
    /// The last verified caller of <paramref name="hash"/> when its reload failed only because the store
    /// is unreachable and the outage is within the staleness bound; kept for another
    /// <see cref="StoreFailure.RetryAfter"/> so the hot path serves it without trying the store on every request.
    /// </summary>
    private Caller? StaleIfUnreachable(string hash, Exception failure)
    {
        if (outage is null || !outage.Observe(failure) || !outage.MayServeStale() || !_cache.TryGetValue(hash, out var stale))
        {
            return null;
        }

        var now = time.GetUtcNow();
        if (stale.KeyExpiresAt is { } expires && expires <= now)
        {
            return null;
        }

        _cache.TryUpdate(hash, stale with { Until = now + StoreFailure.RetryAfter }, stale);
        return stale.Caller;
    }

    private async Task<Caller?> LookupAsync(string hash)
    {
        var now = time.GetUtcNow();
        var generation = Interlocked.Read(ref _generation);
        await using var connection = await database.OpenAsync(CancellationToken.None);
        var row = await connection.QuerySingleOrDefaultAsync<AuthRow>(
            """
            SELECT k.id AS key_id, k.name, k.expires_at, k.revoked_at, k.last_used_at, k.scopes, u.id AS user_id, u.name AS user_name, u.role, u.email,
                   u.display_name, u.disabled_at
            FROM api_keys k JOIN users u ON u.id = k.user_id
            WHERE k.hash = @hash
            """,
            new { hash });
        outage?.Reached();
        if (row is null)
        {
            _cache.TryRemove(hash, out _);
            return null;
        }

        // A disabled owner's keys stop working with them.
        var refused = row.RevokedAt is not null ? "revoked"
            : row.DisabledAt is not null ? "owner_disabled"
            : row.ExpiresAt is { } exp && exp <= now.ToUnixTimeMilliseconds() ? "expired"
            : null;
        if (refused is not null)
        {
            _cache.TryRemove(hash, out _);
            await RecordRefusalAsync(row, refused, now);
            return null;
        }

        var groups = (await connection.QueryAsync<string>(
            "SELECT group_name FROM group_members WHERE user_id = @userId ORDER BY group_name", new { userId = row.UserId })).ToArray();
        var caller = new Caller(row.UserId, row.UserName, row.Role, row.KeyId, row.Email)
        {
            Groups = groups,
            DisplayName = row.DisplayName,
            Scope = ParseScope(row.Scopes),
        };
        if (row.LastUsedAt is null || now.ToUnixTimeMilliseconds() - row.LastUsedAt.Value > LastUsedResolution.TotalMilliseconds)
        {
            // A key's use is in the audit log at the resolution of its last-used time (a minute), read-only
            // calls included, written with the last-used time; every run and change it makes is recorded on its own, with the key's id.
            var use = new AuditEntry("key.use")
            {
                Actor = caller,
                Target = row.KeyId,
                Detail = new Dictionary<string, object?> { ["name"] = row.Name, ["firstUse"] = row.LastUsedAt is null },
            };
            try
            {
                await using var transaction = await connection.BeginTransactionAsync(CancellationToken.None);
                await connection.ExecuteAsync("UPDATE api_keys SET last_used_at = @now WHERE id = @id", new { id = row.KeyId, now = now.ToUnixTimeMilliseconds() }, transaction);
                if (audit is not null)
                {
                    await audit.StageAsync(transaction, use, CancellationToken.None);
                }

                await transaction.CommitAsync(CancellationToken.None);
                audit?.NotifyStaged();
            }
            catch (Exception failure) when (StoreFailure.IsUnavailable(failure))
            {
                // The key was verified a moment ago; a last-used time is bookkeeping, not a reason to fail
                // its request. The next lookup (the cache's lifetime from now) writes it; the use is queued
                // and written once the store is back.
                outage?.Observe(failure);
                if (audit is not null)
                {
                    await audit.RecordAsync(use, CancellationToken.None);
                }
            }
        }
        if (_cache.Count >= CacheCapacity)
        {
            MakeRoom(now);
        }

        var entry = new CachedCaller(caller, now + CacheLifetime, row.ExpiresAt is { } e ? DateTimeOffset.FromUnixTimeMilliseconds(e) : null);
        _cache[hash] = entry;
        if (Interlocked.Read(ref _generation) != generation)
        {
            // A key changed while this was read (on another replica, say): serve this request, cache nothing.
            _cache.TryRemove(new KeyValuePair<string, CachedCaller>(hash, entry));
        }

        return caller;
    }

    /// <summary>
    /// Frees room in a full cache without emptying it (which would send every active key to the
    /// store at once): the expired entries first; when none are, an arbitrary tenth.
    /// </summary>
    private void MakeRoom(DateTimeOffset now)
    {
        var removed = 0;
        foreach (var (hash, cached) in _cache)
        {
            if (!cached.IsValidAt(now) && _cache.TryRemove(new KeyValuePair<string, CachedCaller>(hash, cached)))
            {
                removed++;
            }
        }

        if (removed > 0)
        {
            return;
        }

        var excess = Math.Max(1, CacheCapacity / 10);
        foreach (var (hash, _) in _cache)
        {
            if (_cache.TryRemove(hash, out _) && --excess == 0)
            {
                return;
            }
        }
    }

    internal static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private sealed record CachedCaller(Caller Caller, DateTimeOffset Until, DateTimeOffset? KeyExpiresAt)
    {
        public bool IsValidAt(DateTimeOffset now) => Until > now && (KeyExpiresAt is null || KeyExpiresAt > now);
    }

    /// <summary>
    /// Records that a refused key was presented (<c>key.use</c>, denied, with the reason): a revoked or
    /// expired key still in use is worth an alert. At most one event a minute per key.
    /// </summary>
    private async Task RecordRefusalAsync(AuthRow row, string reason, DateTimeOffset now)
    {
        if (audit is null)
        {
            return;
        }

        var at = now.ToUnixTimeMilliseconds();
        var claimed = _refusalsRecorded.TryGetValue(row.KeyId, out var last)
            ? at - last >= LastUsedResolution.TotalMilliseconds && _refusalsRecorded.TryUpdate(row.KeyId, at, last)
            : _refusalsRecorded.TryAdd(row.KeyId, at);
        if (!claimed)
        {
            return;
        }

        if (_refusalsRecorded.Count > CacheCapacity)
        {
            _refusalsRecorded.Clear();
        }

        await audit.RecordDurableOrQueuedAsync(new AuditEntry("key.use", AuditOutcome.Denied)
        {
            Actor = new Caller(row.UserId, row.UserName, row.Role, row.KeyId, row.Email),
            Target = row.KeyId,
            Detail = new Dictionary<string, object?> { ["name"] = row.Name, ["reason"] = reason },
        }, CancellationToken.None);
    }

    private sealed class AuthRow
    {
        public string KeyId { get; init; } = "";
        public string Name { get; init; } = "";
        public long? ExpiresAt { get; init; }
        public long? RevokedAt { get; init; }
        public long? LastUsedAt { get; init; }
        public string? Scopes { get; init; }
        public string UserId { get; init; } = "";
        public string UserName { get; init; } = "";
        public string? DisplayName { get; init; }
        public long? DisabledAt { get; init; }
        public string Role { get; init; } = "";
        public string? Email { get; init; }
    }

    private sealed class KeyRow
    {
        public string Id { get; init; } = "";
        public string Name { get; init; } = "";
        public string UserId { get; init; } = "";
        public string Owner { get; init; } = "";
        public string Hint { get; init; } = "";
        public long CreatedAt { get; init; }
        public long? ExpiresAt { get; init; }
        public long? LastUsedAt { get; init; }
        public long? RevokedAt { get; init; }
        public string? Scopes { get; init; }

        public ApiKeyInfo ToInfo() => new(Id, Name, UserId, Hint, Time.From(CreatedAt), Time.From(ExpiresAt), Time.From(LastUsedAt), Time.From(RevokedAt))
        {
            Owner = Owner,
            Scopes = ParseScope(Scopes),
        };
    }
}

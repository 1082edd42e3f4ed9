using System.Data.Common;
using Keyway.Secrets;
using Keyway.Storage;

namespace Keyway.Credentials;

/// <summary>A credential as stored, tokens decrypted.</summary>
internal sealed record StoredCredential
{
    public required CredentialKey Key { get; init; }

    public required string ParametersHash { get; init; }

    public required CredentialState State { get; init; }

    public required long Version { get; init; }

    public TokenSet? Tokens { get; init; }

    public DateTimeOffset? LastRefreshedAt { get; init; }

    public DateTimeOffset? NextRefreshAt { get; init; }

    public long RefreshCount { get; init; }

    public long FailureCount { get; init; }

    public string? LastError { get; init; }

    /// <summary>Set while a refresh is between "asked the provider" and "stored the answer": if it is still set after that process died, the stored refresh token may be spent.</summary>
    public DateTimeOffset? RefreshStartedAt { get; init; }

    public string? RefreshOwner { get; init; }
}

/// <summary>
/// The <c>credentials</c> table. Every write is a compare-and-swap on <c>version</c>: it names the
/// version it read and bumps it, and reports false when another writer got there first.
/// Tokens are encrypted with the key ring, bound to their row and field.
/// </summary>
internal sealed class CredentialStore(Database database, KeyRing keys, TimeProvider time)
{
    private const string Columns =
        "resource, environment, owner, params_hash, state, version, access_token, refresh_token, token_type, expires_at, obtained_at, " +
        "last_refreshed_at, next_refresh_at, refresh_count, failure_count, last_error, refresh_started_at, refresh_owner, extras";

    /// <summary>The associated data that binds an encrypted value to its row and field.</summary>
    // A new encrypted column must be added to RekeyJob's registry (RekeyJob.Columns) with this
    // associated data, or a rekey leaves its values under the old data key.
    public static string AssociatedData(CredentialKey key, string field) => $"credentials:{key.Resource}:{key.Environment}:{key.Owner}:{field}";

    public async Task<StoredCredential?> ReadAsync(CredentialKey key, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<Row>(
            $"SELECT {Columns} FROM credentials WHERE resource = @Resource AND environment = @Environment AND owner = @Owner", key);
        return row is null ? null : await ToStoredAsync(row, cancellationToken);
    }

    public async Task<IReadOnlyList<StoredCredential>> ListAsync(string resource, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<Row>($"SELECT {Columns} FROM credentials WHERE resource = @resource ORDER BY environment, owner", new { resource });
        var stored = new List<StoredCredential>();
        foreach (var row in rows)
        {
            stored.Add(await ToStoredAsync(row, cancellationToken));
        }

        return stored;
    }

    /// <summary>How many credentials are in each stored state (for metrics).</summary>
    public async Task<IReadOnlyDictionary<string, long>> CountByStateAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<(string State, long Count)>("SELECT state, COUNT(*) FROM credentials GROUP BY state");
        return rows.ToDictionary(r => r.State, r => r.Count, StringComparer.Ordinal);
    }

    /// <summary>
    /// Credentials the sweep must refresh: shared ones whose schedule has come, and any whose
    /// keep-alive has come (<c>KeepAlive</c> true: refresh even though the token is still fresh).
    /// </summary>
    public async Task<IReadOnlyList<(CredentialKey Key, bool KeepAlive)>> DueAsync(DateTimeOffset now, int limit, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<(string Resource, string Environment, string Owner, long KeepAlive)>(
            """
            SELECT resource, environment, owner, CASE WHEN keep_alive_at <= @now THEN 1 ELSE 0 END FROM credentials
            WHERE state IN ('valid', 'expiring', 'expired')
              AND ((next_refresh_at <= @now AND owner = 'shared') OR keep_alive_at <= @now)
            ORDER BY next_refresh_at LIMIT @limit
            """,
            new { now = now.ToStore(), limit });
        return rows.Select(r => (new CredentialKey(r.Resource, r.Environment, r.Owner), r.KeepAlive != 0)).ToList();
    }

    /// <summary>
    /// Stores new tokens (and clears any failure and in-flight mark). <paramref name="expectedVersion"/> null means "insert; fail if it exists".
    /// <paramref name="audit"/> stages the transition's audit event in the same transaction, only when the write took.
    /// </summary>
    public async Task<long?> SaveTokensAsync(
        CredentialKey key, long? expectedVersion, string parametersHash, TokenSet tokens, DateTimeOffset? nextRefreshAt, bool countRefresh,
        CancellationToken cancellationToken, DateTimeOffset? keepAliveAt = null, Func<DbTransaction, Task>? audit = null)
    {
        var now = time.GetUtcNow().ToStore();
        var values = new
        {
            key.Resource,
            key.Environment,
            key.Owner,
            paramsHash = parametersHash,
            state = StateName(CredentialState.Valid),
            access = keys.Encrypt(tokens.AccessToken, AssociatedData(key, "access_token")),
            refresh = tokens.RefreshToken is { } r ? keys.Encrypt(r, AssociatedData(key, "refresh_token")) : null,
            extras = EncryptExtras(key, tokens.Extras),
            tokenType = tokens.TokenType,
            expiresAt = tokens.ExpiresAt.ToStore(),
            obtainedAt = tokens.ObtainedAt.ToStore(),
            nextRefreshAt = nextRefreshAt.ToStore(),
            keepAliveAt = keepAliveAt.ToStore(),
            refreshed = countRefresh ? 1 : 0,
            expected = expectedVersion ?? 0,
            now,
        };
        // A failure to open means nothing was sent; one after means the write may have committed.
        await using var connection = await database.OpenAsync(cancellationToken);
        try
        {
            if (audit is null)
            {
                return await WriteTokensAsync(connection, null, expectedVersion, values);
            }

            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var written = await WriteTokensAsync(connection, transaction, expectedVersion, values);
            if (written is not null)
            {
                await audit(transaction);
            }

            await transaction.CommitAsync(cancellationToken);
            return written;
        }
        catch (Exception e) when (StoreFailure.IsUnavailable(e) || e is OperationCanceledException)
        {
            throw new StoreOutcomeUnknownException(e);
        }
    }

    private static async Task<long?> WriteTokensAsync(DbConnection connection, DbTransaction? transaction, long? expectedVersion, object values)
    {
        if (expectedVersion is null)
        {
            return await connection.ExecuteScalarAsync<long?>(
                $"""
                INSERT INTO credentials ({Columns}, keep_alive_at, created_at, updated_at)
                VALUES (@Resource, @Environment, @Owner, @paramsHash, @state, 1, @access, @refresh, @tokenType, @expiresAt, @obtainedAt,
                        @now, @nextRefreshAt, @refreshed, 0, NULL, NULL, NULL, @extras, @keepAliveAt, @now, @now)
                ON CONFLICT (resource, environment, owner) DO NOTHING
                RETURNING version
                """,
                values, transaction);
        }

        return await connection.ExecuteScalarAsync<long?>(
            """
            UPDATE credentials SET params_hash = @paramsHash, state = @state, version = version + 1, access_token = @access, refresh_token = @refresh,
                token_type = @tokenType, expires_at = @expiresAt, obtained_at = @obtainedAt, last_refreshed_at = @now,
                next_refresh_at = @nextRefreshAt, keep_alive_at = @keepAliveAt, refresh_count = refresh_count + @refreshed, failure_count = 0, last_error = NULL,
                refresh_started_at = NULL, refresh_owner = NULL, extras = @extras, updated_at = @now
            WHERE resource = @Resource AND environment = @Environment AND owner = @Owner AND version = @expected
            RETURNING version
            """,
            values, transaction);
    }

    /// <summary>Marks a refresh as under way, before the provider is asked (see <see cref="StoredCredential.RefreshStartedAt"/>).</summary>
    public Task<long?> MarkRefreshStartedAsync(CredentialKey key, long expectedVersion, string owner, CancellationToken cancellationToken) =>
        // Not @owner: Npgsql matches parameter names without regard to case, and the key's @Owner is a parameter too.
        // On PostgreSQL the mark's time is the store's clock, the one replicas judge its age by (ReplicaHeartbeat).
        UpdateAsync(key, expectedVersion, $"refresh_started_at = {(database.Kind == StoreKind.Postgres ? ReplicaHeartbeat.StoreNow : "@now")}, refresh_owner = @refreshOwner",
            new { refreshOwner = owner }, cancellationToken);

    /// <summary>
    /// Records a failed refresh: the state, the provider's error (never a token) and when to try again. <paramref name="audit"/>
    /// stages the failure's audit event in the same transaction, whether or not the row had moved on: the provider refused either way.
    /// </summary>
    public Task<long?> RecordFailureAsync(
        CredentialKey key, long expectedVersion, CredentialState state, string error, DateTimeOffset? nextRefreshAt, bool clearTokens, CancellationToken cancellationToken,
        Func<DbTransaction, Task>? audit = null) =>
        UpdateAsync(
            key,
            expectedVersion,
            "state = @state, last_error = @error, next_refresh_at = @next, failure_count = failure_count + 1, refresh_started_at = NULL, refresh_owner = NULL" +
            (clearTokens ? ", refresh_token = NULL" : ""),
            new { state = StateName(state), error, next = nextRefreshAt.ToStore() },
            cancellationToken,
            audit);

    /// <summary>Records a failure for a credential that never had tokens, so a permanent failure is not retried on every request.</summary>
    public async Task InsertFailureAsync(
        CredentialKey key, string parametersHash, CredentialState state, string error, DateTimeOffset? nextRefreshAt, CancellationToken cancellationToken,
        Func<DbTransaction, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await connection.ExecuteAsync(
            $"""
            INSERT INTO credentials ({Columns}, created_at, updated_at)
            VALUES (@Resource, @Environment, @Owner, @parametersHash, @state, 1, NULL, NULL, NULL, NULL, NULL,
                    NULL, @next, 0, 1, @error, NULL, NULL, NULL, @now, @now)
            ON CONFLICT (resource, environment, owner) DO NOTHING
            """,
            new { key.Resource, key.Environment, key.Owner, parametersHash, state = StateName(state), error, next = nextRefreshAt.ToStore(), now = time.GetUtcNow().ToStore() },
            transaction);
        if (audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    /// <summary>Records that a credential was used (coarsely: the caller decides how often).</summary>
    public async Task TouchAsync(CredentialKey key, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await connection.ExecuteAsync(
            "UPDATE credentials SET last_used_at = @now WHERE resource = @Resource AND environment = @Environment AND owner = @Owner",
            new { key.Resource, key.Environment, key.Owner, now = time.GetUtcNow().ToStore() });
    }

    /// <summary>Deletes a credential; <paramref name="audit"/> stages its audit event in the same transaction.</summary>
    public async Task<bool> DeleteAsync(CredentialKey key, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var deleted = await connection.ExecuteAsync(
            "DELETE FROM credentials WHERE resource = @Resource AND environment = @Environment AND owner = @Owner", key, transaction) > 0;
        // Its DPoP key goes with it: the next token is bound to a new key.
        await DPoPKeyStore.DeleteAsync(connection, transaction, "resource = @Resource AND environment = @Environment AND owner = @Owner", key);
        if (audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(cancellationToken);
        return deleted;
    }

    private async Task<long?> UpdateAsync(
        CredentialKey key, long expectedVersion, string set, object extra, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        var parameters = new SqlParameters();
        parameters.AddProperties(extra);
        parameters.AddProperties(new { key.Resource, key.Environment, key.Owner, expected = expectedVersion, now = time.GetUtcNow().ToStore() });
        const string Where = """
            WHERE resource = @Resource AND environment = @Environment AND owner = @Owner AND version = @expected
            RETURNING version
            """;
        await using var connection = await database.OpenAsync(cancellationToken);
        if (audit is null)
        {
            return await connection.ExecuteScalarAsync<long?>($"UPDATE credentials SET {set}, version = version + 1, updated_at = @now\n{Where}", parameters);
        }

        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var written = await connection.ExecuteScalarAsync<long?>($"UPDATE credentials SET {set}, version = version + 1, updated_at = @now\n{Where}", parameters, transaction);
        await audit(transaction);
        await transaction.CommitAsync(cancellationToken);
        return written;
    }

    internal static string StateName(CredentialState state) => state switch
    {
        CredentialState.NotConnected => "not_connected",
        CredentialState.Valid => "valid",
        CredentialState.Expiring => "expiring",
        CredentialState.Expired => "expired",
        CredentialState.Refreshing => "refreshing",
        CredentialState.Failed => "failed",
        CredentialState.ReconnectRequired => "reconnect_required",
        _ => throw new ArgumentOutOfRangeException(nameof(state)),
    };

    internal static CredentialState ParseState(string state) => state switch
    {
        "valid" => CredentialState.Valid,
        "expiring" => CredentialState.Expiring,
        "expired" => CredentialState.Expired,
        "refreshing" => CredentialState.Refreshing,
        "failed" => CredentialState.Failed,
        "reconnect_required" => CredentialState.ReconnectRequired,
        _ => CredentialState.NotConnected,
    };

    /// <summary>
    /// Decrypts a row. Tokens under a data key this process does not hold yet (another replica
    /// rotated it, e.g. during <c>keyway operator rekey</c>, which moves every token) reload the
    /// key ring and are tried once more.
    /// </summary>
    private async Task<StoredCredential> ToStoredAsync(Row row, CancellationToken cancellationToken)
    {
        try
        {
            return ToStored(row);
        }
        catch (DecryptionException e) when (e.Reason == DecryptionFailure.UnknownDataKey)
        {
            await keys.ReloadAsync(cancellationToken);
            return ToStored(row);
        }
    }

    private StoredCredential ToStored(Row row)
    {
        var key = new CredentialKey(row.Resource, row.Environment, row.Owner);
        TokenSet? tokens = null;
        if (row.AccessToken is not null)
        {
            tokens = new TokenSet
            {
                AccessToken = keys.DecryptSecret(row.AccessToken, AssociatedData(key, "access_token")),
                RefreshToken = row.RefreshToken is null ? null : keys.DecryptSecret(row.RefreshToken, AssociatedData(key, "refresh_token")),
                TokenType = row.TokenType,
                ExpiresAt = Time.From(row.ExpiresAt),
                ObtainedAt = Time.From(row.ObtainedAt ?? row.LastRefreshedAt ?? 0),
                Extras = DecryptExtras(key, row.Extras),
            };
        }

        return new StoredCredential
        {
            Key = key,
            ParametersHash = row.ParamsHash,
            State = ParseState(row.State),
            Version = row.Version,
            Tokens = tokens,
            LastRefreshedAt = Time.From(row.LastRefreshedAt),
            NextRefreshAt = Time.From(row.NextRefreshAt),
            RefreshCount = row.RefreshCount,
            FailureCount = row.FailureCount,
            LastError = row.LastError,
            RefreshStartedAt = Time.From(row.RefreshStartedAt),
            RefreshOwner = row.RefreshOwner,
        };
    }

    private sealed class Row
    {
        public string Resource { get; init; } = "";
        public string Environment { get; init; } = "";
        public string Owner { get; init; } = "";
        public string ParamsHash { get; init; } = "";
        public string State { get; init; } = "";
        public long Version { get; init; }
        public byte[]? AccessToken { get; init; }
        public byte[]? RefreshToken { get; init; }
        public string? TokenType { get; init; }
        public long? ExpiresAt { get; init; }
        public long? ObtainedAt { get; init; }
        public long? LastRefreshedAt { get; init; }
        public long? NextRefreshAt { get; init; }
        public long RefreshCount { get; init; }
        public long FailureCount { get; init; }
        public string? LastError { get; init; }
        public long? RefreshStartedAt { get; init; }
        public string? RefreshOwner { get; init; }
        public byte[]? Extras { get; init; }
    }

    /// <summary>A custom flow's variables as one encrypted JSON object (<c>{"NAME": "value"}</c>), bound to the row like the tokens; null when there are none.</summary>
    private byte[]? EncryptExtras(CredentialKey key, IReadOnlyDictionary<string, Secret> extras)
    {
        if (extras.Count == 0)
        {
            return null;
        }

        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (name, value) in extras)
            {
                writer.WriteString(name, value.Reveal());
            }

            writer.WriteEndObject();
        }

        try
        {
            return keys.Encrypt(buffer.WrittenSpan, AssociatedData(key, "extras"));
        }
        finally
        {
            // Clear zeroes what was written (ResetWrittenCount would not).
            buffer.Clear();
        }
    }

    private Dictionary<string, Secret> DecryptExtras(CredentialKey key, byte[]? envelope)
    {
        var extras = new Dictionary<string, Secret>(StringComparer.Ordinal);
        if (envelope is null)
        {
            return extras;
        }

        var plaintext = keys.Decrypt(envelope, AssociatedData(key, "extras"));
        try
        {
            using var document = System.Text.Json.JsonDocument.Parse(plaintext);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                extras[property.Name] = new Secret(property.Value.GetString() ?? "");
            }
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(plaintext);
        }

        return extras;
    }
}

/// <summary>
/// Serializes refreshes of one credential across replicas. On PostgreSQL a session advisory lock
/// held on its own connection: if the holder dies, its connection closes and the lock is freed.
/// It is only ever tried (<c>pg_try_advisory_lock</c>), never waited on inside the database: a caller
/// that finds it taken re-reads the store (the holder may have stored new tokens already) and tries
/// again, within its own deadline, instead of blocking until the driver's command timeout.
/// SQLite serves one process, so a process-wide lock per store and credential is enough.
/// </summary>
internal sealed class ClusterLock(Database database)
{
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, SemaphoreSlim> LocalLocks = new(StringComparer.Ordinal);

    /// <summary>
    /// The lock, or null when someone else holds it. On SQLite it waits up to <paramref name="wait"/>
    /// for the holder, in this process; on PostgreSQL it tries once and the caller polls.
    /// </summary>
    public async ValueTask<IAsyncDisposable?> TryAcquireAsync(CredentialKey key, TimeSpan wait, CancellationToken cancellationToken)
    {
        if (database.Kind == StoreKind.Sqlite)
        {
            var gate = LocalLocks.GetOrAdd(database.Description + "|" + key, _ => new SemaphoreSlim(1, 1));
            return await gate.WaitAsync(wait > TimeSpan.Zero ? wait : TimeSpan.Zero, cancellationToken) ? new LocalHeld(gate) : null;
        }

        var connection = await database.OpenAsync(cancellationToken);
        try
        {
            var (a, b) = LockIds(key);
            if (await connection.ExecuteScalarAsync<bool>(new SqlStatement("SELECT pg_try_advisory_lock(@a, @b)", new { a, b }, cancellationToken: cancellationToken)))
            {
                return new Held(connection, a, b);
            }
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }

        await connection.DisposeAsync();
        return null;
    }

    /// <summary>Two 32-bit lock ids from a stable hash of the key (the same in every replica).</summary>
    internal static (int A, int B) LockIds(CredentialKey key)
    {
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes("keyway-credential\0" + key));
        return (BitConverter.ToInt32(hash, 0), BitConverter.ToInt32(hash, 4));
    }

    private sealed class Held(DbConnection connection, int a, int b) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            try
            {
                await connection.ExecuteAsync("SELECT pg_advisory_unlock(@a, @b)", new { a, b });
            }
            catch (Exception e) when (StoreFailure.IsUnavailable(e) || e is DbException)
            {
                // The connection broke (the store went down while the lock was held): the lock went with its session.
            }
            finally
            {
                // Closing the session frees the lock even if the unlock failed.
                await connection.DisposeAsync();
            }
        }
    }

    private sealed class LocalHeld(SemaphoreSlim gate) : IAsyncDisposable
    {
        public ValueTask DisposeAsync()
        {
            gate.Release();
            return ValueTask.CompletedTask;
        }
    }
}

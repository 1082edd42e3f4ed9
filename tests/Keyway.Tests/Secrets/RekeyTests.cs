using System.Buffers.Binary;
using System.Security.Cryptography;
using Keyway.Api;
using Keyway.Credentials;
using Keyway.Environments;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Audit;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Keyway.Tests.Secrets;

/// <summary>The rekey job on a real, migrated SQLite store.</summary>
public sealed class RekeyTests : IAsyncLifetime
{
    private const string Production = VariableService.Production;

    private readonly string _directory = TestDirectories.Create("rekey");
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2025, 3, 1, 12, 0, 0, TimeSpan.Zero));
    private readonly byte[] _keyA = RandomNumberGenerator.GetBytes(32);
    private readonly byte[] _keyB = RandomNumberGenerator.GetBytes(32);
    private readonly RecordingAuditLog _audit = new();
    private Database _database = null!;

    public async Task InitializeAsync()
    {
        _database = Database.Sqlite(Path.Combine(_directory, "keyway.db"));
        await new Migrator(_database, _time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _database.DisposeAsync();
        TestDirectories.DeleteQuietly(_directory);
    }

    [Fact]
    public async Task Rekey_rewraps_under_the_new_master_key_and_moves_every_value_to_a_fresh_data_key()
    {
        string firstDataKey;
        using (var ringA = await OpenRingAsync(_keyA))
        {
            firstDataKey = ringA.ActiveKeyId;
            var variables = await VariablesAsync(ringA);
            await variables.SetAsync(Production, "ONE", "one-v1", secret: true, null, CancellationToken.None);
            await variables.SetAsync(Production, "ONE", "one-v2", secret: true, null, CancellationToken.None);
            await variables.SetAsync(Production, "TWO", "two", secret: true, null, CancellationToken.None);
            await variables.SetAsync(Production, "PLAIN", "plain", secret: false, null, CancellationToken.None);
        }

        using var ringBA = await OpenRingAsync(_keyB, _keyA);
        var status = await Job(ringBA).RunAsync(CancellationToken.None);

        Assert.Equal(RekeyStatus.Completed, status.State);
        Assert.Null(status.Error);
        Assert.Equal((3, 3, 3), (status.Total, status.Done, status.Reencrypted));
        Assert.Equal(ringBA.ActiveKeyId, status.DataKeyId);
        Assert.NotEqual(firstDataKey, status.DataKeyId);
        var rows = await CiphertextsAsync();
        Assert.Equal(3, rows.Count);
        Assert.All(rows, row => Assert.Equal(status.DataKeyId, DataKeyOf(row.Ciphertext)));
        var wrapping = await QueryAsync<string>("SELECT DISTINCT master_key_id FROM data_keys");
        Assert.Equal([MasterKeyRing.FromKeys(_keyB).PrimaryKeyId], wrapping);

        // Master key A can go: B alone opens the store and every version still decrypts.
        using var ringB = await OpenRingAsync(_keyB);
        var values = await (await VariablesAsync(ringB)).GetValuesAsync(Production, CancellationToken.None);
        Assert.Equal("one-v2", ((Secret)values.All["ONE"]!).Reveal());
        Assert.Equal("two", ((Secret)values.All["TWO"]!).Reveal());
        Assert.Equal("plain", values.All["PLAIN"]);
        var first = rows.Single(r => r.Name == "ONE" && r.Version == 1);
        Assert.Equal("one-v1", ringB.DecryptSecret(first.Ciphertext, VariableService.AssociatedData(Production, "ONE", 1)).Reveal());
        await Assert.ThrowsAsync<MasterKeyException>(() => OpenRingAsync(_keyA));
    }

    [Fact]
    public async Task An_interrupted_rekey_resumes_without_rotating_the_data_key_again()
    {
        using (var ringA = await OpenRingAsync(_keyA))
        {
            var variables = await VariablesAsync(ringA);
            for (var i = 0; i < 5; i++)
            {
                await variables.SetAsync(Production, $"SECRET_{i}", $"value-{i}", secret: true, null, CancellationToken.None);
            }

            // Three access tokens: two batches of two, paging over (resource, environment, owner).
            foreach (var owner in new[] { CredentialKey.Shared, "user-a", "user-b" })
            {
                await SaveTokensAsync(ringA, new CredentialKey("api", Production, owner), $"access-{owner}", refresh: null);
            }
        }

        string target;
        using (var ring = await OpenRingAsync(_keyB, _keyA))
        {
            var job = Job(ring, batchSize: 2);
            var begun = await job.BeginAsync(CancellationToken.None);
            var (next, progress) = await job.RunBatchAsync(Column("variable_versions", "ciphertext"), null, begun, CancellationToken.None);
            target = begun.DataKeyId!;
            Assert.NotNull(next);
            Assert.Equal((8, 2, 2), (progress.Total, progress.Done, progress.Reencrypted));
            // The process dies here: no completion is recorded.
        }

        using var restarted = await OpenRingAsync(_keyB, _keyA);
        var resumed = Job(restarted, batchSize: 2);
        var before = await resumed.GetStatusAsync(CancellationToken.None);
        Assert.Equal(RekeyStatus.Failed, before.State);
        Assert.Contains("resumes where it stopped", before.Error);

        var status = await resumed.RunAsync(CancellationToken.None);

        Assert.Equal(RekeyStatus.Completed, status.State);
        Assert.Equal(target, status.DataKeyId);
        Assert.Equal(target, restarted.ActiveKeyId);
        Assert.Equal((8, 8, 6), (status.Total, status.Done, status.Reencrypted));
        Assert.Equal(2, await CountAsync("SELECT COUNT(*) FROM data_keys"));
        Assert.All(await AllCiphertextsAsync(), value => Assert.True(restarted.IsCurrent(value.Ciphertext), value.Column));
        var store = new CredentialStore(_database, restarted, _time);
        Assert.Equal("access-user-b", (await store.ReadAsync(new CredentialKey("api", Production, "user-b"), CancellationToken.None))!.Tokens!.AccessToken.Reveal());
        Assert.Equal(RekeyStatus.Completed, (await Job(restarted).GetStatusAsync(CancellationToken.None)).State);
    }

    [Fact]
    public async Task A_value_written_while_a_batch_runs_is_never_overwritten()
    {
        using var ring = await OpenRingAsync(_keyA);
        var variables = await VariablesAsync(ring);
        await variables.SetAsync(Production, "RACE", "old-value", secret: true, null, CancellationToken.None);
        await ring.RotateDataKeyAsync(CancellationToken.None);
        var stale = (await CiphertextsAsync()).Select(r => new RekeyJob.EncryptedRow([r.Environment, r.Name, r.Version], r.Ciphertext)).ToList();
        var associatedData = VariableService.AssociatedData(Production, "RACE", 1);
        var newer = ring.Encrypt(new Secret("newer-value"), associatedData);
        await using (var writer = await _database.OpenAsync(CancellationToken.None))
        {
            await writer.ExecuteAsync("UPDATE variable_versions SET ciphertext = @newer", new { newer });
        }

        await using var connection = await _database.OpenAsync(CancellationToken.None);
        await using var transaction = await connection.BeginTransactionAsync();
        var replaced = await Job(ring).ReplaceAsync(connection, transaction, Column("variable_versions", "ciphertext"), stale, CancellationToken.None);
        await transaction.CommitAsync();

        Assert.Equal(0, replaced);
        var row = Assert.Single(await CiphertextsAsync());
        Assert.Equal("newer-value", ring.DecryptSecret(row.Ciphertext, associatedData).Reveal());
    }

    [Fact]
    public async Task A_second_start_while_one_runs_is_a_conflict()
    {
        using var ring = await OpenRingAsync(_keyB, _keyA);
        await (await VariablesAsync(ring)).SetAsync(Production, "BUSY", "value", secret: true, null, CancellationToken.None);
        var job = Job(ring);

        // Another writer holds SQLite's write lock, so the job cannot progress until it lets go.
        await using var blocker = await _database.OpenAsync(CancellationToken.None);
        var hold = await blocker.BeginTransactionAsync();
        await blocker.ExecuteAsync("UPDATE meta SET value = value WHERE key = 'none'", transaction: hold);

        var started = await job.StartAsync(null, CancellationToken.None);
        var conflict = await Assert.ThrowsAsync<KeywayException>(() => job.StartAsync(null, CancellationToken.None));

        Assert.Equal(RekeyStatus.Running, started.State);
        Assert.Equal((409, "conflict"), (conflict.Status, conflict.Code));
        await hold.RollbackAsync();
        await hold.DisposeAsync();
        await Poll.UntilAsync(async () => (await job.GetStatusAsync(CancellationToken.None)).State != RekeyStatus.Running,
            TimeSpan.FromSeconds(30), "the rekey to finish");
        Assert.Equal(RekeyStatus.Completed, (await job.GetStatusAsync(CancellationToken.None)).State);
        Assert.All(await CiphertextsAsync(), row => Assert.True(ring.IsCurrent(row.Ciphertext)));
        // One start (the conflict recorded nothing), then the outcome with the final state.
        Assert.Equal(["operator.rekey", "operator.rekey.complete"], _audit.Entries.Select(e => e.Action));
        Assert.Equal(1L, _audit.Entries[1].Detail!["reencrypted"]);
    }

    [Fact]
    public async Task Rekey_moves_credential_tokens_extras_and_pending_verifiers_to_the_new_data_key()
    {
        var shared = new CredentialKey("api", Production, CredentialKey.Shared);
        var user = new CredentialKey("api", Production, "user-1");
        var other = new CredentialKey("crm", "staging", CredentialKey.Shared);
        const string State = "state-1";
        using (var ringA = await OpenRingAsync(_keyA))
        {
            await (await VariablesAsync(ringA)).SetAsync(Production, "ONE", "one", secret: true, null, CancellationToken.None);
            await SaveTokensAsync(ringA, shared, "shared-access", "shared-refresh");
            await SaveTokensAsync(ringA, user, "user-access", "user-refresh");
            await SaveTokensAsync(ringA, other, "other-access", refresh: null);
            await ExecuteAsync(
                "UPDATE credentials SET extras = @extras WHERE owner = 'user-1'",
                new { extras = ringA.Encrypt(new Secret("{\"CSRF\":\"csrf-value\"}"), CredentialStore.AssociatedData(user, "extras")) });
            await ExecuteAsync(
                """
                INSERT INTO oauth_pending (state, resource, environment, owner, code_verifier, nonce, redirect_uri, return_to, created_at)
                VALUES (@state, 'api', 'production', 'shared', @verifier, 'nonce', 'http://127.0.0.1/callback', NULL, 0)
                """,
                new { state = State, verifier = ringA.Encrypt(new Secret("the-verifier"), CredentialService.PendingAssociatedData(State)) });
        }

        using var ringBA = await OpenRingAsync(_keyB, _keyA);
        var status = await Job(ringBA, batchSize: 2).RunAsync(CancellationToken.None);

        // 1 secret, 3 access tokens, 2 refresh tokens, 1 extras (NULLs are not values), 1 verifier.
        Assert.Equal(RekeyStatus.Completed, status.State);
        Assert.Null(status.Error);
        Assert.Equal((8, 8, 8), (status.Total, status.Done, status.Reencrypted));
        var values = await AllCiphertextsAsync();
        Assert.Equal(8, values.Count);
        Assert.All(values, value => Assert.Equal(status.DataKeyId, DataKeyOf(value.Ciphertext)));

        // Master key B alone reads every token back through the store that wrote it.
        using var ringB = await OpenRingAsync(_keyB);
        var store = new CredentialStore(_database, ringB, _time);
        var sharedTokens = (await store.ReadAsync(shared, CancellationToken.None))!.Tokens!;
        Assert.Equal(("shared-access", "shared-refresh"), (sharedTokens.AccessToken.Reveal(), sharedTokens.RefreshToken!.Reveal()));
        var userTokens = (await store.ReadAsync(user, CancellationToken.None))!.Tokens!;
        Assert.Equal(("user-access", "user-refresh"), (userTokens.AccessToken.Reveal(), userTokens.RefreshToken!.Reveal()));
        var otherTokens = (await store.ReadAsync(other, CancellationToken.None))!.Tokens!;
        Assert.Equal("other-access", otherTokens.AccessToken.Reveal());
        Assert.Null(otherTokens.RefreshToken);
        var extras = await ScalarAsync<byte[]>("SELECT extras FROM credentials WHERE owner = 'user-1'");
        Assert.Equal("{\"CSRF\":\"csrf-value\"}", ringB.DecryptSecret(extras, CredentialStore.AssociatedData(user, "extras")).Reveal());
        Assert.Null(await ScalarAsync<byte[]?>("SELECT extras FROM credentials WHERE owner = 'shared' AND resource = 'api'"));
        var verifier = await ScalarAsync<byte[]>("SELECT code_verifier FROM oauth_pending");
        Assert.Equal("the-verifier", ringB.DecryptSecret(verifier, CredentialService.PendingAssociatedData(State)).Reveal());
        // The rekey is not a credential change: the engine's compare-and-swap version is untouched.
        Assert.Equal(1, (await store.ReadAsync(shared, CancellationToken.None))!.Version);
    }

    [Fact]
    public async Task A_token_refreshed_or_cleared_while_a_batch_runs_is_never_overwritten()
    {
        var key = new CredentialKey("api", Production, CredentialKey.Shared);
        using var ring = await OpenRingAsync(_keyA);
        var store = new CredentialStore(_database, ring, _time);
        await SaveTokensAsync(ring, key, "old-access", "old-refresh");
        await ring.RotateDataKeyAsync(CancellationToken.None);
        var access = Column("credentials", "access_token");
        var refresh = Column("credentials", "refresh_token");
        var staleAccess = new RekeyJob.EncryptedRow(["api", Production, CredentialKey.Shared], await ScalarAsync<byte[]>("SELECT access_token FROM credentials"));
        var staleRefresh = new RekeyJob.EncryptedRow(["api", Production, CredentialKey.Shared], await ScalarAsync<byte[]>("SELECT refresh_token FROM credentials"));

        // A refresh stores new tokens, then a failed one drops the refresh token.
        var version = await store.SaveTokensAsync(key, 1, "hash", Tokens("newer-access", "newer-refresh"), null, countRefresh: true, CancellationToken.None);
        await store.RecordFailureAsync(key, version!.Value, CredentialState.ReconnectRequired, "invalid_grant", null, clearTokens: true, CancellationToken.None);

        await using var connection = await _database.OpenAsync(CancellationToken.None);
        await using var transaction = await connection.BeginTransactionAsync();
        var job = Job(ring);
        var replaced = await job.ReplaceAsync(connection, transaction, access, [staleAccess], CancellationToken.None)
            + await job.ReplaceAsync(connection, transaction, refresh, [staleRefresh], CancellationToken.None);
        await transaction.CommitAsync();

        Assert.Equal(0, replaced);
        var stored = (await store.ReadAsync(key, CancellationToken.None))!;
        Assert.Equal("newer-access", stored.Tokens!.AccessToken.Reveal());
        Assert.Null(stored.Tokens.RefreshToken);
    }

    [Fact]
    public async Task Another_replica_reads_rekeyed_tokens_under_a_data_key_it_has_not_loaded_yet()
    {
        var key = new CredentialKey("api", Production, CredentialKey.Shared);
        using var replica1 = await OpenRingAsync(_keyB, _keyA);
        using var replica2 = await OpenRingAsync(_keyB, _keyA);
        await SaveTokensAsync(replica2, key, "access-value", "refresh-value");

        var status = await Job(replica1).RunAsync(CancellationToken.None);

        Assert.Equal((RekeyStatus.Completed, 2L), (status.State, status.Reencrypted));
        Assert.NotEqual(status.DataKeyId, replica2.ActiveKeyId);
        var tokens = (await new CredentialStore(_database, replica2, _time).ReadAsync(key, CancellationToken.None))!.Tokens!;
        Assert.Equal(("access-value", "refresh-value"), (tokens.AccessToken.Reveal(), tokens.RefreshToken!.Reveal()));
        Assert.Equal(status.DataKeyId, replica2.ActiveKeyId);
    }

    [Fact]
    public async Task A_token_that_does_not_decrypt_fails_the_rekey_naming_its_row_and_never_a_value()
    {
        var key = new CredentialKey("api", Production, "user-1");
        using var ring = await OpenRingAsync(_keyA);
        await SaveTokensAsync(ring, key, "access-value", "refresh-value");
        // Copied from another field: it no longer authenticates.
        await ExecuteAsync("UPDATE credentials SET refresh_token = access_token", new { });

        var status = await Job(ring).RunAsync(CancellationToken.None);

        Assert.Equal(RekeyStatus.Failed, status.State);
        Assert.Contains("credentials:api:production:user-1:refresh_token", status.Error);
        Assert.DoesNotContain("access-value", status.Error);
        Assert.DoesNotContain("refresh-value", status.Error);
    }

    [Fact]
    public async Task Every_encrypted_column_in_the_schema_is_in_the_rekey_registry()
    {
        // Every BLOB column holds key-ring ciphertext, but the data keys themselves (wrapped by the master key).
        var blobs = await QueryAsync<string>(
            """
            SELECT m.name || '.' || c.name FROM sqlite_master m, pragma_table_info(m.name) c
            WHERE m.type = 'table' AND upper(c.type) = 'BLOB' AND m.name || '.' || c.name <> 'data_keys.wrapped_key'
            ORDER BY 1
            """);

        Assert.Equal(blobs, RekeyJob.Columns.Select(c => c.ToString()).Order(StringComparer.Ordinal));
    }

    private Task<KeyRing> OpenRingAsync(params byte[][] masterKeys) =>
        KeyRing.OpenAsync(MasterKeyRing.FromKeys(masterKeys), new DataKeyStore(_database), _time, CancellationToken.None);

    private async Task<VariableService> VariablesAsync(KeyRing ring)
    {
        var variables = new VariableService(_database, ring, _time, new ChangeFeed());
        await variables.EnsureProductionAsync(CancellationToken.None);
        return variables;
    }

    private RekeyJob Job(KeyRing ring, int batchSize = RekeyJob.DefaultBatchSize) =>
        new(_database, ring, _time, _audit, NullLogger<RekeyJob>.Instance) { BatchSize = batchSize };

    private static EncryptedColumn Column(string table, string column) =>
        RekeyJob.Columns.Single(c => c.Table == table && c.Column == column);

    private static TokenSet Tokens(string access, string? refresh) => new()
    {
        AccessToken = new Secret(access),
        RefreshToken = refresh is null ? null : new Secret(refresh),
        TokenType = "Bearer",
        ObtainedAt = DateTimeOffset.UnixEpoch,
    };

    private async Task SaveTokensAsync(KeyRing ring, CredentialKey key, string access, string? refresh) =>
        Assert.Equal(1, await new CredentialStore(_database, ring, _time).SaveTokensAsync(key, null, "hash", Tokens(access, refresh), null, countRefresh: false, CancellationToken.None));

    private async Task ExecuteAsync(string sql, object parameters)
    {
        await using var connection = await _database.OpenAsync(CancellationToken.None);
        await connection.ExecuteAsync(sql, parameters);
    }

    private async Task<T> ScalarAsync<T>(string sql)
    {
        await using var connection = await _database.OpenAsync(CancellationToken.None);
        return (await connection.ExecuteScalarAsync<T>(sql))!;
    }

    /// <summary>Every value in every registered column, with the column's name.</summary>
    private async Task<List<(string Column, byte[] Ciphertext)>> AllCiphertextsAsync()
    {
        await using var connection = await _database.OpenAsync(CancellationToken.None);
        var values = new List<(string, byte[])>();
        foreach (var column in RekeyJob.Columns)
        {
            var rows = await connection.QueryAsync<byte[]>($"SELECT {column.Column} FROM {column.Table} WHERE {column.Column} IS NOT NULL");
            values.AddRange(rows.Select(row => (column.ToString(), row)));
        }

        return values;
    }

    private async Task<long> CountAsync(string sql)
    {
        await using var connection = await _database.OpenAsync(CancellationToken.None);
        return await connection.ExecuteScalarAsync<long>(sql);
    }

    private async Task<List<T>> QueryAsync<T>(string sql)
    {
        await using var connection = await _database.OpenAsync(CancellationToken.None);
        return (await connection.QueryAsync<T>(sql)).ToList();
    }

    private async Task<List<StoredCiphertext>> CiphertextsAsync()
    {
        await using var connection = await _database.OpenAsync(CancellationToken.None);
        return (await connection.QueryAsync<StoredCiphertext>(
            "SELECT environment, name, version, ciphertext FROM variable_versions WHERE ciphertext IS NOT NULL ORDER BY name, version")).ToList();
    }

    /// <summary>The data key id in an envelope's header (bytes 1..8, see <see cref="KeyRing"/>).</summary>
    private static string DataKeyOf(byte[] envelope) =>
        BinaryPrimitives.ReadUInt64BigEndian(envelope.AsSpan(1, 8)).ToString("x16", System.Globalization.CultureInfo.InvariantCulture);

    private sealed class StoredCiphertext
    {
        public string Environment { get; init; } = "";
        public string Name { get; init; } = "";
        public long Version { get; init; }
        public byte[] Ciphertext { get; init; } = [];
    }
}

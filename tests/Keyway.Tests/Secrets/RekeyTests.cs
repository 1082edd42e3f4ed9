using System.Buffers.Binary;
using System.Security.Cryptography;
using Dapper;
using Keyway.Api;
using Keyway.Environments;
using Keyway.Secrets;
using Keyway.Storage;
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
        }

        string target;
        using (var ring = await OpenRingAsync(_keyB, _keyA))
        {
            var job = Job(ring, batchSize: 2);
            var begun = await job.BeginAsync(CancellationToken.None);
            var (next, progress) = await job.RunBatchAsync(RekeyJob.RowKey.Start, begun, CancellationToken.None);
            target = begun.DataKeyId!;
            Assert.NotNull(next);
            Assert.Equal((5, 2, 2), (progress.Total, progress.Done, progress.Reencrypted));
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
        Assert.Equal((5, 5, 3), (status.Total, status.Done, status.Reencrypted));
        Assert.Equal(2, await CountAsync("SELECT COUNT(*) FROM data_keys"));
        Assert.All(await CiphertextsAsync(), row => Assert.True(restarted.IsCurrent(row.Ciphertext)));
        Assert.Equal(RekeyStatus.Completed, (await Job(restarted).GetStatusAsync(CancellationToken.None)).State);
    }

    [Fact]
    public async Task A_value_written_while_a_batch_runs_is_never_overwritten()
    {
        using var ring = await OpenRingAsync(_keyA);
        var variables = await VariablesAsync(ring);
        await variables.SetAsync(Production, "RACE", "old-value", secret: true, null, CancellationToken.None);
        await ring.RotateDataKeyAsync(CancellationToken.None);
        var stale = (await CiphertextsAsync()).Select(r => new RekeyJob.EncryptedRow
        {
            Environment = r.Environment,
            Name = r.Name,
            Version = r.Version,
            Ciphertext = r.Ciphertext,
        }).ToList();
        var associatedData = VariableService.AssociatedData(Production, "RACE", 1);
        var newer = ring.Encrypt(new Secret("newer-value"), associatedData);
        await using (var writer = await _database.OpenAsync(CancellationToken.None))
        {
            await writer.ExecuteAsync("UPDATE variable_versions SET ciphertext = @newer", new { newer });
        }

        await using var connection = await _database.OpenAsync(CancellationToken.None);
        await using var transaction = await connection.BeginTransactionAsync();
        var replaced = await Job(ring).ReplaceAsync(connection, transaction, stale, CancellationToken.None);
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

        var started = await job.StartAsync(CancellationToken.None);
        var conflict = await Assert.ThrowsAsync<KeywayException>(() => job.StartAsync(CancellationToken.None));

        Assert.Equal(RekeyStatus.Running, started.State);
        Assert.Equal((409, "conflict"), (conflict.Status, conflict.Code));
        await hold.RollbackAsync();
        await hold.DisposeAsync();
        await Poll.UntilAsync(async () => (await job.GetStatusAsync(CancellationToken.None)).State != RekeyStatus.Running,
            TimeSpan.FromSeconds(30), "the rekey to finish");
        Assert.Equal(RekeyStatus.Completed, (await job.GetStatusAsync(CancellationToken.None)).State);
        Assert.All(await CiphertextsAsync(), row => Assert.True(ring.IsCurrent(row.Ciphertext)));
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
        new(_database, ring, _time, NullLogger<RekeyJob>.Instance) { BatchSize = batchSize };

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

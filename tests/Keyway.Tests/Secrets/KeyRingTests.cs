using System.Security.Cryptography;
using System.Text;
using Keyway.Secrets;
using Microsoft.Extensions.Time.Testing;

namespace Keyway.Tests.Secrets;

public sealed class KeyRingTests
{
    private const string Row = "variable:production:API_TOKEN:v3:value";
    private const string Canary = "CANARY-secret-5b1e07d2";

    private static readonly DateTimeOffset Start = new(2025, 3, 1, 12, 0, 0, TimeSpan.Zero);

    private readonly FakeTimeProvider _time = new(Start);
    private readonly InMemoryDataKeyStore _store = new();
    private readonly byte[] _masterKey = RandomNumberGenerator.GetBytes(32);

    [Fact]
    public async Task Opening_an_empty_store_creates_one_active_data_key_under_the_primary_master_key()
    {
        using var ring = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));

        var key = Assert.Single(_store.Snapshot());
        Assert.Equal(ring.ActiveKeyId, key.Id);
        Assert.True(key.Active);
        Assert.Equal(Start, key.CreatedAt);
        Assert.Equal(MasterKeyRing.FromKeys(_masterKey).PrimaryKeyId, key.MasterKeyId);
        Assert.Equal(60, key.WrappedKey.Length);
    }

    [Fact]
    public async Task A_value_round_trips_through_encrypt_and_decrypt()
    {
        using var ring = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));
        var plaintext = Encoding.UTF8.GetBytes("hello, upstream");

        var envelope = ring.Encrypt(plaintext, Row);

        Assert.Equal(plaintext, ring.Decrypt(envelope, Row));
        Assert.Equal(1 + 8 + 12 + 16 + plaintext.Length, envelope.Length);
        Assert.NotEqual(envelope, ring.Encrypt(plaintext, Row));
        Assert.Empty(ring.Decrypt(ring.Encrypt([], Row), Row));
    }

    [Fact]
    public async Task A_secret_round_trips_and_comes_back_as_a_secret()
    {
        using var ring = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));

        var envelope = ring.Encrypt(new Secret(Canary + " é ✓"), Row);
        var secret = ring.DecryptSecret(envelope, Row);

        Assert.Equal(Canary + " é ✓", secret.Reveal());
        Assert.Equal(Secret.Redacted, secret.ToString());
        Assert.Equal(-1, envelope.AsSpan().IndexOf(Encoding.UTF8.GetBytes(Canary)));
    }

    [Fact]
    public async Task Flipping_any_byte_of_the_envelope_fails_with_a_DecryptionException()
    {
        using var ring = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));
        var envelope = ring.Encrypt("a value worth protecting"u8, Row);

        // Every byte: version, data key id, nonce, tag and ciphertext.
        for (var i = 0; i < envelope.Length; i++)
        {
            var tampered = (byte[])envelope.Clone();
            tampered[i] ^= 0x01;

            var error = Assert.Throws<DecryptionException>(() => ring.Decrypt(tampered, Row));

            Assert.Equal(
                $"The encrypted value for {Row} could not be authenticated (tampered, copied from another row, or encrypted under another key).",
                error.Message);
        }
    }

    [Fact]
    public async Task A_truncated_or_empty_envelope_fails_with_a_DecryptionException()
    {
        using var ring = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));
        var envelope = ring.Encrypt("value"u8, Row);

        foreach (var length in new[] { 0, 1, 9, 36, envelope.Length - 1 })
        {
            var error = Assert.Throws<DecryptionException>(() => ring.Decrypt(envelope[..length], Row));
            Assert.Equal(Row, error.AssociatedData);
        }

        Assert.Throws<DecryptionException>(() => ring.Decrypt([.. envelope, 0], Row));
    }

    [Theory]
    [InlineData("variable:production:OTHER_TOKEN:v3:value")]
    [InlineData("variable:staging:API_TOKEN:v3:value")]
    [InlineData("variable:production:API_TOKEN:v2:value")]
    [InlineData("variable:production:API_TOKEN:v3:description")]
    public async Task A_ciphertext_moved_to_another_row_or_field_does_not_decrypt(string otherRow)
    {
        using var ring = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));
        var envelope = ring.Encrypt(new Secret(Canary), Row);

        var error = Assert.Throws<DecryptionException>(() => ring.DecryptSecret(envelope, otherRow));

        Assert.Equal(DecryptionFailure.Authentication, error.Reason);
        Assert.Contains(otherRow, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_secret_never_appears_in_a_decryption_exception()
    {
        using var ring = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));
        var envelope = ring.Encrypt(new Secret(Canary), Row);
        var tampered = (byte[])envelope.Clone();
        tampered[^1] ^= 0xFF;

        var errors = new Exception[]
        {
            Assert.Throws<DecryptionException>(() => ring.DecryptSecret(envelope, "variable:production:OTHER:v1:value")),
            Assert.Throws<DecryptionException>(() => ring.DecryptSecret(tampered, Row)),
            Assert.Throws<DecryptionException>(() => ring.Decrypt(envelope[..20], Row)),
        };

        foreach (var error in errors)
        {
            Assert.DoesNotContain(Canary, error.ToString(), StringComparison.Ordinal);
            Assert.DoesNotContain(Canary, error.InnerException?.ToString() ?? "", StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task An_envelope_under_a_data_key_this_ring_does_not_hold_fails_with_a_DecryptionException()
    {
        using var ring = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));
        using var stranger = await KeyRing.OpenAsync(MasterKeyRing.FromKeys(_masterKey), new InMemoryDataKeyStore(), _time, CancellationToken.None);

        var error = Assert.Throws<DecryptionException>(() => ring.Decrypt(stranger.Encrypt("value"u8, Row), Row));

        Assert.Equal(DecryptionFailure.UnknownDataKey, error.Reason);
    }

    [Fact]
    public async Task Opening_with_the_wrong_master_key_fails_and_leaves_the_store_untouched()
    {
        using (var ring = await OpenAsync(MasterKeyRing.FromKeys(_masterKey)))
        {
            await ring.RotateDataKeyAsync(CancellationToken.None);
        }

        var before = _store.Snapshot();
        var writes = _store.Writes;
        var wrongKey = RandomNumberGenerator.GetBytes(32);
        var wrong = MasterKeyRing.FromKeys(wrongKey);

        var error = await Assert.ThrowsAsync<MasterKeyException>(() => OpenAsync(wrong));

        Assert.Contains($"encrypted with master key id {MasterKeyRing.FromKeys(_masterKey).PrimaryKeyId}", error.Message, StringComparison.Ordinal);
        Assert.Contains($"the configured key ids are {wrong.PrimaryKeyId}", error.Message, StringComparison.Ordinal);
        Assert.Contains("KEYWAY_MASTER_KEY", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Convert.ToBase64String(wrongKey), error.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(Convert.ToBase64String(_masterKey), error.ToString(), StringComparison.Ordinal);
        Assert.Equal(writes, _store.Writes);
        AssertSameRecords(before, _store.Snapshot());

        using var reopened = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));
        Assert.Equal(2, _store.Snapshot().Count);
    }

    [Fact]
    public async Task A_wrapped_data_key_copied_onto_another_key_row_does_not_unwrap()
    {
        using (var ring = await OpenAsync(MasterKeyRing.FromKeys(_masterKey)))
        {
            await ring.RotateDataKeyAsync(CancellationToken.None);
        }

        var records = _store.Snapshot();
        _store.Replace([records[0], records[1] with { WrappedKey = records[0].WrappedKey }]);

        var error = await Assert.ThrowsAsync<MasterKeyException>(() => OpenAsync(MasterKeyRing.FromKeys(_masterKey)));

        Assert.Contains(records[1].Id, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_new_and_old_master_key_list_opens_old_data_and_after_rewrap_the_new_key_alone_does()
    {
        var oldKey = _masterKey;
        var newKey = RandomNumberGenerator.GetBytes(32);
        byte[] envelope;
        using (var ring = await OpenAsync(MasterKeyRing.FromKeys(oldKey)))
        {
            envelope = ring.Encrypt(new Secret(Canary), Row);
        }

        await Assert.ThrowsAsync<MasterKeyException>(() => OpenAsync(MasterKeyRing.FromKeys(newKey)));

        using (var rolling = await OpenAsync(MasterKeyRing.FromKeys(newKey, oldKey)))
        {
            Assert.Equal(Canary, rolling.DecryptSecret(envelope, Row).Reveal());
            Assert.Equal(1, await rolling.RewrapAsync(CancellationToken.None));
            Assert.Equal(0, await rolling.RewrapAsync(CancellationToken.None));
            Assert.Equal(Canary, rolling.DecryptSecret(envelope, Row).Reveal());
        }

        var newId = MasterKeyRing.FromKeys(newKey).PrimaryKeyId;
        Assert.All(_store.Snapshot(), record => Assert.Equal(newId, record.MasterKeyId));
        using var rotated = await OpenAsync(MasterKeyRing.FromKeys(newKey));
        Assert.Equal(Canary, rotated.DecryptSecret(envelope, Row).Reveal());
        await Assert.ThrowsAsync<MasterKeyException>(() => OpenAsync(MasterKeyRing.FromKeys(oldKey)));
    }

    [Fact]
    public async Task Rewrap_stops_before_writing_when_a_data_key_is_under_an_unknown_master_key()
    {
        using var ring = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));
        var records = _store.Snapshot();
        var foreign = new DataKeyRecord("00112233aabbccdd", "ffffffffffffffff", new byte[60], Start, Active: false);
        _store.Replace([.. records, foreign]);
        var writes = _store.Writes;

        await Assert.ThrowsAsync<MasterKeyException>(() => ring.RewrapAsync(CancellationToken.None));

        Assert.Equal(writes, _store.Writes);
    }

    [Fact]
    public async Task Rotating_the_data_key_keeps_old_ciphertexts_readable_and_IsCurrent_tells_them_apart()
    {
        using var ring = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));
        var firstKeyId = ring.ActiveKeyId;
        var old = ring.Encrypt("old value"u8, Row);
        Assert.True(ring.IsCurrent(old));

        _time.Advance(TimeSpan.FromDays(90));
        var newKeyId = await ring.RotateDataKeyAsync(CancellationToken.None);
        var current = ring.Encrypt("new value"u8, Row);

        Assert.NotEqual(firstKeyId, newKeyId);
        Assert.Equal(newKeyId, ring.ActiveKeyId);
        Assert.False(ring.IsCurrent(old));
        Assert.True(ring.IsCurrent(current));
        Assert.False(ring.IsCurrent([]));
        Assert.Equal("old value"u8.ToArray(), ring.Decrypt(old, Row));
        Assert.Equal("new value"u8.ToArray(), ring.Decrypt(current, Row));

        var stored = _store.Snapshot();
        Assert.Equal(2, stored.Count);
        var active = Assert.Single(stored, record => record.Active);
        Assert.Equal(newKeyId, active.Id);
        Assert.Equal(Start.AddDays(90), active.CreatedAt);

        using var reopened = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));
        Assert.Equal(newKeyId, reopened.ActiveKeyId);
        Assert.Equal("old value"u8.ToArray(), reopened.Decrypt(old, Row));
        Assert.True(reopened.IsCurrent(current));
    }

    [Fact]
    public async Task A_replica_picks_up_a_data_key_rotated_elsewhere_after_reloading()
    {
        using var replicaA = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));
        using var replicaB = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));
        var rotated = await replicaA.RotateDataKeyAsync(CancellationToken.None);
        var envelope = replicaA.Encrypt("value"u8, Row);

        var error = Assert.Throws<DecryptionException>(() => replicaB.Decrypt(envelope, Row));
        Assert.Equal(DecryptionFailure.UnknownDataKey, error.Reason);

        await replicaB.ReloadAsync(CancellationToken.None);

        Assert.Equal(rotated, replicaB.ActiveKeyId);
        Assert.Equal("value"u8.ToArray(), replicaB.Decrypt(envelope, Row));
    }

    [Fact]
    public async Task Concurrent_encrypts_and_decrypts_round_trip_while_the_data_key_rotates()
    {
        using var ring = await OpenAsync(MasterKeyRing.FromKeys(_masterKey));

        var rotations = Task.Run(async () =>
        {
            for (var i = 0; i < 5; i++)
            {
                await ring.RotateDataKeyAsync(CancellationToken.None);
            }
        });
        Parallel.For(0, 5_000, i =>
        {
            var row = $"variable:production:V{i}:v1:value";
            var plaintext = Encoding.UTF8.GetBytes($"value {i}");
            Assert.Equal(plaintext, ring.Decrypt(ring.Encrypt(plaintext, row), row));
        });
        await rotations;

        Assert.Equal(6, _store.Snapshot().Count);
    }

    private Task<KeyRing> OpenAsync(MasterKeyRing master) => KeyRing.OpenAsync(master, _store, _time, CancellationToken.None);

    private static void AssertSameRecords(IReadOnlyList<DataKeyRecord> expected, IReadOnlyList<DataKeyRecord> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i] with { WrappedKey = [] }, actual[i] with { WrappedKey = [] });
            Assert.Equal(expected[i].WrappedKey, actual[i].WrappedKey);
        }
    }
}

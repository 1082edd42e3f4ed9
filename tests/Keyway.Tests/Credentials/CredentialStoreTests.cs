using System.Security.Cryptography;
using Keyway.Credentials;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Credentials;

/// <summary>The credentials table on both engines.</summary>
[Trait("Category", "Integration")]
public sealed class CredentialStoreTests
{
    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_refresh_mark_records_the_process_that_made_it_not_the_credentials_owner(StoreKind kind)
    {
        await using var scratch = await ScratchStore.CreateAsync(kind);
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 5, 9, 0, 0, TimeSpan.Zero));
        using var keys = await MigratedKeyRingAsync(scratch, time);
        var store = new CredentialStore(scratch.Database, keys, time);
        var key = new CredentialKey("api", "production", CredentialKey.Shared);
        var tokens = new TokenSet { AccessToken = new Secret("access"), ObtainedAt = time.GetUtcNow() };
        var version = await store.SaveTokensAsync(key, null, "hash", tokens, null, countRefresh: false, CancellationToken.None);

        Assert.Equal(2, await store.MarkRefreshStartedAsync(key, version!.Value, "replica-7", CancellationToken.None));

        var stored = await store.ReadAsync(key, CancellationToken.None);
        Assert.Equal("replica-7", stored!.RefreshOwner);
        Assert.Equal(CredentialKey.Shared, stored.Key.Owner);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_transition_and_its_audit_event_commit_together_or_not_at_all(StoreKind kind)
    {
        await using var scratch = await ScratchStore.CreateAsync(kind);
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 5, 9, 0, 0, TimeSpan.Zero));
        using var keys = await MigratedKeyRingAsync(scratch, time);
        var store = new CredentialStore(scratch.Database, keys, time);
        var key = new CredentialKey("api", "production", CredentialKey.Shared);
        var tokens = new TokenSet { AccessToken = new Secret("access-1"), ObtainedAt = time.GetUtcNow() };

        // The event's insert fails: the tokens it records are not stored either.
        await Assert.ThrowsAsync<InvalidOperationException>(() => store.SaveTokensAsync(
            key, null, "hash", tokens, null, countRefresh: false, CancellationToken.None, audit: _ => throw new InvalidOperationException("outbox refused")));
        Assert.Null(await store.ReadAsync(key, CancellationToken.None));

        // The event's insert succeeds: both are there.
        var version = await store.SaveTokensAsync(key, null, "hash", tokens, null, countRefresh: false, CancellationToken.None, audit: Mark("connected"));
        Assert.Equal(["connected"], await MarksAsync());

        // A failure record and a delete roll back with their event.
        await Assert.ThrowsAsync<InvalidOperationException>(() => store.RecordFailureAsync(
            key, version!.Value, CredentialState.Failed, "invalid_client", null, clearTokens: false, CancellationToken.None, _ => throw new InvalidOperationException("outbox refused")));
        Assert.Equal(CredentialState.Valid, (await store.ReadAsync(key, CancellationToken.None))!.State);
        await Assert.ThrowsAsync<InvalidOperationException>(() => store.DeleteAsync(key, CancellationToken.None, _ => throw new InvalidOperationException("outbox refused")));
        Assert.NotNull(await store.ReadAsync(key, CancellationToken.None));

        await store.RecordFailureAsync(key, version!.Value, CredentialState.Failed, "invalid_client", null, clearTokens: false, CancellationToken.None, Mark("failed"));
        Assert.Equal(CredentialState.Failed, (await store.ReadAsync(key, CancellationToken.None))!.State);
        Assert.True(await store.DeleteAsync(key, CancellationToken.None, Mark("disconnected")));
        Assert.Equal(["connected", "disconnected", "failed"], await MarksAsync());

        // Stands in for the outbox insert: a row written on the transaction it is given.
        Func<System.Data.Common.DbTransaction, Task> Mark(string name) => transaction =>
            transaction.Connection!.ExecuteAsync("INSERT INTO meta (key, value) VALUES (@name, 'event')", new { name = "test." + name }, transaction);

        async Task<List<string>> MarksAsync()
        {
            await using var connection = await scratch.Database.OpenAsync(CancellationToken.None);
            var names = await connection.QueryAsync<string>("SELECT key FROM meta WHERE key LIKE 'test.%' ORDER BY key");
            return [.. names.Select(n => n["test.".Length..])];
        }
    }

    private static async Task<KeyRing> MigratedKeyRingAsync(ScratchStore scratch, TimeProvider time)
    {
        await new Migrator(scratch.Database, time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
        return await KeyRing.OpenAsync(MasterKeyRing.FromKeys(RandomNumberGenerator.GetBytes(32)), new DataKeyStore(scratch.Database), time, CancellationToken.None);
    }
}

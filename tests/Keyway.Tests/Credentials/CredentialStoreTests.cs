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
        await new Migrator(scratch.Database, time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
        using var keys = await KeyRing.OpenAsync(
            MasterKeyRing.FromKeys(RandomNumberGenerator.GetBytes(32)), new DataKeyStore(scratch.Database), time, CancellationToken.None);
        var store = new CredentialStore(scratch.Database, keys, time);
        var key = new CredentialKey("api", "production", CredentialKey.Shared);
        var tokens = new TokenSet { AccessToken = new Secret("access"), ObtainedAt = time.GetUtcNow() };
        var version = await store.SaveTokensAsync(key, null, "hash", tokens, null, countRefresh: false, CancellationToken.None);

        Assert.Equal(2, await store.MarkRefreshStartedAsync(key, version!.Value, "replica-7", CancellationToken.None));

        var stored = await store.ReadAsync(key, CancellationToken.None);
        Assert.Equal("replica-7", stored!.RefreshOwner);
        Assert.Equal(CredentialKey.Shared, stored.Key.Owner);
    }
}

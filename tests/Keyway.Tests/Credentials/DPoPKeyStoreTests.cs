using System.Security.Cryptography;
using Keyway.Credentials;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Credentials;

/// <summary>The <c>dpop_keys</c> table on both engines: one key per credential, encrypted, shared by replicas, gone with its credential.</summary>
[Trait("Category", "Integration")]
public sealed class DPoPKeyStoreTests
{
    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Replicas_share_one_key_per_credential_which_goes_with_its_credential(StoreKind kind)
    {
        await using var scratch = await ScratchStore.CreateAsync(kind);
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 5, 9, 0, 0, TimeSpan.Zero));
        await new Migrator(scratch.Database, time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
        using var ring = await KeyRing.OpenAsync(MasterKeyRing.FromKeys(RandomNumberGenerator.GetBytes(32)), new DataKeyStore(scratch.Database), time, CancellationToken.None);
        // Two stores stand for two replicas: each with its own memory, one table.
        var one = new DPoPKeyStore(scratch.Database, ring, time, NullLogger<DPoPKeyStore>.Instance);
        var two = new DPoPKeyStore(scratch.Database, ring, time, NullLogger<DPoPKeyStore>.Instance);
        var shared = new CredentialKey("api", "production", CredentialKey.Shared);
        var alice = new CredentialKey("api", "production", "user-alice");

        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => (i % 2 == 0 ? one : two).GetAsync(shared, "ES256", CancellationToken.None).AsTask()));
        var first = results[0];
        Assert.All(results, k => Assert.Equal(first.Thumbprint, k.Thumbprint));
        Assert.Same(first, await one.GetAsync(shared, "ES256", CancellationToken.None));
        var alices = await one.GetAsync(alice, "ES256", CancellationToken.None);
        Assert.NotEqual(first.Thumbprint, alices.Thumbprint);

        // Stored encrypted: the row holds neither the PKCS#8 key nor its private scalar.
        var pkcs8 = first.ExportForStore();
        await using (var connection = await scratch.Database.OpenAsync(CancellationToken.None))
        {
            var stored = await connection.QuerySingleAsync<byte[]>("SELECT private_key FROM dpop_keys WHERE owner = 'shared'");
            using var ec = ECDsa.Create();
            ec.ImportPkcs8PrivateKey(pkcs8, out _);
            Assert.Equal(-1, stored.AsSpan().IndexOf(ec.ExportParameters(true).D));
            Assert.Equal(pkcs8, ring.Decrypt(stored, DPoPKeyStore.AssociatedData(shared)));
        }

        // Another algorithm: a new key in the same row.
        var rsa = await two.GetAsync(shared, "PS256", CancellationToken.None);
        Assert.Equal("PS256", rsa.Algorithm);
        Assert.NotEqual(first.Thumbprint, rsa.Thumbprint);

        // The credential disconnected: its key goes in the same transaction; the next one is new.
        var credentials = new CredentialStore(scratch.Database, ring, time);
        await credentials.SaveTokensAsync(shared, null, "hash", new TokenSet { AccessToken = new Secret("access"), ObtainedAt = time.GetUtcNow() }, null,
            countRefresh: false, CancellationToken.None);
        Assert.True(await credentials.DeleteAsync(shared, CancellationToken.None));
        one.Evict(shared);
        var renewed = await one.GetAsync(shared, "PS256", CancellationToken.None);
        Assert.NotEqual(rsa.Thumbprint, renewed.Thumbprint);
        Assert.Equal(alices.Thumbprint, (await two.GetAsync(alice, "ES256", CancellationToken.None)).Thumbprint);
    }
}

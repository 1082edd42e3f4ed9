using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Storage;

/// <summary>
/// A store a newer release migrated: this release still starts on it while the newer migrations only
/// added (a rolling upgrade, a replica restarted in the middle of one), and refuses, saying which release
/// to run, once one of them raised the oldest release that can read it.
/// </summary>
[Trait("Category", "Integration")]
public sealed class SchemaCompatibilityTests
{
    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_store_migrated_by_a_newer_release_opens_while_it_stays_readable_and_not_after(StoreKind kind)
    {
        await using var store = await ScratchStore.CreateAsync(kind);
        var migrator = new Migrator(store.Database, TimeProvider.System, NullLogger<Migrator>.Instance);
        await migrator.ApplyAsync(CancellationToken.None);
        var newest = Migrator.Load(store.Database.Kind).Max(m => m.Version);

        // The newer release's additive migration: a table, and its row in schema_migrations.
        await using (var connection = await store.Database.OpenAsync(CancellationToken.None))
        {
            await connection.ExecuteAsync("CREATE TABLE from_the_future (id BIGINT PRIMARY KEY)");
            await connection.ExecuteAsync("INSERT INTO schema_migrations (version, name, applied_at) VALUES (@v, 'from_the_future', 0)", new { v = newest + 1 });
        }

        Assert.Equal(0, await migrator.ApplyAsync(CancellationToken.None));

        // Then one that removes what this release reads: it raises oldest_reader past this release.
        await using (var connection = await store.Database.OpenAsync(CancellationToken.None))
        {
            await connection.ExecuteAsync("INSERT INTO schema_migrations (version, name, applied_at) VALUES (@v, 'contract', 0)", new { v = newest + 2 });
            await connection.ExecuteAsync("UPDATE schema_compatibility SET oldest_reader = @v", new { v = newest + 2 });
        }

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => migrator.ApplyAsync(CancellationToken.None));
        Assert.Contains($"at version {newest + 2}, newer than this Keyway knows ({newest})", error.Message, StringComparison.Ordinal);
        Assert.Contains($"knows version {newest + 2} or later", error.Message, StringComparison.Ordinal);
    }
}

using Keyway.Access;
using Keyway.Environments;
using Keyway.Resources;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Resources;

/// <summary>A new resource and its creator's <c>own</c> grant land in one transaction, on both engines.</summary>
[Trait("Category", "Integration")]
public sealed class ResourceCreationTests
{
    private static readonly ResourceDefinition Definition = new() { BaseUrl = "https://api.example.test" };

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_created_resource_comes_with_its_creators_grant_and_a_replaced_one_adds_none(StoreKind kind)
    {
        await using var store = await OpenAsync(kind);
        var calls = 0;
        Func<System.Data.Common.DbConnection, System.Data.Common.DbTransaction, Task> creator = async (connection, transaction) =>
        {
            calls++;
            await store.Grants.AddCreatorAsync(connection, transaction, "billing", "usr_creator");
        };

        var created = await store.Resources.PutAsync("billing", Definition, expectedVersion: null, attached: [], createdBy: "usr_creator", creator, CancellationToken.None);
        var replaced = await store.Resources.PutAsync("billing", Definition, expectedVersion: null, attached: [], createdBy: "usr_other", creator, CancellationToken.None);

        Assert.True(created!.Value.Created);
        Assert.False(replaced!.Value.Created);
        Assert.Equal(1, calls);
        var grant = Assert.Single(await store.Grants.ListForResourceAsync("billing", CancellationToken.None));
        Assert.Equal(("usr_creator", "own", GrantStore.Any), (grant.Principal, grant.Permission, grant.Environment));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task When_the_creators_grant_cannot_be_written_the_resource_is_not_created_either(StoreKind kind)
    {
        await using var store = await OpenAsync(kind);

        await Assert.ThrowsAsync<InvalidOperationException>(() => store.Resources.PutAsync(
            "orphan", Definition, expectedVersion: 0, attached: [], createdBy: "usr_creator",
            async (connection, transaction) =>
            {
                await store.Grants.AddCreatorAsync(connection, transaction, "orphan", "usr_creator");
                throw new InvalidOperationException("The process died between the two writes.");
            },
            CancellationToken.None));

        Assert.Null(await store.Resources.GetAsync("orphan", CancellationToken.None));
        Assert.Empty(await store.Grants.ListForResourceAsync("orphan", CancellationToken.None));
    }

    private static async Task<Store> OpenAsync(StoreKind kind)
    {
        var scratch = await ScratchStore.CreateAsync(kind);
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 1, 5, 9, 0, 0, TimeSpan.Zero));
        await new Migrator(scratch.Database, time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
        var changes = new ChangeFeed();
        return new Store(scratch, new ResourceService(scratch.Database, time, changes), new GrantStore(scratch.Database, time, changes));
    }

    private sealed record Store(ScratchStore Scratch, ResourceService Resources, GrantStore Grants) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => Scratch.DisposeAsync();
    }
}

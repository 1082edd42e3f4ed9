using Keyway.Access;
using Keyway.Credentials;
using Keyway.Environments;
using Keyway.Storage;
using Keyway.Tests.Credentials;

namespace Keyway.Tests.Access;

/// <summary>The per-request lookups that must not allocate (DESIGN 7): measured in bytes, not time.</summary>
public sealed class HotPathAllocationTests
{
    [Fact]
    public async Task A_cached_api_key_is_verified_without_allocating()
    {
        await using var f = await EngineFixture.CreateAsync();
        var keys = new ApiKeyService(f.Database, f.Time, new ChangeFeed());
        await using (var connection = await f.Database.OpenAsync(default))
        {
            await connection.ExecuteAsync("INSERT INTO users (id, name, role, created_at) VALUES ('u1', 'alloc', 'admin', 0)");
        }

        var (_, token) = await keys.CreateAsync("u1", "alloc", null, null, default);
        Assert.NotNull(await keys.AuthenticateAsync(token, default));
        // The first lookup on a thread makes that thread's hash context, once; the measured ones run here.
        Assert.NotNull(keys.TryCached(token));

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            var caller = keys.AuthenticateAsync(token, default);
            Assert.True(caller.IsCompletedSuccessfully);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void An_allowed_permission_check_allocates_nothing()
    {
        var policy = new AccessPolicy([
            new GrantInfo("g1", "billing", PrincipalKinds.Group, "ops", "ops", "use", "staging", DateTimeOffset.UnixEpoch, null),
            new GrantInfo("g2", "*", PrincipalKinds.User, "u2", "bob", "own", "*", DateTimeOffset.UnixEpoch, null),
        ]);
        var caller = new Caller("u1", "alice", Caller.MemberRole, "key_1", null)
        {
            Groups = ["dev", "ops"],
            Scope = new KeyScope(["billing"], ["staging"], ["use"]),
        };
        Assert.True(policy.Allows(caller, Permission.Use, "billing", "staging"));

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            Assert.True(policy.Allows(caller, Permission.Use, "billing", "staging"));
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public async Task A_cached_credential_is_handed_out_without_allocating()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time);
        await f.Engine.GetAsync(EngineFixture.Key, provider, default);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            var credential = f.Engine.GetAsync(EngineFixture.Key, provider, default);
            Assert.True(credential.IsCompletedSuccessfully);
        }

        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}

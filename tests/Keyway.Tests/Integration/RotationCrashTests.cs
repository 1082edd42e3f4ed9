using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// A real <c>keyway serve</c> killed with SIGKILL while a rotation is at the provider (the provider
/// holds the request open until the test has killed the process), then started again on the same
/// store and data directory: the outcome docs/operations.md documents, one current version, and the
/// minted value kept.
/// </summary>
[Trait("Category", "Integration")]
public sealed class RotationCrashTests
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(60);

    private static string Path(string name) => $"/api/v1/environments/production/variables/{name}";

    private static Dictionary<string, string> Environment() => new()
    {
        ["KEYWAY_ADMIN_TOKEN"] = "kw_test_" + Guid.NewGuid().ToString("N"),
        ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
    };

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Sigkill_between_mint_and_commit_is_verified_again_on_restart_and_committed_with_one_current_version(StoreKind store)
    {
        var provider = new RotationProvider();
        await using var upstream = await UpstreamServer.StartAsync(provider.Map);
        await using var keyway = await KeywayProcess.StartAsync(store, Environment());
        using var admin = keyway.CreateAdminClient();
        var variable = "CRASHMINT";
        await RotationProvider.DefineAsync(admin, upstream, variable, "before-" + Guid.NewGuid().ToString("N"));
        provider.HoldVerify();

        var rotating = admin.PostAsync(Path(variable) + "/rotate", null);
        // The minted key is at the verify endpoint: stored as pending, not committed.
        await upstream.WaitForRequestAsync(r => r.Path == "/base/verify" && r.Headers.GetValueOrDefault("Authorization") == "Bearer " + provider.Key(1), s_wait);
        Assert.Equal(137, await keyway.KillAsync());
        await Assert.ThrowsAnyAsync<Exception>(() => rotating);
        provider.ReleaseVerify();
        await keyway.RestartAsync();

        using var again = keyway.CreateAdminClient();
        JsonNode rotation = new JsonObject();
        await Poll.UntilAsync(async () =>
        {
            rotation = (await Expect.StatusAsync(await again.GetAsync(Path(variable) + "/rotations"), 200))["rotations"]![0]!;
            return (string?)rotation["state"] == "committed";
        }, s_wait, "the rotation to be committed after the restart");

        Assert.Equal(1, provider.Minted); // taken over, not minted again
        Assert.Equal((1, 2, "key_1"), ((int)rotation["fromVersion"]!, (int)rotation["version"]!, (string)rotation["newId"]!));
        var versions = (await Expect.StatusAsync(await again.GetAsync(Path(variable) + "/versions"), 200))["versions"]!.AsArray();
        Assert.Equal([("current", 2), ("retired", 1)], versions.Select(v => ((string)v!["state"]!, (int)v["version"]!)));
        Assert.Equal(2, upstream.Requests.Count(r => r.Path == "/base/verify"));
        await Expect.StatusAsync(await again.GetAsync($"/proxy/{RotationProvider.ApiResource(variable)}/after-restart"), 200);
        Assert.Equal("Bearer " + provider.Key(1), upstream.Requests.Last(r => r.Path == "/base/after-restart").Headers["Authorization"]);
        Assert.DoesNotContain(provider.Canary, keyway.AllOutput, StringComparison.Ordinal);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Sigkill_between_commit_and_revoke_sends_the_revoke_again_on_restart_and_records_it_once(StoreKind store)
    {
        var provider = new RotationProvider();
        await using var upstream = await UpstreamServer.StartAsync(provider.Map);
        await using var keyway = await KeywayProcess.StartAsync(store, Environment());
        using var admin = keyway.CreateAdminClient();
        var variable = "CRASHREVOKE";
        await RotationProvider.DefineAsync(admin, upstream, variable, "before-" + Guid.NewGuid().ToString("N"));
        await Expect.StatusAsync(await admin.PostAsync(Path(variable) + "/rotate", null), 200);
        provider.HoldRevoke();

        // Grace 0s: the commit wakes the revoke, which reaches the provider and is held there.
        var committed = await Expect.StatusAsync(await admin.PostAsync(Path(variable) + "/rotate", null), 200);
        Assert.Equal("revoke_pending", (string?)committed["state"]);
        await Poll.UntilAsync(() => provider.RevokesOf("key_1") == 1, s_wait, "the revoke to reach the provider");
        Assert.Equal(137, await keyway.KillAsync());
        provider.ReleaseRevoke();
        await keyway.RestartAsync();

        using var again = keyway.CreateAdminClient();
        JsonNode rotation = new JsonObject();
        await Poll.UntilAsync(async () =>
        {
            rotation = (await Expect.StatusAsync(await again.GetAsync(Path(variable) + "/rotations"), 200))["rotations"]![0]!;
            return (string?)rotation["state"] == "revoked";
        }, s_wait, "the revoke to be recorded after the restart");

        // Sent again (the provider's 404 for an id already gone counts as done), recorded once.
        Assert.Equal(2, provider.RevokesOf("key_1"));
        Assert.Equal((string)committed["id"]!, (string)rotation["id"]!);
        var versions = (await Expect.StatusAsync(await again.GetAsync(Path(variable) + "/versions"), 200))["versions"]!.AsArray();
        Assert.Single(versions, v => (string)v!["state"]! == "current");
        Assert.Equal(3, (int)versions.Single(v => (string)v!["state"]! == "current")!["version"]!);
        await Poll.UntilAsync(async () => (await Expect.StatusAsync(await again.GetAsync("/api/v1/audit?action=rotation.revoke&limit=100"), 200))["events"]!.AsArray().Count == 1,
            s_wait, "one rotation.revoke event");
    }
}

using System.Net;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>Two real replicas on one PostgreSQL database asked to rotate the same variable at once.</summary>
[Trait("Category", "Integration")]
public sealed class RotationReplicaTests(ReplicaPair replicas) : IClassFixture<ReplicaPair>
{
    private static string Path(string name) => $"/api/v1/environments/production/variables/{name}";

    [Fact]
    public async Task Two_replicas_asked_to_rotate_one_variable_at_once_run_one_rotation_and_mint_one_key()
    {
        var provider = replicas.Provider;
        var variable = "ROTATE2_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await RotationProvider.DefineAsync(replicas.AdminA, replicas.Upstream, variable, "two-replicas-" + Guid.NewGuid().ToString("N"));
        var minted = provider.Minted;
        // The winner waits at verify until the loser has its answer: both asks overlap whichever replica is first.
        provider.HoldVerify();
        HttpResponseMessage loser;
        Task<HttpResponseMessage> winner;
        try
        {
            var onA = replicas.AdminA.PostAsync(Path(variable) + "/rotate", null);
            var onB = replicas.AdminB.PostAsync(Path(variable) + "/rotate", null);
            var first = await Task.WhenAny(onA, onB).WaitAsync(TimeSpan.FromSeconds(30));
            loser = await first;
            winner = first == onA ? onB : onA;
            Assert.False(winner.IsCompleted, "the winning rotation should still be held at verify");
        }
        finally
        {
            provider.ReleaseVerify();
        }

        var refused = await Expect.ProblemAsync(loser, 409, "rotation_in_progress");
        Assert.Contains("keyway var rotations", (string?)refused["detail"]);
        using var won = await winner.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(HttpStatusCode.OK, won.StatusCode);

        Assert.Equal(minted + 1, provider.Minted);
        var history = (await Expect.StatusAsync(await replicas.AdminB.GetAsync(Path(variable) + "/rotations"), 200))["rotations"]!.AsArray();
        Assert.Equal("committed", (string?)Assert.Single(history)!["state"]);
        var versions = (await Expect.StatusAsync(await replicas.AdminA.GetAsync(Path(variable) + "/versions"), 200))["versions"]!.AsArray();
        Assert.Equal([("current", 2), ("retired", 1)], versions.Select(v => ((string)v!["state"]!, (int)v["version"]!)));
    }
}

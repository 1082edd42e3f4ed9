using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// What a rotation leaves behind, on a real Keyway process and a real provider: the key a rolled-back
/// rotation minted is revoked at the provider; every request a rotation sends is in the audit log; a
/// retired key still owed its revoke stays redacted after writes that prune past the keep count; and
/// verify honours the expired <c>block</c> policy of every secret but the one it replaces.
/// </summary>
[Trait("Category", "Integration")]
public abstract class RotationAftermathTests<TFixture>(TFixture fixture) : IClassFixture<TFixture>
    where TFixture : RotationFixture
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(30);

    private HttpClient Admin => fixture.Admin;

    private RotationProvider Provider => fixture.Provider;

    private static string NewVariable(string prefix) => prefix + "_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();

    private static string Path(string name) => $"/api/v1/environments/production/variables/{name}";

    [Fact]
    public async Task A_rotation_whose_verification_fails_revokes_the_key_it_minted_and_records_the_revoke()
    {
        var variable = NewVariable("ABANDON");
        await RotationProvider.DefineAsync(Admin, fixture.Upstream, variable, "abandon-" + Guid.NewGuid().ToString("N"));
        await Expect.StatusAsync(await Admin.PostAsync(Path(variable) + "/rotate", null), 200);
        var inUse = $"key_{Provider.Minted}";
        Provider.FailVerify = true;
        JsonNode problem;
        try
        {
            problem = await Expect.ProblemAsync(await Admin.PostAsync(Path(variable) + "/rotate", null), 502, "rotation_verify_failed");
        }
        finally
        {
            Provider.FailVerify = false;
        }

        var abandoned = $"key_{Provider.Minted}";
        Assert.Contains((string?)problem["abandonedRevoke"], new[] { "pending", "revoked" });
        await Poll.UntilAsync(() => Provider.RevokesOf(abandoned) == 1, s_wait, "the abandoned key's revoke");
        JsonNode last = new JsonObject();
        await Poll.UntilAsync(async () =>
        {
            last = (await Expect.StatusAsync(await Admin.GetAsync(Path(variable) + "/rotations"), 200))["rotations"]![0]!;
            return (string?)last["abandonedRevoke"] == "revoked";
        }, s_wait, "the rotation to record the abandoned key revoked");

        Assert.Equal(("rolled_back", "rotation_verify_failed"), ((string?)last["state"], (string?)last["errorCode"]));
        Assert.NotNull(last["finishedAt"]);
        Assert.Equal(0, Provider.RevokesOf(inUse));
        await Expect.StatusAsync(await Admin.GetAsync($"/proxy/{RotationProvider.ApiResource(variable)}/still-works"), 200);
        Assert.Equal("Bearer " + Provider.Key(Provider.Minted - 1), fixture.Upstream.Requests.Last(r => r.Path == "/base/still-works").Headers["Authorization"]);
        var versions = (await Expect.StatusAsync(await Admin.GetAsync(Path(variable) + "/versions"), 200))["versions"]!.AsArray();
        Assert.Equal("revoked", (string?)versions.Single(v => (int)v!["version"]! == (int)last["version"]!)!["revoke"]);
        await Poll.UntilAsync(async () => (await Expect.StatusAsync(await Admin.GetAsync("/api/v1/audit?action=rotation.revoke&limit=1000"), 200))["events"]!.AsArray()
            .Any(e => (string?)e!["target"] == variable && (string?)e["detail"]!["abandonedRevoke"] == "revoked" && (string?)e["detail"]!["providerId"] == abandoned),
            s_wait, "the abandoned key's rotation.revoke event");
    }

    [Fact]
    public async Task Every_request_a_rotation_sends_is_audited_with_resource_method_path_and_status_and_no_secret()
    {
        var variable = NewVariable("AUDITED");
        await RotationProvider.DefineAsync(Admin, fixture.Upstream, variable, "audited-" + Guid.NewGuid().ToString("N"));
        var admin = RotationProvider.AdminResource(variable);
        var api = RotationProvider.ApiResource(variable);
        await Expect.StatusAsync(await Admin.PostAsync(Path(variable) + "/rotate", null), 200);
        await Expect.StatusAsync(await Admin.PostAsync(Path(variable) + "/rotate", null), 200);
        var replaced = $"key_{Provider.Minted - 1}";
        await Poll.UntilAsync(() => Provider.RevokesOf(replaced) == 1, s_wait, "the replaced key's revoke");

        List<JsonNode> runs = [];
        await Poll.UntilAsync(async () =>
        {
            runs = [.. (await Expect.StatusAsync(await Admin.GetAsync($"/api/v1/audit?action=run&limit=1000"), 200))["events"]!.AsArray()
                .Where(e => (string?)e!["target"] == variable).Select(e => e!)];
            return runs.Count == 5;
        }, s_wait, "two mints, two verifies and a revoke in the audit log");

        string Kind(JsonNode e) => (string)e["detail"]!["kind"]!;
        var mints = runs.Where(e => Kind(e) == "rotation.mint").ToList();
        var verifies = runs.Where(e => Kind(e) == "rotation.verify").ToList();
        var revoke = Assert.Single(runs, e => Kind(e) == "rotation.revoke");
        Assert.Equal(2, mints.Count);
        Assert.All(mints, e => Assert.Equal((admin, "POST", "/keys", 200), ((string)e["resource"]!, (string)e["detail"]!["method"]!, (string)e["detail"]!["path"]!, (int)e["detail"]!["status"]!)));
        Assert.Equal(2, verifies.Count);
        Assert.All(verifies, e => Assert.Equal((api, "GET", "/verify", 200), ((string)e["resource"]!, (string)e["detail"]!["method"]!, (string)e["detail"]!["path"]!, (int)e["detail"]!["status"]!)));
        Assert.Equal((admin, "DELETE", "/keys/" + replaced, 204), ((string)revoke["resource"]!, (string)revoke["detail"]!["method"]!, (string)revoke["detail"]!["path"]!, (int)revoke["detail"]!["status"]!));
        Assert.All(runs, e => Assert.Equal(("production", "success"), ((string)e["environment"]!, (string)e["outcome"]!)));
        Assert.DoesNotContain(Provider.Canary, await Admin.GetStringAsync("/api/v1/audit?limit=1000"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_retired_key_still_owed_its_revoke_stays_redacted_after_writes_that_prune_past_the_keep_count()
    {
        var variable = NewVariable("PRUNE");
        var handSet = "prune-by-hand-" + Guid.NewGuid().ToString("N");
        await RotationProvider.DefineAsync(Admin, fixture.Upstream, variable, handSet, revokeAfter: "1h", keepVersions: 1);
        await Expect.StatusAsync(await Admin.PostAsync(Path(variable) + "/rotate", null), 200);
        var retired = Provider.Key(Provider.Minted);
        await Expect.StatusAsync(await Admin.PostAsync(Path(variable) + "/rotate", null), 200); // its revoke waits an hour

        foreach (var n in new[] { 1, 2 })
        {
            await Expect.StatusAsync(await Admin.PutAsJsonAsync(Path(variable),
                new { value = $"later-{n}-{Guid.NewGuid():N}", secret = true, origins = new[] { fixture.Upstream.BaseUrl } }), 200);
        }

        var versions = (await Expect.StatusAsync(await Admin.GetAsync(Path(variable) + "/versions"), 200))["versions"]!.AsArray();
        Assert.DoesNotContain(versions, v => (int)v!["version"]! == 1); // the hand-set one (no key to revoke) is pruned
        Assert.Contains(versions, v => (int)v!["version"]! == 2 && (string?)v["state"] == "retired" && (string?)v["revoke"] == "owed");

        // The upstream quotes both in its answer: the pruned value is no longer known, the owed key still is.
        var run = await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{RotationProvider.ApiResource(variable)}/run",
            new { path = "/planted", query = new Dictionary<string, string> { ["retired"] = retired, ["pruned"] = handSet } }), 200);
        var answer = run.ToJsonString();
        Assert.Equal(HttpStatusCode.OK, (HttpStatusCode)(int)run["status"]!);
        Assert.Contains(handSet, answer, StringComparison.Ordinal);
        Assert.DoesNotContain(retired, answer, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_honours_the_block_policy_of_another_expired_secret_but_an_expired_block_secret_can_itself_be_rotated()
    {
        var variable = NewVariable("EXPIRED");
        await RotationProvider.DefineAsync(Admin, fixture.Upstream, variable, "expired-" + Guid.NewGuid().ToString("N"));
        var past = DateTimeOffset.UtcNow.AddHours(-1);
        await Expect.StatusAsync(await Admin.PutAsJsonAsync(Path(variable), new
        {
            value = "expired-again-" + Guid.NewGuid().ToString("N"),
            secret = true,
            origins = new[] { fixture.Upstream.BaseUrl },
            expiresAt = past,
            expiredPolicy = "block",
        }), 200);
        var api = RotationProvider.ApiResource(variable);
        await Expect.ProblemAsync(await Admin.GetAsync($"/proxy/{api}/blocked"), 409, "secret_expired");

        // Rotating is how an expired secret is replaced: its own verify uses the pending value, which has not expired.
        var committed = await Expect.StatusAsync(await Admin.PostAsync(Path(variable) + "/rotate", null), 200);
        Assert.Equal("committed", (string?)committed["state"]);
        await Expect.StatusAsync(await Admin.GetAsync($"/proxy/{api}/unblocked"), 200);

        // Another secret the verify resource reads expired under block: verify is refused, nothing is sent, nothing committed.
        var other = NewVariable("OTHER");
        await Expect.StatusAsync(await Admin.PutAsJsonAsync(Path(other), new
        {
            value = "other-" + Guid.NewGuid().ToString("N"),
            secret = true,
            expiresAt = past,
            expiredPolicy = "block",
        }), 200);
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/resources/{api}", new JsonObject
        {
            ["kind"] = "rest",
            ["baseUrl"] = fixture.Upstream.BaseUrl + "/base",
            ["headers"] = new JsonObject { ["X-Other"] = $"{{{{ environment.variables.{other} }}}}" },
            ["auth"] = new JsonObject { ["type"] = "bearer", ["token"] = $"{{{{ environment.variables.{variable} }}}}" },
        }));
        var verifies = fixture.Upstream.Requests.Count(r => r.Path == "/base/verify");

        var problem = await Expect.ProblemAsync(await Admin.PostAsync(Path(variable) + "/rotate", null), 502, "secret_expired");

        Assert.Equal("rolled_back", (string?)problem["state"]);
        Assert.Equal(verifies, fixture.Upstream.Requests.Count(r => r.Path == "/base/verify"));
        var versions = (await Expect.StatusAsync(await Admin.GetAsync(Path(variable) + "/versions"), 200))["versions"]!.AsArray();
        Assert.Equal((int)committed["version"]!, (int)versions.Single(v => (string?)v!["state"] == "current")!["version"]!);
    }
}

public sealed class SqliteRotationAftermathTests(SqliteRotationFixture fixture) : RotationAftermathTests<SqliteRotationFixture>(fixture);

public sealed class PostgresRotationAftermathTests(PostgresRotationFixture fixture) : RotationAftermathTests<PostgresRotationFixture>(fixture);

using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>A real Keyway process and a real provider on loopback, shared by the rotation tests of one store.</summary>
public abstract class RotationFixture(StoreKind store) : IAsyncLifetime
{
    internal RotationProvider Provider { get; } = new();

    public KeywayProcess Keyway { get; private set; } = null!;

    public UpstreamServer Upstream { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Upstream = await UpstreamServer.StartAsync(Provider.Map);
        Keyway = await KeywayProcess.StartAsync(store, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_test_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
        });
        Admin = Keyway.CreateAdminClient();
        // Every alert goes to the upstream's /hook, where the tests read what was sent.
        await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/webhooks", new { name = "ops", url = Upstream.BaseUrl + "/hook" }), 201);
    }

    public async Task DisposeAsync()
    {
        Admin.Dispose();
        await Keyway.DisposeAsync();
        await Upstream.DisposeAsync();
    }
}

public sealed class SqliteRotationFixture() : RotationFixture(StoreKind.Sqlite);

public sealed class PostgresRotationFixture() : RotationFixture(StoreKind.Postgres);

/// <summary>
/// Rotation flows end to end: a failed verification leaves the old secret working, rotation under load
/// sends exactly one version per request, a schedule rotates, and no minted value shows anywhere.
/// </summary>
[Trait("Category", "Integration")]
public abstract class RotationTests<TFixture>(TFixture fixture) : IClassFixture<TFixture>
    where TFixture : RotationFixture
{
    private HttpClient Admin => fixture.Admin;

    private RotationProvider Provider => fixture.Provider;

    private static string NewVariable(string prefix) => prefix + "_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();

    private static string Path(string name) => $"/api/v1/environments/production/variables/{name}";

    [Fact]
    public async Task A_rotation_whose_verification_fails_leaves_the_old_secret_in_use_and_raises_rotation_failed()
    {
        var variable = NewVariable("FAILVERIFY");
        var original = "original-" + Guid.NewGuid().ToString("N");
        await RotationProvider.DefineAsync(Admin, fixture.Upstream, variable, original);
        var resource = RotationProvider.ApiResource(variable);
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

        Assert.Equal("rolled_back", (string?)problem["state"]);
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/after-failure" }), 200);
        await Expect.StatusAsync(await Admin.GetAsync($"/proxy/{resource}/after-failure-proxy"), 200);
        Assert.Equal("Bearer " + original, fixture.Upstream.Requests.Last(r => r.Path == "/base/after-failure").Headers["Authorization"]);
        Assert.Equal("Bearer " + original, fixture.Upstream.Requests.Last(r => r.Path == "/base/after-failure-proxy").Headers["Authorization"]);
        var versions = (await Expect.StatusAsync(await Admin.GetAsync(Path(variable) + "/versions"), 200))["versions"]!.AsArray();
        Assert.Equal([("retired", 2), ("current", 1)], versions.Select(v => ((string)v!["state"]!, (int)v["version"]!)));

        var alert = await AlertAsync("rotation.failed", variable);
        Assert.Equal("rotation_verify_failed", (string?)alert["data"]!["errorCode"]);
        Assert.Equal("rolled_back", (string?)alert["data"]!["state"]);
        Assert.DoesNotContain(Provider.Canary, problem.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_rotation_of_a_variable_bound_to_other_origins_sends_no_request_and_fails_with_origin_not_allowed()
    {
        var variable = NewVariable("BOUNDROT");
        var original = "bound-" + Guid.NewGuid().ToString("N");
        await RotationProvider.DefineAsync(Admin, fixture.Upstream, variable, original);
        // The minted secret may go only where the variable may: not to the provider on loopback.
        await Expect.StatusAsync(await Admin.PutAsJsonAsync(Path(variable) + "/origins", new { origins = new[] { "https://api.example.com" } }), 200);
        var minted = Provider.Minted;

        var problem = await Expect.ProblemAsync(await Admin.PostAsync(Path(variable) + "/rotate", null), 502, "origin_not_allowed");

        Assert.Equal("failed", (string?)problem["state"]);
        Assert.Equal(minted, Provider.Minted);
        var versions = (await Expect.StatusAsync(await Admin.GetAsync(Path(variable) + "/versions"), 200))["versions"]!.AsArray();
        Assert.Equal([("current", 1)], versions.Select(v => ((string)v!["state"]!, (int)v["version"]!)));
    }

    [Fact]
    public async Task A_rotation_is_saved_only_on_a_bound_variable_and_one_unbound_after_saving_sends_nothing()
    {
        var variable = NewVariable("UNBOUND");
        await RotationProvider.DefineAsync(Admin, fixture.Upstream, variable, "unbound-" + Guid.NewGuid().ToString("N"));
        var definition = (await Expect.StatusAsync(await Admin.GetAsync(Path(variable) + "/rotation"), 200))["rotation"]!;
        var other = NewVariable("NEVERBOUND");
        await Expect.StatusAsync(await Admin.PutAsJsonAsync(Path(other), new { value = "never-bound-" + Guid.NewGuid().ToString("N"), secret = true }), 200);

        var refused = await Expect.ProblemAsync(await Admin.PutAsJsonAsync(Path(other) + "/rotation", definition), 400, "rotation_needs_binding");
        Assert.Equal("origins", (string?)refused["errors"]![0]!["field"]);
        Assert.Contains("keyway var bind", (string?)refused["detail"]);

        // The binding removed after the flow was saved: the rotation fails before any request.
        await Expect.StatusAsync(await Admin.PutAsJsonAsync(Path(variable) + "/origins", new { origins = Array.Empty<string>() }), 200);
        var minted = Provider.Minted;
        var before = fixture.Upstream.Requests.Count(r => r.Path.StartsWith("/provider", StringComparison.Ordinal) || r.Path.StartsWith("/base", StringComparison.Ordinal));

        var problem = await Expect.ProblemAsync(await Admin.PostAsync(Path(variable) + "/rotate", null), 502, "rotation_needs_binding");

        Assert.Equal("failed", (string?)problem["state"]);
        Assert.Equal(minted, Provider.Minted);
        Assert.Equal(before, fixture.Upstream.Requests.Count(r => r.Path.StartsWith("/provider", StringComparison.Ordinal) || r.Path.StartsWith("/base", StringComparison.Ordinal)));
        var versions = (await Expect.StatusAsync(await Admin.GetAsync(Path(variable) + "/versions"), 200))["versions"]!.AsArray();
        Assert.Equal([("current", 1)], versions.Select(v => ((string)v!["state"]!, (int)v["version"]!)));
    }

    [Fact]
    public async Task A_verify_resource_changed_to_no_longer_read_the_variable_rolls_the_rotation_back()
    {
        var variable = NewVariable("NOREAD");
        await RotationProvider.DefineAsync(Admin, fixture.Upstream, variable, "noread-" + Guid.NewGuid().ToString("N"));
        var resource = RotationProvider.ApiResource(variable);
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/resources/{resource}", new JsonObject
        {
            ["kind"] = "rest",
            ["baseUrl"] = fixture.Upstream.BaseUrl + "/base",
        }));
        var verifies = fixture.Upstream.Requests.Count(r => r.Path == "/base/verify");

        var problem = await Expect.ProblemAsync(await Admin.PostAsync(Path(variable) + "/rotate", null), 502, "rotation_verify_not_reading_variable");

        Assert.Equal("rolled_back", (string?)problem["state"]);
        Assert.Equal(verifies, fixture.Upstream.Requests.Count(r => r.Path == "/base/verify"));
        var versions = (await Expect.StatusAsync(await Admin.GetAsync(Path(variable) + "/versions"), 200))["versions"]!.AsArray();
        Assert.Equal([("retired", 2), ("current", 1)], versions.Select(v => ((string)v!["state"]!, (int)v["version"]!)));
    }

    [Fact]
    public async Task Rotation_under_load_through_run_and_the_proxy_fails_no_request_and_sends_exactly_one_version_each()
    {
        var variable = NewVariable("LOADROT");
        var original = "loadrot-" + Guid.NewGuid().ToString("N");
        await RotationProvider.DefineAsync(Admin, fixture.Upstream, variable, original);
        var resource = RotationProvider.ApiResource(variable);
        var failures = new ConcurrentQueue<string>();
        var completed = 0;
        using var stop = new CancellationTokenSource();

        async Task WorkAsync(int worker)
        {
            using var client = fixture.Keyway.CreateAdminClient();
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                using var response = i % 2 == 0
                    ? await client.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = $"/rotload/{worker}/{i}" })
                    : await client.GetAsync($"/proxy/{resource}/rotload/{worker}/{i}");
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    failures.Enqueue($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
                }

                Interlocked.Increment(ref completed);
            }
        }

        async Task AfterMoreRequestsAsync(int more)
        {
            var target = Volatile.Read(ref completed) + more;
            await Poll.UntilAsync(() => Volatile.Read(ref completed) >= target, TimeSpan.FromSeconds(60), $"{more} more requests");
        }

        var minted = new List<string>();
        var workers = Enumerable.Range(0, 8).Select(WorkAsync).ToArray();
        for (var rotation = 0; rotation < 3; rotation++)
        {
            await AfterMoreRequestsAsync(50);
            var done = await Expect.StatusAsync(await Admin.PostAsync(Path(variable) + "/rotate", null), 200);
            minted.Add(Provider.Key(Provider.Minted));
            Assert.Equal(rotation + 2, (int)done["version"]!);
        }

        await AfterMoreRequestsAsync(50);
        await stop.CancelAsync();
        await Task.WhenAll(workers);

        Assert.Empty(failures);
        var known = minted.Prepend(original).Select(v => "Bearer " + v).ToList();
        var sent = fixture.Upstream.Requests.Where(r => r.Path.StartsWith("/base/rotload/", StringComparison.Ordinal)).Select(r => r.Headers["Authorization"]).ToList();
        Assert.True(sent.Count >= 200, $"only {sent.Count} requests reached the upstream");
        Assert.All(sent, header => Assert.Contains(header, known));
        Assert.All(known, header => Assert.Contains(header, sent));
        await Expect.StatusAsync(await Admin.GetAsync($"/proxy/{resource}/rotload/final"), 200);
        Assert.Equal(known[^1], fixture.Upstream.Requests.Last(r => r.Path == "/base/rotload/final").Headers["Authorization"]);
    }

    [Fact]
    public async Task A_scheduled_rotation_of_a_variable_runs_now_and_commits_and_no_surface_shows_a_minted_value()
    {
        var variable = NewVariable("SCHEDROT");
        await RotationProvider.DefineAsync(Admin, fixture.Upstream, variable, "sched-" + Guid.NewGuid().ToString("N"));
        var schedule = KeywayFixture.Unique("rotate");
        await Expect.StatusAsync(await Admin.PutAsJsonAsync($"/api/v1/schedules/{schedule}", new { cron = "0 3 * * *", action = "rotate", variable }), 201);

        var run = await Expect.StatusAsync(await Admin.PostAsync($"/api/v1/schedules/{schedule}/run", null), 200);

        Assert.Equal("succeeded", (string?)run["outcome"]);
        var history = await Expect.StatusAsync(await Admin.GetAsync(Path(variable) + "/rotations"), 200);
        var last = history["rotations"]![0]!;
        Assert.Equal(("committed", "schedule:" + schedule, 2), ((string)last["state"]!, (string)last["trigger"]!, (int)last["version"]!));
        var key = Provider.Key(Provider.Minted);
        await Expect.StatusAsync(await Admin.GetAsync($"/proxy/{RotationProvider.ApiResource(variable)}/after-schedule"), 200);
        Assert.Equal("Bearer " + key, fixture.Upstream.Requests.Last(r => r.Path == "/base/after-schedule").Headers["Authorization"]);

        // A second rotation revokes the first minted key by its id (grace 0s): then every surface is read for a minted value.
        await Expect.StatusAsync(await Admin.PostAsync(Path(variable) + "/rotate", null), 200);
        var previousId = $"key_{Provider.Minted - 1}";
        await Poll.UntilAsync(() => Provider.RevokesOf(previousId) == 1, TimeSpan.FromSeconds(30), "the revoke of the previous key");
        await Poll.UntilAsync(async () => (string?)(await Expect.StatusAsync(await Admin.GetAsync(Path(variable) + "/rotations"), 200))["rotations"]![0]!["state"] == "revoked",
            TimeSpan.FromSeconds(30), "the rotation to be recorded revoked");
        await AlertAsync("rotation.succeeded", variable);
        await Poll.UntilAsync(async () => (await Expect.StatusAsync(await Admin.GetAsync($"/api/v1/audit?action=rotation.&limit=1000"), 200))["events"]!.AsArray()
            .Any(e => (string?)e!["action"] == "rotation.revoke" && (string?)e["target"] == variable), TimeSpan.FromSeconds(15), "the revoke's audit event");
        var cli = fixture.Keyway.CliEnvironment(fixture.Keyway.AdminToken);
        var rotate = await KeywayProcess.RunCliAsync(["var", "rotate", variable], cli);
        Assert.True(rotate.ExitCode == 0, rotate.Output);
        var listed = await KeywayProcess.RunCliAsync(["var", "rotations", variable], cli);
        Assert.True(listed.ExitCode == 0, listed.Output);
        Assert.Contains("revoked", listed.Output);
        var json = await KeywayProcess.RunCliAsync(["var", "rotations", variable, "--json"], cli);
        var definition = await KeywayProcess.RunCliAsync(["var", "rotation", "get", variable], cli);
        Assert.Contains("create.body.key", definition.Output);

        var seen = string.Join('\n',
            await Admin.GetStringAsync(Path(variable) + "/rotations"), await Admin.GetStringAsync(Path(variable) + "/rotation"),
            await Admin.GetStringAsync(Path(variable) + "/versions"), await Admin.GetStringAsync("/api/v1/audit?limit=1000"),
            await Admin.GetStringAsync($"/api/v1/schedules/{schedule}/history"), await Admin.GetStringAsync("/api/v1/webhooks/ops/deliveries"),
            string.Join('\n', fixture.Upstream.Requests.Where(r => r.Path == "/hook").Select(r => r.Body)),
            rotate.Output, listed.Output, json.Output, definition.Output, fixture.Keyway.AllOutput);
        Assert.DoesNotContain(Provider.Canary, seen, StringComparison.Ordinal);
    }

    /// <summary>The newest alert of <paramref name="type"/> about <paramref name="variable"/> that reached the webhook, as its payload.</summary>
    private async Task<JsonNode> AlertAsync(string type, string variable)
    {
        JsonNode? found = null;
        await Poll.UntilAsync(() =>
        {
            found = fixture.Upstream.Requests.Where(r => r.Path == "/hook").Select(r => JsonNode.Parse(r.Body)!)
                .LastOrDefault(p => (string?)p["type"] == type && (string?)p["data"]!["name"] == variable);
            return found is not null;
        }, TimeSpan.FromSeconds(30), $"a {type} alert about {variable}");
        return found!;
    }
}

public sealed class SqliteRotationTests(SqliteRotationFixture fixture) : RotationTests<SqliteRotationFixture>(fixture);

public sealed class PostgresRotationTests(PostgresRotationFixture fixture) : RotationTests<PostgresRotationFixture>(fixture);

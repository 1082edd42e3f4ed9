using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// Secret versions, rollback and expiry policies end to end: a real Keyway process on each store,
/// a real upstream that records what it was sent.
/// </summary>
[Trait("Category", "Integration")]
public abstract class VersionTests<TFixture>(TFixture fixture) : IClassFixture<TFixture>
    where TFixture : KeywayFixture
{
    private HttpClient Admin => fixture.Admin;

    private static string Path(string name) => $"/api/v1/environments/production/variables/{name}";

    private static string NewVariable(string prefix) => prefix + "_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();

    private async Task<string> ResourceOnAsync(string variable) =>
        await ResourceOnAsync(variable, KeywayFixture.Unique("ver"));

    private async Task<string> ResourceOnAsync(string variable, string resource)
    {
        await fixture.PutResourceAsync(resource, new JsonObject
        {
            ["kind"] = "rest",
            ["baseUrl"] = fixture.Upstream.BaseUrl + "/base",
            ["auth"] = new JsonObject { ["type"] = "bearer", ["token"] = $"{{{{ environment.variables.{variable} }}}}" },
        });
        return resource;
    }

    private async Task<JsonNode> PutAsync(string name, object body) => await Expect.StatusAsync(await Admin.PutAsJsonAsync(Path(name), body), 200);

    [Fact]
    public async Task Versions_list_who_set_each_and_a_rollback_sends_the_old_value_again_without_ever_showing_one()
    {
        var variable = NewVariable("ROLL");
        var values = Enumerable.Range(1, 3).Select(i => $"canary-{i}-{Guid.NewGuid():N}").ToArray();
        foreach (var value in values)
        {
            await PutAsync(variable, new { value, secret = true });
        }

        var resource = await ResourceOnAsync(variable);
        var rolled = await Expect.StatusAsync(await Admin.PostAsJsonAsync(Path(variable) + "/rollback", new { version = 1 }), 200);
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/after-rollback" }), 200);

        Assert.Equal(4, (int)rolled["version"]!);
        Assert.Equal("Bearer " + values[0], fixture.Upstream.Requests.Last(r => r.Path == "/base/after-rollback").Headers["Authorization"]);
        var versions = await Expect.StatusAsync(await Admin.GetAsync(Path(variable) + "/versions"), 200);
        var list = versions["versions"]!.AsArray();
        Assert.Equal([4, 3, 2, 1], list.Select(v => (int)v!["version"]!));
        Assert.Equal([true, false, false, false], list.Select(v => (bool)v!["current"]!));
        Assert.Equal(1, (int)list[0]!["restoredFrom"]!);
        Assert.Equal("admin", (string?)list[0]!["setBy"]);
        await Expect.ProblemAsync(await Admin.PostAsJsonAsync(Path(variable) + "/rollback", new { version = 99 }), 404, "version_not_found");
        await Expect.ProblemAsync(await Admin.PostAsJsonAsync(Path(variable) + "/rollback", new { version = 4 }), 409, "already_current");

        // The rollback's audit event names the versions, never a value; nothing anywhere shows one.
        JsonArray events = [];
        await Poll.UntilAsync(async () =>
        {
            events = (await Expect.SuccessAsync(await Admin.GetAsync("/api/v1/audit?action=variable.&limit=1000")))["events"]!.AsArray();
            return events.Any(e => (string?)e!["action"] == "variable.rollback" && (string?)e["target"] == variable);
        }, TimeSpan.FromSeconds(15), "the rollback's audit event");
        var rollback = events.First(e => (string?)e!["action"] == "variable.rollback" && (string?)e["target"] == variable)!;
        Assert.Equal(1, (int)rollback["detail"]!["restoredFrom"]!);
        var status = await Admin.GetStringAsync("/api/v1/status/attention");
        var seen = string.Join('\n', versions.ToJsonString(), rolled.ToJsonString(), events.ToJsonString(), status,
            await Admin.GetStringAsync($"/api/v1/environments/production/variables"), await Admin.GetStringAsync("/api/v1/audit?limit=1000"), fixture.Keyway.AllOutput);
        Assert.All(values, value => Assert.DoesNotContain(value, seen, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Only_the_kept_number_of_versions_stays()
    {
        var variable = NewVariable("KEEP");
        await PutAsync(variable, new { value = "keep-0", secret = true, keepVersions = 2 });
        for (var i = 1; i <= 4; i++)
        {
            await PutAsync(variable, new { value = $"keep-{i}", secret = true });
        }

        var versions = await Expect.StatusAsync(await Admin.GetAsync(Path(variable) + "/versions"), 200);
        Assert.Equal([5, 4], versions["versions"]!.AsArray().Select(v => (int)v!["version"]!));
        await Expect.ProblemAsync(await Admin.PostAsJsonAsync(Path(variable) + "/rollback", new { version = 3 }), 404, "version_not_found");
    }

    [Fact]
    public async Task An_expired_block_secret_is_refused_with_secret_expired_and_an_expired_warn_secret_is_used_and_listed()
    {
        var blocked = NewVariable("BLOCKED");
        var warned = NewVariable("WARNED");
        var past = DateTimeOffset.UtcNow.AddHours(-1);
        await PutAsync(blocked, new { value = "blocked-" + Guid.NewGuid(), secret = true, expiresAt = past, expiredPolicy = "block" });
        await PutAsync(warned, new { value = "warned-" + Guid.NewGuid(), secret = true, expiresAt = past });
        var blockedResource = await ResourceOnAsync(blocked);
        var warnedResource = await ResourceOnAsync(warned);

        var run = await Expect.ProblemAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{blockedResource}/run", new { path = "/x" }), 409, "secret_expired");
        Assert.Contains(blocked, (string?)run["detail"]);
        Assert.Contains("keyway var set", (string?)run["detail"]);
        await Expect.ProblemAsync(await Admin.GetAsync($"/proxy/{blockedResource}/x"), 409, "secret_expired");
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{warnedResource}/run", new { path = "/x" }), 200);
        await Expect.StatusAsync(await Admin.GetAsync($"/proxy/{warnedResource}/x"), 200);

        var attention = (await Expect.StatusAsync(await Admin.GetAsync("/api/v1/status/attention"), 200))["items"]!.AsArray();
        Assert.Contains(attention, i => (string?)i!["name"] == blocked && (string?)i["state"] == "expired" && (string?)i["detail"] == "policy block");
        Assert.Contains(attention, i => (string?)i!["name"] == warned && (string?)i["state"] == "expired");
        var listed = await Expect.StatusAsync(await Admin.GetAsync(Path(warned)), 200);
        Assert.Equal("expired", (string?)listed["attention"]);

        // A new value that has not expired is used at once.
        await PutAsync(blocked, new { value = "blocked-new-" + Guid.NewGuid(), secret = true });
        await Expect.StatusAsync(await Admin.GetAsync($"/proxy/{blockedResource}/x"), 200);
    }

    [Fact]
    public async Task A_member_sees_no_variables_in_status()
    {
        var variable = NewVariable("HIDDEN");
        await PutAsync(variable, new { value = "hidden-" + Guid.NewGuid(), secret = true, expiresAt = DateTimeOffset.UtcNow.AddDays(-1) });
        var user = KeywayFixture.Unique("member");
        await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/users", new { name = user, role = "member" }), 201);
        var key = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "test", owner = user }), 201);
        using var member = fixture.Keyway.CreateClient((string)key["token"]!);

        var items = (await Expect.StatusAsync(await member.GetAsync("/api/v1/status/attention"), 200))["items"]!.AsArray();

        Assert.DoesNotContain(items, i => (string?)i!["kind"] == "variable");
    }

    [Fact]
    public async Task Rotation_under_load_through_run_and_the_proxy_fails_no_request_and_sends_exactly_one_known_version_each()
    {
        var variable = NewVariable("ROTATING");
        var values = Enumerable.Range(1, 4).Select(i => $"rot-{i}-{Guid.NewGuid():N}").ToArray();
        await PutAsync(variable, new { value = values[0], secret = true });
        var resource = await ResourceOnAsync(variable);
        var failures = new ConcurrentQueue<string>();
        var completed = 0;
        using var stop = new CancellationTokenSource();

        async Task WorkAsync(int worker)
        {
            using var client = fixture.Keyway.CreateClient(fixture.Keyway.AdminToken);
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                using var response = i % 2 == 0
                    ? await client.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = $"/load/{worker}/{i}" })
                    : await client.GetAsync($"/proxy/{resource}/load/{worker}/{i}");
                if (response.StatusCode != HttpStatusCode.OK)
                {
                    failures.Enqueue($"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
                }

                Interlocked.Increment(ref completed);
            }
        }

        var workers = Enumerable.Range(0, 8).Select(WorkAsync).ToArray();
        async Task AfterMoreRequestsAsync(int more)
        {
            var target = Volatile.Read(ref completed) + more;
            await Poll.UntilAsync(() => Volatile.Read(ref completed) >= target, TimeSpan.FromSeconds(60), $"{more} more requests");
        }

        await AfterMoreRequestsAsync(50);
        await PutAsync(variable, new { value = values[1], secret = true });
        await AfterMoreRequestsAsync(50);
        await PutAsync(variable, new { value = values[2], secret = true });
        await AfterMoreRequestsAsync(50);
        await Expect.StatusAsync(await Admin.PostAsJsonAsync(Path(variable) + "/rollback", new { version = 1 }), 200);
        await AfterMoreRequestsAsync(50);
        await PutAsync(variable, new { value = values[3], secret = true });
        await AfterMoreRequestsAsync(50);
        await stop.CancelAsync();
        await Task.WhenAll(workers);

        Assert.Empty(failures);
        var sent = fixture.Upstream.Requests.Where(r => r.Path.StartsWith("/base/load/", StringComparison.Ordinal)).Select(r => r.Headers["Authorization"]).ToList();
        Assert.True(sent.Count >= 250, $"only {sent.Count} requests reached the upstream");
        Assert.All(sent, header => Assert.Contains(header, values.Select(v => "Bearer " + v)));
        // After the last rotation the last value is what is sent.
        await Expect.StatusAsync(await Admin.GetAsync($"/proxy/{resource}/load/final"), 200);
        Assert.Equal("Bearer " + values[3], fixture.Upstream.Requests.Last(r => r.Path == "/base/load/final").Headers["Authorization"]);
        Assert.All(values, v => Assert.Contains("Bearer " + v, sent));
    }
}

public sealed class SqliteVersionTests(SqliteKeyway fixture) : VersionTests<SqliteKeyway>(fixture);

public sealed class PostgresVersionTests(PostgresKeyway fixture) : VersionTests<PostgresKeyway>(fixture);

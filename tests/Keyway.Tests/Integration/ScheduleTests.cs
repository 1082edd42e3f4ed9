using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>Schedules through a real server: run now, a <c>run</c> against the upstream, failures, field errors, who may schedule what.</summary>
[Trait("Category", "Integration")]
public sealed class ScheduleTests(SqliteKeyway fixture) : IClassFixture<SqliteKeyway>
{
    private HttpClient Admin => fixture.Admin;

    [Fact]
    public async Task A_run_schedule_run_now_sends_the_saved_query_with_its_inputs_through_the_resource_and_records_the_run()
    {
        var (resource, token) = await fixture.BearerResourceAsync();
        var query = KeywayFixture.Unique("q");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/queries/{query}", new { resource, method = "GET", path = "/report/{{ inputs.day }}" }));
        var name = KeywayFixture.Unique("nightly");
        var saved = await Expect.StatusAsync(await Admin.PutAsJsonAsync($"/api/v1/schedules/{name}",
            new { cron = "0 3 * * *", timeZone = "Europe/Madrid", action = "run", query, inputs = new { day = "monday" } }), 201);
        Assert.EndsWith("(Europe/Madrid)", (string)saved["nextRunLocal"]!);
        Assert.Contains(" 03:00:00 ", (string)saved["nextRunLocal"]!);

        var run = await Expect.StatusAsync(await Admin.PostAsync($"/api/v1/schedules/{name}/run", null), 200);

        Assert.Equal(("succeeded", 1, 200, "manual"), ((string)run["outcome"]!, (int)run["attempts"]!, (int)run["status"]!, (string)run["kind"]!));
        var seen = await fixture.Upstream.WaitForRequestAsync(r => r.Path == "/base/report/monday");
        Assert.Equal("Bearer " + token, seen.Headers["Authorization"]);
        var history = await Expect.StatusAsync(await Admin.GetAsync($"/api/v1/schedules/{name}/history"), 200);
        var recorded = Assert.Single(history["runs"]!.AsArray())!;
        Assert.Equal("succeeded", (string)recorded["outcome"]!);
        Assert.True((long)recorded["durationMs"]! >= 0);
        var listed = (await Expect.StatusAsync(await Admin.GetAsync("/api/v1/schedules"), 200))["schedules"]!.AsArray().Single(s => (string)s!["name"]! == name)!;
        Assert.Equal("succeeded", (string)listed["lastRun"]!["outcome"]!);
        Assert.DoesNotContain(token, history.ToJsonString());
    }

    [Fact]
    public async Task A_failing_schedule_records_its_error_code_status_and_attempts()
    {
        var resource = KeywayFixture.Unique("flaky");
        await fixture.PutResourceAsync(resource, new { baseUrl = fixture.Upstream.BaseUrl });
        var query = KeywayFixture.Unique("q");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/queries/{query}", new { resource, method = "GET", path = "/status/503" }));
        var name = KeywayFixture.Unique("fails");
        await Expect.StatusAsync(await Admin.PutAsJsonAsync($"/api/v1/schedules/{name}",
            new { cron = "0 3 * * *", action = "run", query, maxAttempts = 2, retryBackoffSeconds = 0.1 }), 201);

        // The first attempt fails and the run goes to retry: the request does not wait through the backoff.
        var started = await Admin.PostAsync($"/api/v1/schedules/{name}/run", null);
        var pending = await Expect.StatusAsync(started, 202);
        Assert.Equal(("running", 1, "upstream_error_status"), ((string)pending["outcome"]!, (int)pending["attempts"]!, (string)pending["errorCode"]!));
        var location = started.Headers.Location!.OriginalString;
        Assert.Equal($"/api/v1/schedules/{name}/runs/{(long)pending["id"]!}", location);
        JsonNode run = pending;
        await Poll.UntilAsync(async () => (string)(run = await Expect.StatusAsync(await Admin.GetAsync(location), 200))["outcome"]! != "running",
            TimeSpan.FromSeconds(15), "the retried run's end");

        Assert.Equal(("failed", 2, "upstream_error_status", 503), ((string)run["outcome"]!, (int)run["attempts"]!, (string)run["errorCode"]!, (int)run["status"]!));
        await Expect.ProblemAsync(await Admin.GetAsync($"/api/v1/schedules/{name}/runs/12"), 404, "not_found");
        var recorded = Assert.Single((await Expect.StatusAsync(await Admin.GetAsync($"/api/v1/schedules/{name}/history"), 200))["runs"]!.AsArray())!;
        Assert.Equal(("failed", 2, "upstream_error_status"), ((string)recorded["outcome"]!, (int)recorded["attempts"]!, (string)recorded["errorCode"]!));
        await Poll.UntilAsync(async () => (await Expect.StatusAsync(await Admin.GetAsync("/api/v1/audit?action=schedule.run&limit=1000"), 200))["events"]!.AsArray()
            .Any(e => (string?)e!["target"] == name && (string?)e["outcome"] == "failure"), TimeSpan.FromSeconds(10), "the failed run's audit event");
    }

    [Fact]
    public async Task A_bad_cron_an_unknown_zone_an_unknown_query_and_a_variable_without_a_rotation_flow_are_refused_per_field()
    {
        var bad = await Expect.ProblemAsync(await Admin.PutAsJsonAsync($"/api/v1/schedules/{KeywayFixture.Unique("bad")}",
            new { cron = "0 25 * * *", timeZone = "Nowhere/Special", action = "verify" }), 400, "invalid_config");
        Assert.Equal(["cron", "timeZone"], bad["errors"]!.AsArray().Select(e => (string)e!["field"]!));

        var unknown = await Expect.ProblemAsync(await Admin.PutAsJsonAsync($"/api/v1/schedules/{KeywayFixture.Unique("bad")}",
            new { cron = "0 3 * * *", action = "run", query = "no-such-query" }), 400, "invalid_config");
        Assert.Equal("query", (string)unknown["errors"]![0]!["field"]!);

        var variable = "NOFLOW_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await fixture.SetVariableAsync(variable, "no-flow-" + Guid.NewGuid(), secret: true);
        var rotate = await Expect.ProblemAsync(await Admin.PutAsJsonAsync($"/api/v1/schedules/{KeywayFixture.Unique("bad")}",
            new { cron = "0 3 * * *", action = "rotate", variable }), 400, "invalid_config");
        Assert.Contains("has no rotation flow", (string)rotate["errors"]![0]!["message"]!);

        var staticAuth = KeywayFixture.Unique("static");
        await fixture.PutResourceAsync(staticAuth, new { baseUrl = fixture.Upstream.BaseUrl });
        var noCredential = await Expect.ProblemAsync(await Admin.PutAsJsonAsync($"/api/v1/schedules/{KeywayFixture.Unique("bad")}",
            new { cron = "0 3 * * *", action = "refresh", resource = staticAuth }), 400, "invalid_config");
        Assert.Equal("resource", (string)noCredential["errors"]![0]!["field"]!);
    }

    [Fact]
    public async Task A_member_schedules_only_what_they_may_run_and_a_schedule_stops_when_its_owner_loses_the_right()
    {
        var resource = KeywayFixture.Unique("team");
        await fixture.PutResourceAsync(resource, new { baseUrl = fixture.Upstream.BaseUrl });
        var query = KeywayFixture.Unique("q");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/queries/{query}", new { resource, method = "GET", path = "/members" }));
        var member = KeywayFixture.Unique("m");
        await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/users", new { name = member }), 201);
        var key = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "test", owner = member }), 201);
        using var client = fixture.Keyway.CreateClient((string)key["token"]!);
        var schedule = new { cron = "0 3 * * *", action = "run", query };
        var name = KeywayFixture.Unique("mine");

        await Expect.SuccessAsync(await Admin.PutAsJsonAsync("/api/v1/environments/staging", new { }));
        // Use in staging only: a production schedule of the query would run what they may not.
        var staging = await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = member, permission = "use", environment = "staging" }), 201);
        await Expect.ProblemAsync(await client.PutAsJsonAsync($"/api/v1/schedules/{name}", schedule), 403, "forbidden");
        // Nor may they verify the audit chain on a schedule: that is an admin's.
        await Expect.ProblemAsync(await client.PutAsJsonAsync($"/api/v1/schedules/{name}", new { cron = "@daily", action = "verify" }), 403, "forbidden");

        var production = await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = member, permission = "use", environment = "production" }), 201);
        await Expect.StatusAsync(await client.PutAsJsonAsync($"/api/v1/schedules/{name}", schedule), 201);
        Assert.Equal("succeeded", (string)(await Expect.StatusAsync(await client.PostAsync($"/api/v1/schedules/{name}/run", null), 200))["outcome"]!);

        // The grant goes: the schedule runs as its owner, so it fails, at once and with a clear code, even when an admin runs it.
        await Expect.StatusAsync(await Admin.DeleteAsync($"/api/v1/resources/{resource}/permissions/{(string)production["id"]!}"), 204);
        var run = await Expect.StatusAsync(await Admin.PostAsync($"/api/v1/schedules/{name}/run", null), 200);
        Assert.Equal(("failed", 1, "schedule_owner_forbidden"), ((string)run["outcome"]!, (int)run["attempts"]!, (string)run["errorCode"]!));
        Assert.Equal(1, fixture.Upstream.Requests.Count(r => r.Path == "/members"));
        // And without the grant they can no longer run, change or delete it themselves.
        await Expect.ProblemAsync(await client.PostAsync($"/api/v1/schedules/{name}/run", null), 403, "forbidden");
        await Expect.StatusAsync(await Admin.DeleteAsync($"/api/v1/resources/{resource}/permissions/{(string)staging["id"]!}"), 204);
    }

    [Fact]
    public async Task A_member_who_rewrites_a_scheduled_query_cannot_make_it_run_as_the_schedules_owner()
    {
        var resource = KeywayFixture.Unique("shared");
        await fixture.PutResourceAsync(resource, new { baseUrl = fixture.Upstream.BaseUrl });
        var query = KeywayFixture.Unique("q");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/queries/{query}", new { resource, method = "GET", path = "/daily" }));
        var name = KeywayFixture.Unique("admins");
        await Expect.StatusAsync(await Admin.PutAsJsonAsync($"/api/v1/schedules/{name}", new { cron = "0 3 * * *", action = "run", query }), 201);
        var member = KeywayFixture.Unique("m");
        await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/users", new { name = member }), 201);
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = member, permission = "use" }), 201);
        var key = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "test", owner = member }), 201);
        using var client = fixture.Keyway.CreateClient((string)key["token"]!);

        // The member may use the resource, so they may rewrite the query and run the admin's schedule now...
        var marker = "/as/" + name + "/";
        await Expect.SuccessAsync(await client.PutAsJsonAsync($"/api/v1/queries/{query}",
            new { resource, method = "POST", path = marker + "{{ current_user.role }}" }));
        var run = await Expect.StatusAsync(await client.PostAsync($"/api/v1/schedules/{name}/run", null), 200);

        // ...but the schedule's owner never saw that request: it is not sent as them (with their per-user credential, their identity).
        Assert.Equal(("failed", "schedule_query_changed"), ((string)run["outcome"]!, (string)run["errorCode"]!));
        Assert.DoesNotContain(fixture.Upstream.Requests, r => r.Path.StartsWith("/base" + marker, StringComparison.Ordinal) || r.Path.StartsWith(marker, StringComparison.Ordinal));

        // The owner saving the schedule again accepts the query as it is now.
        await Expect.StatusAsync(await Admin.PutAsJsonAsync($"/api/v1/schedules/{name}", new { cron = "0 3 * * *", action = "run", query }), 200);
        Assert.Equal("succeeded", (string)(await Expect.StatusAsync(await Admin.PostAsync($"/api/v1/schedules/{name}/run", null), 200))["outcome"]!);
    }

    [Fact]
    public async Task A_verify_schedule_checks_the_audit_chain()
    {
        var name = KeywayFixture.Unique("verify");
        await Expect.StatusAsync(await Admin.PutAsJsonAsync($"/api/v1/schedules/{name}", new { cron = "0 4 * * 0", action = "verify" }), 201);

        var run = await Expect.StatusAsync(await Admin.PostAsync($"/api/v1/schedules/{name}/run", null), 200);

        Assert.Equal("succeeded", (string)run["outcome"]!);
        await Expect.StatusAsync(await Admin.DeleteAsync($"/api/v1/schedules/{name}"), 204);
        await Expect.ProblemAsync(await Admin.GetAsync($"/api/v1/schedules/{name}"), 404, "not_found");
    }

    [Fact]
    public async Task A_schedule_saved_with_an_api_key_stops_running_when_that_key_is_revoked()
    {
        var (resource, query, member, key, client) = await MemberWithKeyAsync("keyed");
        var name = KeywayFixture.Unique("keyed");
        await Expect.StatusAsync(await client.PutAsJsonAsync($"/api/v1/schedules/{name}", new { cron = "0 3 * * *", action = "run", query }), 201);
        Assert.Equal("succeeded", (string)(await Expect.StatusAsync(await Admin.PostAsync($"/api/v1/schedules/{name}/run", null), 200))["outcome"]!);

        await Expect.StatusAsync(await Admin.DeleteAsync($"/api/v1/keys/{(string)key["key"]!["id"]!}"), 204);
        var run = await Expect.StatusAsync(await Admin.PostAsync($"/api/v1/schedules/{name}/run", null), 200);

        Assert.Equal(("failed", 1, "schedule_key_unavailable"), ((string)run["outcome"]!, (int)run["attempts"]!, (string)run["errorCode"]!));
        Assert.Equal(1, fixture.Upstream.Requests.Count(r => r.Path == "/base/" + resource));
        // The owner is still active: saved again with a key in force, it runs again.
        var second = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "second", owner = member }), 201);
        using var again = fixture.Keyway.CreateClient((string)second["token"]!);
        await Expect.StatusAsync(await again.PutAsJsonAsync($"/api/v1/schedules/{name}", new { cron = "0 3 * * *", action = "run", query }), 200);
        Assert.Equal("succeeded", (string)(await Expect.StatusAsync(await Admin.PostAsync($"/api/v1/schedules/{name}/run", null), 200))["outcome"]!);

        // A disabled owner runs nothing, whatever key saved the schedule.
        await Expect.SuccessAsync(await Admin.PatchAsJsonAsync($"/api/v1/users/{member}", new { disabled = true }));
        var disabled = await Expect.StatusAsync(await Admin.PostAsync($"/api/v1/schedules/{name}/run", null), 200);
        Assert.Equal(("failed", "schedule_owner_unavailable"), ((string)disabled["outcome"]!, (string)disabled["errorCode"]!));
    }

    [Fact]
    public async Task Only_its_owner_or_an_admin_may_run_now_a_refresh_of_a_personal_credential()
    {
        var resource = KeywayFixture.Unique("personal");
        await fixture.SetVariableAsync("PERSONAL_SECRET", "personal-secret-" + Guid.NewGuid().ToString("N"), secret: true);
        await fixture.PutResourceAsync(resource, new
        {
            baseUrl = fixture.Upstream.BaseUrl,
            shareCredentials = false,
            auth = new
            {
                type = "oauth2",
                grant = "authorization_code",
                authorizeUrl = fixture.Upstream.BaseUrl + "/authorize",
                tokenUrl = fixture.Upstream.BaseUrl + "/token",
                clientId = "p",
                clientSecret = "{{ environment.variables.PERSONAL_SECRET }}",
            },
        });
        var owner = await MemberClientAsync(resource);
        var other = await MemberClientAsync(resource);
        var name = KeywayFixture.Unique("mine");
        await Expect.StatusAsync(await owner.PutAsJsonAsync($"/api/v1/schedules/{name}", new { cron = "0 3 * * *", action = "refresh", resource, maxAttempts = 1 }), 201);

        // Another person who may use the resource may see the schedule, but not refresh its owner's own credential.
        await Expect.StatusAsync(await other.GetAsync($"/api/v1/schedules/{name}"), 200);
        var refused = await Expect.ProblemAsync(await other.PostAsync($"/api/v1/schedules/{name}/run", null), 403, "forbidden");
        Assert.Contains("only its owner or an admin", (string?)refused["detail"]);
        Assert.Empty((await Expect.StatusAsync(await Admin.GetAsync($"/api/v1/schedules/{name}/history"), 200))["runs"]!.AsArray());

        // Its owner and an admin may (the refresh itself fails: nobody connected an account).
        foreach (var client in new[] { owner, Admin })
        {
            var run = await Expect.StatusAsync(await client.PostAsync($"/api/v1/schedules/{name}/run", null), 200);
            Assert.Equal("failed", (string)run["outcome"]!);
        }

        owner.Dispose();
        other.Dispose();
    }

    private async Task<HttpClient> MemberClientAsync(string resource)
    {
        var member = KeywayFixture.Unique("m");
        await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/users", new { name = member }), 201);
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = member, permission = "use" }), 201);
        var key = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "test", owner = member }), 201);
        return fixture.Keyway.CreateClient((string)key["token"]!);
    }

    private async Task<(string Resource, string Query, string Member, JsonNode Key, HttpClient Client)> MemberWithKeyAsync(string prefix)
    {
        var resource = KeywayFixture.Unique(prefix);
        await fixture.PutResourceAsync(resource, new { baseUrl = fixture.Upstream.BaseUrl + "/base" });
        var query = KeywayFixture.Unique("q");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/queries/{query}", new { resource, method = "GET", path = "/" + resource }));
        var member = KeywayFixture.Unique("m");
        await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/users", new { name = member }), 201);
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = member, permission = "use" }), 201);
        var key = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "test", owner = member }), 201);
        return (resource, query, member, key, fixture.Keyway.CreateClient((string)key["token"]!));
    }
}

/// <summary>Two replicas on one PostgreSQL database: each occurrence of a schedule runs once, on one of them.</summary>
[Trait("Category", "Integration")]
public sealed class ScheduleReplicaTests(ReplicaPair replicas) : IClassFixture<ReplicaPair>
{
    [Fact]
    public async Task An_every_second_schedule_fires_each_occurrence_exactly_once_across_two_replicas()
    {
        var resource = KeywayFixture.Unique("tick");
        await Expect.SuccessAsync(await replicas.AdminA.PutAsJsonAsync($"/api/v1/resources/{resource}", new { baseUrl = replicas.Upstream.BaseUrl }));
        var query = KeywayFixture.Unique("q");
        var path = "/tick/" + query;
        await Expect.SuccessAsync(await replicas.AdminA.PutAsJsonAsync($"/api/v1/queries/{query}", new { resource, method = "GET", path }));
        var name = KeywayFixture.Unique("every-second");
        var definition = new JsonObject { ["cron"] = "* * * * * *", ["action"] = "run", ["query"] = query };
        await Expect.StatusAsync(await replicas.AdminA.PutAsJsonAsync($"/api/v1/schedules/{name}", definition), 201);

        await Poll.UntilAsync(async () => (await RunsAsync(name)).Count(r => (string)r!["outcome"]! == "succeeded") >= 6,
            TimeSpan.FromSeconds(30), "six runs of the every-second schedule");
        definition["enabled"] = false;
        await Expect.StatusAsync(await replicas.AdminB.PutAsJsonAsync($"/api/v1/schedules/{name}", definition), 200);
        await Poll.UntilAsync(async () => (await RunsAsync(name)).All(r => (string)r!["outcome"]! != "running"), TimeSpan.FromSeconds(15), "runs in flight to finish");

        var runs = await RunsAsync(name);
        Assert.All(runs, r => Assert.Equal("succeeded", (string)r!["outcome"]!));
        // One upstream call per recorded occurrence: no occurrence ran on both replicas.
        Assert.Equal(runs.Count, replicas.Upstream.Requests.Count(r => r.Path == path));
        Assert.Equal(runs.Count, runs.Select(r => (string)r!["scheduledAt"]!).Distinct().Count());
        Assert.All(runs, r => Assert.Equal("cron", (string)r!["kind"]!));
    }

    private async Task<List<JsonNode?>> RunsAsync(string name) =>
        [.. (await Expect.StatusAsync(await replicas.AdminB.GetAsync($"/api/v1/schedules/{name}/history"), 200))["runs"]!.AsArray()];
}

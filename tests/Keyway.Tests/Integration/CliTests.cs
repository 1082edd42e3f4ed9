using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>The CLI as a user runs it: a real process talking to a real server.</summary>
[Trait("Category", "Integration")]
public sealed class CliTests(SqliteKeyway fixture) : IClassFixture<SqliteKeyway>
{
    private Dictionary<string, string> Env => fixture.Keyway.CliEnvironment(fixture.Keyway.AdminToken);

    private Task<CommandResult> Cli(string? stdin, params string[] args) => KeywayProcess.RunCliAsync(args, Env, stdin);

    [Fact]
    public async Task A_user_stores_a_secret_applies_a_yaml_resource_and_runs_it()
    {
        var resource = KeywayFixture.Unique("cli");
        var file = Path.Combine(TestDirectories.Create("cli"), "resource.yaml");
        await File.WriteAllTextAsync(file, $$$"""
            name: {{{resource}}}
            kind: rest
            baseUrl: {{{fixture.Upstream.BaseUrl}}}
            headers:
              Accept: application/json
            auth:
              type: bearer
              token: "{{ environment.variables.CLI_TOKEN }}"
            """);

        var set = await Cli("cli-secret-token\n", "var", "set", "CLI_TOKEN", "--secret");
        var list = await Cli(null, "var", "list");
        var apply = await Cli(null, "resource", "apply", file);
        var run = await Cli(null, "run", resource, "/cli-path", "-q", "a=1", "-H", "X-From: cli");
        var json = await Cli(null, "run", resource, "/cli-json", "--json");

        Assert.True(set.ExitCode == 0, set.Output);
        Assert.Contains("CLI_TOKEN", list.StandardOutput);
        Assert.Contains("(secret)", list.StandardOutput);
        Assert.True(apply.ExitCode == 0, apply.Output);
        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Contains("/cli-path", run.StandardOutput);
        var seen = fixture.Upstream.Requests.Single(r => r.Path == "/cli-path");
        Assert.Equal("Bearer cli-secret-token", seen.Headers["Authorization"]);
        Assert.Equal("cli", seen.Headers["X-From"]);
        Assert.Equal("1", seen.Query["a"]);
        Assert.Equal(200, (int)JsonNode.Parse(json.StandardOutput)!["status"]!);
        Assert.DoesNotContain("cli-secret-token", set.Output + list.Output + apply.Output + run.Output + json.Output);
    }

    [Fact]
    public async Task Var_versions_and_rollback_show_and_restore_versions_and_status_lists_what_expired_without_a_value()
    {
        var variable = "CLI_VER_" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var first = "cli-ver-one-" + Guid.NewGuid().ToString("N");
        var second = "cli-ver-two-" + Guid.NewGuid().ToString("N");
        var set1 = await Cli(first + "\n", "var", "set", variable, "--secret", "--expires-at", "2020-01-01T00:00:00Z", "--expired-policy", "block", "--keep-versions", "5");
        var set2 = await Cli(second + "\n", "var", "set", variable, "--secret", "--rotate-every", "90d");

        var versions = await Cli(null, "var", "versions", variable);
        var rollback = await Cli(null, "var", "rollback", variable, "--version", "1");
        var json = await Cli(null, "var", "versions", variable, "--json");
        var status = await Cli(null, "status");
        var statusJson = await Cli(null, "status", "--json");

        Assert.True(set1.ExitCode == 0 && set2.ExitCode == 0, set1.Output + set2.Output);
        Assert.True(versions.ExitCode == 0, versions.Output);
        Assert.Contains("current", versions.StandardOutput);
        Assert.Contains("retired", versions.StandardOutput);
        Assert.True(rollback.ExitCode == 0, rollback.Output);
        Assert.Contains("now version 3", rollback.StandardOutput);
        var listed = JsonNode.Parse(json.StandardOutput)!["versions"]!.AsArray();
        Assert.Equal(1, (int)listed[0]!["restoredFrom"]!);
        Assert.True(status.ExitCode == 0, status.Output);
        Assert.Contains(variable, status.StandardOutput);
        var item = JsonNode.Parse(statusJson.StandardOutput)!["items"]!.AsArray().First(i => (string?)i!["name"] == variable)!;
        Assert.Equal("expired", (string?)item["state"]);
        Assert.DoesNotContain(first, versions.Output + rollback.Output + json.Output + status.Output + statusJson.Output);
        Assert.DoesNotContain(second, versions.Output + rollback.Output + json.Output + status.Output + statusJson.Output);
    }

    [Fact]
    public async Task Apply_says_how_to_bind_an_unbound_secret_and_binds_it_when_asked_and_bind_and_unbind_change_it()
    {
        var variable = "CLI_BOUND_" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        var resource = KeywayFixture.Unique("clib");
        var file = Path.Combine(TestDirectories.Create("cli"), "bound.yaml");
        await File.WriteAllTextAsync(file, $$$"""
            name: {{{resource}}}
            baseUrl: {{{fixture.Upstream.BaseUrl}}}/api
            auth:
              type: bearer
              token: "{{ environment.variables.{{{variable}}} }}"
            """);
        Assert.Equal(0, (await Cli("bound-canary-value\n", "var", "set", variable, "--secret")).ExitCode);

        var hinted = await Cli(null, "resource", "apply", file);
        var bound = await Cli(null, "resource", "apply", file, "--bind-secrets");
        var shown = await Cli(null, "var", "get", variable);
        var added = await Cli(null, "var", "bind", variable, "https://*.example.com");
        var removed = await Cli(null, "var", "unbind", variable, fixture.Upstream.BaseUrl);
        var refused = await Cli(null, "var", "bind", variable, "https://api.example.com/path");
        var cleared = await Cli(null, "var", "unbind", variable);

        Assert.True(hinted.ExitCode == 0, hinted.Output);
        Assert.Contains($"keyway var bind {variable} {fixture.Upstream.BaseUrl} --env production", hinted.StandardError);
        Assert.True(bound.ExitCode == 0, bound.Output);
        Assert.Contains($"Secret '{variable}' (production) bound to {fixture.Upstream.BaseUrl}", bound.StandardOutput);
        Assert.Contains(fixture.Upstream.BaseUrl, shown.StandardOutput);
        Assert.Contains("https://*.example.com", added.StandardOutput);
        Assert.Contains(fixture.Upstream.BaseUrl, added.StandardOutput);
        Assert.DoesNotContain(fixture.Upstream.BaseUrl, removed.StandardOutput);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("no path", refused.StandardError);
        Assert.Contains("bound to no origin", cleared.StandardOutput);
        Assert.DoesNotContain("bound-canary-value", hinted.Output + bound.Output + shown.Output + added.Output + removed.Output + refused.Output + cleared.Output);
    }

    [Fact]
    public async Task Rights_are_given_listed_and_taken_back_from_the_cli()
    {
        var member = KeywayFixture.Unique("cr");
        Assert.Equal(0, (await Cli(null, "user", "create", member)).ExitCode);

        var build = await Cli(null, "right", "grant", "build", "--user", member);
        var attach = await Cli(null, "right", "grant", "attach", "--variable", "SOME_TOKEN", "--user", member);
        var list = await Cli(null, "right", "list", "--json");
        var id = JsonNode.Parse(list.StandardOutput)!["rights"]!.AsArray().First(r => (string)r!["principalName"]! == member && (string)r["right"]! == "build")!["id"]!.GetValue<string>();
        var revoke = await Cli(null, "right", "revoke", id);
        var after = await Cli(null, "right", "list");

        Assert.True(build.ExitCode == 0, build.Output);
        Assert.Contains($"user '{member}' may create resources", build.StandardOutput);
        Assert.Contains($"user '{member}' may attach the secret variable 'SOME_TOKEN'", attach.StandardOutput);
        Assert.True(revoke.ExitCode == 0, revoke.Output);
        Assert.DoesNotContain(id, after.StandardOutput);
        Assert.Contains("SOME_TOKEN", after.StandardOutput);
    }

    [Fact]
    public async Task A_saved_query_is_applied_from_yaml_and_run_with_typed_inputs()
    {
        var (resource, _) = await fixture.BearerResourceAsync();
        var query = KeywayFixture.Unique("cliq");
        var yaml = $$$"""
            name: {{{query}}}
            resource: {{{resource}}}
            method: POST
            path: /orders/{{ inputs.id }}
            body:
              type: json
              json:
                qty: "{{ inputs.qty }}"
                note: "{{ inputs.note }}"
            """;

        var apply = await Cli(yaml, "query", "apply", "-");
        var run = await Cli(null, "query", "run", query, "-i", "id=o-1", "-i", "qty=3", "-i", "note=fast please");
        var list = await Cli(null, "query", "list", "--resource", resource);

        Assert.True(apply.ExitCode == 0, apply.Output);
        Assert.True(run.ExitCode == 0, run.Output);
        Assert.Contains(query, list.StandardOutput);
        Assert.Equal("{\"qty\":3,\"note\":\"fast please\"}", fixture.Upstream.Requests.Single(r => r.Path == "/base/orders/o-1").Body);
    }

    [Fact]
    public async Task An_admin_sets_up_a_member_a_group_a_grant_and_a_scoped_key_from_the_cli()
    {
        var (resource, _) = await fixture.BearerResourceAsync();
        var (other, _) = await fixture.BearerResourceAsync();
        var user = KeywayFixture.Unique("cliu");
        var group = KeywayFixture.Unique("clig");

        var createUser = await Cli(null, "user", "create", user, "--email", $"{user}@example.test");
        var createGroup = await Cli(null, "group", "create", group);
        var add = await Cli(null, "group", "add", group, user);
        var grant = await Cli(null, "permission", "grant", resource, "--group", group, "--permission", "use", "--environment", "production");
        var everyone = await Cli(null, "permission", "grant", other, "--everyone", "--permission", "use");
        var both = await Cli(null, "permission", "grant", other, "--everyone", "--group", group);
        var permissions = await Cli(null, "permission", "list", resource);
        var key = await Cli(null, "key", "create", "--name", "cli-scoped", "--owner", user, "--resource", resource, "--action", "use", "--expires", "30d", "--json");
        var users = await Cli(null, "user", "list");
        var keys = await Cli(null, "key", "list");

        Assert.True(createUser.ExitCode == 0, createUser.Output);
        Assert.Contains("password, shown only now", createUser.StandardOutput);
        Assert.True(createGroup.ExitCode == 0, createGroup.Output);
        Assert.True(add.ExitCode == 0, add.Output);
        Assert.True(grant.ExitCode == 0, grant.Output);
        Assert.True(everyone.ExitCode == 0, everyone.Output);
        Assert.Contains($"Everyone may use '{other}' in every environment", everyone.StandardOutput);
        Assert.Equal(2, both.ExitCode);
        Assert.Contains("exactly one of --user, --group or --everyone", both.StandardError);
        Assert.Contains($"group {group}", permissions.StandardOutput);
        Assert.True(key.ExitCode == 0, key.Output);
        Assert.Contains(user, users.StandardOutput);
        Assert.Contains(group, users.StandardOutput);
        Assert.Contains($"resources: {resource}", keys.StandardOutput);

        var token = (string)JsonNode.Parse(key.StandardOutput)!["token"]!;
        var memberEnv = fixture.Keyway.CliEnvironment(token);
        var allowed = await KeywayProcess.RunCliAsync(["run", resource, "/cli-member"], memberEnv);
        var refused = await KeywayProcess.RunCliAsync(["run", other, "/cli-member"], memberEnv);
        var admin = await KeywayProcess.RunCliAsync(["user", "list"], memberEnv);

        Assert.True(allowed.ExitCode == 0, allowed.Output);
        Assert.Equal(4, refused.ExitCode);
        Assert.Contains("forbidden", refused.StandardError);
        Assert.Equal(4, admin.ExitCode);
        Assert.DoesNotContain(token, keys.Output + permissions.Output + users.Output);
    }

    [Fact]
    public async Task Exit_codes_tell_scripts_what_went_wrong()
    {
        var notFound = await Cli(null, "resource", "get", "no-such-resource");
        var invalid = await Cli("{\"name\": \"broken\", \"kind\": \"soap\", \"baseUrl\": \"x\"}", "resource", "apply", "-");
        var noToken = await KeywayProcess.RunCliAsync(["resource", "list"], fixture.Keyway.CliEnvironment());
        var unreachable = await KeywayProcess.RunCliAsync(["resource", "list"], new Dictionary<string, string> { ["KEYWAY_ADDR"] = $"http://127.0.0.1:{FreePort.Next()}", ["KEYWAY_TOKEN"] = "x" });
        var usage = await Cli(null, "run");

        Assert.Equal(3, notFound.ExitCode);
        Assert.Contains("no-such-resource", notFound.StandardError);
        Assert.Equal(5, invalid.ExitCode);
        Assert.Contains("kind", invalid.StandardError);
        Assert.Equal(4, noToken.ExitCode);
        Assert.Contains("KEYWAY_TOKEN", noToken.StandardError);
        Assert.Equal(6, unreachable.ExitCode);
        Assert.Contains("keyway serve", unreachable.StandardError);
        Assert.NotEqual(0, usage.ExitCode);
    }

    [Fact]
    public async Task Every_command_has_help()
    {
        foreach (var args in new[] { new[] { "--help" }, ["serve", "--help"], ["var", "set", "--help"], ["resource", "apply", "--help"], ["run", "--help"], ["key", "create", "--help"], ["env", "--help"] })
        {
            var result = await Cli(null, args);
            Assert.True(result.ExitCode == 0, string.Join(' ', args) + ": " + result.Output);
            Assert.Contains("Usage:", result.StandardOutput);
        }
    }

    [Fact]
    public async Task Keys_are_created_shown_once_listed_without_their_token_and_revoked()
    {
        var created = JsonNode.Parse((await Cli(null, "key", "create", "cli-app", "--json")).StandardOutput)!;
        var token = (string)created["token"]!;
        var id = (string)created["key"]!["id"]!;
        var withNewKey = fixture.Keyway.CliEnvironment(token);

        var works = await KeywayProcess.RunCliAsync(["resource", "list"], withNewKey);
        var list = await Cli(null, "key", "list", "--json");
        var revoke = await Cli(null, "key", "revoke", id);
        var refused = await KeywayProcess.RunCliAsync(["resource", "list"], withNewKey);

        Assert.Equal(0, works.ExitCode);
        Assert.Contains(id, list.StandardOutput);
        Assert.DoesNotContain(token, list.StandardOutput);
        Assert.Equal(0, revoke.ExitCode);
        Assert.Equal(4, refused.ExitCode);
    }

    [Fact]
    public async Task Schedule_run_waits_through_the_retries_showing_each_and_no_wait_returns_while_it_retries()
    {
        var resource = KeywayFixture.Unique("cli-retry");
        await fixture.PutResourceAsync(resource, new { baseUrl = fixture.Upstream.BaseUrl });
        var query = KeywayFixture.Unique("q");
        await Expect.SuccessAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/queries/{query}", new { resource, method = "GET", path = "/status/503" }));
        var name = KeywayFixture.Unique("cli-retry");
        await Expect.StatusAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/schedules/{name}",
            new { cron = "0 3 * * *", action = "run", query, maxAttempts = 3, retryBackoffSeconds = 0.5 }), 201);

        var waited = await Cli(null, "schedule", "run", name);
        var started = await Cli(null, "schedule", "run", name, "--no-wait", "--json");

        Assert.Equal(1, waited.ExitCode);
        Assert.Contains("attempt 1 failed (upstream_error_status); retrying", waited.StandardError);
        Assert.Contains("failed", waited.StandardOutput);
        Assert.Contains("3", waited.StandardOutput);
        var pending = JsonNode.Parse(started.StandardOutput)!;
        Assert.Equal(("running", 1), ((string)pending["outcome"]!, (int)pending["attempts"]!));
        Assert.Equal(0, started.ExitCode);
    }
}

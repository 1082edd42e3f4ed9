using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Cli;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// What keeps configuration as code safe to run from CI (docs/config-as-code.md): a <c>config:read</c>
/// key that plans and changes nothing, unbinding a secret treated as a delete is, a binding changed
/// by the metadata PATCH audited as a bind, and an identical schedule saved again writing nothing.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ConfigAsCodeSafetyTests(SqliteKeyway fixture) : IClassFixture<SqliteKeyway>
{
    private Task<CommandResult> Cli(params string[] args) => KeywayProcess.RunCliAsync(args, fixture.Keyway.CliEnvironment(fixture.Keyway.AdminToken));

    [Fact]
    public async Task A_config_read_key_exports_plans_and_gets_and_can_change_or_read_nothing_else()
    {
        var name = KeywayFixture.Unique("cr");
        const string canary = "config-read-canary-never-shown";
        await fixture.PutResourceAsync(name, new { baseUrl = fixture.Upstream.BaseUrl });
        var secret = "CR_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await Expect.SuccessAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{secret}", new { value = canary, secret = true }));
        var key = await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/keys", new { name = "ci-plan", scopes = new { actions = new[] { "config:read" } } }), 201);
        var token = (string)key["token"]!;
        var cli = fixture.Keyway.CliEnvironment(token);
        using var client = fixture.Keyway.CreateClient(token);
        var file = Path.Combine(TestDirectories.Create("cfg-read"), "r.yaml");
        await File.WriteAllTextAsync(file, $"kind: Resource\nname: {name}\nspec:\n  baseUrl: {fixture.Upstream.BaseUrl}\n  description: changed\n");

        var export = await KeywayProcess.RunCliAsync(["export"], cli);
        var plan = await KeywayProcess.RunCliAsync(["plan", "-f", file, "--detailed-exitcode"], cli);
        var get = await KeywayProcess.RunCliAsync(["get", "resource", name], cli);
        var apply = await KeywayProcess.RunCliAsync(["apply", "-f", file, "--yes"], cli);
        var narrowed = await fixture.Admin.PostAsJsonAsync("/api/v1/keys", new { name = "ci-plan", scopes = new { resources = new[] { name }, actions = new[] { "config:read" } } });

        Assert.True(export.ExitCode == 0, export.Output);
        Assert.Contains($"name: {name}", export.StandardOutput);
        Assert.Contains($"name: {secret}", export.StandardOutput);
        Assert.True(plan.ExitCode == ConfigCommands.Changes, plan.Output);
        Assert.Contains("~ description: (none) → \"changed\"", plan.StandardOutput);
        Assert.True(get.ExitCode == 0, get.Output);
        Assert.Contains($"name: {name}", get.StandardOutput);
        Assert.Equal(ExitCodes.Denied, apply.ExitCode);
        Assert.Equal(1L, (long)(await fixture.Admin.GetFromJsonAsync<JsonNode>($"/api/v1/resources/{name}"))!["version"]!);
        foreach (var output in new[] { export, plan, get, apply })
        {
            Assert.DoesNotContain(canary, output.Output);
        }

        // Nothing else: not the objects' own reads, not a secret's metadata, not a write, not a key.
        Assert.Equal(403, (int)(await client.GetAsync($"/api/v1/resources/{name}")).StatusCode);
        Assert.Equal(403, (int)(await client.GetAsync($"/api/v1/environments/production/variables/{secret}")).StatusCode);
        Assert.Equal(403, (int)(await client.GetAsync("/api/v1/audit")).StatusCode);
        Assert.Equal(403, (int)(await client.PutAsJsonAsync($"/api/v1/resources/{name}", new { baseUrl = fixture.Upstream.BaseUrl })).StatusCode);
        Assert.Equal(403, (int)(await client.PostAsJsonAsync("/api/v1/keys", new { name = "wider" })).StatusCode);
        Assert.Equal(403, (int)(await client.PostAsJsonAsync($"/api/v1/resources/{name}/run", new { path = "/x" })).StatusCode);
        Assert.Equal(403, (int)(await client.GetAsync("/api/v1/resources")).StatusCode);
        Assert.Equal(403, (int)(await client.GetAsync("/api/v1/me")).StatusCode);
        await Expect.ProblemAsync(narrowed, 400, "bad_request");
    }

    [Fact]
    public async Task A_members_config_read_key_reads_no_export()
    {
        var member = KeywayFixture.Unique("crm");
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/users", new { name = member }), 201);
        var key = await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/keys", new { name = "ci-plan", owner = member, scopes = new { actions = new[] { "config:read" } } }), 201);
        using var client = fixture.Keyway.CreateClient((string)key["token"]!);

        Assert.Equal(403, (int)(await client.GetAsync("/api/v1/config/export")).StatusCode);
    }

    [Fact]
    public async Task Unbinding_a_secret_is_planned_as_destructive_and_applied_only_with_yes()
    {
        var name = KeywayFixture.Unique("unbind");
        var secret = "UB_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var other = secret + "_B";
        var origin = fixture.Upstream.BaseUrl;
        await Expect.SuccessAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{secret}",
            new { value = "unbind-canary-1", secret = true, origins = new[] { origin, "https://second.example.com" } }));
        await Expect.SuccessAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{other}",
            new { value = "unbind-canary-2", secret = true, origins = new[] { origin } }));
        await fixture.PutResourceAsync(name, new JsonObject
        {
            ["baseUrl"] = origin,
            ["headers"] = new JsonObject { ["X-Other"] = $"{{{{ environment.variables.{other} }}}}" },
            ["auth"] = new JsonObject { ["type"] = "bearer", ["token"] = $"{{{{ environment.variables.{secret} }}}}" },
        });
        var directory = TestDirectories.Create("cfg-unbind");
        // The resource stops sending one secret; one secret's binding narrows, the other's is removed.
        await File.WriteAllTextAsync(Path.Combine(directory, "objects.yaml"), $$$"""
            kind: Resource
            name: {{{name}}}
            spec:
              baseUrl: {{{origin}}}
              auth:
                type: bearer
                token: "{{ environment.variables.{{{secret}}} }}"
            ---
            kind: Variable
            name: {{{secret}}}
            environment: production
            spec:
              secret: true
              origins: [{{{origin}}}]
            ---
            kind: Variable
            name: {{{other}}}
            environment: production
            spec:
              secret: true
            """);

        var plan = await Cli("plan", "-f", directory);
        var json = await Cli("plan", "-f", directory, "--json");
        var refused = await Cli("apply", "-f", directory);
        var untouched = await fixture.Admin.GetFromJsonAsync<JsonNode>($"/api/v1/environments/production/variables/{secret}");
        var versionBefore = (long)(await fixture.Admin.GetFromJsonAsync<JsonNode>($"/api/v1/resources/{name}"))!["version"]!;
        var applied = await Cli("apply", "-f", directory, "--yes");
        var after = await Cli("plan", "-f", directory, "--detailed-exitcode");

        Assert.True(plan.ExitCode == 0, plan.Output);
        Assert.Contains($"~ update resource '{name}' (destructive)", plan.StandardOutput);
        Assert.Contains($"    - unbinds the secret '{other}': the resource no longer sends it", plan.StandardOutput);
        Assert.Contains($"~ update variable '{secret}' (production) (destructive)", plan.StandardOutput);
        Assert.Contains("    - narrows the secret's origin binding: it may no longer be sent to https://second.example.com", plan.StandardOutput);
        Assert.Contains($"~ update variable '{other}' (production) (destructive)", plan.StandardOutput);
        Assert.Contains("    - removes the secret's origin binding", plan.StandardOutput);
        Assert.Contains("3 to update (3 unbinding a secret, destructive)", plan.StandardOutput);
        var changes = JsonNode.Parse(json.StandardOutput)!;
        Assert.Equal(3, (int)changes["unbinding"]!);
        Assert.All(changes["changes"]!.AsArray(), c => Assert.True((bool)c!["destructive"]!));
        Assert.Equal(ExitCodes.Usage, refused.ExitCode);
        Assert.Contains("unbind secrets in 3 update(s)", refused.StandardError);
        Assert.Contains("--yes", refused.StandardError);
        Assert.Equal(2, untouched!["origins"]!.AsArray().Count);
        Assert.Equal(1L, versionBefore);
        Assert.True(applied.ExitCode == 0, applied.Output);
        Assert.True(after.ExitCode == 0, after.Output);
        Assert.Equal([origin], (await fixture.Admin.GetFromJsonAsync<JsonNode>($"/api/v1/environments/production/variables/{secret}"))!["origins"]!
            .AsArray().Select(o => (string)o!));
        Assert.DoesNotContain("unbind-canary", plan.Output + json.Output + refused.Output + applied.Output);
    }

    [Fact]
    public async Task Binding_a_secret_or_widening_its_origins_is_not_destructive()
    {
        var secret = "WB_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await Expect.SuccessAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{secret}", new { value = "widen-canary", secret = true }));
        var file = Path.Combine(TestDirectories.Create("cfg-bind"), "v.yaml");
        await File.WriteAllTextAsync(file, $"kind: Variable\nname: {secret}\nenvironment: production\nspec:\n  secret: true\n  origins: [https://a.example.com]\n");

        var bind = await Cli("apply", "-f", file);
        await File.WriteAllTextAsync(file, $"kind: Variable\nname: {secret}\nenvironment: production\nspec:\n  secret: true\n  origins: [https://a.example.com, https://b.example.com]\n");
        var widen = await Cli("apply", "-f", file);

        Assert.True(bind.ExitCode == 0, bind.Output);
        Assert.DoesNotContain("destructive", bind.StandardOutput);
        Assert.True(widen.ExitCode == 0, widen.Output);
        Assert.Equal(2, (await fixture.Admin.GetFromJsonAsync<JsonNode>($"/api/v1/environments/production/variables/{secret}"))!["origins"]!.AsArray().Count);
    }

    [Fact]
    public async Task A_metadata_patch_that_changes_the_binding_is_audited_as_a_bind_and_one_that_does_not_as_metadata()
    {
        var secret = "PB_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var path = $"/api/v1/environments/production/variables/{secret}";
        await Expect.SuccessAsync(await fixture.Admin.PutAsJsonAsync(path, new { value = "patch-canary", secret = true, origins = new[] { "https://a.example.com" } }));

        await Expect.SuccessAsync(await fixture.Admin.PatchAsJsonAsync(path, new { origins = Array.Empty<string>() }));
        await Expect.SuccessAsync(await fixture.Admin.PatchAsJsonAsync(path, new { rotateEvery = "30d" }));
        await Expect.SuccessAsync(await fixture.Admin.PatchAsJsonAsync(path, new { origins = new[] { "https://b.example.com" }, keepVersions = 3 }));

        var events = await EventsAsync(secret, 5);
        Assert.Equal(["variable.set", "variable.bind", "variable.metadata", "variable.bind", "variable.metadata"], events.Select(e => (string)e["action"]!));
        Assert.Empty(events[1]["detail"]!["origins"]?.AsArray() ?? []);
        Assert.Equal("https://a.example.com", (string)events[1]["detail"]!["previous"]![0]!);
        Assert.Equal("https://b.example.com", (string)events[3]["detail"]!["origins"]![0]!);
        Assert.Equal(1L, (long)(await fixture.Admin.GetFromJsonAsync<JsonNode>(path))!["version"]!);
    }

    [Fact]
    public async Task An_identical_schedule_saved_again_keeps_its_version_writes_no_audit_event_and_answers_the_same()
    {
        var name = KeywayFixture.Unique("same-sch");
        var body = new { cron = "0 3 * * *", timeZone = "Europe/Madrid", action = "verify", description = "nightly" };

        var created = await fixture.Admin.PutAsJsonAsync($"/api/v1/schedules/{name}", body);
        var again = await fixture.Admin.PutAsJsonAsync($"/api/v1/schedules/{name}", body);
        var changed = await fixture.Admin.PutAsJsonAsync($"/api/v1/schedules/{name}", body with { description = "nightly, changed" });

        Assert.Equal(201, (int)created.StatusCode);
        Assert.Equal(200, (int)again.StatusCode);
        var first = (await created.Content.ReadFromJsonAsync<JsonNode>())!;
        var second = (await again.Content.ReadFromJsonAsync<JsonNode>())!;
        Assert.Equal(1L, (long)second["version"]!);
        Assert.Equal(first["updatedAt"]!.ToJsonString(), second["updatedAt"]!.ToJsonString());
        Assert.Equal(200, (int)changed.StatusCode);
        Assert.Equal(2L, (long)(await changed.Content.ReadFromJsonAsync<JsonNode>())!["version"]!);
        Assert.Equal(2, (await EventsAsync(name, 2)).Count(e => (string)e["action"]! == "schedule.put"));
    }

    /// <summary>The audit events whose target is <paramref name="target"/>, oldest first, once there are <paramref name="count"/> (the writer is asynchronous).</summary>
    private async Task<List<JsonNode>> EventsAsync(string target, int count)
    {
        List<JsonNode> events = [];
        await Poll.UntilAsync(async () =>
        {
            var page = (await fixture.Admin.GetFromJsonAsync<JsonNode>("/api/v1/audit?limit=1000"))!;
            events = page["events"]!.AsArray().Where(e => (string?)e!["target"] == target).Select(e => e!).ToList();
            return events.Count >= count;
        }, TimeSpan.FromSeconds(30), $"{count} audit events on {target}");
        return events;
    }
}

using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Json.Schema;
using Keyway.Cli;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// Configuration as code (docs/config-as-code.md): <c>keyway export</c>, <c>get</c>, <c>plan</c> and
/// <c>apply</c>, the real CLI against real servers. The round trip starts two servers of its own (the
/// second one empty); the others share one server whose every object they own, since --prune
/// deletes what the files do not hold.
/// </summary>
[Trait("Category", "Integration")]
public sealed partial class ConfigAsCodeTests(SqliteKeyway fixture) : IClassFixture<SqliteKeyway>
{
    private Task<CommandResult> Cli(params string[] args) => KeywayProcess.RunCliAsync(args, fixture.Keyway.CliEnvironment(fixture.Keyway.AdminToken));

    [Fact]
    public async Task Export_applied_to_an_empty_instance_exports_the_same_files_with_secrets_reported_as_value_missing()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        await using var source = await StartAsync();
        await using var target = await StartAsync();
        const string canary = "canary-Zq7xW2-never-printed";
        var from = source.CliEnvironment(source.AdminToken);
        var to = target.CliEnvironment(target.AdminToken);
        using var admin = source.CreateAdminClient();
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/environments/staging", new { description = "pre-production: \"quotes\", # and: colons" }));
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/environments/staging/variables/API_BASE", new { value = upstream.BaseUrl, secret = false }));
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/environments/staging/variables/RETRIES", new { value = "3", secret = false }));
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/environments/production/variables/API_TOKEN",
            new { value = canary, secret = true, origins = new[] { upstream.BaseUrl }, rotateEvery = "90d", expiredPolicy = "block", keepVersions = 4 }));
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/api", new JsonObject
        {
            ["baseUrl"] = upstream.BaseUrl + "/base",
            ["description"] = "multi\nline\ntext\n",
            ["headers"] = new JsonObject { ["X-Retries"] = "{{ environment.variables.RETRIES }}", ["X-Empty"] = "", ["X-Bool"] = "true" },
            ["auth"] = new JsonObject { ["type"] = "bearer", ["token"] = "{{ environment.variables.API_TOKEN }}" },
            ["authFailureStatuses"] = new JsonArray(401, 419),
        }));
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/queries/list-items", new
        {
            resource = "api",
            method = "POST",
            path = "/items/{{ inputs.id }}",
            body = new { type = "json", json = new { qty = "{{ inputs.qty }}", tags = new[] { "a", "b" } } },
        }));
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/groups/ops", new { description = "on call" }));
        await Expect.SuccessAsync(await admin.PostAsJsonAsync("/api/v1/resources/api/permissions", new { group = "ops", permission = "use", environment = "staging" }));
        await Expect.SuccessAsync(await admin.PostAsJsonAsync("/api/v1/resources/api/permissions", new { everyone = true, permission = "use" }));
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/schedules/nightly", new { cron = "0 3 * * *", timeZone = "Europe/Madrid", action = "run", query = "list-items", inputs = new { id = 1 } }));
        await Expect.SuccessAsync(await admin.PostAsJsonAsync("/api/v1/webhooks", new { name = "ops-hook", url = "https://hooks.example.com/keyway", events = new[] { "credential.failed" } }));
        var first = TestDirectories.Create("cfg-export-1");
        var second = TestDirectories.Create("cfg-export-2");

        var export = await KeywayProcess.RunCliAsync(["export", "-o", first], from);
        var plan = await KeywayProcess.RunCliAsync(["plan", "-f", first, "--detailed-exitcode"], to);
        var apply = await KeywayProcess.RunCliAsync(["apply", "-f", first], to);
        var setCommand = SetCommand().Match(apply.StandardError);
        var set = await KeywayProcess.RunShellAsync(setCommand.Groups[1].Value, TestDirectories.Create("cfg-set"), to, standardInput: "another-value");
        var exportAgain = await KeywayProcess.RunCliAsync(["export", "-o", second], to);
        var planAgain = await KeywayProcess.RunCliAsync(["plan", "-f", first, "--detailed-exitcode"], to);

        Assert.True(export.ExitCode == 0, export.Output);
        Assert.True(plan.ExitCode == ConfigCommands.Changes, plan.Output);
        Assert.True(apply.ExitCode == 0, apply.Output);
        Assert.True(setCommand.Success, apply.Output);
        Assert.Contains("value missing — set it with: keyway var set API_TOKEN --env production --secret", apply.StandardError);
        Assert.True(set.ExitCode == 0, set.Output);
        Assert.True(exportAgain.ExitCode == 0, exportAgain.Output);
        Assert.True(planAgain.ExitCode == 0, planAgain.Output);
        Assert.Contains("No changes", planAgain.StandardOutput);
        var files = Files(first);
        Assert.Equal(files, Files(second));
        Assert.Contains("resources/api.yaml", files.Keys);
        Assert.Contains("variables/production/API_TOKEN.yaml", files.Keys);
        Assert.Contains("keepVersions: 4", files["variables/production/API_TOKEN.yaml"]);
        Assert.DoesNotContain("value", files["variables/production/API_TOKEN.yaml"]);
        Assert.DoesNotContain("whsec_", string.Concat(files.Values));
        foreach (var output in new[] { export, plan, apply, exportAgain, planAgain })
        {
            Assert.DoesNotContain(canary, output.Output);
        }

        Assert.DoesNotContain(canary, string.Concat(files.Values));
        Assert.DoesNotContain(canary, (await KeywayProcess.RunCliAsync(["export"], from)).Output);
        Assert.DoesNotContain(canary, (await KeywayProcess.RunCliAsync(["get", "variable", "API_TOKEN"], from)).Output);
    }

    [Fact]
    public async Task Plan_and_apply_of_unchanged_files_change_nothing_and_keep_every_version()
    {
        var name = KeywayFixture.Unique("same");
        var directory = TestDirectories.Create("cfg-same");
        await File.WriteAllTextAsync(Path.Combine(directory, "objects.yaml"), $$"""
            kind: Resource
            name: {{name}}
            spec:
              baseUrl: {{fixture.Upstream.BaseUrl}}
              headers:
                Accept: application/json
            ---
            kind: Query
            name: {{name}}-q
            spec:
              resource: {{name}}
              path: /items
            """);

        var created = await Cli("apply", "-f", directory);
        var versions = await VersionsAsync(name);
        var plan = await Cli("plan", "-f", directory, "--detailed-exitcode");
        var again = await Cli("apply", "-f", directory);
        var rePut = await fixture.Admin.PutAsJsonAsync($"/api/v1/resources/{name}", new JsonObject
        {
            ["baseUrl"] = fixture.Upstream.BaseUrl,
            ["headers"] = new JsonObject { ["Accept"] = "application/json" },
        });

        Assert.True(created.ExitCode == 0, created.Output);
        Assert.Equal((1L, 1L), versions);
        Assert.True(plan.ExitCode == 0, plan.Output);
        Assert.Contains("No changes", plan.StandardOutput);
        Assert.True(again.ExitCode == 0, again.Output);
        Assert.DoesNotContain("✓", again.StandardOutput);
        Assert.Equal(200, (int)rePut.StatusCode);
        Assert.Equal(1L, (long)(await rePut.Content.ReadFromJsonAsync<JsonNode>())!["version"]!);
        Assert.Equal((1L, 1L), await VersionsAsync(name));
    }

    [Fact]
    public async Task Prune_deletes_exactly_the_objects_the_files_do_not_hold_and_asks_for_yes_without_a_terminal()
    {
        var directory = TestDirectories.Create("cfg-prune");
        var managed = KeywayFixture.Unique("managed");
        await fixture.PutResourceAsync(managed, new { baseUrl = fixture.Upstream.BaseUrl });
        await Expect.SuccessAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/queries/{managed}-q", new { resource = managed, path = "/x" }));
        var export = await Cli("export", "-o", directory);
        var before = await Cli("export");
        var unmanaged = KeywayFixture.Unique("unmanaged");
        await fixture.PutResourceAsync(unmanaged, new { baseUrl = fixture.Upstream.BaseUrl });
        await Expect.SuccessAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/queries/{unmanaged}-q", new { resource = unmanaged, path = "/x" }));

        var plan = await Cli("plan", "-f", directory, "--prune", "--json");
        var refused = await Cli("apply", "-f", directory, "--prune");
        var stillThere = (int)(await fixture.Admin.GetAsync($"/api/v1/resources/{unmanaged}")).StatusCode;
        var pruned = await Cli("apply", "-f", directory, "--prune", "--yes");
        var after = await Cli("export");

        Assert.True(export.ExitCode == 0, export.Output);
        Assert.True(plan.ExitCode == 0, plan.Output);
        var changes = JsonNode.Parse(plan.StandardOutput)!["changes"]!.AsArray()
            .Select(c => $"{c!["action"]} {c["kind"]} {c["name"]}").Order(StringComparer.Ordinal).ToList();
        Assert.Equal([$"delete Grants {unmanaged}", $"delete Query {unmanaged}-q", $"delete Resource {unmanaged}"], changes);
        Assert.Equal(2, refused.ExitCode);
        Assert.Contains("--yes", refused.StandardError);
        Assert.Equal(200, stillThere);
        Assert.True(pruned.ExitCode == 0, pruned.Output);
        Assert.Equal(404, (int)(await fixture.Admin.GetAsync($"/api/v1/resources/{unmanaged}")).StatusCode);
        Assert.Equal(404, (int)(await fixture.Admin.GetAsync($"/api/v1/queries/{unmanaged}-q")).StatusCode);
        Assert.Equal(before.StandardOutput, after.StandardOutput);
        Assert.Equal(200, (int)(await fixture.Admin.GetAsync($"/api/v1/queries/{managed}-q")).StatusCode);
    }

    [Fact]
    public async Task A_failing_object_in_the_middle_leaves_the_others_applied_and_is_named_with_its_file_line_and_field()
    {
        var name = KeywayFixture.Unique("mid");
        var directory = TestDirectories.Create("cfg-fail");
        await File.WriteAllTextAsync(Path.Combine(directory, "a.yaml"), $"kind: Resource\nname: {name}-a\nspec:\n  baseUrl: {fixture.Upstream.BaseUrl}\n");
        await File.WriteAllTextAsync(Path.Combine(directory, "b.yaml"), $"kind: Resource\nname: {name}-b\nspec:\n  baseUrl: {fixture.Upstream.BaseUrl}\n  kind: soap\n");
        await File.WriteAllTextAsync(Path.Combine(directory, "c.yaml"), $"kind: Resource\nname: {name}-c\nspec:\n  baseUrl: {fixture.Upstream.BaseUrl}\n");

        var apply = await Cli("apply", "-f", directory);

        Assert.Equal(5, apply.ExitCode);
        Assert.Contains($"resource '{name}-b'", apply.StandardError);
        Assert.Contains("b.yaml", apply.StandardError);
        Assert.Contains("spec.kind (line 5, column 3)", apply.StandardError);
        Assert.Contains("1 of 3 object(s) failed", apply.StandardError);
        Assert.Equal(200, (int)(await fixture.Admin.GetAsync($"/api/v1/resources/{name}-a")).StatusCode);
        Assert.Equal(404, (int)(await fixture.Admin.GetAsync($"/api/v1/resources/{name}-b")).StatusCode);
        Assert.Equal(200, (int)(await fixture.Admin.GetAsync($"/api/v1/resources/{name}-c")).StatusCode);
    }

    [Fact]
    public async Task An_unknown_field_is_named_with_its_file_line_column_and_what_was_meant_before_anything_is_sent()
    {
        var name = KeywayFixture.Unique("typo");
        var file = Path.Combine(TestDirectories.Create("cfg-typo"), "typo.yaml");
        await File.WriteAllTextAsync(file, $"kind: Resource\nname: {name}\nspec:\n  baseUrl: {fixture.Upstream.BaseUrl}\n  headerz:\n    Accept: text/plain\n");

        var plan = await Cli("plan", "-f", file);
        var apply = await Cli("apply", "-f", file);

        foreach (var result in new[] { plan, apply })
        {
            Assert.Equal(5, result.ExitCode);
            Assert.Contains("spec.headerz (line 5, column 3): unknown field 'headerz' — did you mean 'headers'?", result.StandardError);
        }

        Assert.Equal(404, (int)(await fixture.Admin.GetAsync($"/api/v1/resources/{name}")).StatusCode);
    }

    [Fact]
    public async Task Get_as_yaml_round_trips_through_apply()
    {
        var name = KeywayFixture.Unique("get");
        await fixture.PutResourceAsync(name, new { baseUrl = fixture.Upstream.BaseUrl, description = "line one\nline two", headers = new { X_Tag = "'quoted' & {{ braces }}" } });
        var file = Path.Combine(TestDirectories.Create("cfg-get"), "get.yaml");

        var get = await Cli("get", "resource", name, "-o", "yaml");
        await File.WriteAllTextAsync(file, get.StandardOutput);
        var plan = await Cli("plan", "-f", file, "--detailed-exitcode");
        var json = await Cli("get", "resource", name, "-o", "json");

        Assert.True(get.ExitCode == 0, get.Output);
        Assert.StartsWith("# yaml-language-server: $schema=", get.StandardOutput);
        Assert.True(plan.ExitCode == 0, plan.Output);
        Assert.Equal("Resource", (string)JsonNode.Parse(json.StandardOutput)!["kind"]!);
        Assert.Equal("line one\nline two", (string)JsonNode.Parse(json.StandardOutput)!["spec"]!["description"]!);
        Assert.Equal(1L, (long)(await fixture.Admin.GetFromJsonAsync<JsonNode>($"/api/v1/resources/{name}"))!["version"]!);
    }

    [Fact]
    public async Task The_served_schema_is_the_repository_copy_and_validates_an_export()
    {
        using var anonymous = fixture.Keyway.CreateClient();
        var served = await anonymous.GetStringAsync("/schema/v1.json");
        var repository = await File.ReadAllTextAsync(Path.Combine(ReadmeTourTests.RepositoryRoot(), "schema", "keyway.schema.json"));
        var export = await Cli("export");
        var schema = JsonSchema.FromText(served);

        Assert.Equal(repository, served);
        Assert.True(export.ExitCode == 0, export.Output);
        var documents = ConfigFiles.Parse(export.StandardOutput, "export", "objects");
        Assert.NotEmpty(documents);
        foreach (var document in documents)
        {
            var result = schema.Evaluate(JsonDocument.Parse(document.Body.ToJsonString()).RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
            Assert.True(result.IsValid, document.Body.ToJsonString());
        }

        var typo = JsonDocument.Parse("""{"kind": "Resource", "name": "x", "spec": {"baseUrl": "https://a.example", "headerz": {}}}""").RootElement;
        Assert.False(schema.Evaluate(typo).IsValid);
    }

    [Fact]
    public Task A_secret_the_server_holds_takes_the_files_origins_and_policies_without_a_new_version() => SecretMetadataAsync(fixture);

    internal static async Task SecretMetadataAsync(KeywayFixture fixture)
    {
        var name = "META_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        const string value = "meta-canary-value";
        await Expect.SuccessAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{name}",
            new { value, secret = true, origins = new[] { "https://old.example.com" } }));
        var file = Path.Combine(TestDirectories.Create("cfg-meta"), "secret.yaml");
        await File.WriteAllTextAsync(file, $"""
            kind: Variable
            name: {name}
            environment: production
            spec:
              secret: true
              origins: [https://b.example.com, https://a.example.com]
              rotateEvery: 30d
              expiredPolicy: block
              keepVersions: 3
            """);
        var cli = fixture.Keyway.CliEnvironment(fixture.Keyway.AdminToken);

        var apply = await KeywayProcess.RunCliAsync(["apply", "-f", file], cli);
        var plan = await KeywayProcess.RunCliAsync(["plan", "-f", file, "--detailed-exitcode"], cli);
        var variable = await fixture.Admin.GetFromJsonAsync<JsonNode>($"/api/v1/environments/production/variables/{name}");

        Assert.True(apply.ExitCode == 0, apply.Output);
        Assert.DoesNotContain(value, apply.Output);
        Assert.True(plan.ExitCode == 0, plan.Output);
        Assert.Equal(1L, (long)variable!["version"]!);
        Assert.Equal(["https://a.example.com", "https://b.example.com"], variable["origins"]!.AsArray().Select(o => (string)o!).Order());
        Assert.Equal("30d", (string)variable["rotateEvery"]!);
        Assert.Equal("block", (string)variable["expiredPolicy"]!);
        Assert.Equal(3, (int)variable["keepVersions"]!);
    }

    private async Task<(long Resource, long Query)> VersionsAsync(string name) => (
        (long)(await fixture.Admin.GetFromJsonAsync<JsonNode>($"/api/v1/resources/{name}"))!["version"]!,
        (long)(await fixture.Admin.GetFromJsonAsync<JsonNode>($"/api/v1/queries/{name}-q"))!["version"]!);

    private static Task<KeywayProcess> StartAsync() => KeywayProcess.StartAsync(StoreKind.Sqlite, new Dictionary<string, string>
    {
        ["KEYWAY_ADMIN_TOKEN"] = "kw_test_" + Guid.NewGuid().ToString("N"),
        ["KEYWAY_ADMIN_PASSWORD"] = "admin-password-" + Guid.NewGuid().ToString("N"),
        ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
    });

    /// <summary>Every file under a directory by relative path, with its text.</summary>
    private static SortedDictionary<string, string> Files(string directory) => new(
        Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(directory, f).Replace('\\', '/'), File.ReadAllText), StringComparer.Ordinal);

    [GeneratedRegex(@"value missing — set it with: (keyway var set [^\n]+)")]
    private static partial Regex SetCommand();
}

/// <summary>What apply writes that is SQL of its own (a secret's metadata without a new version, a re-PUT that writes nothing), on PostgreSQL too.</summary>
[Trait("Category", "Integration")]
public sealed class ConfigAsCodePostgresTests(PostgresKeyway fixture) : IClassFixture<PostgresKeyway>
{
    [Fact]
    public Task A_secret_the_server_holds_takes_the_files_origins_and_policies_without_a_new_version() =>
        ConfigAsCodeTests.SecretMetadataAsync(fixture);
}

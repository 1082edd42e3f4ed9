using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// The CLI does what docs/cli.md says: its '@file' and '@-' forms, its exit-code table (row 8,
/// a broken audit chain, is AuditTests.Verify_finds_…: it needs the store edited), its messages'
/// suggested commands, its JSON. A real process against a real server.
/// </summary>
[Trait("Category", "Integration")]
public sealed class CliCorrectnessTests(SqliteKeyway fixture) : IClassFixture<SqliteKeyway>
{
    private Dictionary<string, string> Admin => fixture.Keyway.CliEnvironment(fixture.Keyway.AdminToken);

    private Task<CommandResult> Cli(string? stdin, params string[] args) => KeywayProcess.RunCliAsync(args, Admin, stdin);

    [Fact]
    public async Task A_body_from_a_file_or_stdin_reaches_the_upstream_byte_for_byte_with_its_content_type()
    {
        var (resource, _) = await fixture.BearerResourceAsync();
        var directory = TestDirectories.Create("cli-at");
        var json = "{\n  \"name\": \"x\",\n  \"tags\": [\"a+b\", \"c\"]\n}\n";
        var jsonFile = Path.Combine(directory, "body.json");
        await File.WriteAllTextAsync(jsonFile, json);
        var text = "line one\nline \"two\" + three\n";

        var fromFile = await Cli(null, "run", resource, "/at-file", "-X", "POST", "-d", "@" + jsonFile);
        var fromStdin = await Cli(text, "run", resource, "/at-stdin", "-X", "PUT", "-d", "@-");
        var typed = await Cli(text, "run", resource, "/at-typed", "-X", "POST", "-d", "@-", "-H", "Content-Type: text/csv");
        var inline = await Cli(null, "run", resource, "/at-inline", "-X", "POST", "-d", "{\"name\": \"x\"}");
        var missing = await Cli(null, "run", resource, "/at-missing", "-X", "POST", "-d", "@" + Path.Combine(directory, "nope.json"));

        Assert.True(fromFile.ExitCode == 0, fromFile.Output);
        var seenFile = fixture.Upstream.Requests.Single(r => r.Path == "/base/at-file");
        Assert.Equal(json, seenFile.Body);
        Assert.StartsWith("application/json", seenFile.Headers["Content-Type"]);
        Assert.True(fromStdin.ExitCode == 0, fromStdin.Output);
        var seenStdin = fixture.Upstream.Requests.Single(r => r.Path == "/base/at-stdin");
        Assert.Equal(text, seenStdin.Body);
        Assert.StartsWith("text/plain", seenStdin.Headers["Content-Type"]);
        Assert.True(typed.ExitCode == 0, typed.Output);
        Assert.StartsWith("text/csv", fixture.Upstream.Requests.Single(r => r.Path == "/base/at-typed").Headers["Content-Type"]);
        Assert.True(inline.ExitCode == 0, inline.Output);
        Assert.Equal("{\"name\": \"x\"}", fixture.Upstream.Requests.Single(r => r.Path == "/base/at-inline").Body);
        Assert.Equal(2, missing.ExitCode);
        Assert.Contains("nope.json", missing.StandardError);
    }

    [Fact]
    public async Task Query_inputs_come_from_a_multi_line_file_or_stdin()
    {
        var (resource, _) = await fixture.BearerResourceAsync();
        var query = KeywayFixture.Unique("cliat");
        var apply = await Cli($$$"""
            name: {{{query}}}
            resource: {{{resource}}}
            method: POST
            path: /inputs/{{ inputs.id }}
            body:
              type: json
              json:
                qty: "{{ inputs.qty }}"
            """, "query", "apply", "-");
        var file = Path.Combine(TestDirectories.Create("cli-inputs"), "inputs.json");
        await File.WriteAllTextAsync(file, "{\n  \"id\": \"from-file\",\n  \"qty\": 2\n}\n");

        var fromFile = await Cli(null, "query", "run", query, "--inputs", "@" + file);
        var fromStdin = await Cli("{\n \"id\": \"from-stdin\",\n \"qty\": 3\n}", "query", "run", query, "--inputs", "@-");
        var broken = await Cli("{not json", "query", "run", query, "--inputs", "@-");

        Assert.True(apply.ExitCode == 0, apply.Output);
        Assert.True(fromFile.ExitCode == 0, fromFile.Output);
        Assert.Equal("{\"qty\":2}", fixture.Upstream.Requests.Single(r => r.Path == "/base/inputs/from-file").Body);
        Assert.True(fromStdin.ExitCode == 0, fromStdin.Output);
        Assert.Equal("{\"qty\":3}", fixture.Upstream.Requests.Single(r => r.Path == "/base/inputs/from-stdin").Body);
        Assert.Equal(2, broken.ExitCode);
        Assert.Contains("--inputs", broken.StandardError);
    }

    [Fact]
    public async Task Every_row_of_the_exit_code_table_is_what_the_cli_exits_with()
    {
        var resource = KeywayFixture.Unique("exit");
        await fixture.PutResourceAsync(resource, new { kind = "rest", baseUrl = fixture.Upstream.BaseUrl });
        var user = KeywayFixture.Unique("exit");
        Assert.Equal(0, (await Cli(null, "user", "create", user)).ExitCode);
        var memberKey = (string)JsonNode.Parse((await Cli(null, "key", "create", "--name", "exit", "--owner", user, "--json")).StandardOutput)!["token"]!;
        var empty = Path.Combine(TestDirectories.Create("cli-exit"), "empty.yaml");
        await File.WriteAllTextAsync(empty, "# nothing yet\n");

        var rows = new (int Code, string Why, Task<CommandResult> Run)[]
        {
            (0, "success", Cli(null, "resource", "list")),
            (1, "upstream 4xx", Cli(null, "run", resource, "/status/404")),
            (1, "upstream 4xx with --json", Cli(null, "run", resource, "/status/404", "--json")),
            (1, "upstream 5xx", Cli(null, "run", resource, "/status/503")),
            (2, "missing argument", Cli(null, "run")),
            (2, "unknown option", Cli(null, "resource", "list", "--colour")),
            (2, "unknown command", Cli(null, "resourse", "list")),
            (2, "unreadable file", Cli(null, "resource", "apply", "/nonexistent/resource.yaml")),
            (2, "empty file", Cli(null, "resource", "apply", empty)),
            (2, "empty secret", Cli("", "var", "set", "EXIT_EMPTY", "--secret")),
            (2, "bad header form", Cli(null, "run", resource, "/x", "-H", "no-colon")),
            (3, "not found", Cli(null, "resource", "get", "no-such-resource")),
            (3, "not found with --json", Cli(null, "resource", "get", "no-such-resource", "--json")),
            (4, "no token", KeywayProcess.RunCliAsync(["resource", "list"], fixture.Keyway.CliEnvironment())),
            (4, "not allowed", KeywayProcess.RunCliAsync(["user", "list"], fixture.Keyway.CliEnvironment(memberKey))),
            (5, "invalid", Cli("{\"name\": \"broken\", \"kind\": \"soap\", \"baseUrl\": \"x\"}", "resource", "apply", "-")),
            (6, "unreachable", KeywayProcess.RunCliAsync(["resource", "list"], new Dictionary<string, string> { ["KEYWAY_ADDR"] = $"http://127.0.0.1:{FreePort.Next()}", ["KEYWAY_TOKEN"] = "x" })),
            (6, "not Keyway", KeywayProcess.RunCliAsync(["resource", "list"], new Dictionary<string, string> { ["KEYWAY_ADDR"] = fixture.Upstream.BaseUrl, ["KEYWAY_TOKEN"] = "x" })),
            (7, "conflict", Cli(null, "user", "create", user)),
        };

        foreach (var (code, why, run) in rows)
        {
            var result = await run;
            Assert.True(result.ExitCode == code, $"{why}: expected {code}, got {result.ExitCode}\n{result.Output}");
            Assert.DoesNotContain("   at ", result.StandardError);
            if (code != 0)
            {
                Assert.False(string.IsNullOrWhiteSpace(result.StandardError), $"{why}: nothing on stderr");
            }
        }

        var json = await Cli(null, "run", resource, "/status/404", "--json");
        Assert.Equal(404, (int)JsonNode.Parse(json.StandardOutput)!["status"]!);
        var notKeyway = await KeywayProcess.RunCliAsync(["resource", "list"], new Dictionary<string, string> { ["KEYWAY_ADDR"] = fixture.Upstream.BaseUrl, ["KEYWAY_TOKEN"] = "x" });
        Assert.Contains("is not Keyway", notKeyway.StandardError);
        Assert.DoesNotContain("(none)", notKeyway.StandardOutput);
    }

    [Fact]
    public async Task An_empty_secret_is_refused_and_nothing_is_stored()
    {
        var name = "EMPTY_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();

        var piped = await Cli("", "var", "set", name, "--secret");
        var given = await Cli(null, "var", "set", name, "--secret", "--value", "");
        var stored = await Cli(null, "var", "get", name);
        var api = await fixture.Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{name}", new { value = "", secret = true });

        Assert.Equal(2, piped.ExitCode);
        Assert.Contains("would be empty", piped.StandardError);
        Assert.DoesNotContain("✓", piped.StandardOutput);
        Assert.Equal(2, given.ExitCode);
        Assert.Equal(3, stored.ExitCode);
        await Expect.ProblemAsync(api, 400, "empty_secret");
    }

    [Fact]
    public async Task Json_output_writes_plus_and_quotes_as_they_are()
    {
        var name = "RELAXED_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        Assert.Equal(0, (await Cli(null, "var", "set", name, "--value", "a+b \"quoted\" <é>")).ExitCode);

        var json = await Cli(null, "var", "get", name, "--json");

        Assert.True(json.ExitCode == 0, json.Output);
        Assert.Contains("a+b \\\"quoted\\\" <é>", json.StandardOutput);
        Assert.DoesNotContain("\\u00", json.StandardOutput);
        Assert.Equal("a+b \"quoted\" <é>", (string?)JsonNode.Parse(json.StandardOutput)!["value"]);
    }

    [Fact]
    public async Task Resource_get_json_has_no_null_field_and_applies_back_unchanged()
    {
        var (resource, _) = await fixture.BearerResourceAsync(new { headers = new { Accept = "application/json" } });
        var directory = TestDirectories.Create("cli-roundtrip");

        var first = await Cli(null, "resource", "get", resource, "--json");
        var file = Path.Combine(directory, "resource.json");
        await File.WriteAllTextAsync(file, first.StandardOutput);
        var apply = await Cli(null, "resource", "apply", file);
        var second = await Cli(null, "resource", "get", resource, "--json");

        Assert.True(first.ExitCode == 0, first.Output);
        Assert.DoesNotContain("null", first.StandardOutput);
        Assert.Equal(resource, (string?)JsonNode.Parse(first.StandardOutput)!["name"]);
        Assert.True(apply.ExitCode == 0, apply.Output);
        Assert.Equal(first.StandardOutput, second.StandardOutput);
    }

    [Fact]
    public async Task An_unknown_field_is_named_with_what_was_meant_and_where_it_is()
    {
        var file = Path.Combine(TestDirectories.Create("cli-typo"), "typo.yaml");
        await File.WriteAllTextAsync(file, $"""
            name: {KeywayFixture.Unique("typo")}
            baseUrl: {fixture.Upstream.BaseUrl}
            headerz:
              Accept: application/json
            auth:
              type: bearer
              tokn: x
            """);

        var result = await Cli(null, "resource", "apply", file);
        var nested = await Cli($"name: {KeywayFixture.Unique("typo")}\nbaseUrl: {fixture.Upstream.BaseUrl}\nauth:\n  type: bearer\n  tokn: x\n", "resource", "apply", "-");
        var typed = await Cli($"name: {KeywayFixture.Unique("typo")}\nbaseUrl: {fixture.Upstream.BaseUrl}\ntimeouts:\n  requestMs: soon\n", "resource", "apply", "-");

        Assert.Equal(5, result.ExitCode);
        Assert.Contains("unknown field 'headerz' — did you mean 'headers'?", result.StandardError);
        Assert.Contains("typo.yaml", result.StandardError);
        Assert.Contains("headerz (line 3, column 1)", result.StandardError);
        Assert.Contains("unknown field 'tokn' — did you mean 'token'?", nested.StandardError);
        Assert.Contains("auth.tokn (line 5, column 3)", nested.StandardError);
        Assert.Contains("timeouts.requestMs (line 4, column 3): the value should be a number", typed.StandardError);
        foreach (var output in new[] { result.StandardError, nested.StandardError, typed.StandardError })
        {
            Assert.DoesNotContain(".NET", output);
            Assert.DoesNotContain("Keyway.Resources", output);
            Assert.DoesNotContain("System.", output);
        }
    }

    [Fact]
    public async Task Serve_with_an_address_without_scheme_or_one_in_use_says_so_in_one_line()
    {
        var port = FreePort.Next();
        var noScheme = await KeywayProcess.RunCliAsync(["serve", "--urls", $"127.0.0.1:{port}", "--data-dir", TestDirectories.Create("serve-noscheme")]);
        var inUse = await KeywayProcess.RunCliAsync(["serve", "--urls", fixture.Keyway.BaseUrl, "--data-dir", TestDirectories.Create("serve-inuse")]);

        Assert.NotEqual(0, noScheme.ExitCode);
        Assert.Equal($"keyway: cannot start: --urls: '127.0.0.1:{port}' has no scheme; write it as http://127.0.0.1:{port} (or https://).", noScheme.StandardError.Trim());
        Assert.NotEqual(0, inUse.ExitCode);
        Assert.Single(inUse.StandardError.Trim().Split('\n'));
        Assert.Contains($"{fixture.Keyway.BaseUrl} is already in use", inUse.StandardError);
    }
}

using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration.Adversarial;

/// <summary>
/// An editor who may attach a secret authors a resource whose templates send pieces and encodings of it that
/// no value-based redactor can recognise (four characters of it, its percent-encoding, its JSON string), then
/// reads them back from the request as sent (a run's <c>outbound</c>, the resource test's final request and each
/// login step) in the API, the CLI and the audit log. Each such value is withheld because of what its template
/// reads; the plain values beside it are shown. And a member who may only use the resource sees the login and
/// token answers as structure only.
/// </summary>
[Trait("Category", "Integration")]
public sealed class DebuggerProvenanceTests(RedactionEncodingFixture fixture) : IClassFixture<RedactionEncodingFixture>
{
    private const string Canary = RedactionEncodingFixture.Canary;

    [Fact]
    public async Task A_failed_login_step_whose_url_is_withheld_shows_the_kind_of_failure_not_the_error_that_names_its_host()
    {
        var resource = "dbg-fail-" + Guid.NewGuid().ToString("N")[..8];
        await PutAsync(resource, new JsonObject
        {
            ["baseUrl"] = fixture.Upstream.BaseUrl,
            ["auth"] = new JsonObject
            {
                ["type"] = "custom",
                // Nothing listens on port 1: the connection error names host and port, as one built from a secret would.
                ["steps"] = new JsonArray(
                    new JsonObject { ["type"] = "request", ["name"] = "login", ["method"] = "POST", ["url"] = "http://127.0.0.1:1/" + Piece },
                    new JsonObject { ["type"] = "variable", ["name"] = "S", ["value"] = "{{ 'sess' + login.status }}" }),
                ["apply"] = new JsonObject { ["headers"] = new JsonObject { ["X-Session"] = "{{ S }}" } },
                ["lifetimeSeconds"] = 600,
            },
        });

        using var test = await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/test", new { path = "/status/200", fresh = true });
        var report = await test.Content.ReadAsByteArrayAsync();

        var login = JsonNode.Parse(report)!["steps"]!.AsArray().First(s => (string?)s!["step"] == "login")!;
        Assert.False((bool)login["ok"]!, Encoding.UTF8.GetString(report));
        Assert.Contains("not shown: the error names the host", (string?)login["detail"], StringComparison.Ordinal);
        Assert.DoesNotContain("127.0.0.1:1", (string?)login["detail"], StringComparison.Ordinal);
        AssertNoPiece(report, "a failed step's report");
    }

    // Pieces of the canary wrapped in markers, so that their absence is meaningful: each is shorter than the redactor's minimum.
    private const string Piece = "{{ 'q' + environment.variables.CANARY.substring(0, 4) + 'q' }}";
    private static readonly string PieceSent = "q" + Canary[..4] + "q";
    private const string Encoded = "{{ '~' + encodeURIComponent(environment.variables.CANARY.substring(7, 12)) + '~' }}";
    private static readonly string EncodedSent = "~" + Uri.EscapeDataString(Canary[7..12]) + "~";
    private const string Computed = "{{ 'z' + environment['vari' + 'ables'].CANARY.slice(-5) + 'z' }}";
    private static readonly string ComputedSent = "z" + Canary[^5..] + "z";
    private const string Whole = "{{ environment.variables.CANARY }}";

    private static readonly string[] Pieces = [PieceSent, EncodedSent, ComputedSent, Uri.EscapeDataString(PieceSent), Uri.EscapeDataString(ComputedSent)];

    private async Task PutAsync(string resource, JsonObject definition)
    {
        using var response = await fixture.Admin.PutAsJsonAsync($"/api/v1/resources/{resource}", definition);
        Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync());
    }

    private async Task<(HttpClient Client, string Token)> MemberWithUseAsync(string resource)
    {
        var name = "m-" + Guid.NewGuid().ToString("N")[..10];
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/users", new { name, role = "member" }), 201);
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = name, permission = "use" }), 201);
        var key = await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/keys", new { name = "debug", owner = name }), 201);
        var token = (string)key["token"]!;
        return (fixture.Keyway.CreateClient(token), token);
    }

    private static void AssertNoPiece(byte[] output, string where)
    {
        RedactionEncodingTests.AssertNothingOf(output, Canary, where);
        var text = Encoding.UTF8.GetString(output);
        foreach (var piece in Pieces)
        {
            Assert.False(text.Contains(piece, StringComparison.Ordinal), $"{where} shows the secret-derived value '{piece}': {text}");
            // The same piece as a JSON string escapes it (the report is JSON): its escaped form must not be there either.
            var escaped = System.Text.Json.JsonSerializer.Serialize(piece)[1..^1];
            Assert.False(text.Contains(escaped, StringComparison.Ordinal), $"{where} shows '{escaped}'");
        }
    }

    [Fact]
    public async Task Headers_and_query_values_rendered_from_a_secret_are_withheld_from_the_request_as_sent_and_plain_ones_are_shown()
    {
        var resource = "dbg-prov-" + Guid.NewGuid().ToString("N")[..8];
        await PutAsync(resource, new JsonObject
        {
            ["baseUrl"] = fixture.Upstream.BaseUrl,
            ["headers"] = new JsonObject
            {
                ["X-Sig"] = Piece,
                ["X-Enc"] = Encoded,
                ["X-Computed"] = Computed,
                ["X-Json"] = "{{ JSON.stringify({ k: environment.variables.CANARY.substring(0, 4) }) }}",
                ["X-Plain"] = "plain-{{ environment.name }}",
            },
            ["query"] = new JsonObject { ["sig"] = Piece, ["page"] = "7" },
            ["auth"] = new JsonObject { ["type"] = "apiKey", ["in"] = "header", ["name"] = "X-Key", ["value"] = Whole },
        });
        var (member, token) = await MemberWithUseAsync(resource);

        // /status/200 answers with no body: nothing comes back from the upstream itself.
        using var run = await member.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/status/200", query = new { color = "blue" } });
        var answer = await run.Content.ReadAsByteArrayAsync();
        using var test = await member.PostAsJsonAsync($"/api/v1/resources/{resource}/test", new { path = "/status/200" });
        var report = await test.Content.ReadAsByteArrayAsync();
        var cli = await KeywayProcess.RunCliAsync(["resource", "test", resource, "--path", "/status/200", "--verbose"], fixture.Keyway.CliEnvironment(token));
        var cliRun = await KeywayProcess.RunCliAsync(["run", resource, "/status/200", "--json"], fixture.Keyway.CliEnvironment(token));

        // The values were sent: the upstream saw the pieces.
        var seen = fixture.Upstream.Requests.Last(r => r.Path == "/status/200");
        Assert.Equal(PieceSent, seen.Headers["X-Sig"]);

        Assert.True(run.IsSuccessStatusCode, Encoding.UTF8.GetString(answer));
        var outbound = JsonNode.Parse(answer)!["outbound"]!;
        var headers = outbound["headers"]!.AsObject();
        Assert.Equal("plain-production", (string?)headers["X-Plain"]);
        Assert.StartsWith("«withheld: a script expression", (string?)headers["X-Sig"]);
        Assert.StartsWith("«withheld: a script expression", (string?)headers["X-Computed"]);
        Assert.Equal("«withheld: the resource's credential»", (string?)headers["X-Key"]);
        var url = (string)outbound["url"]!;
        Assert.Contains("page=7", url);
        Assert.Contains("color=blue", url);
        Assert.Contains("sig=«withheld:", url);

        Assert.True(test.IsSuccessStatusCode, Encoding.UTF8.GetString(report));
        Assert.Contains("plain-production", Encoding.UTF8.GetString(report));
        Assert.True(cli.ExitCode == 0, cli.Output);
        Assert.Contains("withheld", cli.StandardOutput);

        AssertNoPiece(answer, "a run's outbound request");
        AssertNoPiece(report, "the test report");
        AssertNoPiece(Encoding.UTF8.GetBytes(cli.Output), "keyway resource test --verbose");
        AssertNoPiece(Encoding.UTF8.GetBytes(cliRun.Output), "keyway run --json");
        AssertNoPiece(await fixture.Admin.GetByteArrayAsync("/api/v1/audit/export"), "the audit log");
    }

    [Fact]
    public async Task A_login_step_shows_the_template_of_a_value_rendered_from_a_secret_or_an_earlier_answer_never_the_value()
    {
        var resource = "dbg-flow-" + Guid.NewGuid().ToString("N")[..8];
        await PutAsync(resource, new JsonObject
        {
            ["baseUrl"] = fixture.Upstream.BaseUrl,
            ["auth"] = new JsonObject
            {
                ["type"] = "custom",
                ["steps"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "request",
                        ["name"] = "login",
                        ["method"] = "POST",
                        ["url"] = fixture.Upstream.BaseUrl + "/status/200?k=" + Encoded,
                        ["headers"] = new JsonObject { ["X-Sig"] = Piece, ["X-Plain"] = "plain-{{ environment.name }}" },
                        ["body"] = "{\"p\": \"" + Computed + "\"}",
                    },
                    new JsonObject { ["type"] = "variable", ["name"] = "S", ["value"] = "{{ 'sess' + login.status }}" },
                    new JsonObject
                    {
                        // A value captured from an earlier step is the session: withheld as well.
                        ["type"] = "request",
                        ["name"] = "confirm",
                        ["method"] = "GET",
                        ["url"] = fixture.Upstream.BaseUrl + "/status/200",
                        ["headers"] = new JsonObject { ["X-Session"] = "{{ S }}" },
                    }),
                ["apply"] = new JsonObject { ["headers"] = new JsonObject { ["X-Session"] = "{{ S }}" } },
                ["lifetimeSeconds"] = 600,
            },
        });

        using var test = await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/test", new { path = "/status/200", fresh = true });
        var report = await test.Content.ReadAsByteArrayAsync();
        var cli = await KeywayProcess.RunCliAsync(["resource", "test", resource, "--path", "/status/200", "--verbose", "--fresh"], fixture.Keyway.CliEnvironment(fixture.Keyway.AdminToken!));

        Assert.True(test.IsSuccessStatusCode, Encoding.UTF8.GetString(report));
        var steps = JsonNode.Parse(report)!["steps"]!.AsArray();
        var login = steps.First(s => (string?)s!["step"] == "login")!["request"]!;
        Assert.StartsWith("«withheld: a script expression", (string)login["url"]!);
        Assert.Contains("encodeURIComponent(environment.variables.CANARY.substring(7, 12))", (string)login["url"]!);
        Assert.Contains("substring(0, 4)", (string?)login["headers"]!["X-Sig"]);
        Assert.Equal("plain-production", (string?)login["headers"]!["X-Plain"]);
        Assert.Contains("«withheld:", (string?)login["body"]);
        var confirm = steps.First(s => (string?)s!["step"] == "confirm")!["request"]!;
        Assert.Equal("«withheld: reads S, a value the login flow obtained» {{ S }}", (string?)confirm["headers"]!["X-Session"]);
        Assert.True(cli.ExitCode == 0, cli.Output);

        AssertNoPiece(report, "the test report");
        AssertNoPiece(Encoding.UTF8.GetBytes(cli.Output), "keyway resource test --verbose --fresh");
        Assert.DoesNotContain("sess200", Encoding.UTF8.GetString(report));
    }

    [Fact]
    public async Task A_member_with_use_sees_the_login_answer_as_structure_and_an_owner_sees_its_contents()
    {
        var resource = "dbg-shape-" + Guid.NewGuid().ToString("N")[..8];
        await PutAsync(resource, new JsonObject
        {
            ["baseUrl"] = fixture.Upstream.BaseUrl,
            ["auth"] = new JsonObject
            {
                ["type"] = "custom",
                // The echo answers with the request: its path and a header the login sent, as JSON.
                ["steps"] = new JsonArray(
                    new JsonObject
                    {
                        ["type"] = "request",
                        ["name"] = "login",
                        ["method"] = "POST",
                        ["url"] = fixture.Upstream.BaseUrl + "/login-echo",
                        ["headers"] = new JsonObject { ["X-Visible"] = "login-answer-content" },
                        ["body"] = "{\"user\": \"svc\"}",
                    },
                    new JsonObject { ["type"] = "variable", ["name"] = "S", ["value"] = "{{ login.body.path }}" }),
                ["apply"] = new JsonObject { ["headers"] = new JsonObject { ["X-Session"] = "{{ S }}" } },
                ["lifetimeSeconds"] = 600,
            },
        });
        var (member, _) = await MemberWithUseAsync(resource);

        using var asMember = await member.PostAsJsonAsync($"/api/v1/resources/{resource}/test", new { path = "/status/200", fresh = true });
        var memberReport = await asMember.Content.ReadAsStringAsync();
        using var asAdmin = await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/test", new { path = "/status/200", fresh = true });
        var adminReport = await asAdmin.Content.ReadAsStringAsync();

        Assert.True(asMember.IsSuccessStatusCode, memberReport);
        Assert.True(asAdmin.IsSuccessStatusCode, adminReport);
        static JsonNode Login(string report) => JsonNode.Parse(report)!["steps"]!.AsArray().First(s => (string?)s!["step"] == "login")!;
        var memberLogin = Login(memberReport);
        Assert.Equal(200, (int)memberLogin["response"]!["status"]!);
        Assert.Contains("(string, ", (string?)memberLogin["response"]!["body"]);
        Assert.DoesNotContain("login-answer-content", (string?)memberLogin["response"]!["body"]);
        Assert.DoesNotContain("svc", (string?)memberLogin["request"]!["body"]);
        Assert.Contains("login-answer-content", (string?)Login(adminReport)["response"]!["body"]);
    }

    [Fact]
    public async Task A_base_url_rendered_from_a_secret_is_withheld_from_the_request_as_sent_and_from_its_error()
    {
        var good = "dbg-base-" + Guid.NewGuid().ToString("N")[..8];
        // Reads the secret (a script), though what it gives says nothing of it: withheld all the same, by what it reads.
        await PutAsync(good, new JsonObject { ["baseUrl"] = fixture.Upstream.BaseUrl + "/status/{{ environment.variables.CANARY.length > 0 ? 200 : 500 }}" });
        var bad = "dbg-badbase-" + Guid.NewGuid().ToString("N")[..8];
        await PutAsync(bad, new JsonObject { ["baseUrl"] = "{{ 'not a url ' + environment.variables.CANARY.substring(0, 4) }}" });

        using var run = await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{good}/run", new { });
        var answer = await run.Content.ReadAsByteArrayAsync();
        using var test = await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{good}/test", new { });
        var report = await test.Content.ReadAsByteArrayAsync();
        using var badRun = await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{bad}/run", new { });
        var badAnswer = await badRun.Content.ReadAsByteArrayAsync();
        using var badTest = await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{bad}/test", new { });
        var badReport = await badTest.Content.ReadAsByteArrayAsync();

        Assert.True(run.IsSuccessStatusCode, Encoding.UTF8.GetString(answer));
        Assert.StartsWith("«withheld: the base URL", (string?)JsonNode.Parse(answer)!["outbound"]!["url"]);
        Assert.Contains("«withheld: the base URL", Encoding.UTF8.GetString(report));
        Assert.Equal(400, (int)badRun.StatusCode);
        Assert.Contains("does not give an absolute", Encoding.UTF8.GetString(badAnswer));
        Assert.Contains("does not give an absolute", Encoding.UTF8.GetString(badReport));
        AssertNoPiece(answer, "a run's outbound request");
        AssertNoPiece(report, "the test report");
        AssertNoPiece(badAnswer, "a run's error");
        AssertNoPiece(badReport, "the test report's configuration step");
        Assert.DoesNotContain("not a url " + Canary[..4], Encoding.UTF8.GetString(badAnswer) + Encoding.UTF8.GetString(badReport));
    }
}

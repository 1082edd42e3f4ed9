using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration.Adversarial;

/// <summary>
/// What Keyway accepts from a caller: header values that cannot split a request are refused when
/// saved, and every body it cannot read (malformed, not UTF-8, nested too deep, too large, of the
/// wrong type) is answered with problem+json and a stable code, over HTTP against a real server.
/// </summary>
[Trait("Category", "Integration")]
public sealed class InputHygieneTests(SqliteKeyway fixture) : IClassFixture<SqliteKeyway>
{
    /// <summary>The calls that bind a JSON body, with names that need not exist: binding comes first.</summary>
    private static readonly (HttpMethod Method, string Path, string Code)[] JsonCalls =
    [
        (HttpMethod.Post, "/api/v1/resources/nothing/run", "invalid_json"),
        (HttpMethod.Post, "/api/v1/queries/nothing/run", "invalid_json"),
        (HttpMethod.Put, "/api/v1/environments/production/variables/NOTHING", "invalid_json"),
        (HttpMethod.Post, "/api/v1/keys", "invalid_json"),
        (HttpMethod.Post, "/api/v1/users", "invalid_json"),
        (HttpMethod.Patch, "/api/v1/users/nobody", "invalid_json"),
        (HttpMethod.Post, "/api/v1/resources/nothing/permissions", "invalid_json"),
        (HttpMethod.Put, "/api/v1/resources/nothing/credential?environment=production", "invalid_json"),
        (HttpMethod.Put, "/api/v1/resources/nothing", "invalid_config"),
        (HttpMethod.Put, "/api/v1/queries/nothing", "invalid_config"),
    ];

    public static TheoryData<string, byte[]> BrokenBodies => new()
    {
        { "truncated", "{\"value\": \"abc"u8.ToArray() },
        { "not UTF-8", [.. "{\"value\": "u8, 0xFF, 0xFE, .. "}"u8] },
        { "nested 200 deep", Encoding.UTF8.GetBytes("{\"value\": " + new string('[', 200) + new string(']', 200) + "}") },
        { "not JSON", "value=1&role=admin"u8.ToArray() },
    };

    [Theory]
    [MemberData(nameof(BrokenBodies))]
    public async Task A_body_that_cannot_be_read_is_answered_with_problem_json_and_a_stable_code_on_every_JSON_call(string what, byte[] body)
    {
        foreach (var (method, path, code) in JsonCalls)
        {
            using var request = new HttpRequestMessage(method, path) { Content = new ByteArrayContent(body) };
            request.Content.Headers.ContentType = new("application/json");
            using var response = await fixture.Admin.SendAsync(request);
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{what} {method} {path}: {(int)response.StatusCode} {text}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = JsonNode.Parse(text)!;
            Assert.True(code == (string?)problem["code"], $"{what} {method} {path}: {text}");
            Assert.False(string.IsNullOrWhiteSpace((string?)problem["detail"]), $"{what} {method} {path}: no detail");
        }

        // The sign-in says as little: a password may be in the body.
        using var login = new HttpRequestMessage(HttpMethod.Post, "/api/v1/auth/login") { Content = new ByteArrayContent(body) };
        login.Content.Headers.ContentType = new("application/json");
        await Expect.ProblemAsync(await fixture.Keyway.CreateClient().SendAsync(login), 400, "bad_request");
    }

    [Fact]
    public async Task A_body_of_the_wrong_type_or_none_at_all_is_answered_with_problem_json()
    {
        foreach (var (method, path, code) in JsonCalls.Where(c => c.Code == "invalid_json"))
        {
            using var text = new HttpRequestMessage(method, path) { Content = new StringContent("{}", Encoding.UTF8, "text/plain") };
            await Expect.ProblemAsync(await fixture.Admin.SendAsync(text), 415, "unsupported_media_type");
        }

        // Bytes that are not UTF-8 in a value the call reads.
        foreach (var (path, json) in new[] { ("/api/v1/resources/nothing/run", "method"), ("/api/v1/environments/production/variables/NOTUTF8", "value") })
        {
            using var request = new HttpRequestMessage(path.EndsWith("run", StringComparison.Ordinal) ? HttpMethod.Post : HttpMethod.Put, path)
            {
                Content = new ByteArrayContent([.. Encoding.ASCII.GetBytes($"{{\"{json}\": \"G"), 0xFF, 0xC0, .. "ET\"}"u8]),
            };
            request.Content.Headers.ContentType = new("application/json");
            await Expect.ProblemAsync(await fixture.Admin.SendAsync(request), 400, "invalid_json");
        }

        var missing = await Expect.ProblemAsync(await fixture.Admin.PostAsync("/api/v1/resources/nothing/run", null), 400, "bad_request");
        Assert.Contains("JSON body", (string)missing["detail"]!, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("POST", "/api/v1/resources/nothing/run")]
    [InlineData("PUT", "/api/v1/environments/production/variables/BIG")]
    [InlineData("PUT", "/api/v1/resources/nothing")]
    public async Task A_body_of_100_MB_is_refused_with_payload_too_large_before_it_is_read(string method, string path)
    {
        // Over a raw socket: a client that declares 100 MB and sends the first bytes, as an attacker would.
        var address = new Uri(fixture.Keyway.BaseUrl);
        using var socket = new TcpClient();
        await socket.ConnectAsync(address.Host, address.Port);
        var stream = socket.GetStream();
        var head = $"{method} {path} HTTP/1.1\r\nHost: {address.Authority}\r\nAuthorization: Bearer {fixture.Keyway.AdminToken}\r\n" +
                   $"Content-Type: application/json\r\nContent-Length: {100L * 1024 * 1024}\r\n\r\n{{\"value\": \"";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        await stream.WriteAsync(Encoding.ASCII.GetBytes(new string('x', 64 * 1024)));

        using var reader = new StreamReader(stream, Encoding.UTF8);
        var status = await reader.ReadLineAsync();
        Assert.Equal("HTTP/1.1 413 Payload Too Large", status);
        var headers = new List<string>();
        for (var line = await reader.ReadLineAsync(); !string.IsNullOrEmpty(line); line = await reader.ReadLineAsync())
            headers.Add(line);
        Assert.Contains("Content-Type: application/problem+json", headers);
        var body = await reader.ReadToEndAsync();
        Assert.Contains("\"code\":\"payload_too_large\"", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_unknown_route_and_a_method_a_route_does_not_take_answer_problem_json()
    {
        await Expect.ProblemAsync(await fixture.Admin.GetAsync("/api/v1/no-such-thing"), 404, "not_found");
        await Expect.ProblemAsync(await fixture.Admin.DeleteAsync("/healthz"), 405, "method_not_allowed");
    }

    [Fact]
    public async Task A_line_break_or_NUL_written_into_a_header_or_query_value_is_refused_at_save_with_its_field()
    {
        var resource = KeywayFixture.Unique("crlf");
        var variable = "KEY_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await fixture.SetVariableAsync(variable, "key-" + Guid.NewGuid().ToString("N"), secret: true);
        var refused = await Expect.ProblemAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/resources/{resource}", new
        {
            kind = "rest",
            baseUrl = fixture.Upstream.BaseUrl,
            headers = new Dictionary<string, string> { ["X-Split"] = "a\r\nX-Injected: 1", ["X-Nul"] = "a\0b", ["X-Fine"] = "{{ 'a' }} b" },
            query = new Dictionary<string, string> { ["q"] = "line\nbreak" },
            auth = new { type = "apiKey", @in = "header", name = "X-Api-Key", prefix = "k\r\n", value = $"{{{{ environment.variables.{variable} }}}}" },
        }), 400, "invalid_config");
        var fields = refused["errors"]!.AsArray().Select(e => (string)e!["field"]!).ToList();
        Assert.Equal(new[] { "auth.prefix", "headers.X-Nul", "headers.X-Split", "query.q" }, fields.Order(StringComparer.Ordinal));
        await Expect.ProblemAsync(await fixture.Admin.GetAsync($"/api/v1/resources/{resource}"), 404, "not_found");

        // A saved query's header, the same.
        await fixture.PutResourceAsync(resource, new { kind = "rest", baseUrl = fixture.Upstream.BaseUrl });
        var query = await Expect.ProblemAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/queries/{KeywayFixture.Unique("crlf")}", new
        {
            resource,
            path = "/x",
            headers = new Dictionary<string, string> { ["X-Split"] = "a\nX-Injected: 1" },
        }), 400, "invalid_config");
        Assert.Equal("headers.X-Split", (string)query["errors"]![0]!["field"]!);
    }

    [Fact]
    public async Task A_templated_header_value_that_evaluates_to_a_line_break_is_refused_when_sent_and_nothing_reaches_the_upstream()
    {
        var resource = KeywayFixture.Unique("crlfrun");
        var variable = "SPLIT_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await fixture.SetVariableAsync(variable, "a\r\nX-Injected: 1", secret: false);
        await fixture.PutResourceAsync(resource, new
        {
            kind = "rest",
            baseUrl = fixture.Upstream.BaseUrl,
            headers = new Dictionary<string, string> { ["X-Split"] = $"{{{{ environment.variables.{variable} }}}}" },
        });
        var before = fixture.Upstream.Requests.Count;

        await Expect.ProblemAsync(await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { method = "GET", path = "/crlf" }), 400, "invalid_config");
        await Expect.ProblemAsync(await fixture.Admin.GetAsync($"/proxy/{resource}/crlf"), 400, "invalid_config");
        Assert.DoesNotContain(fixture.Upstream.Requests.Skip(before), r => r.Path.EndsWith("/crlf", StringComparison.Ordinal));
    }
}

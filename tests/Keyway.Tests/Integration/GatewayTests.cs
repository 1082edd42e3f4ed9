using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// The foundation end to end: a real Keyway process on each store, a real upstream, real sockets.
/// Every test here runs once on SQLite and once on PostgreSQL.
/// </summary>
[Trait("Category", "Integration")]
public abstract class GatewayTests<TFixture>(TFixture fixture) : IClassFixture<TFixture>
    where TFixture : KeywayFixture
{
    protected TFixture Fixture { get; } = fixture;

    private HttpClient Admin => Fixture.Admin;

    [Fact]
    public async Task A_run_reaches_the_upstream_with_the_token_attached_server_side()
    {
        var (resource, token) = await Fixture.BearerResourceAsync(new { headers = new { Accept = "application/json" }, query = new { v = "2" } });

        var response = await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new
        {
            method = "POST",
            path = "/items/42",
            query = new { color = "blue" },
            headers = new Dictionary<string, string> { ["X-Trace"] = "t-1", ["Authorization"] = "Bearer caller-own", ["Cookie"] = "session=caller" },
            body = new { name = "widget" },
        });

        var result = await Expect.StatusAsync(response, 200);
        Assert.Equal(200, (int)result["status"]!);
        var seen = Fixture.Upstream.Requests.Single(r => r.Path == "/base/items/42");
        Assert.Equal("POST", seen.Method);
        Assert.Equal("Bearer " + token, seen.Headers["Authorization"]);
        Assert.Equal("t-1", seen.Headers["X-Trace"]);
        Assert.Equal("application/json", seen.Headers["Accept"]);
        Assert.False(seen.Headers.ContainsKey("Cookie"));
        Assert.Equal("blue", seen.Query["color"]);
        Assert.Equal("2", seen.Query["v"]);
        Assert.Equal("{\"name\":\"widget\"}", seen.Body);
        Assert.False((bool)result["refreshed"]!);
        Assert.True((long)result["durationMs"]! >= 0);
    }

    [Fact]
    public async Task The_proxy_streams_through_with_the_resource_credential_and_never_the_callers()
    {
        var (resource, token) = await Fixture.BearerResourceAsync();
        using var client = Fixture.Keyway.CreateClient(Fixture.Keyway.AdminToken);
        using var request = new HttpRequestMessage(HttpMethod.Put, $"/proxy/{resource}/a/b?x=1&x=2")
        {
            Content = new StringContent("raw body", System.Text.Encoding.UTF8, "text/plain"),
        };
        request.Headers.Add("Cookie", "session=caller");
        request.Headers.Add("X-Keyway-Environment", "production");
        request.Headers.Add("X-Custom", "kept");

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var seen = Fixture.Upstream.Requests.Single(r => r.Path == "/base/a/b");
        Assert.Equal("PUT", seen.Method);
        Assert.Equal("Bearer " + token, seen.Headers["Authorization"]);
        Assert.Equal("kept", seen.Headers["X-Custom"]);
        Assert.Equal("raw body", seen.Body);
        Assert.False(seen.Headers.ContainsKey("Cookie"));
        Assert.DoesNotContain(seen.Headers.Keys, h => h.StartsWith("X-Keyway-", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task A_secret_the_upstream_echoes_back_is_redacted_in_runs_and_the_proxy()
    {
        var (resource, token) = await Fixture.BearerResourceAsync();

        var run = await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/echo-header/Authorization" }), 200);
        using var client = Fixture.Keyway.CreateClient(Fixture.Keyway.AdminToken);
        var proxied = await client.GetStringAsync($"/proxy/{resource}/echo-header/Authorization");
        var echoed = await client.GetStringAsync($"/proxy/{resource}/anything");

        Assert.DoesNotContain(token, run.ToJsonString());
        Assert.Contains("[REDACTED]", run.ToJsonString());
        Assert.DoesNotContain(token, proxied);
        Assert.Contains("[REDACTED]", proxied);
        Assert.DoesNotContain(token, echoed);
    }

    [Fact]
    public async Task A_small_response_with_a_length_is_redacted_and_sent_with_its_exact_new_length()
    {
        var (resource, token) = await Fixture.BearerResourceAsync(new { baseUrl = Fixture.Upstream.BaseUrl });
        using var client = Fixture.Keyway.CreateClient(Fixture.Keyway.AdminToken);

        using var response = await client.GetAsync($"/proxy/{resource}/sized-echo/Authorization?pad=100", HttpCompletionOption.ResponseHeadersRead);

        var body = await response.Content.ReadAsByteArrayAsync();
        var text = System.Text.Encoding.UTF8.GetString(body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.DoesNotContain(token, text);
        Assert.Equal(new string('x', 100) + "[REDACTED]", text);
        Assert.NotEqual(true, response.Headers.TransferEncodingChunked);
        Assert.Equal(body.Length, response.Content.Headers.ContentLength);
    }

    [Fact]
    public async Task A_response_larger_than_the_buffer_is_still_streamed_and_redacted()
    {
        var (resource, token) = await Fixture.BearerResourceAsync(new { baseUrl = Fixture.Upstream.BaseUrl });
        using var client = Fixture.Keyway.CreateClient(Fixture.Keyway.AdminToken);
        const int pad = 200_000;

        using var response = await client.GetAsync($"/proxy/{resource}/sized-echo/Authorization?pad={pad}", HttpCompletionOption.ResponseHeadersRead);

        Assert.True(response.Headers.TransferEncodingChunked);
        Assert.Null(response.Content.Headers.ContentLength);
        var text = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain(token, text);
        Assert.Equal(pad + "[REDACTED]".Length, text.Length);
        Assert.EndsWith("x[REDACTED]", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_small_response_without_a_secret_keeps_its_bytes_and_its_length()
    {
        var (resource, _) = await Fixture.BearerResourceAsync(new { baseUrl = Fixture.Upstream.BaseUrl });
        using var client = Fixture.Keyway.CreateClient(Fixture.Keyway.AdminToken);

        using var response = await client.GetAsync($"/proxy/{resource}/big/1000", HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal(1000, response.Content.Headers.ContentLength);
        Assert.NotEqual(true, response.Headers.TransferEncodingChunked);
        Assert.Equal(new string('x', 1000), await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Basic_and_api_key_auth_are_placed_where_configured()
    {
        await Fixture.SetVariableAsync("BASIC_PW", "pw-basic-123", secret: true);
        await Fixture.SetVariableAsync("KEY_VALUE", "key-value-456", secret: true);
        var basic = KeywayFixture.Unique("basic");
        var header = KeywayFixture.Unique("hdr");
        var query = KeywayFixture.Unique("qry");
        var cookie = KeywayFixture.Unique("ck");
        await Fixture.PutResourceAsync(basic, new { baseUrl = Fixture.Upstream.BaseUrl, auth = new { type = "basic", username = "svc", password = "{{ environment.variables.BASIC_PW }}" } });
        await Fixture.PutResourceAsync(header, new { baseUrl = Fixture.Upstream.BaseUrl, auth = new { type = "apiKey", @in = "header", name = "X-Api-Key", prefix = "Key ", value = "{{ environment.variables.KEY_VALUE }}" } });
        await Fixture.PutResourceAsync(query, new { baseUrl = Fixture.Upstream.BaseUrl, auth = new { type = "apiKey", @in = "query", name = "api_key", value = "{{ environment.variables.KEY_VALUE }}" } });
        await Fixture.PutResourceAsync(cookie, new { baseUrl = Fixture.Upstream.BaseUrl, auth = new { type = "apiKey", @in = "cookie", name = "sid", value = "{{ environment.variables.KEY_VALUE }}" } });

        foreach (var name in new[] { basic, header, query, cookie })
        {
            await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{name}/run", new { path = "/" + name }), 200);
        }

        var requests = Fixture.Upstream.Requests;
        Assert.Equal("Basic " + Convert.ToBase64String("svc:pw-basic-123"u8.ToArray()), requests.Single(r => r.Path == "/" + basic).Headers["Authorization"]);
        Assert.Equal("Key key-value-456", requests.Single(r => r.Path == "/" + header).Headers["X-Api-Key"]);
        Assert.Equal("key-value-456", requests.Single(r => r.Path == "/" + query).Query["api_key"]);
        Assert.Equal("key-value-456", requests.Single(r => r.Path == "/" + cookie).Cookies["sid"]);
    }

    [Fact]
    public async Task Secret_values_are_write_only_and_versioned()
    {
        await Fixture.SetVariableAsync("ROTATED", "first-value", secret: true);
        await Fixture.SetVariableAsync("ROTATED", "second-value", secret: true);
        await Fixture.SetVariableAsync("PLAIN_REGION", "eu-west-1", secret: false);

        var secret = await Expect.StatusAsync(await Admin.GetAsync("/api/v1/environments/production/variables/ROTATED"), 200);
        var list = await Expect.StatusAsync(await Admin.GetAsync("/api/v1/environments/production/variables"), 200);
        var plain = await Expect.StatusAsync(await Admin.GetAsync("/api/v1/environments/production/variables/PLAIN_REGION"), 200);

        Assert.Null(secret["value"]);
        Assert.True((bool)secret["secret"]!);
        Assert.Equal(2, (int)secret["version"]!);
        Assert.DoesNotContain("second-value", list.ToJsonString());
        Assert.DoesNotContain("first-value", list.ToJsonString());
        Assert.Equal("eu-west-1", (string?)plain["value"]);
    }

    [Fact]
    public async Task An_invalid_resource_is_refused_with_every_field_and_why()
    {
        var response = await Admin.PutAsJsonAsync($"/api/v1/resources/{KeywayFixture.Unique("bad")}", new
        {
            kind = "soap",
            baseUrl = "ftp://example.com",
            headers = new Dictionary<string, string> { ["Bad Header"] = "x" },
            auth = new { type = "bearer", token = "literal-token-in-config" },
        });

        var problem = await Expect.ProblemAsync(response, 400, "invalid_config");
        var fields = problem["errors"]!.AsArray().Select(e => (string?)e!["field"]).ToList();
        Assert.Contains("kind", fields);
        Assert.Contains("baseUrl", fields);
        Assert.Contains("headers.Bad Header", fields);
        Assert.Contains("auth.token", fields);
        Assert.DoesNotContain("literal-token-in-config", problem.ToJsonString());
    }

    [Theory]
    [InlineData("/../secret")]
    [InlineData("//evil.example/x")]
    [InlineData("http://evil.example/")]
    [InlineData("/a/%2e%2e/%2e%2e/x")]
    [InlineData("/a%0d%0aX-Injected:%201")]
    public async Task A_path_that_escapes_the_base_url_is_refused(string path)
    {
        var (resource, _) = await Fixture.BearerResourceAsync();

        var response = await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path });

        await Expect.ProblemAsync(response, 400, "path_not_allowed");
    }

    [Fact]
    public async Task Limits_and_failures_are_clear_problems()
    {
        var (slow, _) = await Fixture.BearerResourceAsync(new { baseUrl = Fixture.Upstream.BaseUrl, timeouts = new { requestMs = 300 } });
        var (small, _) = await Fixture.BearerResourceAsync(new { baseUrl = Fixture.Upstream.BaseUrl, maxResponseBytes = 100 });
        var unreachable = KeywayFixture.Unique("down");
        await Fixture.PutResourceAsync(unreachable, new { baseUrl = $"http://127.0.0.1:{FreePort.Next()}" });
        var (plain, _) = await Fixture.BearerResourceAsync(new { baseUrl = Fixture.Upstream.BaseUrl });

        await Expect.ProblemAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{slow}/run", new { path = "/slow" }), 504, "upstream_timeout");
        await Expect.ProblemAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{small}/run", new { path = "/big/5000" }), 502, "payload_too_large");
        await Expect.ProblemAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{unreachable}/run", new { path = "/" }), 502, "upstream_unreachable");
        await Expect.ProblemAsync(await Admin.PostAsJsonAsync("/api/v1/resources/no-such-thing/run", new { path = "/" }), 404, "not_found");
        var redirect = await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{plain}/run", new { path = "/redirect", query = new { to = "http://127.0.0.1:1/elsewhere" } }), 200);
        Assert.Equal(302, (int)redirect["status"]!);
    }

    [Fact]
    public async Task Same_origin_redirects_are_followed_only_when_configured_and_never_to_another_origin()
    {
        var (follows, token) = await Fixture.BearerResourceAsync(new { baseUrl = Fixture.Upstream.BaseUrl, followRedirects = "sameOrigin" });
        var (stays, _) = await Fixture.BearerResourceAsync(new { baseUrl = Fixture.Upstream.BaseUrl });
        var target = "/" + KeywayFixture.Unique("target");
        var elsewhere = Fixture.Upstream.BaseUrl.Replace("127.0.0.1", "localhost", StringComparison.Ordinal) + "/" + KeywayFixture.Unique("other");

        var followed = await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{follows}/run", new { path = "/redirect", query = new { to = target } }), 200);
        var notFollowed = await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{stays}/run", new { path = "/redirect", query = new { to = target + "-no" } }), 200);
        var crossOrigin = await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{follows}/run", new { path = "/redirect", query = new { to = elsewhere } }), 200);

        Assert.Equal(200, (int)followed["status"]!);
        Assert.Equal("Bearer " + token, Fixture.Upstream.Requests.Single(r => r.Path == target).Headers["Authorization"]);
        Assert.Equal(302, (int)notFollowed["status"]!);
        Assert.DoesNotContain(Fixture.Upstream.Requests, r => r.Path == target + "-no");
        Assert.Equal(302, (int)crossOrigin["status"]!);
        Assert.DoesNotContain(Fixture.Upstream.Requests, r => elsewhere.EndsWith(r.Path, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_missing_or_unknown_key_is_refused()
    {
        using var anonymous = Fixture.Keyway.CreateClient();
        using var wrong = Fixture.Keyway.CreateClient("kw_not_a_real_key");

        await Expect.ProblemAsync(await anonymous.GetAsync("/api/v1/resources"), 401, "unauthorized");
        await Expect.ProblemAsync(await wrong.GetAsync("/api/v1/resources"), 401, "unauthorized");
        await Expect.ProblemAsync(await wrong.GetAsync("/proxy/anything/x"), 401, "unauthorized");
    }

    [Fact]
    public async Task Environments_pick_their_own_variable_values()
    {
        var env = KeywayFixture.Unique("env");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/environments/{env}", new { description = "test" }));
        await Fixture.SetVariableAsync("REGION_TOKEN", "prod-token-value", secret: true);
        await Fixture.SetVariableAsync("REGION_TOKEN", "staging-token-value", secret: true, environment: env);
        var resource = KeywayFixture.Unique("envres");
        await Fixture.PutResourceAsync(resource, new { baseUrl = Fixture.Upstream.BaseUrl, auth = new { type = "bearer", token = "{{ environment.variables.REGION_TOKEN }}" } });
        using var client = Fixture.Keyway.CreateClient(Fixture.Keyway.AdminToken);
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/proxy/{resource}/{env}");
        request.Headers.Add("X-Keyway-Environment", env);

        (await client.SendAsync(request)).EnsureSuccessStatusCode();
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/prod-" + env }), 200);

        Assert.Equal("Bearer staging-token-value", Fixture.Upstream.Requests.Single(r => r.Path == "/" + env).Headers["Authorization"]);
        Assert.Equal("Bearer prod-token-value", Fixture.Upstream.Requests.Single(r => r.Path == "/prod-" + env).Headers["Authorization"]);
    }

    [Fact]
    public async Task A_variable_missing_in_an_environment_is_a_clear_error()
    {
        var env = KeywayFixture.Unique("empty");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/environments/{env}", new { }));
        var (resource, _) = await Fixture.BearerResourceAsync();

        var problem = await Expect.ProblemAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { environment = env, path = "/" }), 400, "invalid_config");

        Assert.Contains("not set in the environment", (string?)problem["detail"]);
    }

    [Fact]
    public async Task Saved_queries_run_with_inputs_and_every_body_kind()
    {
        var (resource, token) = await Fixture.BearerResourceAsync();
        await Fixture.SetVariableAsync("PAGE_SIZE", "25", secret: false);
        var json = KeywayFixture.Unique("qjson");
        var form = KeywayFixture.Unique("qform");
        var raw = KeywayFixture.Unique("qraw");
        var graphql = KeywayFixture.Unique("qgql");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/queries/{json}", new
        {
            resource,
            method = "POST",
            path = "/users/{{ inputs.id }}",
            query = new { size = "{{ environment.variables.PAGE_SIZE }}" },
            headers = new Dictionary<string, string> { ["X-User"] = "{{ current_user.name }}" },
            body = new { type = "json", json = new { count = "{{ inputs.count }}", label = "n={{ inputs.count + 1 }}" } },
        }));
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/queries/{form}", new
        {
            resource,
            method = "POST",
            path = "/form",
            body = new { type = "form", fields = new { a = "{{ inputs.a }}", b = "x y" } },
        }));
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/queries/{raw}", new
        {
            resource,
            method = "PUT",
            path = "/raw",
            body = new { type = "raw", text = "hello {{ inputs.who }}", contentType = "text/plain" },
        }));
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/queries/{graphql}", new
        {
            resource,
            method = "POST",
            path = "/graphql",
            body = new { type = "graphql", query = "query($id: ID!) { user(id: $id) { name } }", variables = new { id = "{{ inputs.id }}" } },
        }));

        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/queries/{json}/run", new { inputs = new { id = 7, count = 3 } }), 200);
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/queries/{form}/run", new { inputs = new { a = "1&2" } }), 200);
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/queries/{raw}/run", new { inputs = new { who = "world" } }), 200);
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/queries/{graphql}/run", new { inputs = new { id = "u1" } }), 200);

        var requests = Fixture.Upstream.Requests;
        var jsonSeen = requests.Single(r => r.Path == "/base/users/7");
        Assert.Equal("{\"count\":3,\"label\":\"n=4\"}", jsonSeen.Body);
        Assert.Equal("25", jsonSeen.Query["size"]);
        Assert.Equal("admin", jsonSeen.Headers["X-User"]);
        Assert.Equal("Bearer " + token, jsonSeen.Headers["Authorization"]);
        Assert.Equal("a=1%262&b=x%20y", requests.Single(r => r.Path == "/base/form").Body);
        Assert.Equal("hello world", requests.Single(r => r.Path == "/base/raw").Body);
        var gql = JsonNode.Parse(requests.Single(r => r.Path == "/base/graphql").Body)!;
        Assert.Equal("u1", (string?)gql["variables"]!["id"]);
        Assert.StartsWith("query(", (string?)gql["query"]);
    }

    [Fact]
    public async Task A_query_cannot_read_a_secret_variable()
    {
        var (resource, token) = await Fixture.BearerResourceAsync();
        await Fixture.SetVariableAsync("QUERY_FORBIDDEN", "do-not-leak-this", secret: true);
        var name = KeywayFixture.Unique("qsecret");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/queries/{name}", new
        {
            resource,
            method = "POST",
            path = "/leak",
            body = new { type = "raw", text = "{{ environment.variables.QUERY_FORBIDDEN }}" },
        }));

        var problem = await Expect.ProblemAsync(await Admin.PostAsJsonAsync($"/api/v1/queries/{name}/run", new { }), 400, "invalid_config");

        Assert.DoesNotContain("do-not-leak-this", problem.ToJsonString());
        Assert.DoesNotContain(Fixture.Upstream.Requests, r => r.Path == "/base/leak");
        _ = token;
    }

    [Fact]
    public async Task Health_readiness_metrics_and_the_api_description_are_served()
    {
        using var anonymous = Fixture.Keyway.CreateClient();

        Assert.Equal("ok", await anonymous.GetStringAsync("/healthz"));
        Assert.Equal("ready", await anonymous.GetStringAsync("/readyz"));
        // By default /metrics carries Keyway's own meter: a proxied run shows up once the audit writer has it.
        var (resource, _) = await Fixture.BearerResourceAsync();
        await Expect.StatusAsync(await Admin.GetAsync($"/proxy/{resource}/metered"), 200);
        var metrics = "";
        await Poll.UntilAsync(async () => (metrics = await anonymous.GetStringAsync("/metrics")).Split('\n').Any(line =>
                line.StartsWith("keyway_run_duration_seconds_count{", StringComparison.Ordinal) && line.Contains($"resource=\"{resource}\"", StringComparison.Ordinal)
                && line.Contains("kind=\"proxy\"", StringComparison.Ordinal) && line.Contains("status=\"2xx\"", StringComparison.Ordinal)
                && line.Contains("environment=\"production\"", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(15), "the proxied run in keyway_run_duration_seconds");
        Assert.Contains("keyway_audit_events", metrics);
        Assert.DoesNotContain("http_server_request_duration", metrics);
        var openapi = JsonNode.Parse(await anonymous.GetStringAsync("/openapi/v1.json"))!;
        Assert.NotNull(openapi["paths"]!["/api/v1/resources/{name}/run"]);
        var reference = await anonymous.GetAsync("/api/reference");
        if (reference.StatusCode == HttpStatusCode.Found)
        {
            reference = await anonymous.GetAsync(new Uri(new Uri(Fixture.Keyway.BaseUrl + "/api/reference"), reference.Headers.Location!));
        }

        Assert.Equal(HttpStatusCode.OK, reference.StatusCode);
        Assert.Contains("Keyway API", await reference.Content.ReadAsStringAsync());
    }
}

public sealed class SqliteGatewayTests(SqliteKeyway fixture) : GatewayTests<SqliteKeyway>(fixture);

public sealed class PostgresGatewayTests(PostgresKeyway fixture) : GatewayTests<PostgresKeyway>(fixture);

using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration.Adversarial;

/// <summary>
/// A real <c>keyway serve</c> in front of an upstream that echoes a secret back in every form it can
/// be written in (JSON escapes, percent, base64 alone and as <c>user:secret</c>, HTML references,
/// UTF-16), compressed or not: what the caller receives holds none of them, searched in the raw bytes
/// and in every decoding of them.
/// </summary>
public sealed class RedactionEncodingFixture : IAsyncLifetime
{
    public const string Canary = "CANARY/7f3a 9c1e+secret&value";
    public const string OldCanary = "OLD-CANARY/0b1d 8e2f+previous";
    public const string StagingCanary = "STAGING-CANARY/55aa 77cc+other";

    /// <summary>What the upstream echoes for <c>?source=fixed</c>.</summary>
    public string Fixed { get; set; } = "";

    public KeywayProcess Keyway { get; private set; } = null!;

    public UpstreamServer Upstream { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Upstream = await UpstreamServer.StartAsync(app => app.MapEchoForms(() => Fixed));
        Keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_test_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_ADMIN_PASSWORD"] = "admin-password-" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
            // Each request is its own audit event, path included: what these tests check is redacted.
            ["KEYWAY_AUDIT_TRAFFIC"] = "each",
        });
        Admin = Keyway.CreateAdminClient();
        // A previous version, then the current one; another environment's value of the same variable.
        await PutAsync("/api/v1/environments/production/variables/CANARY", new { value = OldCanary, secret = true });
        await PutAsync("/api/v1/environments/production/variables/CANARY", new { value = Canary, secret = true });
        await PutAsync("/api/v1/environments/staging", new { });
        await PutAsync("/api/v1/environments/staging/variables/CANARY", new { value = StagingCanary, secret = true });
        await PutAsync("/api/v1/resources/echo", new
        {
            baseUrl = Upstream.BaseUrl,
            headers = new Dictionary<string, string> { ["X-Echo"] = "{{ environment.variables.CANARY }}" },
            auth = new { type = "basic", username = "svc", password = "{{ environment.variables.CANARY }}" },
            maxResponseBytes = 100_000,
        });
    }

    private async Task PutAsync(string path, object body)
    {
        using var response = await Admin.PutAsJsonAsync(path, body);
        Assert.True(response.IsSuccessStatusCode, $"PUT {path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    public async Task DisposeAsync()
    {
        Admin.Dispose();
        await Keyway.DisposeAsync();
        await Upstream.DisposeAsync();
    }
}

[Trait("Category", "Integration")]
public sealed class RedactionEncodingTests(RedactionEncodingFixture fixture) : IClassFixture<RedactionEncodingFixture>
{
    private const string Canary = RedactionEncodingFixture.Canary;

    public static TheoryData<string> Forms() => [.. SecretForms.Of(Canary).Keys];

    [Theory]
    [MemberData(nameof(Forms))]
    public async Task Every_form_of_the_secret_echoed_by_the_upstream_is_redacted_through_run_and_proxy(string form)
    {
        foreach (var type in new[] { "json", "text", "html" })
        {
            var path = $"/forms/{form}?type={type}";
            var run = await RunAsync(path);
            AssertNothingOf(run, Canary, $"/run {path}");
            Assert.Contains("[REDACTED]", Encoding.UTF8.GetString(run));

            var proxied = await ProxyAsync(path);
            AssertNothingOf(proxied, Canary, $"/proxy {path}");
            Assert.Contains("[REDACTED]", Encoding.UTF8.GetString(proxied));
        }
    }

    [Theory]
    [InlineData("gzip")]
    [InlineData("deflate")]
    [InlineData("br")]
    public async Task A_compressed_answer_is_decoded_redacted_and_sent_uncompressed(string encoding)
    {
        var path = $"/forms/all?encoding={encoding}";

        using var proxied = await fixture.Admin.GetAsync("/proxy/echo" + path);
        var bytes = await proxied.Content.ReadAsByteArrayAsync();
        Assert.Equal(HttpStatusCode.OK, proxied.StatusCode);
        Assert.Empty(proxied.Content.Headers.ContentEncoding);
        AssertNothingOf(bytes, Canary, "/proxy " + path);
        var echoed = JsonNode.Parse(bytes)!["echo"]!.GetValue<string>();
        Assert.Contains("[REDACTED]", echoed);

        var run = await RunAsync(path);
        AssertNothingOf(run, Canary, "/run " + path);
        var answer = JsonNode.Parse(run)!;
        Assert.Null(answer["bodyEncoding"]);
        Assert.Contains("[REDACTED]", answer["body"]!["echo"]!.GetValue<string>());
        Assert.False(answer["headers"]!.AsObject().ContainsKey("Content-Encoding"));

        // Keyway asked for no compression: the upstream compressed anyway.
        Assert.All(fixture.Upstream.Requests.Where(r => r.Path == "/forms/all"), r => Assert.Equal("identity", r.Headers["Accept-Encoding"]));
    }

    [Fact]
    public async Task An_answer_in_an_encoding_keyway_cannot_decode_is_refused_with_a_problem()
    {
        using var proxied = await fixture.Admin.GetAsync("/proxy/echo/forms/raw?encoding=x-custom");
        var proxyProblem = await Expect.ProblemAsync(proxied, 502, "upstream_encoding_unsupported");
        Assert.Contains("x-custom", proxyProblem["detail"]!.GetValue<string>());

        using var run = await fixture.Admin.PostAsJsonAsync("/api/v1/resources/echo/run", new { path = "/forms/raw", query = new { encoding = "x-custom" } });
        await Expect.ProblemAsync(run, 502, "upstream_encoding_unsupported");
    }

    [Fact]
    public async Task A_compressed_answer_that_decodes_past_the_response_limit_is_cut_there()
    {
        // 5 MB of zeros gzip to a few kilobytes; the resource's limit is 100,000 bytes.
        using var run = await fixture.Admin.PostAsJsonAsync("/api/v1/resources/echo/run", new { path = "/bomb", query = new { encoding = "gzip", size = "5000000" } });
        await Expect.ProblemAsync(run, 502, "payload_too_large");

        long received = 0;
        try
        {
            using var proxied = await fixture.Admin.GetAsync("/proxy/echo/bomb?encoding=gzip&size=5000000", HttpCompletionOption.ResponseHeadersRead);
            await using var body = await proxied.Content.ReadAsStreamAsync();
            var buffer = new byte[64 * 1024];
            int read;
            while ((read = await body.ReadAsync(buffer)) > 0)
            {
                received += read;
            }

            Assert.NotEqual(HttpStatusCode.OK, proxied.StatusCode);
        }
        catch (HttpRequestException)
        {
            // The body was cut short after its headers went out: as good a refusal as a streamed answer allows.
        }
        catch (IOException)
        {
        }

        Assert.True(received <= 100_000 + 64 * 1024, $"The proxy passed {received} decoded bytes on.");
    }

    [Theory]
    [InlineData(RedactionEncodingFixture.OldCanary)]
    [InlineData(RedactionEncodingFixture.StagingCanary)]
    public async Task A_previous_version_and_another_environments_value_are_redacted_too(string value)
    {
        fixture.Fixed = value;
        foreach (var form in new[] { "raw", "json-u-lower", "percent-lower", "base64-any-user", "html-hex", "utf-16le", "all" })
        {
            var path = $"/forms/{form}?source=fixed";
            AssertNothingOf(await RunAsync(path), value, "/run " + path);
            AssertNothingOf(await ProxyAsync(path), value, "/proxy " + path);
        }
    }

    [Fact]
    public async Task The_basic_auth_pair_echoed_by_the_upstream_is_redacted()
    {
        var run = await RunAsync("/echo-header/Authorization");
        var proxied = await ProxyAsync("/echo-header/Authorization");

        var pair = Convert.ToBase64String(Encoding.UTF8.GetBytes("svc:" + Canary));
        Assert.Contains(fixture.Upstream.Requests, r => r.Headers.TryGetValue("Authorization", out var value) && value == "Basic " + pair);
        AssertNothingOf(run, Canary, "/run basic");
        AssertNothingOf(proxied, Canary, "/proxy basic");
    }

    [Fact]
    public async Task A_secret_in_a_failing_login_steps_answer_is_redacted_from_the_error()
    {
        var resource = KeywayFixture.Unique("flow");
        using var put = await fixture.Admin.PutAsJsonAsync($"/api/v1/resources/{resource}", new JsonObject
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
                        ["method"] = "GET",
                        // The login answers 500 with every form of the secret in its body: the step fails and quotes the answer.
                        ["url"] = fixture.Upstream.BaseUrl + "/forms/all?type=text&status=500",
                        ["headers"] = new JsonObject { ["X-Echo"] = "{{ environment.variables.CANARY }}" },
                    },
                    new JsonObject { ["type"] = "variable", ["name"] = "TOKEN", ["value"] = "{{ login.body.token.value }}" }),
                ["apply"] = new JsonObject { ["headers"] = new JsonObject { ["Authorization"] = "Bearer {{ TOKEN }}" } },
                ["expiresIn"] = "3600",
            },
        });
        Assert.True(put.IsSuccessStatusCode, await put.Content.ReadAsStringAsync());

        using var run = await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/anything" });
        var bytes = await run.Content.ReadAsByteArrayAsync();
        Assert.False(run.IsSuccessStatusCode);
        AssertNothingOf(bytes, Canary, "the flow's error");
        using var test = await fixture.Admin.PostAsync($"/api/v1/resources/{resource}/test", null);
        AssertNothingOf(await test.Content.ReadAsByteArrayAsync(), Canary, "the flow's test report");
    }

    [Fact]
    public async Task A_secret_in_any_form_in_a_proxied_request_is_redacted_from_the_audit_log()
    {
        var marker = Guid.NewGuid().ToString("N");
        var forms = SecretForms.Of(Canary);
        // Forms a URL carries as they are (a percent-encoded JSON escape would be two encodings deep).
        var note = forms["percent-lower"] + "." + forms["percent-plus"] + "." + forms["base64url"] + "." + forms["base64url-offset-1"];
        using (var response = await fixture.Admin.GetAsync($"/proxy/echo/anything/{marker}?note={note}"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        byte[] audit = [];
        await Poll.UntilAsync(async () =>
        {
            using var response = await fixture.Admin.GetAsync("/api/v1/audit?resource=echo&limit=1000");
            audit = await response.Content.ReadAsByteArrayAsync();
            return Encoding.UTF8.GetString(audit).Contains(marker, StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(15), "the proxied request to reach the audit log");

        AssertNothingOf(audit, Canary, "the audit log");
        Assert.DoesNotContain(RedactionEncodingFixture.OldCanary, Encoding.UTF8.GetString(audit));
    }

    private async Task<byte[]> RunAsync(string pathAndQuery)
    {
        var q = pathAndQuery.IndexOf('?', StringComparison.Ordinal);
        var query = q < 0 ? new Dictionary<string, string>() : pathAndQuery[(q + 1)..].Split('&').Select(p => p.Split('=', 2))
            .ToDictionary(p => p[0], p => Uri.UnescapeDataString(p[1]));
        using var response = await fixture.Admin.PostAsJsonAsync("/api/v1/resources/echo/run",
            new { path = q < 0 ? pathAndQuery : pathAndQuery[..q], query });
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"/run {pathAndQuery}: {(int)response.StatusCode} {Encoding.UTF8.GetString(bytes)}");
        return bytes;
    }

    private async Task<byte[]> ProxyAsync(string pathAndQuery)
    {
        using var response = await fixture.Admin.GetAsync("/proxy/echo" + pathAndQuery);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"/proxy {pathAndQuery}: {(int)response.StatusCode}");
        return bytes;
    }

    /// <summary>
    /// No form of <paramref name="secret"/> in <paramref name="raw"/>: not in its bytes, and not in any
    /// decoding of it or of any JSON string in it (a /run answer holds the upstream's body as JSON).
    /// </summary>
    internal static void AssertNothingOf(byte[] raw, string secret, string what)
    {
        var latin1 = Encoding.Latin1.GetString(raw);
        foreach (var (name, form) in SecretForms.Of(secret))
        {
            Assert.False(latin1.Contains(form, StringComparison.Ordinal), $"{what}: the {name} form of the secret is in the bytes received.");
        }

        var texts = new List<string> { latin1, Encoding.UTF8.GetString(raw) };
        try
        {
            using var document = JsonDocument.Parse(raw);
            Collect(document.RootElement, texts);
        }
        catch (JsonException)
        {
        }

        // A fragment of the value that only its whole form would carry.
        var core = secret[(secret.IndexOf('/', StringComparison.Ordinal) + 1)..];
        foreach (var text in texts)
        {
            var decoded = SecretForms.Decoded(text);
            Assert.False(decoded.Contains(core, StringComparison.Ordinal), $"{what}: the secret is in a decoding of what was received.");
            foreach (var (name, form) in SecretForms.Of(secret).Where(f => !f.Key.StartsWith("utf-16", StringComparison.Ordinal)))
            {
                Assert.False(decoded.Contains(form, StringComparison.Ordinal), $"{what}: the {name} form of the secret is in a decoding of what was received.");
            }
        }
    }

    private static void Collect(JsonElement element, List<string> texts)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    texts.Add(property.Name);
                    Collect(property.Value, texts);
                }

                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    Collect(item, texts);
                }

                break;
            case JsonValueKind.String:
                texts.Add(element.GetString()!);
                break;
        }
    }
}

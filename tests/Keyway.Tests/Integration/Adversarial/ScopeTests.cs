using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration.Adversarial;

/// <summary>
/// Finding 4 of the attack on Keyway: an admin's API key scoped to
/// <c>{"resources":["conf"],"actions":["use"]}</c> listed every user's keys and revoked them,
/// because key management checked the owner's role and not the key's scope. Replayed here, with
/// the neighbouring account actions (creating keys, revoking siblings, changing the password,
/// promoting a user) and the checks that nothing changed afterwards.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ScopeTests(SqliteKeyway fixture) : IClassFixture<SqliteKeyway>
{
    private HttpClient Admin => fixture.Admin;

    [Fact]
    public async Task An_admins_key_scoped_to_use_one_resource_lists_only_its_owners_keys()
    {
        var (_, memberKeyId, _) = await MemberWithKeyAsync();
        using var scoped = await ScopedAdminKeyAsync(new { resources = new[] { "conf" }, actions = new[] { "use" } });

        var list = await Expect.StatusAsync(await scoped.GetAsync("/api/v1/keys"), 200);

        var keys = list["keys"]!.AsArray();
        Assert.NotEmpty(keys);
        Assert.DoesNotContain(keys, k => (string)k!["id"]! == memberKeyId);
        Assert.All(keys, k => Assert.Equal("admin", (string?)k!["owner"]));
    }

    [Fact]
    public async Task An_admins_scoped_key_cannot_revoke_another_users_key_and_that_key_keeps_working()
    {
        var (member, memberKeyId, memberClient) = await MemberWithKeyAsync();
        using var scoped = await ScopedAdminKeyAsync(new { resources = new[] { "conf" }, actions = new[] { "use" } });

        var problem = await Expect.ProblemAsync(await scoped.DeleteAsync($"/api/v1/keys/{memberKeyId}"), 403, "forbidden");

        Assert.Contains("scoped", (string?)problem["detail"], StringComparison.Ordinal);
        var me = await Expect.StatusAsync(await memberClient.GetAsync("/api/v1/me"), 200);
        Assert.Equal(member, (string?)me["name"]);
        var all = await Expect.StatusAsync(await Admin.GetAsync("/api/v1/keys"), 200);
        var key = Assert.Single(all["keys"]!.AsArray(), k => (string)k!["id"]! == memberKeyId);
        Assert.Null((string?)key!["revokedAt"]);
    }

    [Theory]
    [InlineData("{\"resources\":[\"conf\"]}")]
    [InlineData("{\"environments\":[\"production\"]}")]
    [InlineData("{\"actions\":[\"own\"]}")]
    [InlineData("{\"resources\":[\"conf\"],\"actions\":[\"admin\"]}")]
    public async Task An_admins_key_scoped_short_of_admin_over_everything_manages_no_one_elses_keys_or_account(string scope)
    {
        var (member, memberKeyId, _) = await MemberWithKeyAsync();
        using var scoped = await ScopedAdminKeyAsync(JsonNode.Parse(scope)!);

        await Expect.ProblemAsync(await scoped.DeleteAsync($"/api/v1/keys/{memberKeyId}"), 403, "forbidden");
        await Expect.ProblemAsync(await scoped.PostAsJsonAsync("/api/v1/keys", new { name = "minted", owner = member }), 403, "forbidden");
        await Expect.ProblemAsync(await scoped.PostAsJsonAsync("/api/v1/keys", new { name = "minted" }), 403, "forbidden");
        await Expect.ProblemAsync(await scoped.PatchAsJsonAsync($"/api/v1/users/{member}", new { role = "admin" }), 403, "forbidden");
        await Expect.ProblemAsync(await scoped.GetAsync("/api/v1/audit"), 403, "forbidden");
        await Expect.ProblemAsync(await scoped.GetAsync("/api/v1/operator/routes"), 403, "forbidden");

        var user = await Expect.StatusAsync(await Admin.GetAsync($"/api/v1/users/{member}"), 200);
        Assert.Equal("member", (string?)user["role"]);
        var all = await Expect.StatusAsync(await Admin.GetAsync("/api/v1/keys"), 200);
        Assert.DoesNotContain(all["keys"]!.AsArray(), k => (string)k!["name"]! == "minted");
        Assert.Null((string?)all["keys"]!.AsArray().Single(k => (string)k!["id"]! == memberKeyId)!["revokedAt"]);
    }

    [Fact]
    public async Task An_admins_key_scoped_to_admin_over_everything_manages_every_key()
    {
        var (_, memberKeyId, memberClient) = await MemberWithKeyAsync();
        using var scoped = await ScopedAdminKeyAsync(new { actions = new[] { "admin" } });

        var list = await Expect.StatusAsync(await scoped.GetAsync("/api/v1/keys"), 200);
        Assert.Contains(list["keys"]!.AsArray(), k => (string)k!["id"]! == memberKeyId);
        await Expect.StatusAsync(await scoped.DeleteAsync($"/api/v1/keys/{memberKeyId}"), 204);

        await Expect.StatusAsync(await memberClient.GetAsync("/api/v1/me"), 401);
    }

    [Fact]
    public async Task A_members_scoped_key_revokes_itself_but_neither_creates_keys_nor_revokes_its_siblings()
    {
        var (member, siblingId, sibling) = await MemberWithKeyAsync();
        var created = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "scoped", owner = member, scopes = new { actions = new[] { "use" } } }), 201);
        using var scoped = fixture.Keyway.CreateClient((string)created["token"]!);
        var scopedId = (string)created["key"]!["id"]!;

        var own = await Expect.StatusAsync(await scoped.GetAsync("/api/v1/keys"), 200);
        Assert.Contains(own["keys"]!.AsArray(), k => (string)k!["id"]! == siblingId);
        await Expect.ProblemAsync(await scoped.PostAsJsonAsync("/api/v1/keys", new { name = "minted" }), 403, "forbidden");
        await Expect.ProblemAsync(await scoped.DeleteAsync($"/api/v1/keys/{siblingId}"), 403, "forbidden");
        await Expect.ProblemAsync(await scoped.PostAsJsonAsync("/api/v1/me/password", new { current = "x", @new = "another-password-123" }), 403, "forbidden");
        await Expect.StatusAsync(await sibling.GetAsync("/api/v1/me"), 200);

        await Expect.StatusAsync(await scoped.DeleteAsync($"/api/v1/keys/{scopedId}"), 204);
        await Expect.StatusAsync(await scoped.GetAsync("/api/v1/me"), 401);
    }

    [Fact]
    public async Task A_key_scoped_to_one_environment_sees_that_environment_alone()
    {
        var staging = KeywayFixture.Unique("stg");
        await Expect.SuccessAsync(await Admin.PutAsJsonAsync($"/api/v1/environments/{staging}", new { }));
        using var scoped = await ScopedAdminKeyAsync(new { environments = new[] { staging } });

        var list = await Expect.StatusAsync(await scoped.GetAsync("/api/v1/environments"), 200);

        Assert.Equal([staging], list["environments"]!.AsArray().Select(e => (string)e!["name"]!));
        await Expect.StatusAsync(await scoped.GetAsync($"/api/v1/environments/{staging}"), 200);
        await Expect.ProblemAsync(await scoped.GetAsync("/api/v1/environments/production"), 403, "forbidden");
        await Expect.ProblemAsync(await scoped.GetAsync("/api/v1/environments/production/variables"), 403, "forbidden");
    }

    private async Task<(string Name, string KeyId, HttpClient Client)> MemberWithKeyAsync()
    {
        var name = KeywayFixture.Unique("victim");
        await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/users", new { name }), 201);
        var key = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "app", owner = name }), 201);
        return (name, (string)key["key"]!["id"]!, fixture.Keyway.CreateClient((string)key["token"]!));
    }

    private async Task<HttpClient> ScopedAdminKeyAsync(object scopes)
    {
        var key = await Expect.StatusAsync(await Admin.PostAsJsonAsync("/api/v1/keys", new { name = "scoped", scopes }), 201);
        return fixture.Keyway.CreateClient((string)key["token"]!);
    }
}

using Keyway.Access;
using Keyway.Api;

namespace Keyway.Tests.Access;

/// <summary>The rules of <see cref="AccessPolicy"/>, over fixed grants.</summary>
public sealed class AccessPolicyTests
{
    private static readonly DateTimeOffset At = DateTimeOffset.UnixEpoch;

    private static GrantInfo Grant(string resource, string kind, string principal, string permission, string environment = "*") =>
        new("g-" + Guid.NewGuid().ToString("N")[..6], resource, kind, principal, principal, permission, environment, At, null);

    private static Caller Member(string id = "u1", params string[] groups) => new(id, "alice", Caller.MemberRole, null, null) { Groups = groups };

    [Fact]
    public void Own_includes_edit_which_includes_use_which_includes_read()
    {
        var policy = new AccessPolicy([Grant("billing", PrincipalKinds.User, "u1", "edit")]);

        Assert.True(policy.Allows(Member(), Permission.Read, "billing", null));
        Assert.True(policy.Allows(Member(), Permission.Use, "billing", "production"));
        Assert.True(policy.Allows(Member(), Permission.Edit, "billing", null));
        Assert.False(policy.Allows(Member(), Permission.Own, "billing", null));
        Assert.False(policy.Allows(Member(), Permission.Use, "payroll", "production"));
    }

    [Fact]
    public void A_per_environment_grant_holds_in_that_environment_only()
    {
        var policy = new AccessPolicy([Grant("billing", PrincipalKinds.Group, "qa", "use", "staging")]);

        Assert.True(policy.Allows(Member("u1", "qa"), Permission.Use, "billing", "staging"));
        Assert.False(policy.Allows(Member("u1", "qa"), Permission.Use, "billing", "production"));
        Assert.False(policy.Allows(Member("u1", "dev"), Permission.Use, "billing", "staging"));
        // Seeing the resource needs a grant in some environment.
        Assert.True(policy.Allows(Member("u1", "qa"), Permission.Read, "billing", null));
    }

    [Fact]
    public void Edit_in_one_environment_does_not_change_the_configuration_every_environment_shares()
    {
        var policy = new AccessPolicy([Grant("billing", PrincipalKinds.User, "u1", "edit", "staging")]);

        Assert.True(policy.Allows(Member(), Permission.Edit, "billing", "staging"));
        Assert.False(policy.Allows(Member(), Permission.Edit, "billing", null));
    }

    [Fact]
    public void A_grant_on_every_resource_covers_each_one_and_members_are_never_admins()
    {
        var policy = new AccessPolicy([Grant("*", PrincipalKinds.User, "u1", "own")]);

        Assert.True(policy.Allows(Member(), Permission.Own, "anything", null));
        Assert.False(policy.Allows(Member(), Permission.Admin, null, null));
    }

    [Fact]
    public void A_grant_to_everyone_holds_for_every_caller_in_its_environment_and_a_key_scope_still_narrows_it()
    {
        var policy = new AccessPolicy([Grant("billing", PrincipalKinds.Everyone, "*", "use", "staging")]);

        Assert.True(policy.Allows(Member("u1"), Permission.Use, "billing", "staging"));
        Assert.True(policy.Allows(Member("u2", "dev"), Permission.Use, "billing", "staging"));
        Assert.False(policy.Allows(Member("u1"), Permission.Use, "billing", "production"));
        Assert.False(policy.Allows(Member("u1"), Permission.Edit, "billing", "staging"));
        Assert.False(policy.Allows(Member("u1"), Permission.Use, "payroll", "staging"));
        var scoped = Member("u3") with { Scope = new KeyScope(["payroll"], null, null) };
        Assert.False(policy.Allows(scoped, Permission.Use, "billing", "staging"));
    }

    [Fact]
    public void A_key_scope_narrows_even_an_admin()
    {
        var policy = new AccessPolicy([]);
        var admin = new Caller("a", "admin", Caller.AdminRole, "key_1", null) { Scope = new KeyScope(["billing"], ["staging"], ["use"]) };

        Assert.True(policy.Allows(admin, Permission.Use, "billing", "staging"));
        Assert.False(policy.Allows(admin, Permission.Use, "payroll", "staging"));
        Assert.False(policy.Allows(admin, Permission.Use, "billing", "production"));
        Assert.False(policy.Allows(admin, Permission.Edit, "billing", "staging"));
        Assert.False(policy.Allows(admin, Permission.Admin, null, null));
    }

    [Fact]
    public void A_key_limited_to_use_may_read_but_not_edit_and_an_admin_action_covers_everything()
    {
        var policy = new AccessPolicy([Grant("billing", PrincipalKinds.User, "u1", "own")]);
        var useOnly = Member() with { ApiKeyId = "key_1", Scope = new KeyScope(null, null, ["use"]) };
        var admin = new Caller("a", "admin", Caller.AdminRole, "key_2", null) { Scope = new KeyScope(null, null, ["admin"]) };

        Assert.True(policy.Allows(useOnly, Permission.Read, "billing", null));
        Assert.True(policy.Allows(useOnly, Permission.Use, "billing", "production"));
        Assert.False(policy.Allows(useOnly, Permission.Edit, "billing", null));
        Assert.True(policy.Allows(admin, Permission.Admin, null, null));
        Assert.True(policy.Allows(admin, Permission.Own, "billing", null));
    }

    [Fact]
    public void A_refusal_says_what_is_missing_and_names_the_owners_to_ask()
    {
        var policy = new AccessPolicy([Grant("billing", PrincipalKinds.User, "u9", "own"), Grant("billing", PrincipalKinds.Group, "ops", "own")]);

        var e = Assert.Throws<AccessDeniedException>(() => policy.Demand(Member(), Permission.Use, "billing", "production"));

        Assert.Equal(403, e.Status);
        Assert.Equal("forbidden", e.Code);
        Assert.Contains("'use' permission on resource 'billing' in environment 'production'", e.Message);
        Assert.Contains("u9", e.Message);
        Assert.Contains("group ops", e.Message);
    }
}

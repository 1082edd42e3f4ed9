using Keyway.Access;
using Keyway.Environments;
using Keyway.Resources;
using Keyway.Templates;

namespace Keyway.Tests.SignIn;

/// <summary><c>current_user</c> in templates: who is calling, with groups and the single sign-on claims.</summary>
public sealed class CurrentUserTests
{
    private static readonly Caller Carol = new("usr_1", "carol", Caller.AdminRole, null, "carol@example.test")
    {
        DisplayName = "Carol Example",
        Groups = ["engineering", "sales"],
        Claims = new Dictionary<string, string> { ["department"] = "R&D", ["email"] = "carol@example.test" },
    };

    [Theory]
    [InlineData("{{ current_user.email }}", "carol@example.test")]
    [InlineData("{{ current_user.displayName }}", "Carol Example")]
    [InlineData("{{ current_user.role }}", "admin")]
    [InlineData("{{ current_user.groups[1] }}", "sales")]
    [InlineData("{{ current_user.groups.length }}", "2")]
    [InlineData("{{ current_user.claims.department }}", "R&D")]
    [InlineData("{{ current_user.groups.includes('engineering') ? 'eng' : 'other' }}", "eng")]
    public void Resource_and_query_templates_read_the_callers_profile_groups_and_claims(string text, string expected)
    {
        var values = new EnvironmentValues("production", new Dictionary<string, object?>());

        Assert.Equal(expected, Template.Parse(text).Render(Scopes.ForResource(values, values.All, Carol)));
        Assert.Equal(expected, Template.Parse(text).Render(Scopes.ForQuery(values, Carol, null)));
    }

    [Fact]
    public void A_caller_without_single_sign_on_has_empty_claims()
    {
        var local = new Caller("usr_2", "dave", Caller.MemberRole, null, null);
        var values = new EnvironmentValues("production", new Dictionary<string, object?>());
        var scope = Scopes.ForResource(values, values.All, local);

        Assert.Equal("none", Template.Parse("{{ current_user.claims.department ?? 'none' }}").Render(scope));
        Assert.Equal("0", Template.Parse("{{ current_user.groups.length }}").Render(scope));
    }
}

using Keyway.Hosting;
using Keyway.SignIn;

namespace Keyway.Tests.SignIn;

/// <summary>Single sign-on and session settings from the environment: defaults, parsing, and clear errors at start.</summary>
public sealed class SignInSettingsTests
{
    private static Func<string, string?> Env(params (string Name, string Value)[] values)
    {
        var map = values.ToDictionary(v => v.Name, v => v.Value);
        return name => map.GetValueOrDefault(name);
    }

    [Fact]
    public void Single_sign_on_is_off_without_an_authority()
    {
        var settings = SignInSettings.FromEnvironment(Env());

        Assert.Null(settings.Oidc);
        Assert.Equal(TimeSpan.FromHours(8), settings.SessionLifetime);
    }

    [Fact]
    public void A_full_configuration_is_read_with_openid_always_asked_and_groups_mapped()
    {
        var oidc = OidcSettings.FromEnvironment(Env(
            ("KEYWAY_OIDC_AUTHORITY", "https://login.example.com/realms/acme"),
            ("KEYWAY_OIDC_CLIENT_ID", "keyway"),
            ("KEYWAY_OIDC_CLIENT_SECRET", "s3cr3t-value"),
            ("KEYWAY_OIDC_SCOPES", "profile email"),
            ("KEYWAY_OIDC_GROUPS_CLAIM", "roles"),
            ("KEYWAY_OIDC_ADMIN_GROUPS", "platform-admins"),
            ("KEYWAY_OIDC_GROUP_MAP", "Eng Team=engineering, ops-team = ops")))!;

        Assert.Equal(["openid", "profile", "email"], oidc.Scopes);
        Assert.Equal("roles", oidc.GroupsClaim);
        Assert.Equal("[REDACTED]", oidc.ClientSecret!.ToString());
        Assert.DoesNotContain("s3cr3t-value", oidc.ToString());
        Assert.Equal(["engineering", "ops", "sales"], oidc.MapGroups(["ops-team", "Eng Team", "sales", "not a valid name"]));
        Assert.True(oidc.IsAdmin(["platform-admins"], []));
        Assert.False(oidc.IsAdmin(["sales"], ["sales"]));
    }

    [Theory]
    [InlineData("http://login.example.com", "true", "only for an identity provider on loopback")]
    [InlineData("http://127.0.0.1:5000", null, "must use https")]
    [InlineData("not a url", null, "issuer URL")]
    public void A_bad_authority_stops_the_start_with_a_clear_error(string authority, string? allowHttp, string message)
    {
        var error = Assert.Throws<StartupException>(() => OidcSettings.FromEnvironment(Env(
            ("KEYWAY_OIDC_AUTHORITY", authority), ("KEYWAY_OIDC_CLIENT_ID", "keyway"), ("KEYWAY_OIDC_ALLOW_HTTP", allowHttp ?? ""))));

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Plain_http_is_accepted_on_loopback_when_allowed()
    {
        var oidc = OidcSettings.FromEnvironment(Env(
            ("KEYWAY_OIDC_AUTHORITY", "http://127.0.0.1:5000/"), ("KEYWAY_OIDC_CLIENT_ID", "keyway"), ("KEYWAY_OIDC_ALLOW_HTTP", "true")))!;

        Assert.True(oidc.AllowHttp);
    }

    [Fact]
    public void Missing_and_malformed_values_name_their_variable()
    {
        var noClient = Assert.Throws<StartupException>(() => OidcSettings.FromEnvironment(Env(("KEYWAY_OIDC_AUTHORITY", "https://idp.example.com"))));
        var badMap = Assert.Throws<StartupException>(() => OidcSettings.FromEnvironment(Env(
            ("KEYWAY_OIDC_AUTHORITY", "https://idp.example.com"), ("KEYWAY_OIDC_CLIENT_ID", "k"), ("KEYWAY_OIDC_GROUP_MAP", "just-a-name"))));
        var secretAlone = Assert.Throws<StartupException>(() => OidcSettings.FromEnvironment(Env(("KEYWAY_OIDC_CLIENT_SECRET", "x"))));
        var lifetime = Assert.Throws<StartupException>(() => SignInSettings.FromEnvironment(Env(("KEYWAY_SESSION_LIFETIME", "soon"))));
        var rate = Assert.Throws<StartupException>(() => SignInSettings.FromEnvironment(Env(("KEYWAY_SIGNIN_RATE_PER_USER", "0"))));

        Assert.Contains("KEYWAY_OIDC_CLIENT_ID", noClient.Message, StringComparison.Ordinal);
        Assert.Contains("KEYWAY_OIDC_GROUP_MAP", badMap.Message, StringComparison.Ordinal);
        Assert.Contains("KEYWAY_OIDC_AUTHORITY", secretAlone.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("\"x\"", secretAlone.Message, StringComparison.Ordinal);
        Assert.Contains("KEYWAY_SESSION_LIFETIME", lifetime.Message, StringComparison.Ordinal);
        Assert.Contains("KEYWAY_SIGNIN_RATE_PER_USER", rate.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("30m", 1800)]
    [InlineData("8h", 28800)]
    [InlineData("7d", 604800)]
    [InlineData("01:00:00", 3600)]
    public void Session_lifetimes_take_units(string value, int seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), SignInSettings.ParseDuration(value, "KEYWAY_SESSION_LIFETIME"));

    [Theory]
    [InlineData("/", true)]
    [InlineData("/console/resources?x=1", true)]
    [InlineData("//evil.example.com", false)]
    [InlineData("/\\evil.example.com", false)]
    [InlineData("/\t/evil.example.com", false)]
    [InlineData("/\n/evil.example.com", false)]
    [InlineData("/console\\..\\x", false)]
    [InlineData("/console#/resources/github?env=staging", true)]
    [InlineData("https://evil.example.com/", false)]
    [InlineData("", false)]
    public void Only_local_return_urls_are_followed(string url, bool local) =>
        Assert.Equal(local, Keyway.Api.LocalPaths.IsLocal(url));
}

using System.Text;
using Keyway.Api;
using Keyway.Environments;

namespace Keyway.Tests.Environments;

public sealed class SecretPolicyTests
{
    private static string Base64Url(string json) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes(json)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    internal static string Jwt(string payload) => $"{Base64Url("""{"alg":"HS256","typ":"JWT"}""")}.{Base64Url(payload)}.c2lnbmF0dXJl";

    [Fact]
    public void A_jwt_says_when_it_expires_without_being_validated()
    {
        var expiry = SecretPolicy.JwtExpiry(Jwt("""{"sub":"svc","exp":1893456000}"""));

        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1893456000), expiry);
    }

    [Theory]
    [InlineData("sk_live_not_a_jwt")]
    [InlineData("eyJhbGciOiJIUzI1NiJ9.not-base64!.x")]
    [InlineData("eyJhbGciOiJIUzI1NiJ9")]
    [InlineData("")]
    public void A_value_that_is_not_a_jwt_has_no_expiry_of_its_own(string value) => Assert.Null(SecretPolicy.JwtExpiry(value));

    [Fact]
    public void A_jwt_without_exp_has_no_expiry_of_its_own() => Assert.Null(SecretPolicy.JwtExpiry(Jwt("""{"sub":"svc"}""")));

    [Theory]
    [InlineData("30d", 30 * 24 * 60)]
    [InlineData("12h", 12 * 60)]
    [InlineData("90m", 90)]
    [InlineData("P90D", 90 * 24 * 60)]
    [InlineData("PT36H", 36 * 60)]
    public void Rotate_every_reads_short_and_iso_8601_durations(string text, int minutes) =>
        Assert.Equal(TimeSpan.FromMinutes(minutes), SecretPolicy.ParseRotateEvery(text));

    [Theory]
    [InlineData("soon")]
    [InlineData("10s")]
    [InlineData("P")]
    [InlineData("-3d")]
    public void A_rotate_every_that_is_not_a_duration_of_a_minute_or_more_is_refused(string text)
    {
        var error = Assert.Throws<KeywayException>(() => SecretPolicy.ParseRotateEvery(text));
        Assert.Equal("bad_request", error.Code);
    }

    [Fact]
    public void Durations_are_shown_in_their_largest_whole_unit()
    {
        Assert.Equal("90d", SecretPolicy.Format(TimeSpan.FromDays(90)));
        Assert.Equal("36h", SecretPolicy.Format(TimeSpan.FromHours(36)));
        Assert.Equal("90m", SecretPolicy.Format(TimeSpan.FromMinutes(90)));
    }

    [Fact]
    public void The_expired_policy_is_warn_or_block()
    {
        Assert.Equal(ExpiredPolicy.Block, ExpiredPolicy.Parse("BLOCK"));
        Assert.Equal(ExpiredPolicy.Warn, ExpiredPolicy.Parse("warn"));
        Assert.Throws<KeywayException>(() => ExpiredPolicy.Parse("ignore"));
    }
}

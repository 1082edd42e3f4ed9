using Keyway.Cli;
using Microsoft.Extensions.Time.Testing;

namespace Keyway.Tests.Audit;

/// <summary><c>keyway audit --since/--until</c>: an age is counted back from the clock it is given.</summary>
public sealed class AuditTimeArgumentTests
{
    private static readonly FakeTimeProvider s_clock = new(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));

    [Theory]
    [InlineData("90s", "2026-03-01T11:58:30.0000000+00:00")]
    [InlineData("15m", "2026-03-01T11:45:00.0000000+00:00")]
    [InlineData(" 2h ", "2026-03-01T10:00:00.0000000+00:00")]
    [InlineData("7d", "2026-02-22T12:00:00.0000000+00:00")]
    [InlineData("2026-01-05T09:00:00+01:00", "2026-01-05T08:00:00.0000000+00:00")]
    public void An_age_or_a_time_becomes_a_UTC_instant(string value, string expected)
    {
        Assert.Equal(expected, AuditCommands.Time(value, "--since", s_clock));
    }

    [Fact]
    public void Neither_an_age_nor_a_time_is_a_usage_error_that_names_the_option()
    {
        var error = Assert.Throws<CliException>(() => AuditCommands.Time("yesterday", "--until", s_clock));
        Assert.Contains("--until must be an ISO 8601 time or an age", error.Message);
    }
}

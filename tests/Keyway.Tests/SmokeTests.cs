namespace Keyway.Tests;

public sealed class SmokeTests
{
    [Fact]
    public void The_test_project_builds() => Assert.True(typeof(SmokeTests).Assembly is not null);
}

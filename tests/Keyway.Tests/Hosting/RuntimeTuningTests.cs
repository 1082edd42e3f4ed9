using Keyway.Hosting;

namespace Keyway.Tests.Hosting;

public sealed class RuntimeTuningTests
{
    [Fact]
    public void Serve_gets_a_4_MB_generation_0_budget_when_nobody_chose_one()
    {
        var plan = RuntimeTuning.Plan(["serve", "--data-dir", "x"], _ => null);

        var setting = Assert.Single(plan);
        Assert.Equal("DOTNET_GCgen0size", setting.Key);
        Assert.Equal(4 * 1024 * 1024, Convert.ToInt32(setting.Value, 16));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("0x1000000")]
    [InlineData("")]
    public void An_operators_own_value_is_kept(string value)
    {
        Assert.Empty(RuntimeTuning.Plan(["serve"], name => name == "DOTNET_GCgen0size" ? value : null));
    }

    [Theory]
    [InlineData]
    [InlineData("resource", "list")]
    [InlineData("--help")]
    [InlineData("audit", "serve")]
    public void Only_serve_is_tuned(params string[] args)
    {
        Assert.Empty(RuntimeTuning.Plan(args, _ => null));
    }
}

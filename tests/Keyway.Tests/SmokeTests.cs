using System.Text.Json.Nodes;

namespace Keyway.Tests;

public sealed class SmokeTests
{
    /// <summary>
    /// The Web SDK turns Server GC on unless the project says otherwise, and the property is easy to
    /// misspell (an unknown MSBuild property is silently ignored): keyway.runtimeconfig.json is the truth.
    /// </summary>
    [Fact]
    public void Keyway_runs_on_workstation_garbage_collection()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "keyway.runtimeconfig.json");
        var properties = JsonNode.Parse(File.ReadAllText(path))!["runtimeOptions"]!["configProperties"]!;

        Assert.False((bool?)properties["System.GC.Server"] ?? true, "keyway.runtimeconfig.json should set System.GC.Server to false");
    }
}

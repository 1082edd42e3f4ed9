using System.Text.Json.Nodes;
using Keyway.Cli;
using Keyway.Config;

namespace Keyway.Tests.Config;

public sealed class ConfigYamlTests
{
    public static TheoryData<string> Strings() =>
    [
        "plain", "https://api.example.com/v1?x=1", "", " leading", "trailing ", "true", "False", "null", "~", "yes", "off", "5", "-5", "1e3", "0x1F", ".5",
        "1.2.3", "{{ environment.variables.TOKEN }}", "Bearer {{ x }}", "a: b", "a #b", "a#b", "ends:", "- dash", "? q", "'single'", "\"double\"", "back\\slash",
        "tab\there", "line one\nline two", "ends with newline\n", "two newlines\n\n", "\nstarts with newline", "  indented\nlines", "with \r return",
        "a\n  \nb", "ünïcödé ✓", "emoji 😀", "*star", "&anchor", "!tag", "%percent", "@at", "`tick", "[x]", "{x}", ",comma", "|pipe", ">gt", "=eq",
    ];

    [Theory]
    [MemberData(nameof(Strings))]
    public void A_string_reads_back_as_the_same_string(string value)
    {
        var document = new JsonObject
        {
            ["kind"] = "Resource",
            ["name"] = "x",
            ["spec"] = new JsonObject { ["field"] = value, ["list"] = new JsonArray(value, new JsonObject { ["k"] = value, [value.Length == 0 ? "empty" : value] = 1 }) },
        };

        var text = ConfigYaml.Write(document);
        var read = ConfigFiles.Parse(text, "test", "objects").Single().Body;

        Assert.True(ConfigTree.Same(document, read), text);
    }

    [Fact]
    public void Numbers_booleans_nulls_empty_maps_and_lists_keep_their_types()
    {
        var document = JsonNode.Parse("""{"kind": "Query", "name": "n", "spec": {"a": 5, "b": 2.5, "c": true, "d": false, "e": {}, "f": [], "g": [[1, 2], ["x"]], "h": {"i": [{"j": 1, "k": [1]}]}}}""")!.AsObject();

        var read = ConfigFiles.Parse(ConfigYaml.Write(document), "test", "objects").Single().Body;

        Assert.True(ConfigTree.Same(document, read), ConfigYaml.Write(document));
    }

    [Fact]
    public void The_repository_schema_is_the_one_the_server_generates()
    {
        var path = Path.Combine(Integration.ReadmeTourTests.RepositoryRoot(), "schema", "keyway.schema.json");
        if (Environment.GetEnvironmentVariable("KEYWAY_WRITE_SCHEMA") == "1")
        {
            File.WriteAllText(path, ConfigSchema.Text);
        }

        Assert.True(File.ReadAllText(path) == ConfigSchema.Text,
            "schema/keyway.schema.json is not what the configuration types give: regenerate it with " +
            "KEYWAY_WRITE_SCHEMA=1 scripts/test.sh --filter The_repository_schema_is_the_one_the_server_generates");
    }
}

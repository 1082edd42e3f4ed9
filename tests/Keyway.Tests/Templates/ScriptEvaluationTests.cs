using System.Text.Json;
using System.Text.Json.Nodes;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Tests.Templates;

public sealed class ScriptEvaluationTests
{
    private static TemplateScope Scope() => new TemplateScope()
        .With("inputs", JsonDocument.Parse("""{ "a": 41, "name": "ada", "flag": true, "tags": ["x", "y"], "obj": { "k": "v" } }""").RootElement)
        .With("current_user", new Dictionary<string, object?> { ["email"] = "ada@example.com" })
        .WithEnvironmentVariables(new Dictionary<string, object?> { ["KEY"] = new Secret("sk-live-123") });

    [Theory]
    [InlineData("{{ inputs.a + 1 }}", "42")]
    [InlineData("{{ inputs.name.toUpperCase() }}", "ADA")]
    [InlineData("{{ inputs.flag ? 'yes' : 'no' }}", "yes")]
    [InlineData("{{ `Hello ${inputs.name}!` }}", "Hello ada!")]
    [InlineData("{{ JSON.stringify({ id: inputs.a }) }}", """{"id":41}""")]
    [InlineData("{{ inputs.tags.map(t => t + '!').join(',') }}", "x!,y!")]
    [InlineData("{{ current_user.email.split('@')[1] }}", "example.com")]
    [InlineData("{{ 'Basic ' + environment.variables.KEY }}", "Basic sk-live-123")]
    [InlineData("{{ inputs.missing ?? 'default' }}", "default")]
    [InlineData("{{ inputs.missing?.deep }}", "")]
    [InlineData("{{ null }}", "")]
    [InlineData("{{ undefined }}", "")]
    [InlineData("{{ 0.1 + 0.2 }}", "0.30000000000000004")]
    [InlineData("{{ false }}", "false")]
    [InlineData("{{ inputs.tags }}", """["x","y"]""")]
    [InlineData("{{ { b: inputs.obj, s: '<&>' } }}", """{"b":{"k":"v"},"s":"<&>"}""")]
    [InlineData("{{ () => 1 }}", "")]
    [InlineData("{{ 10n ** 20n }}", "100000000000000000000")]
    public void A_script_expression_renders_as_javascript_would_print_it(string text, string expected)
    {
        Assert.Equal(expected, Template.Parse(text).Render(Scope()));
    }

    [Fact]
    public void A_single_script_expression_evaluates_to_the_raw_value()
    {
        var scope = Scope();

        Assert.Equal(42L, Template.Parse("{{ inputs.a + 1 }}").Evaluate(scope));
        Assert.Equal(2.5, Template.Parse("{{ 5 / 2 }}").Evaluate(scope));
        Assert.Equal(false, Template.Parse("{{ !inputs.flag }}").Evaluate(scope));
        Assert.Equal("ADA", Template.Parse("{{ inputs.name.toUpperCase() }}").Evaluate(scope));
        Assert.Null(Template.Parse("{{ inputs.nothing }}").Evaluate(scope));
        var node = Assert.IsAssignableFrom<JsonNode>(Template.Parse("{{ { id: inputs.a, tags: inputs.tags } }}").Evaluate(scope));
        Assert.Equal("""{"id":41,"tags":["x","y"]}""", node.ToJsonString());
        Assert.IsType<JsonArray>(Template.Parse("{{ [1, 2] }}").Evaluate(scope));
    }

    [Fact]
    public void Scripts_and_member_paths_mix_in_one_template()
    {
        var template = Template.Parse("/users/{{ inputs.name }}/items/{{ inputs.a * 2 }}?q={{ inputs.tags[0] }}");

        Assert.Equal("/users/ada/items/82?q=x", template.Render(Scope()));
        Assert.Equal("/users/ada/items/82?q=x", template.Evaluate(Scope()));
    }

    [Fact]
    public void A_prepared_script_is_reused_across_scopes_and_threads()
    {
        var template = Template.Parse("{{ inputs.n * 2 }}");

        var results = Enumerable.Range(0, 64).AsParallel()
            .Select(i => template.Render(new TemplateScope().With("inputs", new Dictionary<string, object?> { ["n"] = i })))
            .ToHashSet();

        Assert.Equal(Enumerable.Range(0, 64).Select(i => (i * 2).ToString(System.Globalization.CultureInfo.InvariantCulture)).ToHashSet(), results);
    }

    [Fact]
    public void A_runtime_error_in_a_script_is_a_template_error_with_the_expression()
    {
        var error = Assert.Throws<TemplateEvaluationException>(() => Template.Parse("x{{ inputs.nothing.deep }}").Render(Scope()));

        Assert.Equal("template_error", error.Code);
        Assert.Null(error.Limit);
        Assert.Equal("inputs.nothing.deep", error.Expression);
        Assert.Contains("inputs.nothing.deep", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_root_in_a_script_is_a_template_error()
    {
        var error = Assert.Throws<TemplateEvaluationException>(() => Template.Parse("{{ nobody + 1 }}").Render(Scope()));

        // The kind, and the expression as configured (where "nobody" is to be read), never a name the engine quotes.
        Assert.Contains("the script read a name that is not defined (ReferenceError)", error.Message, StringComparison.Ordinal);
        Assert.Contains("{{ nobody + 1 }}", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_script_cannot_change_what_the_next_evaluation_sees()
    {
        var polluter = Template.Parse("{{ (String.prototype.toUpperCase = () => 'pwned', globalThis.leak = inputs.name, 1) }}");
        var victim = Template.Parse("{{ inputs.name.toUpperCase() + (typeof leak) }}");

        polluter.Render(Scope());

        Assert.Equal("ADAundefined", victim.Render(Scope()));
    }

    [Fact]
    public void Scope_objects_are_plain_data_where_a_proto_key_is_only_a_key()
    {
        var scope = new TemplateScope().With("inputs", JsonDocument.Parse("""{ "__proto__": { "polluted": 1 } }""").RootElement);

        Assert.Equal("undefined|1", Template.Parse("{{ typeof ({}).polluted + '|' + inputs['__proto__'].polluted }}").Render(scope));
    }
}

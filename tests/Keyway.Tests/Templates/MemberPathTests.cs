using System.Text.Json;
using System.Text.Json.Nodes;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Tests.Templates;

public sealed class MemberPathTests
{
    private static readonly JsonElement Login = JsonDocument.Parse("""
        { "status": 200,
          "body": { "session": { "token": "abc123" }, "ratio": 0.5, "ok": true, "none": null,
                    "items": [ { "name": "first" }, { "name": "second" } ],
                    "b-c": "dashed", "nested": { "x": [1, 2] } } }
        """).RootElement;

    private static TemplateScope Scope() => new TemplateScope()
        .With("login", Login)
        .With("inputs", new Dictionary<string, object?>
        {
            ["id"] = 42,
            ["name"] = "Ada",
            ["items"] = new List<object?> { new Dictionary<string, object?> { ["name"] = "one" } },
            ["node"] = JsonNode.Parse("""{ "deep": { "v": [10, 20] } }"""),
        })
        .WithEnvironmentVariables(new Dictionary<string, object?> { ["API_TOKEN"] = new Secret("s3cr3t-value") });

    [Theory]
    [InlineData("{{ login.body.session.token }}", "abc123")]
    [InlineData("{{ login.body.items[1].name }}", "second")]
    [InlineData("{{ login.body['b-c'] }}", "dashed")]
    [InlineData("{{ login.body[\"b-c\"] }}", "dashed")]
    [InlineData("{{ login['body'].nested.x[0] }}", "1")]
    [InlineData("{{ login.body.items.length }}", "2")]
    [InlineData("{{ login.body.ratio }}", "0.5")]
    [InlineData("{{ login.body.ok }}", "true")]
    [InlineData("{{ login.body.none }}", "")]
    [InlineData("{{ login.body.nested }}", """{"x":[1,2]}""")]
    [InlineData("{{ inputs.id }}", "42")]
    [InlineData("{{ inputs.items[0].name }}", "one")]
    [InlineData("{{ inputs.name.length }}", "3")]
    [InlineData("{{ inputs.node.deep.v[1] }}", "20")]
    [InlineData("{{ environment.variables.API_TOKEN }}", "s3cr3t-value")]
    [InlineData("{{ environment.variables['API_TOKEN'] }}", "s3cr3t-value")]
    public void A_plain_member_path_is_resolved_without_the_script_engine(string text, string expected)
    {
        var template = Template.Parse(text);

        Assert.True(Assert.Single(template.Expressions).IsMemberPath);
        Assert.Equal(expected, template.Render(Scope()));
    }

    [Fact]
    public void Expressions_with_operators_or_calls_take_the_script_path()
    {
        Assert.False(Template.Parse("{{ inputs.a + 1 }}").Expressions.Single().IsMemberPath);
        Assert.False(Template.Parse("{{ inputs.name.toUpperCase() }}").Expressions.Single().IsMemberPath);
        Assert.False(Template.Parse("{{ Math.PI }}").Expressions.Single().IsMemberPath);
        Assert.False(Template.Parse("{{ inputs.constructor }}").Expressions.Single().IsMemberPath);
    }

    [Fact]
    public void A_missing_member_is_undefined_rendering_empty_and_evaluating_to_null()
    {
        var template = Template.Parse("{{ login.body.missing }}");

        Assert.Equal("", template.Render(Scope()));
        Assert.Null(template.Evaluate(Scope()));
        Assert.Equal("", Template.Parse("{{ login.body.items[9] }}").Render(Scope()));
        Assert.Equal("", Template.Parse("{{ environment.variables.NOPE }}").Render(Scope()));
    }

    [Fact]
    public void Reading_through_an_undefined_parent_is_an_error_naming_the_path()
    {
        var error = Assert.Throws<TemplateEvaluationException>(() => Template.Parse("{{ login.body.missing.c }}").Render(Scope()));

        Assert.Equal("template_error", error.Code);
        Assert.Contains("cannot read 'c' of undefined at login.body.missing", error.Message, StringComparison.Ordinal);
        Assert.Equal(3, error.Position);
    }

    [Fact]
    public void Reading_through_a_null_parent_is_an_error()
    {
        var error = Assert.Throws<TemplateEvaluationException>(() => Template.Parse("{{ login.body.none.x }}").Render(Scope()));

        Assert.Contains("cannot read 'x' of null at login.body.none", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_root_is_not_defined()
    {
        var error = Assert.Throws<TemplateEvaluationException>(() => Template.Parse("{{ nobody.home }}").Render(Scope()));

        Assert.Contains("'nobody' is not defined", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_single_expression_evaluates_to_the_raw_value()
    {
        var scope = Scope();

        Assert.Equal(200L, Template.Parse("{{ login.status }}").Evaluate(scope));
        Assert.Equal(0.5, Template.Parse("{{ login.body.ratio }}").Evaluate(scope));
        Assert.Equal(true, Template.Parse("{{ login.body.ok }}").Evaluate(scope));
        Assert.Null(Template.Parse("{{ login.body.none }}").Evaluate(scope));
        Assert.Equal(42L, Template.Parse("{{ inputs.id }}").Evaluate(scope));
        Assert.Equal("s3cr3t-value", Template.Parse("{{ environment.variables.API_TOKEN }}").Evaluate(scope));
        var items = Assert.IsType<JsonElement>(Template.Parse("{{ login.body.items }}").Evaluate(scope));
        Assert.Equal(JsonValueKind.Array, items.ValueKind);
        var node = Assert.IsAssignableFrom<JsonNode>(Template.Parse("{{ inputs.node.deep }}").Evaluate(scope));
        Assert.Equal("""{"v":[10,20]}""", node.ToJsonString());
        var fromDictionary = Assert.IsAssignableFrom<JsonNode>(Template.Parse("{{ inputs.items }}").Evaluate(scope));
        Assert.Equal("""[{"name":"one"}]""", fromDictionary.ToJsonString());
    }

    [Fact]
    public void A_template_with_text_around_one_expression_evaluates_to_a_string()
    {
        Assert.Equal("id=42", Template.Parse("id={{ inputs.id }}").Evaluate(Scope()));
        Assert.Equal(" 42", Template.Parse(" {{ inputs.id }}").Evaluate(Scope()));
    }

    [Fact]
    public void Resolving_a_path_over_json_allocates_little_more_than_the_result()
    {
        var template = Template.Parse("{{ login.body.session.token }}");
        var scope = Scope();
        template.Render(scope);

        var before = GC.GetAllocatedBytesForCurrentThread();
        template.Render(scope);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(allocated <= 64, $"allocated {allocated} bytes");
    }

    [Fact]
    public void Numbers_render_the_way_javascript_prints_them()
    {
        var scope = new TemplateScope().With("n", new Dictionary<string, object?>
        {
            ["big"] = 1e21,
            ["small"] = 1.5e-7,
            ["third"] = 1.0 / 3,
            ["whole"] = 3.0,
            ["neg"] = -0.25,
            ["huge"] = 1e20,
        });

        Assert.Equal("1e+21|1.5e-7|0.3333333333333333|3|-0.25|100000000000000000000",
            Template.Parse("{{ n.big }}|{{ n.small }}|{{ n.third }}|{{ n.whole }}|{{ n.neg }}|{{ n.huge }}").Render(scope));
        Assert.Equal("1e+21|1.5e-7|0.3333333333333333|3|-0.25|100000000000000000000",
            Template.Parse("{{ 1e21 }}|{{ 1.5e-7 }}|{{ 1/3 }}|{{ 3.0 }}|{{ -0.25 }}|{{ 1e20 }}").Render(scope));
    }

    [Fact]
    public void A_scope_refuses_values_that_are_not_plain_data()
    {
        Assert.Throws<ArgumentException>(() => new TemplateScope().With("host", new object()));
        Assert.Throws<ArgumentException>(() => new TemplateScope().With("file", new FileInfo("/etc/passwd")));
    }
}

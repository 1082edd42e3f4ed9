using Keyway.Templates;

namespace Keyway.Tests.Templates;

public sealed class TemplateParsingTests
{
    private static readonly TemplateScope Empty = new();

    [Fact]
    public void Text_without_braces_is_a_constant_that_renders_itself_without_allocating()
    {
        var template = Template.Parse("https://api.example.com/v1");

        Assert.True(template.IsConstant);
        Assert.Same(template.Source, template.Render(Empty));
        template.Render(Empty);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var rendered = template.Render(Empty);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Same(template.Source, rendered);
    }

    [Fact]
    public void An_empty_text_is_a_constant_empty_string()
    {
        var template = Template.Parse("");

        Assert.True(template.IsConstant);
        Assert.Equal("", template.Render(Empty));
        Assert.Equal("", template.Evaluate(Empty));
    }

    [Fact]
    public void Literals_and_expressions_are_split_with_the_expression_trimmed()
    {
        var template = Template.Parse("Bearer {{  environment.variables.TOKEN  }} and {{inputs.id}}!");

        var expressions = template.Expressions.ToList();
        Assert.False(template.IsConstant);
        Assert.Equal(["environment.variables.TOKEN", "inputs.id"], expressions.Select(e => e.Text));
        Assert.Equal(11, expressions[0].Position);
        Assert.Equal(49, expressions[1].Position);
        var scope = new TemplateScope()
            .WithEnvironmentVariables(new Dictionary<string, object?> { ["TOKEN"] = "t0k" })
            .With("inputs", new Dictionary<string, object?> { ["id"] = 7 });
        Assert.Equal("Bearer t0k and 7!", template.Render(scope));
    }

    [Fact]
    public void A_closing_pair_inside_a_string_literal_does_not_close_the_expression()
    {
        var template = Template.Parse("x{{ \"a}}b\" }}y");

        Assert.Equal("\"a}}b\"", Assert.Single(template.Expressions).Text);
        Assert.Equal("xa}}by", template.Render(Empty));
    }

    [Fact]
    public void Closing_braces_inside_single_quotes_template_literals_and_comments_are_skipped()
    {
        Assert.Equal("}}", Template.Parse("{{ '}}' }}").Render(Empty));
        Assert.Equal("a}}1", Template.Parse("{{ `a}}${ {b: 1}.b }` }}").Render(Empty));
        Assert.Equal("2", Template.Parse("{{ /* }} */ 2 }}").Render(Empty));
        Assert.Equal("3-", Template.Parse("{{ 3 // why }}-").Render(Empty));
    }

    [Fact]
    public void An_object_literal_closing_with_two_braces_stays_inside_the_expression()
    {
        var template = Template.Parse("{{ {a: {b: 1}} }}");

        Assert.Equal("{a: {b: 1}}", Assert.Single(template.Expressions).Text);
        Assert.Equal("""{"a":{"b":1}}""", template.Render(Empty));
    }

    [Fact]
    public void An_unclosed_opening_pair_is_a_syntax_error_at_its_position()
    {
        var error = Assert.Throws<TemplateSyntaxException>(() => Template.Parse("abc {{ inputs.id"));

        Assert.Equal(4, error.Position);
        Assert.Equal("template_syntax", error.Code);
        Assert.Contains("unclosed '{{'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unterminated_string_leaves_the_expression_unclosed()
    {
        var error = Assert.Throws<TemplateSyntaxException>(() => Template.Parse("{{ 'abc }}"));

        Assert.Equal(0, error.Position);
    }

    [Fact]
    public void An_empty_expression_is_a_syntax_error_at_its_position()
    {
        var error = Assert.Throws<TemplateSyntaxException>(() => Template.Parse("ok {{ }} {{ a }}"));

        Assert.Equal(3, error.Position);
        Assert.Contains("empty expression", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_invalid_script_is_a_syntax_error_pointing_into_the_expression()
    {
        var error = Assert.Throws<TemplateSyntaxException>(() => Template.Parse("x {{ inputs.a + * 2 }}"));

        Assert.Equal(16, error.Position);
        Assert.Contains("invalid expression", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Statements_smuggled_through_parentheses_are_refused()
    {
        var error = Assert.Throws<TemplateSyntaxException>(() => Template.Parse("{{ 1); while (true) {}; (2 }}"));

        Assert.Contains("one expression", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_lone_closing_pair_in_literal_text_is_literal()
    {
        Assert.Equal("a }} b", Template.Parse("a }} b").Render(Empty));
    }
}

using System.Text.Json;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Tests.Templates;

public sealed class RedactionTests
{
    private const string Canary = "canary-7f3a9c-secret";

    private static TemplateScope Scope() => new TemplateScope()
        .WithEnvironmentVariables(new Dictionary<string, object?> { ["TOKEN"] = new Secret(Canary) })
        .With("login", JsonDocument.Parse("""{ "body": { "token": "plain-canary-value" } }""").RootElement);

    [Theory]
    [InlineData("{{ (() => { throw new Error('token is ' + environment.variables.TOKEN); })() }}")]
    [InlineData("{{ (() => { throw environment.variables.TOKEN; })() }}")]
    [InlineData("{{ environment.variables.TOKEN() }}")]
    [InlineData("{{ JSON.parse(environment.variables.TOKEN) }}")]
    [InlineData("{{ null[environment.variables.TOKEN] }}")]
    [InlineData("{{ Symbol(environment.variables.TOKEN).description.x.y }}")]
    [InlineData("{{ new URL(environment.variables.TOKEN) }}")]
    public void An_error_message_never_contains_a_secret_value_from_the_scope(string text)
    {
        var error = Assert.Throws<TemplateEvaluationException>(() => Template.Parse(text).Render(Scope()));

        Assert.DoesNotContain(Canary, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Canary, error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_thrown_secret_is_replaced_with_the_redaction_marker()
    {
        var error = Assert.Throws<TemplateEvaluationException>(() =>
            Template.Parse("{{ (() => { throw new Error('token is ' + environment.variables.TOKEN); })() }}").Render(Scope()));

        Assert.Contains("token is [REDACTED]", error.Message, StringComparison.Ordinal);
        Assert.Null(error.InnerException);
    }

    [Fact]
    public void Plain_scope_strings_are_redacted_too()
    {
        var error = Assert.Throws<TemplateEvaluationException>(() =>
            Template.Parse("{{ (() => { throw new Error(login.body.token); })() }}").Render(Scope()));

        Assert.DoesNotContain("plain-canary-value", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_limit_error_says_which_limit_and_nothing_of_the_scope()
    {
        var error = Assert.Throws<TemplateEvaluationException>(() =>
            Template.Parse("{{ environment.variables.TOKEN.repeat(1e9) }}").Render(Scope()));

        Assert.Equal(TemplateLimitKind.Memory, error.Limit);
        Assert.DoesNotContain(Canary, error.Message, StringComparison.Ordinal);
    }
}

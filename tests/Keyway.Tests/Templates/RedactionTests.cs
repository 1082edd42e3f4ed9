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

    [Theory]
    [InlineData("{{ (() => { throw new Error(environment.variables.TOKEN.split('').join(' ')); })() }}", "an Error")]
    [InlineData("{{ (() => { throw new RangeError([...environment.variables.TOKEN].reverse().join('')); })() }}", "a RangeError")]
    [InlineData("{{ (() => { const e = new Error('x'); e.name = environment.variables.TOKEN; throw e; })() }}", "an exception")]
    [InlineData("{{ (() => { throw environment.variables.TOKEN.slice(3); })() }}", "an exception")]
    public void A_script_derived_message_is_withheld_whatever_it_did_to_the_value(string text, string kind)
    {
        var error = Assert.Throws<TemplateEvaluationException>(() => Template.Parse(text).Render(Scope()));

        Assert.Contains($"the script raised {kind} (its message is not shown", error.Message, StringComparison.Ordinal);
        foreach (var form in new[] { Canary, string.Join(' ', Canary.ToCharArray()), new string(Canary.Reverse().ToArray()), Canary[3..] })
        {
            Assert.DoesNotContain(form, error.Message, StringComparison.Ordinal);
        }

        Assert.Null(error.InnerException);
    }

    [Theory]
    [InlineData("missing.x", "the script read a name that is not defined (ReferenceError)")]
    [InlineData("login.body.nothing.deeper", "the script read a property of undefined (TypeError)")]
    [InlineData("undefined['k' + environment.variables.TOKEN.charCodeAt(0)]", "the script read a property of undefined (TypeError)")]
    [InlineData("(() => { throw new ReferenceError(environment.variables.TOKEN + ' is not defined'); })()", "the script read a name that is not defined (ReferenceError)")]
    public void Engine_messages_are_described_by_kind_and_never_quote_a_name(string expression, string message)
    {
        var error = Assert.Throws<TemplateEvaluationException>(() => Template.Parse("{{ (() => " + expression + ")() }}").Render(Scope()));

        Assert.Contains(message, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("k99", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Canary, error.Message, StringComparison.Ordinal);
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

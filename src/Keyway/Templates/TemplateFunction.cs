using System.Text.Json.Nodes;

namespace Keyway.Templates;

/// <summary>
/// A JavaScript function body written in configuration (a custom auth flow's <c>javascript</c>
/// step): parsed once, run in the <see cref="TemplateSandbox"/> with the scope's roots as globals
/// and every sandbox limit, returning what the body returns.
/// </summary>
internal sealed class TemplateFunction
{
    private readonly TemplateScript _script;
    private readonly TemplateSandbox _sandbox;

    private TemplateFunction(string source, TemplateScript script, TemplateSandbox sandbox)
    {
        Source = source;
        _script = script;
        _sandbox = sandbox;
    }

    /// <summary>The code as configured.</summary>
    public string Source { get; }

    /// <summary>Parses with the default sandbox limits.</summary>
    /// <exception cref="TemplateSyntaxException">The code does not parse, or is not one function body.</exception>
    public static TemplateFunction Parse(string code) => Parse(code, TemplateSandbox.Default);

    /// <exception cref="TemplateSyntaxException">The code does not parse, or is not one function body.</exception>
    public static TemplateFunction Parse(string code, TemplateSandbox sandbox)
    {
        ArgumentNullException.ThrowIfNull(code);
        ArgumentNullException.ThrowIfNull(sandbox);
        return new TemplateFunction(code, TemplateSandbox.CompileFunctionBody(code), sandbox);
    }

    /// <summary>
    /// Runs the body. Objects and arrays come back as <see cref="JsonNode"/> (made inside the limits),
    /// primitives as <see cref="string"/>, <see cref="long"/>, <see cref="double"/> or <see cref="bool"/>,
    /// <c>undefined</c> and <c>null</c> as null.
    /// </summary>
    /// <exception cref="TemplateEvaluationException">The code threw or hit a sandbox limit; the message is redacted.</exception>
    public object? Invoke(TemplateScope scope)
    {
        ArgumentNullException.ThrowIfNull(scope);
        var result = _sandbox.Evaluate(_script, scope);
        return result.IsJson ? JsonNode.Parse((string)result.Value!) : result.Value;
    }
}

using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Keyway.Templates;

/// <summary>
/// A configuration string that may hold <c>{{ expression }}</c> templates, where the expression is
/// JavaScript (Retool's convention). Parsed once, when configuration loads; evaluated per request.
/// </summary>
/// <remarks>
/// <para>
/// An expression that is a plain member path (<c>environment.variables.API_TOKEN</c>,
/// <c>inputs.items[0].name</c>, <c>a['b-c']</c>) is resolved directly against the
/// <see cref="TemplateScope"/>; any other expression is compiled once and run in the
/// <see cref="TemplateSandbox"/>. Both follow JavaScript: a missing member is <c>undefined</c>
/// (rendered as an empty string), reading a member of <c>null</c>/<c>undefined</c> or an unknown
/// root is a <see cref="TemplateEvaluationException"/>.
/// </para>
/// <para>
/// <c>}}</c> inside a JS string, template literal or comment does not close the expression, nor
/// does one closing an object literal (<c>{{ {a: {b: 1}} }}</c>). A regular expression literal
/// containing a quote or <c>}}</c> is not understood by the scan; write it with <c>new RegExp</c>.
/// </para>
/// </remarks>
internal sealed partial class Template
{
    private readonly TemplatePart[] _parts;
    private readonly int _literalLength;
    private readonly TemplateSandbox _sandbox;

    private Template(string source, TemplatePart[] parts, TemplateSandbox sandbox)
    {
        Source = source;
        _parts = parts;
        _sandbox = sandbox;

        var paths = new List<string>();
        var variables = new HashSet<string>(StringComparer.Ordinal);
        var roots = new HashSet<string>(StringComparer.Ordinal);
        foreach (var part in parts)
        {
            if (part.Expression is { } expression)
            {
                expression.CollectRoots(roots);
                expression.CollectReferences(paths, variables, out var all);
                ReferencesAllVariables |= all;
            }
            else
            {
                _literalLength += part.Literal!.Length;
            }
        }

        ReferencedPaths = paths.Distinct(StringComparer.Ordinal).ToArray();
        VariableNames = variables;
        Roots = roots;
    }

    /// <summary>The text as configured.</summary>
    public string Source { get; }

    /// <summary>True when the text holds no <c>{{</c>: rendering returns <see cref="Source"/> itself.</summary>
    public bool IsConstant => _parts is [] or [{ Expression: null }];

    /// <summary>True when the whole text is one <c>{{ expression }}</c>, so <see cref="Evaluate"/> returns its raw value.</summary>
    public bool IsSingleExpression => _parts is [{ Expression: not null }];

    /// <summary>
    /// The member paths that plain-path expressions read, canonical (<c>environment.variables.X</c>,
    /// <c>inputs.items[0]</c>, <c>a['b-c']</c>), plus <c>environment.variables.NAME</c> for each variable
    /// a script expression names literally (a best-effort scan of its source).
    /// </summary>
    public IReadOnlyList<string> ReferencedPaths { get; }

    /// <summary>
    /// The <c>NAME</c>s of <c>environment.variables.NAME</c> and <c>environment.variables['NAME']</c>
    /// referenced anywhere in the template.
    /// </summary>
    public IReadOnlySet<string> VariableNames { get; }

    /// <summary>
    /// The root names the expressions read: a member path's first name (<c>login</c> in
    /// <c>login.body.token</c>), and every global a script names (which includes built-ins such as
    /// <c>JSON</c>). Lets configuration checks see which step results a template uses.
    /// </summary>
    public IReadOnlySet<string> Roots { get; }

    /// <summary>
    /// True when an expression can reach variables this class cannot name: <c>environment</c> or
    /// <c>environment.variables</c> used whole, or <c>environment</c> used in a script in any way
    /// other than <c>environment.variables.NAME</c>. A caller refusing secret variables must treat
    /// such a template as referencing all of them.
    /// </summary>
    public bool ReferencesAllVariables { get; }

    /// <summary>Parses with the default sandbox limits.</summary>
    /// <exception cref="TemplateSyntaxException">An unclosed <c>{{</c>, an empty or invalid expression.</exception>
    public static Template Parse(string text) => Parse(text, TemplateSandbox.Default);

    /// <summary>Parses; script expressions will run in <paramref name="sandbox"/>.</summary>
    /// <exception cref="TemplateSyntaxException">An unclosed <c>{{</c>, an empty or invalid expression.</exception>
    public static Template Parse(string text, TemplateSandbox sandbox)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(sandbox);
        return new Template(text, TemplateScanner.Split(text), sandbox);
    }

    /// <summary>
    /// The template's value. A template that is exactly one expression yields the raw value:
    /// <see cref="string"/>, <see cref="long"/> (integral numbers within 2^53) or <see cref="double"/>,
    /// <see cref="bool"/>, <c>null</c> (also for <c>undefined</c>), a <see cref="System.Text.Json.JsonElement"/>
    /// or <see cref="JsonNode"/> for objects and arrays; a <see cref="Secrets.Secret"/> comes back revealed.
    /// Anything else renders to a string.
    /// </summary>
    /// <exception cref="TemplateEvaluationException">The expression failed or hit a sandbox limit.</exception>
    public object? Evaluate(TemplateScope scope)
    {
        ArgumentNullException.ThrowIfNull(scope);
        return _parts is [{ Expression: { } expression }] ? expression.Evaluate(scope, _sandbox) : Render(scope);
    }

    /// <summary>
    /// The template as a string: objects and arrays as compact JSON, <c>null</c>/<c>undefined</c> as
    /// empty, numbers as JavaScript prints them (invariant culture), booleans as <c>true</c>/<c>false</c>.
    /// A constant template returns <see cref="Source"/> without allocating.
    /// </summary>
    /// <exception cref="TemplateEvaluationException">An expression failed or hit a sandbox limit.</exception>
    public string Render(TemplateScope scope)
    {
        ArgumentNullException.ThrowIfNull(scope);
        switch (_parts)
        {
            case []:
                return string.Empty;
            case [{ Expression: null }]:
                return Source;
            case [{ Expression: { } only }]:
                return only.Render(scope, _sandbox);
        }

        var builder = new DefaultInterpolatedStringHandler(_literalLength, _parts.Length);
        foreach (var part in _parts)
        {
            if (part.Expression is { } expression)
            {
                builder.AppendLiteral(expression.Render(scope, _sandbox));
            }
            else
            {
                builder.AppendLiteral(part.Literal!);
            }
        }

        return builder.ToStringAndClear();
    }

    /// <summary>The expressions, in order (for diagnostics and tests).</summary>
    internal IEnumerable<TemplateExpression> Expressions => _parts.Where(p => p.Expression is not null).Select(p => p.Expression!);

    public override string ToString() => Source;

    /// <summary>
    /// Adds the variables a script names literally (<c>environment.variables.NAME</c>) to
    /// <paramref name="variables"/> (and their paths to <paramref name="paths"/>); true when it uses
    /// <c>environment</c> in any other way. A best-effort scan for configuration checks: what a
    /// script can reach at run time is bounded by its scope, not by this scan.
    /// </summary>
    internal static bool ScanScript(string script, HashSet<string> variables, List<string>? paths = null)
    {
        // An identifier may be written with escapes (\u0065nvironment, \u{65}nvironment): the engine reads
        // the name, so the scan does too. Decoding inside strings as well only makes it count more.
        script = UnicodeEscape().Replace(script, m =>
        {
            var hex = m.Groups["hex"].Value;
            return int.TryParse(hex, System.Globalization.NumberStyles.HexNumber, null, out var code) && code <= 0x10FFFF && (code < 0xD800 || code > 0xDFFF)
                ? char.ConvertFromUtf32(code)
                : m.Value;
        });
        var named = 0;
        foreach (Match match in VariableReference().Matches(script))
        {
            var name = match.Groups["name"].Value;
            variables.Add(name);
            paths?.Add(MemberPath.IsIdentifier(name) ? $"environment.variables.{name}" : $"environment.variables['{name}']");
            named++;
        }

        return EnvironmentIdentifier().Count(script) > named + EnvironmentName().Count(script);
    }

    [GeneratedRegex("""\\u(?:\{(?<hex>[0-9A-Fa-f]{1,6})\}|(?<hex>[0-9A-Fa-f]{4}))""")]
    private static partial Regex UnicodeEscape();

    [GeneratedRegex("""(?<![\w$.])environment\s*\??\.\s*name(?![\w$])""")]
    internal static partial Regex EnvironmentName();

    [GeneratedRegex("""(?<![\w$.])environment\s*\??\.\s*variables\s*(?:\??\.\s*(?<name>[A-Za-z_$][\w$]*)|(?:\?\.)?\[\s*(?:'(?<name>[^'\\\r\n]*)'|"(?<name>[^"\\\r\n]*)")\s*\])""")]
    internal static partial Regex VariableReference();

    [GeneratedRegex("""(?<![\w$.])environment(?![\w$])""")]
    internal static partial Regex EnvironmentIdentifier();
}

/// <summary>One piece of a template: literal text or an expression.</summary>
internal readonly record struct TemplatePart(string? Literal, TemplateExpression? Expression);

/// <summary>One <c>{{ }}</c>: its trimmed source, where it starts, and how it is evaluated.</summary>
internal sealed class TemplateExpression
{
    private readonly MemberPath? _path;
    private readonly TemplateScript? _script;

    public TemplateExpression(string text, int position)
    {
        Text = text;
        Position = position;
        if (MemberPath.TryParse(text, out var path))
        {
            _path = path;
        }
        else
        {
            _script = TemplateSandbox.Compile(text, position);
        }
    }

    public string Text { get; }

    /// <summary>The 0-based offset of the expression's first character in the template text.</summary>
    public int Position { get; }

    public bool IsMemberPath => _path is not null;

    public object? Evaluate(TemplateScope scope, TemplateSandbox sandbox)
    {
        if (_path is not null)
        {
            return _path.Resolve(scope, Text, Position).ToRawValue();
        }

        var result = sandbox.Evaluate(_script!, scope);
        return result.IsJson ? JsonNode.Parse((string)result.Value!) : result.Value;
    }

    public string Render(TemplateScope scope, TemplateSandbox sandbox)
    {
        if (_path is not null)
        {
            return _path.Resolve(scope, Text, Position).ToRenderString();
        }

        var result = sandbox.Evaluate(_script!, scope);
        return result.IsJson ? (string)result.Value! : TemplateValue.From(result.Value).ToRenderString();
    }

    internal void CollectRoots(HashSet<string> roots)
    {
        if (_path is not null)
        {
            roots.Add(_path.Root);
        }
        else if (_script!.Globals is { } globals)
        {
            roots.UnionWith(globals);
        }
    }

    internal void CollectReferences(List<string> paths, HashSet<string> variables, out bool referencesAll)
    {
        referencesAll = false;
        if (_path is not null)
        {
            paths.Add(_path.Canonical);
            if (_path.Root == "environment")
            {
                var members = _path.Members.Take(2).ToArray();
                if (members is ["variables", var name])
                {
                    variables.Add(name);
                }
                else if (members is not ["name", ..])
                {
                    referencesAll = true;
                }
            }

            return;
        }

        referencesAll = Template.ScanScript(Text, variables, paths);
    }
}

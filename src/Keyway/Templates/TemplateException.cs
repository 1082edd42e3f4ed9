namespace Keyway.Templates;

/// <summary>
/// A template could not be parsed or evaluated. <see cref="Code"/> is stable and safe to put in an
/// API error (<c>template_syntax</c>, <c>template_error</c>, <c>template_limit</c>). The message
/// names the template position and expression text (configuration), never a value from the scope.
/// </summary>
internal abstract class TemplateException : Exception
{
    public const string SyntaxCode = "template_syntax";
    public const string ErrorCode = "template_error";
    public const string LimitCode = "template_limit";

    private protected TemplateException(string code, string message, Exception? innerException = null)
        : base(message, innerException) => Code = code;

    /// <summary>The stable error code.</summary>
    public string Code { get; }
}

/// <summary>The template text is malformed: an unclosed <c>{{</c>, an empty or invalid expression.</summary>
internal sealed class TemplateSyntaxException : TemplateException
{
    public TemplateSyntaxException(string message, int position)
        : base(SyntaxCode, $"{message} (at position {position})") => Position = position;

    /// <summary>The 0-based offset in the template text where the problem is.</summary>
    public int Position { get; }
}

/// <summary>Which sandbox limit stopped a script.</summary>
internal enum TemplateLimitKind
{
    Time,
    Statements,
    Memory,
    Recursion,
}

/// <summary>
/// Evaluating an expression failed (<c>template_error</c>) or hit a sandbox limit
/// (<c>template_limit</c>, with <see cref="Limit"/> set).
/// </summary>
/// <remarks>
/// Inner exceptions are deliberately not kept: Jint's messages may quote scope values (secrets),
/// and logging frameworks print the inner chain.
/// </remarks>
internal sealed class TemplateEvaluationException : TemplateException
{
    public TemplateEvaluationException(string message, string expression, int position, TemplateLimitKind? limit = null)
        : base(limit is null ? ErrorCode : LimitCode, $"{message} in '{{{{ {expression} }}}}' at position {position}")
    {
        Expression = expression;
        Position = position;
        Limit = limit;
    }

    /// <summary>The expression source (configuration, not a secret).</summary>
    public string Expression { get; }

    /// <summary>The 0-based offset in the template text of the failing expression or token.</summary>
    public int Position { get; }

    /// <summary>The limit that was hit, or null for an ordinary error.</summary>
    public TemplateLimitKind? Limit { get; }
}

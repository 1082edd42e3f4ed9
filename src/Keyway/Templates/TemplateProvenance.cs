namespace Keyway.Templates;

/// <summary>
/// Whether a rendered template may be shown to a person (the request as sent, the resource test's trace),
/// decided by what the template reads, never by what its value looks like: a piece of a secret
/// (<c>{{ environment.variables.KEY.substring(0, 4) }}</c>), or an encoding of it, matches no redactor.
/// </summary>
/// <remarks>
/// A template is shown when it is constant, or when every expression is a plain member path that reads
/// <c>current_user</c>, <c>environment.name</c> or a variable that is not secret. A script expression is never
/// shown: what it reads is only known once it runs (<c>globalThis['envi' + 'ronment']</c> names no variable
/// a scan can find). Neither is a path into a login flow's own values (an earlier step's answer, a variable
/// extracted from one): those are the session.
/// </remarks>
internal static class TemplateProvenance
{
    /// <summary>The marker shown in place of a withheld value.</summary>
    public static string Marker(string reason) => $"«withheld: {reason}»";

    /// <summary>
    /// Why <paramref name="template"/>'s value is withheld, or null when it reads nothing secret; <paramref name="isSecret"/>
    /// says whether a variable is secret in the environment the template is rendered in.
    /// </summary>
    public static string? WithheldBecause(Template template, Func<string, bool> isSecret)
    {
        if (template.IsConstant)
        {
            return null;
        }

        if (template.Expressions.Any(e => !e.IsMemberPath))
        {
            return "a script expression (what it reads is known only when it runs)";
        }

        if (template.ReferencesAllVariables)
        {
            return "reads the environment's variables as a whole";
        }

        if (template.VariableNames.Where(isSecret).Order(StringComparer.Ordinal).FirstOrDefault() is { } secret)
        {
            return $"reads the secret {secret}";
        }

        if (template.Roots.FirstOrDefault(r => r is not ("environment" or "current_user")) is { } root)
        {
            return $"reads {root}, a value the login flow obtained";
        }

        return null;
    }
}

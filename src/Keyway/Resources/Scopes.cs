using Keyway.Access;
using Keyway.Environments;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>What templates can see, by who wrote them.</summary>
internal static class Scopes
{
    /// <summary>
    /// Resource configuration: the environment's plain variables, the secrets its saver was allowed
    /// to attach (<paramref name="variables"/>, from <see cref="Visible"/>), and the caller. A secret
    /// that is not attached is not in the scope at all, so no script, however it names it, can read it.
    /// </summary>
    public static TemplateScope ForResource(EnvironmentValues values, IReadOnlyDictionary<string, object?> variables, Caller? caller) =>
        new TemplateScope()
            .With("environment", new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["name"] = values.Environment,
                ["variables"] = variables,
            })
            .With("current_user", CurrentUser(caller));

    /// <summary>
    /// The variables a resource's templates see in one environment: every plain one, and the secrets
    /// attached when it was saved. A resource saved before attachment was checked
    /// (<see cref="CompiledResource.Attached"/> null) keeps the secrets it names.
    /// </summary>
    public static IReadOnlyDictionary<string, object?> Visible(CompiledResource resource, EnvironmentValues values)
    {
        if (values.Secrets.Count == 0)
        {
            return values.All;
        }

        var attached = resource.Attached;
        var all = attached is null ? resource.ReadsAllVariables : attached.Contains("*");
        var visible = new Dictionary<string, object?>(values.All.Count, StringComparer.Ordinal);
        foreach (var (name, value) in values.All)
        {
            if (value is not Secret || all || (attached ?? resource.Variables).Contains(name))
            {
                visible[name] = value;
            }
        }

        return visible;
    }

    /// <summary>
    /// Queries, written by people who may only use the resource: plain variables only (a secret
    /// would otherwise be one <c>{{ }}</c> away from a response body), inputs and the caller.
    /// </summary>
    public static TemplateScope ForQuery(EnvironmentValues values, Caller? caller, object? inputs) =>
        new TemplateScope()
            .With("environment", new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["name"] = values.Environment,
                ["variables"] = values.Plain,
            })
            .With("current_user", CurrentUser(caller))
            .With("inputs", inputs);

    private static Dictionary<string, object?>? CurrentUser(Caller? caller) => caller is null
        ? null
        : new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["id"] = caller.UserId,
            ["name"] = caller.UserName,
            ["email"] = caller.Email,
            ["displayName"] = caller.DisplayName,
            ["role"] = caller.Role,
            ["groups"] = caller.Groups.Cast<object?>().ToArray(),
            // The identity provider's claims from the last single sign-on (never a token); empty for others.
            ["claims"] = caller.Claims is null
                ? new Dictionary<string, object?>(StringComparer.Ordinal)
                : caller.Claims.ToDictionary(c => c.Key, c => (object?)c.Value, StringComparer.Ordinal),
        };
}

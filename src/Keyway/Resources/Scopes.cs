using Keyway.Access;
using Keyway.Environments;
using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>What templates can see, by who wrote them.</summary>
internal static class Scopes
{
    /// <summary>
    /// Resource configuration, written by people who may edit the resource: every variable of the
    /// environment, secrets included, and the caller.
    /// </summary>
    public static TemplateScope ForResource(EnvironmentValues values, Caller? caller) =>
        new TemplateScope()
            .With("environment", new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["name"] = values.Environment,
                ["variables"] = values.All,
            })
            .With("current_user", CurrentUser(caller));

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

using Keyway.Api;
using Keyway.Outbound;

namespace Keyway.Resources;

/// <summary>
/// Refuses, when a resource is saved, a header or query value whose written text holds CR, LF or
/// NUL: such a value can only fail (or smuggle a header) when the request is sent, so it is
/// refused with its field instead. Values that come from templates are checked when built
/// (<see cref="ResourceResolver"/>, the custom flow client).
/// </summary>
internal static class StaticValues
{
    public static void Check(ResourceDefinition definition, List<FieldError> errors)
    {
        Each("headers", definition.Headers, errors);
        Each("query", definition.Query, errors);
        if (definition.Auth is not { } auth)
        {
            return;
        }

        // What the auth methods place into a header, a query parameter or a cookie.
        One("auth.prefix", auth.Prefix, errors);
        One("auth.username", auth.Username, errors);
        One("auth.value", auth.Value, errors);
        One("auth.token", auth.Token, errors);
        One("auth.clientId", auth.ClientId, errors);
        Each("auth.apply.headers", auth.Apply?.Headers, errors);
        Each("auth.apply.query", auth.Apply?.Query, errors);
        Each("auth.apply.cookies", auth.Apply?.Cookies, errors);
        foreach (var (list, steps) in new[] { ("auth.steps", auth.Steps), ("auth.refreshSteps", auth.RefreshSteps) })
        {
            for (var i = 0; i < (steps?.Count ?? 0); i++)
            {
                Each($"{list}[{i}].headers", steps![i].Headers, errors);
            }
        }
    }

    private static void Each(string field, Dictionary<string, string>? values, List<FieldError> errors)
    {
        foreach (var (name, value) in values ?? [])
        {
            One($"{field}.{name}", value, errors);
        }
    }

    private static void One(string field, string? value, List<FieldError> errors)
    {
        if (HeaderRules.StaticValueError(value) is { } error)
        {
            errors.Add(new FieldError(field, error));
        }
    }
}

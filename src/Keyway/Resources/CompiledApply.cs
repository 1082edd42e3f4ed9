using Keyway.Api;
using Keyway.Outbound;
using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>
/// Where a dynamic credential goes on each request (<c>auth.apply</c>): headers, query parameters, cookies and
/// fields of the request body, each a template over the credential (a custom flow's variables, or
/// <c>credential.accessToken</c> for the token methods). Rendered once per credential, never per request.
/// </summary>
internal sealed class CompiledApply
{
    public required IReadOnlyList<KeyValuePair<string, Template>> Headers { get; init; }

    public required IReadOnlyList<KeyValuePair<string, Template>> Query { get; init; }

    public required IReadOnlyList<KeyValuePair<string, Template>> Cookies { get; init; }

    /// <summary>Fields set in the request's JSON object or form body.</summary>
    public required IReadOnlyList<KeyValuePair<string, Template>> Body { get; init; }

    public int Count => Headers.Count + Query.Count + Cookies.Count + Body.Count;

    public IEnumerable<Template> Templates => Headers.Concat(Query).Concat(Cookies).Concat(Body).Select(e => e.Value);

    /// <summary>
    /// Compiles <paramref name="apply"/>, every entry checked by name and by <paramref name="check"/> (which sees the
    /// field and the parsed template). No entry may read <c>current_user</c>: what is rendered once per credential
    /// would carry one person's details onto the next person's requests.
    /// </summary>
    public static CompiledApply Compile(
        AuthApplyDefinition apply, List<FieldError> errors, Func<string, string?, bool, Template?> parse, Action<string, Template> check)
    {
        List<KeyValuePair<string, Template>> Section(string section, Dictionary<string, string>? entries, Func<string, string?> checkName)
        {
            var into = new List<KeyValuePair<string, Template>>();
            foreach (var (name, text) in entries ?? [])
            {
                var field = $"auth.apply.{section}.{name}";
                if (checkName(name) is { } nameError)
                {
                    errors.Add(new FieldError(field, nameError));
                    continue;
                }

                if (parse(field, text ?? "", false) is not { } template)
                {
                    continue;
                }

                if (template.Roots.Contains("current_user"))
                {
                    errors.Add(new FieldError(field,
                        "auth.apply is rendered once per credential and reused for every caller, so it cannot read current_user; put per-caller values in the resource's headers or query."));
                }

                check(field, template);
                into.Add(new(name, template));
            }

            return into;
        }

        return new CompiledApply
        {
            Headers = Section("headers", apply.Headers, name =>
                !HeaderRules.IsValidName(name) ? $"'{name}' is not a valid header name."
                : HeaderRules.IsHopByHop(name) || name.Equals("Host", StringComparison.OrdinalIgnoreCase) || name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase)
                    ? $"Keyway sets '{name}' itself; it cannot carry a credential."
                    : null),
            Query = Section("query", apply.Query, name => name.Length == 0 ? "A query parameter name is empty." : null),
            Cookies = Section("cookies", apply.Cookies, name => HeaderRules.IsValidName(name) ? null : $"'{name}' is not a valid cookie name."),
            Body = Section("body", apply.Body, name => name.Length == 0 ? "A body field name is empty." : null),
        };
    }
}

/// <summary>What a token method's <c>auth.apply</c> templates see of the credential: <c>{{ credential.accessToken }}</c> and its kin.</summary>
internal static class TokenFields
{
    public const string Root = "credential";

    /// <summary>
    /// The access token (a secret, redacted wherever it appears), its type and its expiry. Never the refresh token:
    /// it goes to the token endpoint alone.
    /// </summary>
    public static Dictionary<string, object?> Of(Credentials.TokenSet tokens) => new(StringComparer.Ordinal)
    {
        ["accessToken"] = tokens.AccessToken,
        ["tokenType"] = tokens.TokenType ?? "Bearer",
        ["expiresAt"] = tokens.ExpiresAt?.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture),
    };
}

using System.Net;
using Keyway.Hosting;

namespace Keyway.SignIn;

/// <summary>
/// OpenID Connect single sign-on, from <c>KEYWAY_OIDC_*</c> variables; null settings mean SSO is off.
/// Validated at start: a bad value stops the server with a message that names the variable.
/// </summary>
internal sealed record OidcSettings
{
    public const string DefaultScopes = "openid profile email";
    public const string DefaultGroupsClaim = "groups";

    /// <summary>The issuer; its <c>/.well-known/openid-configuration</c> is read at first use.</summary>
    public required Uri Authority { get; init; }

    public required string ClientId { get; init; }

    /// <summary>The client secret; null for a public client (PKCE protects the code either way).</summary>
    public Secrets.Secret? ClientSecret { get; init; }

    public IReadOnlyList<string> Scopes { get; init; } = DefaultScopes.Split(' ');

    /// <summary>The claim of the ID token that lists the user's groups.</summary>
    public string GroupsClaim { get; init; } = DefaultGroupsClaim;

    /// <summary>Groups (as the identity provider names them, or as mapped) whose members are Keyway admins.</summary>
    public IReadOnlyList<string> AdminGroups { get; init; } = [];

    /// <summary>Identity-provider group → Keyway group. Unmapped groups keep their name.</summary>
    public IReadOnlyDictionary<string, string> GroupMap { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Plain-http discovery, allowed only for an authority on loopback (tests, local development).</summary>
    public bool AllowHttp { get; init; }

    /// <summary>Reads the settings; null when <c>KEYWAY_OIDC_AUTHORITY</c> is unset.</summary>
    /// <exception cref="StartupException">A variable is missing or malformed.</exception>
    public static OidcSettings? FromEnvironment(Func<string, string?> variable)
    {
        var authorityText = variable("KEYWAY_OIDC_AUTHORITY");
        if (string.IsNullOrWhiteSpace(authorityText))
        {
            foreach (var other in (string[])["KEYWAY_OIDC_CLIENT_ID", "KEYWAY_OIDC_CLIENT_SECRET"])
            {
                if (!string.IsNullOrWhiteSpace(variable(other)))
                {
                    throw new StartupException($"{other} is set but KEYWAY_OIDC_AUTHORITY is not: set the identity provider's issuer URL to turn on single sign-on.");
                }
            }

            return null;
        }

        if (!Uri.TryCreate(authorityText.Trim(), UriKind.Absolute, out var authority) || authority.Scheme is not ("https" or "http"))
        {
            throw new StartupException("KEYWAY_OIDC_AUTHORITY must be the identity provider's issuer URL, e.g. https://login.example.com/realms/acme.");
        }

        var allowHttp = ParseBool(variable("KEYWAY_OIDC_ALLOW_HTTP"), "KEYWAY_OIDC_ALLOW_HTTP");
        if (authority.Scheme == "http")
        {
            if (!allowHttp)
            {
                throw new StartupException("KEYWAY_OIDC_AUTHORITY must use https (tokens and keys travel over it).");
            }

            if (!IsLoopback(authority))
            {
                throw new StartupException("KEYWAY_OIDC_ALLOW_HTTP allows plain http only for an identity provider on loopback (localhost, 127.0.0.1, ::1).");
            }
        }

        var clientId = variable("KEYWAY_OIDC_CLIENT_ID");
        if (string.IsNullOrWhiteSpace(clientId))
        {
            throw new StartupException("KEYWAY_OIDC_CLIENT_ID is required when KEYWAY_OIDC_AUTHORITY is set.");
        }

        var secret = variable("KEYWAY_OIDC_CLIENT_SECRET");
        var scopes = (variable("KEYWAY_OIDC_SCOPES") is { Length: > 0 } s ? s : DefaultScopes)
            .Split([' ', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();
        if (!scopes.Contains("openid", StringComparer.Ordinal))
        {
            scopes.Insert(0, "openid");
        }

        var groupsClaim = variable("KEYWAY_OIDC_GROUPS_CLAIM") is { Length: > 0 } g ? g.Trim() : DefaultGroupsClaim;
        var adminGroups = Split(variable("KEYWAY_OIDC_ADMIN_GROUPS"));
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var pair in Split(variable("KEYWAY_OIDC_GROUP_MAP")))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0 || equals == pair.Length - 1)
            {
                throw new StartupException($"KEYWAY_OIDC_GROUP_MAP entries are 'idpGroup=keywayGroup' separated by commas; '{pair}' is not.");
            }

            var keywayGroup = pair[(equals + 1)..].Trim();
            if (Api.Names.CheckName("group", keywayGroup) is { } error)
            {
                throw new StartupException($"KEYWAY_OIDC_GROUP_MAP: {error}");
            }

            map[pair[..equals].Trim()] = keywayGroup;
        }

        return new OidcSettings
        {
            Authority = authority,
            ClientId = clientId.Trim(),
            ClientSecret = string.IsNullOrEmpty(secret) ? null : new Secrets.Secret(secret),
            Scopes = scopes,
            GroupsClaim = groupsClaim,
            AdminGroups = adminGroups,
            GroupMap = map,
            AllowHttp = allowHttp,
        };
    }

    /// <summary>The Keyway groups for the identity provider's <paramref name="idpGroups"/>: mapped, or kept when they make valid names.</summary>
    public IReadOnlyList<string> MapGroups(IEnumerable<string> idpGroups) =>
        idpGroups.Select(g => GroupMap.TryGetValue(g, out var mapped) ? mapped : g)
            .Where(g => Api.Names.CheckName("group", g) is null)
            .Distinct(StringComparer.Ordinal)
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>Whether any of the groups (as the provider or Keyway names them) makes its member an admin.</summary>
    public bool IsAdmin(IEnumerable<string> idpGroups, IEnumerable<string> keywayGroups) =>
        AdminGroups.Count > 0 && idpGroups.Concat(keywayGroups).Any(g => AdminGroups.Contains(g, StringComparer.Ordinal));

    private static bool IsLoopback(Uri uri) =>
        uri.IsLoopback || (IPAddress.TryParse(uri.Host.Trim('[', ']'), out var address) && IPAddress.IsLoopback(address));

    private static bool ParseBool(string? value, string name) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "false" or "0" or "no" => false,
        "true" or "1" or "yes" => true,
        _ => throw new StartupException($"{name} must be true or false."),
    };

    private static string[] Split(string? value) =>
        value?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
}

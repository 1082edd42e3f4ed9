using Keyway.Api;
using Keyway.Credentials;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>An oauth2 auth method, validated, its templates parsed once.</summary>
internal sealed class CompiledOAuth2
{
    public static readonly string[] Grants = ["client_credentials", "authorization_code", "refresh_token", "password"];

    private Template? _issuer;
    private Template? _tokenUrl;
    private Template? _authorizeUrl;
    private Template? _revocationUrl;
    private Template? _clientId;
    private Template? _clientSecret;
    private Template? _scope;
    private Template? _audience;
    private Template? _resource;
    private Template? _username;
    private Template? _password;
    private readonly List<KeyValuePair<string, Template>> _extra = [];

    public required string Grant { get; init; }

    public required string ClientAuth { get; init; }

    public required Placement TokenIn { get; init; }

    public required string TokenName { get; init; }

    public required string TokenPrefix { get; init; }

    public TimeSpan? Lifetime { get; init; }

    public TimeSpan? KeepAlive { get; init; }

    public Cronos.CronExpression? RefreshSchedule { get; init; }

    public static CompiledOAuth2? Compile(
        AuthDefinition auth, List<FieldError> errors, Func<string, string?, bool, Template?> parse, Func<string, string?, Template?> secret)
    {
        var grant = auth.Grant ?? "client_credentials";
        if (!Grants.Contains(grant))
        {
            errors.Add(new FieldError("auth.grant", $"'{grant}' is not a supported grant; use {string.Join(", ", Grants)}."));
        }

        if (auth.TokenUrl is null && auth.Issuer is null)
        {
            errors.Add(new FieldError("auth.tokenUrl", "Set the token endpoint (auth.tokenUrl) or the issuer to discover it from (auth.issuer)."));
        }

        foreach (var (field, url) in new[] { ("auth.tokenUrl", auth.TokenUrl), ("auth.issuer", auth.Issuer), ("auth.authorizeUrl", auth.AuthorizeUrl), ("auth.revocationUrl", auth.RevocationUrl) })
        {
            if (url is not null && !url.Contains("{{", StringComparison.Ordinal) && ResourceCompiler.CheckBaseUrl(url) is { } urlError)
            {
                errors.Add(new FieldError(field, urlError));
            }
        }

        if (string.IsNullOrEmpty(auth.ClientId))
        {
            errors.Add(new FieldError("auth.clientId", "Set the OAuth client id."));
        }

        if (auth.ClientAuth is not (null or "basic" or "post"))
        {
            errors.Add(new FieldError("auth.clientAuth", $"'{auth.ClientAuth}' is not a client authentication; use 'basic' or 'post'."));
        }

        if (grant == "password" && (auth.Username is null || auth.Password is null))
        {
            errors.Add(new FieldError("auth.username", "The password grant needs auth.username and auth.password."));
        }

        if (auth.In is not (null or "header" or "query"))
        {
            errors.Add(new FieldError("auth.in", $"'{auth.In}' is not a place for an access token; use 'header' or 'query'."));
        }

        if (auth.Token is not null || auth.Value is not null)
        {
            errors.Add(new FieldError("auth.token", "An oauth2 resource gets its tokens from the provider; import an existing token set with 'keyway credential import' instead."));
        }

        Cronos.CronExpression? schedule = null;
        if (auth.RefreshSchedule is { } cron && !Cronos.CronExpression.TryParse(cron, out schedule))
        {
            errors.Add(new FieldError("auth.refreshSchedule", $"'{cron}' is not a cron expression (5 fields: minute hour day month weekday, UTC), e.g. '0 3 * * *'."));
        }

        if (auth.KeepAliveSeconds is < 60)
        {
            errors.Add(new FieldError("auth.keepAliveSeconds", "Must be at least 60 seconds."));
        }

        if (auth.LifetimeSeconds is < 1)
        {
            errors.Add(new FieldError("auth.lifetimeSeconds", "Must be a positive number of seconds."));
        }

        var inQuery = auth.In == "query";
        var compiled = new CompiledOAuth2
        {
            Grant = grant,
            ClientAuth = auth.ClientAuth ?? "basic",
            TokenIn = inQuery ? Placement.Query : Placement.Header,
            TokenName = auth.Name ?? (inQuery ? "access_token" : "Authorization"),
            TokenPrefix = auth.Prefix ?? (inQuery ? "" : "Bearer "),
            Lifetime = auth.LifetimeSeconds is { } seconds ? TimeSpan.FromSeconds(seconds) : null,
            KeepAlive = auth.KeepAliveSeconds is { } keep ? TimeSpan.FromSeconds(keep) : null,
            RefreshSchedule = schedule,
            _issuer = parse("auth.issuer", auth.Issuer, false),
            _tokenUrl = parse("auth.tokenUrl", auth.TokenUrl, false),
            _authorizeUrl = parse("auth.authorizeUrl", auth.AuthorizeUrl, false),
            _revocationUrl = parse("auth.revocationUrl", auth.RevocationUrl, false),
            _clientId = parse("auth.clientId", auth.ClientId, false),
            _clientSecret = auth.ClientSecret is null ? null : secret("auth.clientSecret", auth.ClientSecret),
            _scope = parse("auth.scope", auth.Scope, false),
            _audience = parse("auth.audience", auth.Audience, false),
            _resource = parse("auth.resourceIndicator", auth.ResourceIndicator, false),
            _username = parse("auth.username", auth.Username, false),
            _password = auth.Password is null ? null : secret("auth.password", auth.Password),
        };
        foreach (var (name, value) in auth.ExtraParameters ?? [])
        {
            if (parse($"auth.extraParameters.{name}", value ?? "", false) is { } t)
            {
                compiled._extra.Add(new(name, t));
            }
        }

        return compiled;
    }

    /// <summary>The rendered values of the templates that read a secret or run a script (<see cref="OAuth2Settings.SecretDerived"/>).</summary>
    public IReadOnlyList<string> SecretDerived(TemplateScope scope, Func<string, bool> isSecret) =>
    [
        .. new[] { _issuer, _tokenUrl, _authorizeUrl, _revocationUrl, _clientId, _clientSecret, _scope, _audience, _resource, _username, _password }
            .Concat(_extra.Select(e => e.Value))
            .OfType<Template>()
            .Where(t => TemplateProvenance.WithheldBecause(t, isSecret) is not null)
            .Select(t => t.Render(scope))
            .Where(v => v.Length > 0),
    ];

    /// <summary>The settings for one environment (and caller, if templates read one).</summary>
    public OAuth2Settings Render(TemplateScope scope)
    {
        string? R(Template? t) => t?.Render(scope) is { Length: > 0 } v ? v : null;
        return new OAuth2Settings
        {
            Grant = Grant,
            Issuer = R(_issuer),
            TokenUrl = R(_tokenUrl),
            AuthorizeUrl = R(_authorizeUrl),
            RevocationUrl = R(_revocationUrl),
            ClientId = R(_clientId) ?? "",
            ClientSecret = R(_clientSecret) is { } cs ? new Secret(cs) : null,
            ClientAuth = ClientAuth,
            Scope = R(_scope),
            Audience = R(_audience),
            ResourceIndicator = R(_resource),
            ExtraParameters = _extra.ToDictionary(p => p.Key, p => p.Value.Render(scope), StringComparer.Ordinal),
            Username = R(_username),
            Password = R(_password) is { } pw ? new Secret(pw) : null,
            Lifetime = Lifetime,
            KeepAlive = KeepAlive,
            RefreshSchedule = RefreshSchedule,
        };
    }
}

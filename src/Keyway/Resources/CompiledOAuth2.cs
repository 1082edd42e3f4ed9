using Keyway.Api;
using Keyway.Credentials;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>An oauth2 auth method, validated, its templates parsed once.</summary>
internal sealed class CompiledOAuth2
{
    public static readonly string[] Grants = ["client_credentials", "authorization_code", "refresh_token", "password", OAuth2Client.JwtBearerGrant];

    /// <summary>RFC 8705 client authentication by a certificate from a CA the provider trusts.</summary>
    public const string TlsClientAuth = "tls_client_auth";

    /// <summary>RFC 8705 client authentication by a certificate the provider holds for the client.</summary>
    public const string SelfSignedTlsClientAuth = "self_signed_tls_client_auth";

    public static readonly string[] ClientAuths = ["basic", "post", "private_key_jwt", TlsClientAuth, SelfSignedTlsClientAuth];

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
    private Template? _privateKey;
    private Template? _keyId;
    private Template? _serviceAccountKey;
    private Template? _assertionIssuer;
    private Template? _assertionSubject;
    private Template? _assertionAudience;
    private readonly List<KeyValuePair<string, Template>> _extra = [];

    /// <summary>The private keys this definition version has read: each parsed once.</summary>
    public SigningKeyCache Keys { get; } = new();

    public string? Algorithm { get; init; }

    /// <summary>The algorithm of the DPoP proofs (<c>auth.dpop</c>), or null: the tokens are bearer tokens.</summary>
    public string? DPoPAlgorithm { get; init; }

    public TimeSpan AssertionLifetime { get; init; } = TimeSpan.FromMinutes(5);

    public required string Grant { get; init; }

    public required string ClientAuth { get; init; }

    /// <summary>Whether the token endpoint is sent the resource's client certificate: mutual TLS client authentication or bound tokens (RFC 8705).</summary>
    public bool UsesClientCertificate => ClientAuth is TlsClientAuth or SelfSignedTlsClientAuth || CertificateBound;

    /// <summary>The provider binds the access tokens to the client certificate (<c>auth.certificateBoundTokens</c>).</summary>
    public bool CertificateBound { get; init; }

    public required Placement TokenIn { get; init; }

    public required string TokenName { get; init; }

    public required string TokenPrefix { get; init; }

    /// <summary>Where the access token goes.</summary>
    public TokenPlacement Destination => field ??= new TokenPlacement(TokenIn, TokenName, TokenPrefix);

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

        var jwtBearer = grant == OAuth2Client.JwtBearerGrant;
        if (auth.TokenUrl is null && auth.Issuer is null && !(jwtBearer && auth.ServiceAccountKey is not null))
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

        if (string.IsNullOrEmpty(auth.ClientId) && (!jwtBearer || auth.ClientAuth is not null || auth.ClientSecret is not null))
        {
            errors.Add(new FieldError("auth.clientId", "Set the OAuth client id."));
        }

        if (auth.ClientAuth is not null && !ClientAuths.Contains(auth.ClientAuth))
        {
            errors.Add(new FieldError("auth.clientAuth", $"'{auth.ClientAuth}' is not a client authentication; use {string.Join(", ", ClientAuths.Select(a => "'" + a + "'"))}."));
        }
        else if (auth.ClientAuth is TlsClientAuth or SelfSignedTlsClientAuth && auth.ClientSecret is not null)
        {
            errors.Add(new FieldError("auth.clientSecret", $"'{auth.ClientAuth}' authenticates the client with its TLS client certificate, not a client secret: remove auth.clientSecret."));
        }

        CheckAssertion(auth, grant, errors);

        if (grant == "password" && (auth.Username is null || auth.Password is null))
        {
            errors.Add(new FieldError("auth.username", "The password grant needs auth.username and auth.password."));
        }

        if (auth.In is not (null or "header" or "query"))
        {
            errors.Add(new FieldError("auth.in", $"'{auth.In}' is not a place for an access token; use 'header' or 'query'."));
        }

        CheckDPoP(auth, errors);

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
            Algorithm = auth.Algorithm,
            AssertionLifetime = TimeSpan.FromSeconds(auth.Assertion?.LifetimeSeconds ?? 300),
            _privateKey = auth.PrivateKey is null ? null : secret("auth.privateKey", auth.PrivateKey),
            _keyId = parse("auth.keyId", auth.KeyId, false),
            _serviceAccountKey = auth.ServiceAccountKey is null ? null : secret("auth.serviceAccountKey", auth.ServiceAccountKey),
            _assertionIssuer = parse("auth.assertion.issuer", auth.Assertion?.Issuer, false),
            _assertionSubject = parse("auth.assertion.subject", auth.Assertion?.Subject, false),
            _assertionAudience = parse("auth.assertion.audience", auth.Assertion?.Audience, false),
            Grant = grant,
            ClientAuth = auth.ClientAuth ?? "basic",
            CertificateBound = auth.CertificateBoundTokens == true,
            TokenIn = inQuery ? Placement.Query : Placement.Header,
            TokenName = auth.Name ?? (inQuery ? "access_token" : "Authorization"),
            TokenPrefix = auth.Prefix ?? (inQuery ? "" : auth.Dpop is not null ? DPoPHeaders.Scheme + " " : "Bearer "),
            DPoPAlgorithm = auth.Dpop is null ? null : auth.Dpop.Algorithm ?? DPoPKey.DefaultAlgorithm,
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
        .. new[] { _issuer, _tokenUrl, _authorizeUrl, _revocationUrl, _clientId, _clientSecret, _scope, _audience, _resource, _username, _password, _privateKey, _keyId, _serviceAccountKey, _assertionIssuer, _assertionSubject, _assertionAudience }
            .Concat(_extra.Select(e => e.Value))
            .OfType<Template>()
            .Where(t => TemplateProvenance.WithheldBecause(t, isSecret) is not null)
            .Select(t => t.Render(scope))
            .Where(v => v.Length > 0),
    ];

    /// <summary>
    /// The settings for one environment (and caller, if templates read one). A private key is parsed here, once per
    /// value (<see cref="Keys"/>); the key text a service account's JSON file holds goes to <paramref name="derived"/>, to be redacted.
    /// </summary>
    public OAuth2Settings Render(TemplateScope scope, List<string>? derived = null)
    {
        string? R(Template? t) => t?.Render(scope) is { Length: > 0 } v ? v : null;
        SigningKey? key = null;
        string? issuer = R(_assertionIssuer), audience = R(_assertionAudience), tokenUrl = R(_tokenUrl);
        var keyId = R(_keyId);
        var scopeInAssertion = false;
        if (R(_serviceAccountKey) is { } json)
        {
            var account = GoogleServiceAccount.Parse(json, "auth.serviceAccountKey");
            derived?.Add(account.PrivateKey);
            key = Keys.Get(account.PrivateKey, Algorithm ?? "RS256", keyId ?? account.PrivateKeyId, "The private_key of auth.serviceAccountKey");
            issuer ??= account.ClientEmail;
            tokenUrl ??= account.TokenUri;
            audience ??= account.TokenUri;
            scopeInAssertion = true;
        }
        else if (R(_privateKey) is { } pem)
        {
            key = Keys.Get(pem, Algorithm, keyId, "auth.privateKey");
        }
        else if (_privateKey is not null || _serviceAccountKey is not null)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                "The private key of this resource is empty in this environment: set the secret variable it reads.");
        }

        return new OAuth2Settings
        {
            SigningKey = key,
            AssertionIssuer = issuer,
            AssertionSubject = R(_assertionSubject),
            AssertionAudience = audience,
            AssertionLifetime = AssertionLifetime,
            ScopeInAssertion = scopeInAssertion,
            Grant = Grant,
            Issuer = R(_issuer),
            TokenUrl = tokenUrl,
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
            DPoPAlgorithm = DPoPAlgorithm,
        };
    }

    /// <summary>DPoP (RFC 9449): an algorithm Keyway signs with, and the access token in <c>Authorization: DPoP …</c>, where the proof's <c>ath</c> binds it.</summary>
    private static void CheckDPoP(AuthDefinition auth, List<FieldError> errors)
    {
        if (auth.Dpop is not { } dpop)
        {
            return;
        }

        if (dpop.Algorithm is { } algorithm && !DPoPKey.Algorithms.Contains(algorithm))
        {
            errors.Add(new FieldError("auth.dpop.algorithm", $"'{algorithm}' is not a DPoP algorithm Keyway signs with; use {string.Join(", ", DPoPKey.Algorithms)}."));
        }

        if (auth.In == "query")
        {
            errors.Add(new FieldError("auth.in", "A DPoP-bound token goes in the Authorization header (RFC 9449): remove auth.in, or turn auth.dpop off."));
        }

        if (auth.Name is { } name && !name.Equals("Authorization", StringComparison.OrdinalIgnoreCase))
        {
            errors.Add(new FieldError("auth.name", "A DPoP-bound token goes in the Authorization header (RFC 9449): remove auth.name."));
        }

        if (auth.Prefix is { } prefix && prefix != DPoPHeaders.Scheme + " ")
        {
            errors.Add(new FieldError("auth.prefix", "A DPoP-bound token is sent as 'Authorization: DPoP <token>': remove auth.prefix."));
        }
    }

    /// <summary>What the jwt_bearer grant and private_key_jwt need, and what belongs to neither.</summary>
    private static void CheckAssertion(AuthDefinition auth, string grant, List<FieldError> errors)
    {
        var jwtBearer = grant == OAuth2Client.JwtBearerGrant;
        var privateKeyJwt = auth.ClientAuth == "private_key_jwt";
        if (jwtBearer)
        {
            if (auth.PrivateKey is null == (auth.ServiceAccountKey is null))
            {
                errors.Add(new FieldError(auth.PrivateKey is null ? "auth.privateKey" : "auth.serviceAccountKey",
                    "The jwt_bearer grant signs with auth.privateKey (a PEM key, with auth.assertion.issuer) or auth.serviceAccountKey (a Google service account's JSON key file): give one of them."));
            }
            else if (auth.PrivateKey is not null && auth.Assertion?.Issuer is null && string.IsNullOrEmpty(auth.ClientId))
            {
                errors.Add(new FieldError("auth.assertion.issuer", "Say who the assertion is from (its iss claim), e.g. a client id or a service account."));
            }

            if (privateKeyJwt)
            {
                errors.Add(new FieldError("auth.clientAuth", "The jwt_bearer grant already signs with auth.privateKey; authenticate the client with 'basic' or 'post' (or not at all)."));
            }
        }
        else
        {
            if (auth.ServiceAccountKey is not null)
            {
                errors.Add(new FieldError("auth.serviceAccountKey", "A service account's key file goes with grant 'jwt_bearer'."));
            }

            if (auth.Assertion is not null)
            {
                errors.Add(new FieldError("auth.assertion", "The assertion's claims go with grant 'jwt_bearer'; private_key_jwt's are the client id and the token endpoint."));
            }

            if (privateKeyJwt && auth.PrivateKey is null)
            {
                errors.Add(new FieldError("auth.privateKey", "private_key_jwt signs with a private key: give auth.privateKey, e.g. {{ environment.variables.CLIENT_KEY_PEM }}."));
            }
            else if (!privateKeyJwt && auth.PrivateKey is not null)
            {
                errors.Add(new FieldError("auth.privateKey", "A private key signs with grant 'jwt_bearer' or clientAuth 'private_key_jwt': set one of them, or remove the key."));
            }
        }

        if (privateKeyJwt && auth.ClientSecret is not null)
        {
            errors.Add(new FieldError("auth.clientSecret", "private_key_jwt authenticates with the signed assertion, not a client secret: remove auth.clientSecret."));
        }

        if (auth.Algorithm is not null && !SigningKey.Algorithms.Contains(auth.Algorithm))
        {
            errors.Add(new FieldError("auth.algorithm", $"'{auth.Algorithm}' is not a supported signing algorithm; use RS256 or ES256."));
        }

        if (auth.Assertion?.LifetimeSeconds is < 10 or > 3600)
        {
            errors.Add(new FieldError("auth.assertion.lifetimeSeconds", "Must be between 10 and 3600 seconds."));
        }
    }
}

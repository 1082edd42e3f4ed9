using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Duende.IdentityModel.Client;
using Keyway.Outbound;
using Keyway.Secrets;

namespace Keyway.Credentials;

/// <summary>An oauth2 auth method with every template evaluated for one environment.</summary>
internal sealed record OAuth2Settings
{
    public required string Grant { get; init; }

    public string? Issuer { get; init; }

    public string? TokenUrl { get; init; }

    public string? AuthorizeUrl { get; init; }

    public string? RevocationUrl { get; init; }

    public required string ClientId { get; init; }

    public Secret? ClientSecret { get; init; }

    /// <summary><c>basic</c>, <c>post</c>, <c>private_key_jwt</c>, <c>tls_client_auth</c> or <c>self_signed_tls_client_auth</c>.</summary>
    public string ClientAuth { get; init; } = "basic";

    /// <summary>
    /// The resource's client certificate, when token requests present it (mutual TLS client authentication or
    /// certificate-bound tokens, RFC 8705): they go through the resource's own connection pool. Null: the shared pool.
    /// </summary>
    public TlsBinding? Tls { get; init; }

    /// <summary>Whether the client authenticates with its TLS client certificate alone (client_id sent, no secret).</summary>
    public bool MutualTlsClientAuth => ClientAuth is "tls_client_auth" or "self_signed_tls_client_auth";

    /// <summary>The key that signs the <c>jwt_bearer</c> grant's assertion or the <c>private_key_jwt</c> client assertion.</summary>
    public SigningKey? SigningKey { get; init; }

    /// <summary>jwt_bearer: the assertion's <c>iss</c>.</summary>
    public string? AssertionIssuer { get; init; }

    /// <summary>jwt_bearer: the assertion's <c>sub</c> (null: none; Google: the user a service account acts for).</summary>
    public string? AssertionSubject { get; init; }

    /// <summary>The assertion's <c>aud</c> (null: the token endpoint).</summary>
    public string? AssertionAudience { get; init; }

    /// <summary>How long a signed assertion is valid.</summary>
    public TimeSpan AssertionLifetime { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>jwt_bearer: the scope goes in the assertion's <c>scope</c> claim, as Google wants, instead of a request parameter.</summary>
    public bool ScopeInAssertion { get; init; }

    public string? Scope { get; init; }

    public string? Audience { get; init; }

    public string? ResourceIndicator { get; init; }

    public IReadOnlyDictionary<string, string> ExtraParameters { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// The rendered values of the settings whose templates read a secret (or run a script): the resource test's
    /// trace withholds any string holding one (<see cref="AuthTrace.Taint"/>). Never sent or stored as such.
    /// </summary>
    public IReadOnlyList<string> SecretDerived { get; init; } = [];

    public string? Username { get; init; }

    public Secret? Password { get; init; }

    public TimeSpan? Lifetime { get; init; }

    public TimeSpan? KeepAlive { get; init; }

    public Cronos.CronExpression? RefreshSchedule { get; init; }

    /// <summary>The algorithm of the DPoP proofs every token request (and resource request) carries, or null: bearer tokens.</summary>
    public string? DPoPAlgorithm { get; init; }

    /// <summary>The secrets bound to origins among those the settings were rendered from: checked on every token and revocation request.</summary>
    public SecretBindings Bindings { get; init; } = SecretBindings.None;

    /// <summary>
    /// The versions of the secret variables the settings were rendered from (<c>NAME#3</c>, sorted), never their values.
    /// </summary>
    public string SecretVersions { get; init; } = "";

    /// <summary>
    /// Everything that shapes the tokens. For a grant Keyway can acquire again by itself (client
    /// credentials, password) that includes the versions of the secrets it was rendered from: a new
    /// client secret or password (or a rollback) re-acquires the token with it. For an authorization
    /// code grant it does not: rotating the client secret must not throw away a grant only a person
    /// can give again; the next refresh uses the new secret. Tokens stored under another hash are not used.
    /// </summary>
    public string ParametersHash
    {
        get
        {
            var text = string.Join('\n', Grant, Issuer, TokenUrl, ClientId, Scope, Audience, ResourceIndicator, Username,
                string.Join('&', ExtraParameters.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => p.Key + "=" + p.Value)),
                AssertionIssuer, AssertionSubject, AssertionAudience);
            if (DPoPAlgorithm is not null)
            {
                // Only when set, so the hash of every bearer credential stays what it was. Bearer tokens are not used once
                // DPoP is on, nor tokens bound to a key of another algorithm (DPoPKeyStore replaces the key).
                text += "\ndpop:" + DPoPAlgorithm;
            }

            if (Grant is "client_credentials" or "password" or OAuth2Client.JwtBearerGrant && (SecretVersions.Length > 0 || Tls is not null))
            {
                // A token bound to a certificate is of no use with another: a new certificate obtains a new token.
                text += "\n" + SecretVersions + "\n" + Tls?.Tls.Thumbprint;
            }

            return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)))[..32];
        }
    }
}

/// <summary>The endpoints of a provider, configured or discovered.</summary>
/// <remarks><paramref name="MtlsTokenUrl"/>: the RFC 8705 <c>mtls_endpoint_aliases</c> token endpoint, for clients that present a certificate.</remarks>
internal sealed record OAuth2Endpoints(string TokenUrl, string? AuthorizeUrl, string? RevocationUrl, string? MtlsTokenUrl = null);

/// <summary>
/// OAuth 2.0 protocol messages through Duende.IdentityModel, sent on Keyway's outbound pool (so the
/// destination policy applies and redirects are never followed). Discovery documents are cached.
/// </summary>
internal sealed class OAuth2Client(OutboundClient outbound, TimeProvider time, DPoPKeyStore? dpopKeys = null)
{
    /// <summary>Keyway's name for the RFC 7523 grant.</summary>
    public const string JwtBearerGrant = "jwt_bearer";

    /// <summary>The RFC 7523 grant type sent to the provider.</summary>
    public const string JwtBearerGrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer";

    private static readonly TimeSpan DiscoveryLifetime = TimeSpan.FromHours(1);
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    private readonly DPoPKeyStore? _dpopKeys = dpopKeys;
    // The authorization servers' nonces: their own map, as a resource server on the same origin keeps nonces of its own.
    private DPoPNonces _nonces = new();
    private ConcurrentDictionary<string, (OAuth2Endpoints Endpoints, DateTimeOffset Until)> _discovered = new(StringComparer.Ordinal);
    private AuthTrace? _trace;
    private HttpClient? _tracedHttp;

    private HttpClient Http => _tracedHttp ?? outbound.Client;

    /// <summary>A client that reports discovery and token requests to <paramref name="trace"/>, sharing this one's discovery cache.</summary>
    public OAuth2Client WithTrace(AuthTrace trace) => new(outbound, time, _dpopKeys) { _discovered = _discovered, _nonces = _nonces, _trace = trace, _tracedHttp = trace.Http };

    public async Task<OAuth2Endpoints> EndpointsAsync(OAuth2Settings settings, CancellationToken cancellationToken)
    {
        if (settings.TokenUrl is { } tokenUrl && (settings.Grant != "authorization_code" || settings.AuthorizeUrl is not null))
        {
            return new OAuth2Endpoints(tokenUrl, settings.AuthorizeUrl, settings.RevocationUrl);
        }

        var issuer = settings.Issuer ?? throw new TokenRequestException(FailureKind.Misconfigured, "Set auth.tokenUrl or auth.issuer.");
        var now = time.GetUtcNow();
        if (!_discovered.TryGetValue(issuer, out var cached) || cached.Until <= now)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(RequestTimeout);
            _trace?.Begin("discovery", "discovery");
            var document = await Http.GetDiscoveryDocumentAsync(new DiscoveryDocumentRequest
            {
                Address = issuer,
                Policy = new DiscoveryPolicy { RequireHttps = !IsLoopback(issuer), ValidateEndpoints = false },
            }, timeout.Token);
            if (document.IsError)
            {
                var kind = document.ErrorType is ResponseErrorType.Http or ResponseErrorType.Exception && (int?)document.HttpStatusCode is null or >= 500
                    ? FailureKind.Transient
                    : FailureKind.Misconfigured;
                throw new TokenRequestException(kind, $"Discovery at {issuer} failed: {document.Error}");
            }

            cached = (new OAuth2Endpoints(document.TokenEndpoint!, document.AuthorizeEndpoint, document.RevocationEndpoint, MtlsTokenEndpoint(document)), now + DiscoveryLifetime);
            _discovered[issuer] = cached;
        }

        return cached.Endpoints with
        {
            // A client that presents its certificate uses the provider's mutual TLS alias of the token endpoint, if it has one (RFC 8705 5).
            TokenUrl = settings.TokenUrl ?? (settings.Tls is not null ? cached.Endpoints.MtlsTokenUrl : null) ?? cached.Endpoints.TokenUrl,
            AuthorizeUrl = settings.AuthorizeUrl ?? cached.Endpoints.AuthorizeUrl,
            RevocationUrl = settings.RevocationUrl ?? cached.Endpoints.RevocationUrl,
        };
    }

    /// <summary>
    /// Runs one token request of the given grant and classifies the answer (DESIGN 4, failure classes). For a DPoP
    /// resource the request carries a proof signed with <paramref name="credential"/>'s key; an authorization server
    /// that answers <c>use_dpop_nonce</c> is asked once more, with the nonce it gave.
    /// </summary>
    public async Task<TokenResult> RequestTokenAsync(
        OAuth2Settings settings, string grant, Secret? refreshToken, string? code, string? codeVerifier, string? redirectUri,
        CredentialKey? credential, CancellationToken cancellationToken)
    {
        OAuth2Endpoints endpoints;
        try
        {
            endpoints = await EndpointsAsync(settings, cancellationToken);
        }
        catch (TokenRequestException e)
        {
            return TokenResult.Fail(e.Kind, e.Message);
        }

        var tokenUrl = new Uri(endpoints.TokenUrl);
        // The client secret, the password and the parameters may come from secrets bound to origins.
        if (settings.Bindings.FirstRefusing(tokenUrl) is { } refusing)
        {
            return TokenResult.Fail(FailureKind.Misconfigured, SecretBindings.Refused(refusing, tokenUrl, "the token request").Message);
        }

        if (grant == JwtBearerGrant && settings.SigningKey is null)
        {
            return TokenResult.Fail(FailureKind.Misconfigured, "The jwt_bearer grant has no key to sign its assertion with: set auth.privateKey or auth.serviceAccountKey.");
        }

        DPoPKey? proofKey = null;
        if (settings.DPoPAlgorithm is { } algorithm)
        {
            if (credential is not { } owner || _dpopKeys is null)
            {
                return TokenResult.Fail(FailureKind.Misconfigured, "This token request has no credential to bind a DPoP key to.");
            }

            proofKey = await _dpopKeys.GetAsync(owner, algorithm, cancellationToken);
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(RequestTimeout);
        _trace?.Protect([settings.ClientSecret, settings.Password, refreshToken]);
        // expires_in counts from when the provider issued the token, somewhere in the round trip: counting
        // from the moment the request left makes the expiry early by at most that trip, never late.
        var sentAt = time.GetUtcNow();
        var assertions = new List<string?>();
        TokenResponse response;
        try
        {
            _trace?.Begin($"token request ({grant})", "token");
            response = await SendTokenRequestAsync(settings, endpoints, grant, refreshToken, code, codeVerifier, redirectUri,
                proofKey, proofKey is null ? null : _nonces.For(tokenUrl), assertions, timeout.Token);
            if (proofKey is not null)
            {
                var nonce = response.DPoPNonce;
                _nonces.Remember(tokenUrl, nonce);
                if (response.IsError && JsonString(response, "error") == DPoPHeaders.UseNonce && !string.IsNullOrEmpty(nonce))
                {
                    // RFC 9449, section 8: the server wants a nonce of its own in the proof. Once: a second refusal is its answer.
                    _trace?.Begin($"token request ({grant}, with the server's DPoP nonce)", "token");
                    sentAt = time.GetUtcNow();
                    response = await SendTokenRequestAsync(settings, endpoints, grant, refreshToken, code, codeVerifier, redirectUri,
                        proofKey, nonce, assertions, timeout.Token);
                    _nonces.Remember(tokenUrl, response.DPoPNonce);
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return TokenResult.Fail(FailureKind.Transient, $"The token endpoint did not answer within {RequestTimeout.TotalSeconds:0} s.");
        }

        if (proofKey is not null && !response.IsError && !string.Equals(response.TokenType, DPoPHeaders.Scheme, StringComparison.OrdinalIgnoreCase))
        {
            // RFC 9449, section 5: a server may answer a DPoP request with a bearer token. Keyway does not use one: the resource
            // asked for sender-constrained tokens, and a bearer token sent as 'DPoP' would be refused anyway.
            return TokenResult.Fail(FailureKind.Misconfigured,
                $"The token endpoint answered with a '{Truncate(response.TokenType ?? "")}' token although the request carried a DPoP proof: " +
                "the provider does not bind tokens to keys for this client. Enable DPoP for the client at the provider, or turn off auth.dpop.");
        }

        return Classify(response, settings, grant, refreshToken, sentAt, [.. assertions]);
    }

    /// <summary>One token request, its assertions and DPoP proof fresh (a provider refuses a <c>jti</c> it has seen).</summary>
    private async Task<TokenResponse> SendTokenRequestAsync(
        OAuth2Settings settings, OAuth2Endpoints endpoints, string grant, Secret? refreshToken, string? code, string? codeVerifier, string? redirectUri,
        DPoPKey? proofKey, string? nonce, List<string?> assertions, CancellationToken ct)
    {
        var parameters = new Parameters();
        foreach (var (name, value) in settings.ExtraParameters)
        {
            parameters.Add(name, value);
        }

        if (settings.Audience is { Length: > 0 } audience)
        {
            parameters.Add("audience", audience);
        }

        if (settings.ResourceIndicator is { Length: > 0 } resource)
        {
            parameters.Add("resource", resource);
        }

        // Mutual TLS client authentication sends the client_id in the body and no secret: the certificate authenticates (RFC 8705 2).
        var style = settings.ClientAuth == "post" || settings.MutualTlsClientAuth ? ClientCredentialStyle.PostBody : ClientCredentialStyle.AuthorizationHeader;
        var secret = settings.MutualTlsClientAuth ? null : settings.ClientSecret?.Reveal();
        var http = HttpFor(settings);
        // Signed per token request (iat, exp, jti fresh each time); a provider refuses an assertion it has seen.
        var clientAssertion = ClientAssertionFor(settings, endpoints.TokenUrl);
        assertions.Add(clientAssertion?.Value);
        if (grant == JwtBearerGrant)
        {
            var grantAssertion = GrantAssertion(settings, endpoints.TokenUrl);
            assertions.Add(grantAssertion);
            parameters.Add("assertion", grantAssertion);
            if (settings.Scope is { Length: > 0 } scope && !settings.ScopeInAssertion)
            {
                parameters.Add("scope", scope);
            }
        }

        var proof = proofKey?.Proof("POST", DPoPKey.TargetUri(new Uri(endpoints.TokenUrl)), time.GetUtcNow(), null, nonce);
        assertions.Add(proof);

        // What every grant's request carries: the endpoint, the client, the extra parameters and the DPoP proof.
        T Client<T>(T request)
            where T : TokenRequest
        {
            request.Address = endpoints.TokenUrl;
            request.ClientId = settings.ClientId;
            request.ClientSecret = secret;
            request.ClientCredentialStyle = clientAssertion is null ? style : ClientCredentialStyle.PostBody;
            if (clientAssertion is not null)
            {
                request.ClientAssertion = clientAssertion;
            }

            if (proof is not null)
            {
                request.DPoPProofToken = proof;
            }

            request.Parameters = parameters;
            return request;
        }

        return grant switch
        {
            "refresh_token" => await http.RequestRefreshTokenAsync(
                Client(new RefreshTokenRequest { RefreshToken = refreshToken!.Reveal(), Scope = settings.Scope }), ct),
            "client_credentials" => await http.RequestClientCredentialsTokenAsync(
                Client(new ClientCredentialsTokenRequest { Scope = settings.Scope }), ct),
            "password" => await http.RequestPasswordTokenAsync(
                Client(new PasswordTokenRequest { UserName = settings.Username!, Password = settings.Password?.Reveal(), Scope = settings.Scope }), ct),
            "authorization_code" => await http.RequestAuthorizationCodeTokenAsync(
                Client(new AuthorizationCodeTokenRequest { Code = code!, CodeVerifier = codeVerifier, RedirectUri = redirectUri! }), ct),
            JwtBearerGrant => await (settings.Tls is null ? outbound.Client : http).RequestTokenAsync(Client(new TokenRequest { GrantType = JwtBearerGrantType }), ct),
            _ => throw new ArgumentOutOfRangeException(nameof(grant)),
        };
    }

    /// <summary>What a token request goes through: the resource's own pool when it presents the client certificate (traced in the resource test).</summary>
    private HttpClient HttpFor(OAuth2Settings settings)
    {
        if (settings.Tls is not { } tls)
        {
            return Http;
        }

        var pool = outbound.For(tls);
        return _trace?.HttpOver(pool) ?? pool.Client;
    }

    private static string? MtlsTokenEndpoint(DiscoveryDocumentResponse document) =>
        document.Json is { ValueKind: System.Text.Json.JsonValueKind.Object } json &&
        json.TryGetProperty("mtls_endpoint_aliases", out var aliases) && aliases.ValueKind == System.Text.Json.JsonValueKind.Object &&
        aliases.TryGetProperty("token_endpoint", out var token) && token.ValueKind == System.Text.Json.JsonValueKind.String
            ? token.GetString()
            : null;

    /// <summary>The <c>private_key_jwt</c> client assertion (OpenID Connect Core 9, RFC 7523 2.2): <c>iss</c> and <c>sub</c> the client id.</summary>
    private ClientAssertion? ClientAssertionFor(OAuth2Settings settings, string tokenUrl) =>
        settings.ClientAuth != "private_key_jwt" || settings.SigningKey is not { } key
            ? null
            : new ClientAssertion
            {
                Type = Duende.IdentityModel.OidcConstants.ClientAssertionTypes.JwtBearer,
                Value = Sign(key, settings.ClientId, settings.ClientId, settings.AssertionAudience ?? tokenUrl, null, settings.AssertionLifetime),
            };

    /// <summary>The <c>jwt_bearer</c> grant's assertion (RFC 7523 2.1).</summary>
    private string GrantAssertion(OAuth2Settings settings, string tokenUrl) =>
        Sign(settings.SigningKey!, settings.AssertionIssuer ?? settings.ClientId, settings.AssertionSubject, settings.AssertionAudience ?? tokenUrl,
            settings.ScopeInAssertion ? settings.Scope : null, settings.AssertionLifetime);

    private string Sign(SigningKey key, string issuer, string? subject, string audience, string? scope, TimeSpan lifetime)
    {
        var now = time.GetUtcNow().ToUnixTimeSeconds();
        return key.Sign(claims =>
        {
            claims.WriteString("iss", issuer);
            if (subject is not null)
            {
                claims.WriteString("sub", subject);
            }

            claims.WriteString("aud", audience);
            if (scope is not null)
            {
                claims.WriteString("scope", scope);
            }

            claims.WriteNumber("iat", now);
            claims.WriteNumber("exp", now + (long)lifetime.TotalSeconds);
            claims.WriteString("jti", Guid.NewGuid().ToString("N"));
        });
    }

    /// <summary>RFC 7009 revocation, best effort: false when the provider has no endpoint or refused.</summary>
    public async Task<bool> RevokeAsync(OAuth2Settings settings, Secret token, string hint, CancellationToken cancellationToken)
    {
        OAuth2Endpoints endpoints;
        try
        {
            endpoints = await EndpointsAsync(settings, cancellationToken);
        }
        catch (TokenRequestException)
        {
            return false;
        }

        if (endpoints.RevocationUrl is null || settings.Bindings.FirstRefusing(new Uri(endpoints.RevocationUrl)) is not null)
        {
            return false;
        }

        var clientAssertion = ClientAssertionFor(settings, endpoints.TokenUrl);
        var response = await (settings.Tls is { } tls ? outbound.For(tls).Client : outbound.Client).RevokeTokenAsync(new TokenRevocationRequest
        {
            Address = endpoints.RevocationUrl,
            ClientId = settings.ClientId,
            ClientSecret = settings.MutualTlsClientAuth ? null : settings.ClientSecret?.Reveal(),
            ClientAssertion = clientAssertion ?? new ClientAssertion(),
            ClientCredentialStyle = settings.ClientAuth == "post" || settings.MutualTlsClientAuth || clientAssertion is not null
                ? ClientCredentialStyle.PostBody
                : ClientCredentialStyle.AuthorizationHeader,
            Token = token.Reveal(),
            TokenTypeHint = hint,
        }, cancellationToken);
        return !response.IsError;
    }

    private TokenResult Classify(
        TokenResponse response, OAuth2Settings settings, string grant, Secret? refreshToken, DateTimeOffset sentAt, string?[] assertions)
    {
        var receivedAt = time.GetUtcNow();
        if (!response.IsError && response.AccessToken is { Length: > 0 } access)
        {
            if (CertificateBinding.Refusal(access, settings.Tls?.Tls) is { } refusal)
            {
                // Sent on, the token would be refused by the resource (or would work for whoever holds that other certificate).
                return TokenResult.Fail(FailureKind.Misconfigured, refusal);
            }

            var accessToken = new Secret(access);
            return TokenResult.Success(new TokenSet
            {
                AccessToken = accessToken,
                RefreshToken = response.RefreshToken is { Length: > 0 } refresh ? new Secret(refresh) : null,
                TokenType = response.TokenType,
                ObtainedAt = receivedAt,
                ExpiresAt = TokenExpiry.Compute(sentAt, response.ExpiresIn > 0 ? response.ExpiresIn : null, accessToken, settings.Lifetime),
            });
        }

        var status = (int)response.HttpStatusCode;
        // On 4xx/5xx Duende puts the HTTP reason in Error; the OAuth error code is in the JSON body.
        var error = JsonString(response, "error") ?? response.Error ?? "no access_token in the answer";
        // Redacted before it is cut: a cut would leave the start of a quoted secret that no longer matches.
        var sent = Sent(settings, refreshToken, assertions);
        var description = (JsonString(response, "error_description") ?? response.ErrorDescription) is { Length: > 0 } d ? $" ({Truncate(sent.Redact(d))})" : "";
        if (response.ErrorType == ResponseErrorType.Exception || status is 0 or 408 or 429 or >= 500)
        {
            TimeSpan? retryAfter = null;
            if (response.HttpResponse?.Headers.RetryAfter is { } header)
            {
                retryAfter = header.Delta ?? (header.Date is { } date ? date - receivedAt : null);
            }

            var what = status == 0 ? $"the token endpoint could not be reached: {Truncate(sent.Redact(error))}" : $"the token endpoint answered {status}{description}";
            return TokenResult.Fail(FailureKind.Transient, sent.Redact(what), retryAfter);
        }

        // invalid_grant on a refresh token or code means the grant is gone; on the password or client
        // credentials grants it means the configured credentials are wrong.
        var kind = error == "invalid_grant" && grant is "refresh_token" or "authorization_code" ? FailureKind.GrantRevoked : FailureKind.Misconfigured;
        return TokenResult.Fail(kind, sent.Redact($"{Truncate(sent.Redact(error))}{description} (HTTP {status})"));
    }

    /// <summary>What the token request carried: a provider that quotes it back in an error does not get it into a message.</summary>
    private static Redactor Sent(OAuth2Settings settings, Secret? refreshToken, string?[] assertions) =>
        Redactor.For(new[] { settings.ClientSecret, settings.Password, refreshToken }.OfType<Secret>()
            .Concat(assertions.OfType<string>().Select(a => new Secret(a))));

    private static string? JsonString(TokenResponse response, string name) =>
        response.Json is { ValueKind: System.Text.Json.JsonValueKind.Object } json && json.TryGetProperty(name, out var value) &&
        value.ValueKind == System.Text.Json.JsonValueKind.String ? value.GetString() : null;

    private static string Truncate(string text) => text.Length <= 200 ? text : text[..200] + "…";

    private static bool IsLoopback(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.IsLoopback || (IPAddress.TryParse(uri.Host, out var ip) && IPAddress.IsLoopback(ip)));
}

/// <summary>A token request that could not even be made (no endpoint, discovery failed).</summary>
internal sealed class TokenRequestException(FailureKind kind, string message) : Exception(message)
{
    public FailureKind Kind { get; } = kind;
}

/// <summary>The oauth2 auth method as the engine sees it.</summary>
internal sealed class OAuth2TokenProvider(OAuth2Client client, OAuth2Settings settings, AuthTrace? trace = null) : ITokenProvider
{
    public OAuth2Settings Settings { get; } = settings;

    public bool CanAcquire => Settings.Grant is "client_credentials" or "password" or OAuth2Client.JwtBearerGrant;

    public string ParametersHash { get; } = settings.ParametersHash;

    public TimeSpan? DefaultLifetime => Settings.Lifetime;

    public TimeSpan? KeepAlive => Settings.KeepAlive;

    public DateTimeOffset? NextScheduledRefresh(DateTimeOffset after) =>
        Settings.RefreshSchedule?.GetNextOccurrence(after.UtcDateTime, TimeZoneInfo.Utc) is { } next ? new DateTimeOffset(next, TimeSpan.Zero) : null;

    public ITokenProvider WithTrace(AuthTrace trace)
    {
        trace.Taint(Settings.SecretDerived);
        return new OAuth2TokenProvider(client.WithTrace(trace), Settings, trace);
    }

    public async Task<TokenResult> AcquireAsync(CredentialKey key, CancellationToken cancellationToken)
    {
        trace?.Called("acquire");
        return Traced(await client.RequestTokenAsync(Settings, Settings.Grant, null, null, null, null, key, cancellationToken));
    }

    public async Task<TokenResult> RefreshAsync(CredentialKey key, TokenSet current, CancellationToken cancellationToken)
    {
        if (current.RefreshToken is not { } refresh)
        {
            return await AcquireAsync(key, cancellationToken);
        }

        trace?.Called("refresh");
        trace?.Protect([current.AccessToken, refresh]);
        return Traced(await client.RequestTokenAsync(Settings, "refresh_token", refresh, null, null, null, key, cancellationToken));
    }

    private TokenResult Traced(TokenResult result)
    {
        trace?.Completed(result);
        return result;
    }

    /// <summary>Exchanges an authorization code (the connect flow's callback).</summary>
    public Task<TokenResult> ExchangeCodeAsync(CredentialKey key, string code, string codeVerifier, string redirectUri, CancellationToken cancellationToken) =>
        client.RequestTokenAsync(Settings, "authorization_code", null, code, codeVerifier, redirectUri, key, cancellationToken);
}

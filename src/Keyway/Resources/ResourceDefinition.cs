using System.Text.Json.Serialization;

namespace Keyway.Resources;

/// <summary>
/// A resource as people write it (JSON or YAML): an API Keyway calls on their behalf. Every string
/// may hold <c>{{ }}</c> templates; credentials live in secret variables, referenced as
/// <c>{{ environment.variables.NAME }}</c>.
/// </summary>
internal sealed record ResourceDefinition
{
    /// <summary><c>rest</c> or <c>graphql</c>.</summary>
    public string Kind { get; init; } = "rest";

    public string? BaseUrl { get; init; }

    public string? Description { get; init; }

    /// <summary>Headers sent with every request.</summary>
    public Dictionary<string, string>? Headers { get; init; }

    /// <summary>Query parameters sent with every request.</summary>
    public Dictionary<string, string>? Query { get; init; }

    public AuthDefinition? Auth { get; init; }

    public TimeoutDefinition? Timeouts { get; init; }

    /// <summary>The largest response body <c>/run</c> accepts (default 10 MiB).</summary>
    public long? MaxResponseBytes { get; init; }

    /// <summary><c>none</c> (default) or <c>sameOrigin</c>: a redirect to another origin is never followed.</summary>
    public string? FollowRedirects { get; init; }

    /// <summary>
    /// For dynamic credentials: one shared credential for everyone (default), or each person
    /// connects their own account (false: per-user OAuth).
    /// </summary>
    public bool? ShareCredentials { get; init; }

    /// <summary>Upstream statuses that mean "the credential was rejected": refresh once and retry (default 401).</summary>
    public List<int>? AuthFailureStatuses { get; init; }

    /// <summary>How the resource's traffic is audited (else the server's <c>KEYWAY_AUDIT_TRAFFIC</c>).</summary>
    public ResourceAuditDefinition? Audit { get; init; }

    /// <summary>The TLS of its connections: a client certificate to present (mutual TLS) and the CA its server's certificate chains to.</summary>
    public ResourceTlsDefinition? Tls { get; init; }
}

/// <summary>
/// A resource's TLS settings. The client certificate is PEM (<see cref="ClientCertificate"/>, with <see cref="ClientKey"/> or
/// the key in the same PEM) or PKCS#12 (<see cref="Pkcs12"/>, with <see cref="Pkcs12Password"/>); keys and passwords are
/// templates over secret variables.
/// </summary>
internal sealed record ResourceTlsDefinition
{
    /// <summary>The client certificate as PEM, then its intermediates (a template; the key may follow in the same PEM).</summary>
    public string? ClientCertificate { get; init; }

    /// <summary>The certificate's private key as unencrypted PEM (a template over a secret variable).</summary>
    public string? ClientKey { get; init; }

    /// <summary>Instead of the PEM fields: a PKCS#12 (.p12/.pfx) file, base64 (a template over a secret variable).</summary>
    public string? Pkcs12 { get; init; }

    /// <summary>The PKCS#12 file's password (a template over a secret variable).</summary>
    public string? Pkcs12Password { get; init; }

    /// <summary>The CA certificates (PEM) the server's certificate must chain to, instead of the system's: for a private CA.</summary>
    public string? CaCertificate { get; init; }
}

/// <summary>A resource's audit settings.</summary>
internal sealed record ResourceAuditDefinition
{
    /// <summary>
    /// <c>rollup</c> (counts per interval), <c>each</c> (one event per request) or <c>off</c> (none; only for a
    /// resource that sends no secret). Unset: the server's default.
    /// </summary>
    public string? Traffic { get; init; }
}

/// <summary>How Keyway authenticates to the resource. Which fields apply depends on <see cref="Type"/>.</summary>
internal sealed record AuthDefinition
{
    /// <summary><c>none</c>, <c>bearer</c>, <c>basic</c>, <c>apiKey</c>, <c>awsSigV4</c>, <c>oauth2</c>, <c>githubApp</c> or <c>custom</c>.</summary>
    public string Type { get; init; } = "none";

    /// <summary>oauth2: <c>client_credentials</c>, <c>authorization_code</c>, <c>refresh_token</c> (from an imported token set), <c>password</c> or <c>jwt_bearer</c> (RFC 7523: a signed assertion).</summary>
    public string? Grant { get; init; }

    /// <summary>oauth2: the issuer, for discovery of the endpoints (<c>/.well-known/openid-configuration</c>).</summary>
    public string? Issuer { get; init; }

    /// <summary>oauth2: the token endpoint (else discovered from <see cref="Issuer"/>).</summary>
    public string? TokenUrl { get; init; }

    /// <summary>oauth2 authorization_code: the authorization endpoint (else discovered).</summary>
    public string? AuthorizeUrl { get; init; }

    /// <summary>oauth2: the RFC 7009 revocation endpoint, used on disconnect (else discovered, if offered).</summary>
    public string? RevocationUrl { get; init; }

    public string? ClientId { get; init; }

    /// <summary>oauth2: the client secret (a template over a secret variable).</summary>
    public string? ClientSecret { get; init; }

    /// <summary>
    /// oauth2: how the client authenticates: <c>basic</c> (default), <c>post</c>, <c>private_key_jwt</c> (a signed assertion, <see cref="PrivateKey"/>),
    /// or RFC 8705 mutual TLS: <c>tls_client_auth</c> or <c>self_signed_tls_client_auth</c> (the resource's <c>tls</c> client certificate).
    /// </summary>
    public string? ClientAuth { get; init; }

    /// <summary>
    /// oauth2: the provider binds access tokens to the client certificate (RFC 8705): token requests present the resource's
    /// <c>tls</c> client certificate, as its requests do. Implied by the mutual TLS client authentications.
    /// </summary>
    public bool? CertificateBoundTokens { get; init; }

    public string? Scope { get; init; }

    public string? Audience { get; init; }

    /// <summary>oauth2: the RFC 8707 <c>resource</c> parameter.</summary>
    public string? ResourceIndicator { get; init; }

    /// <summary>oauth2: more token request parameters.</summary>
    public Dictionary<string, string>? ExtraParameters { get; init; }

    /// <summary>oauth2: how long a token lives when neither <c>expires_in</c> nor a JWT <c>exp</c> says; custom: when neither <see cref="ExpiresIn"/> nor <see cref="Jwt"/> says.</summary>
    public int? LifetimeSeconds { get; init; }

    /// <summary>oauth2: refresh at least this often, for providers that expire idle refresh tokens.</summary>
    public int? KeepAliveSeconds { get; init; }

    /// <summary>Refresh on a schedule too: a cron expression (5 fields, UTC), e.g. <c>0 3 * * *</c>.</summary>
    public string? RefreshSchedule { get; init; }

    /// <summary>bearer: the token (a template over a secret variable).</summary>
    public string? Token { get; init; }

    /// <summary>bearer: the scheme word (default <c>Bearer</c>); apiKey: text put before the value.</summary>
    public string? Prefix { get; init; }

    /// <summary>basic: the user name.</summary>
    public string? Username { get; init; }

    /// <summary>basic: the password (a template over a secret variable).</summary>
    public string? Password { get; init; }

    /// <summary>apiKey: <c>header</c>, <c>query</c> or <c>cookie</c>; oauth2: <c>header</c> (default) or <c>query</c> for the access token.</summary>
    public string? In { get; init; }

    /// <summary>apiKey: the header, query parameter or cookie name; oauth2: the header (default Authorization) or query parameter (default access_token).</summary>
    public string? Name { get; init; }

    /// <summary>apiKey: the key (a template over a secret variable).</summary>
    public string? Value { get; init; }

    /// <summary>awsSigV4: the access key id (a template; it may read a plain or a secret variable).</summary>
    public string? AccessKeyId { get; init; }

    /// <summary>awsSigV4: the secret access key (a template over a secret variable).</summary>
    public string? SecretAccessKey { get; init; }

    /// <summary>awsSigV4: the session token of temporary credentials (optional; a template over a secret variable).</summary>
    public string? SessionToken { get; init; }

    /// <summary>awsSigV4: the region requests are signed for (<c>us-east-1</c>).</summary>
    public string? Region { get; init; }

    /// <summary>awsSigV4: the service requests are signed for (<c>s3</c>, <c>execute-api</c>, <c>sqs</c>, …).</summary>
    public string? Service { get; init; }

    /// <summary>awsSigV4: sign every body as <c>UNSIGNED-PAYLOAD</c> instead of hashing it (S3 accepts it; uploads then stream).</summary>
    public bool? UnsignedPayload { get; init; }

    /// <summary>oauth2 jwt_bearer or private_key_jwt, githubApp: the PEM private key that signs (a template over a secret variable).</summary>
    public string? PrivateKey { get; init; }

    /// <summary>oauth2 jwt_bearer or private_key_jwt: the <c>kid</c> header of the signed JWTs (optional).</summary>
    public string? KeyId { get; init; }

    /// <summary>oauth2 jwt_bearer or private_key_jwt: <c>RS256</c> or <c>ES256</c> (default: the key's).</summary>
    public string? Algorithm { get; init; }

    /// <summary>oauth2 jwt_bearer: the claims of the assertion.</summary>
    public AuthAssertionDefinition? Assertion { get; init; }

    /// <summary>oauth2 jwt_bearer: a Google service account's JSON key file, as downloaded (a template over a secret variable).</summary>
    public string? ServiceAccountKey { get; init; }

    /// <summary>githubApp: the app's id (the app JWT's <c>iss</c>).</summary>
    public string? AppId { get; init; }

    /// <summary>githubApp: the installation whose access token is used.</summary>
    public string? InstallationId { get; init; }

    /// <summary>githubApp: the REST API's base URL (default <c>https://api.github.com</c>; GitHub Enterprise Server: <c>https://HOST/api/v3</c>).</summary>
    public string? ApiUrl { get; init; }

    /// <summary>custom: the login flow, run in order (<c>request</c>, <c>variable</c> and <c>javascript</c> steps).</summary>
    public List<AuthStepDefinition>? Steps { get; init; }

    /// <summary>custom: a shorter flow to renew a session, seeing the previous variables; else <see cref="Steps"/> run again.</summary>
    public List<AuthStepDefinition>? RefreshSteps { get; init; }

    /// <summary>custom: where the flow's variables go on every request.</summary>
    public AuthApplyDefinition? Apply { get; init; }

    /// <summary>custom: a template giving the session's lifetime in seconds, measured from local receipt.</summary>
    public string? ExpiresIn { get; init; }

    /// <summary>custom: a template giving a JWT whose <c>exp</c> says when the session ends.</summary>
    public string? Jwt { get; init; }

    /// <summary>custom: what, besides expiry, makes Keyway log in again.</summary>
    public AuthRefreshDefinition? Refresh { get; init; }
}

/// <summary>The claims of an RFC 7523 assertion (the <c>jwt_bearer</c> grant). <c>iat</c>, <c>exp</c> and <c>jti</c> are Keyway's.</summary>
internal sealed record AuthAssertionDefinition
{
    /// <summary><c>iss</c>: who the assertion is from (often the client id or a service account).</summary>
    public string? Issuer { get; init; }

    /// <summary><c>sub</c>: whom the token is for (default: the issuer).</summary>
    public string? Subject { get; init; }

    /// <summary><c>aud</c>: the authorization server (default: the token endpoint).</summary>
    public string? Audience { get; init; }

    /// <summary>How long an assertion is valid, in seconds (default 300).</summary>
    public int? LifetimeSeconds { get; init; }
}

/// <summary>One step of a custom auth flow. Which fields apply depends on <see cref="Type"/>.</summary>
internal sealed record AuthStepDefinition
{
    /// <summary><c>request</c>, <c>variable</c> or <c>javascript</c>.</summary>
    public string? Type { get; init; }

    /// <summary>An identifier: a request's response (<c>{{ login.body.token }}</c>), a variable (<c>{{ TOKEN }}</c>), or a javascript step's label.</summary>
    public string? Name { get; init; }

    /// <summary>request: the HTTP method (default GET).</summary>
    public string? Method { get; init; }

    /// <summary>request: an absolute http(s) URL, or a template.</summary>
    public string? Url { get; init; }

    /// <summary>request: headers (templates).</summary>
    public Dictionary<string, string>? Headers { get; init; }

    /// <summary>request: the body (a template); sent as JSON when it is JSON, unless a Content-Type header says otherwise.</summary>
    public string? Body { get; init; }

    /// <summary>variable: the value (a template).</summary>
    public string? Value { get; init; }

    /// <summary>javascript: a function body that returns an object; its properties become variables.</summary>
    public string? Code { get; init; }
}

/// <summary>Where a custom flow's variables are put: every value is a template over them.</summary>
internal sealed record AuthApplyDefinition
{
    public Dictionary<string, string>? Headers { get; init; }

    public Dictionary<string, string>? Query { get; init; }

    public Dictionary<string, string>? Cookies { get; init; }
}

/// <summary>What triggers a custom flow to run again before its expiry.</summary>
internal sealed record AuthRefreshDefinition
{
    /// <summary>Upstream statuses that mean the session was rejected (added to <c>authFailureStatuses</c>).</summary>
    public List<int>? Statuses { get; init; }

    /// <summary>A template over <c>response</c> (<c>status</c>, <c>headers</c>, <c>body</c>): true means the session was rejected. Runs and saved queries only.</summary>
    public string? BodyCondition { get; init; }
}

internal sealed record TimeoutDefinition
{
    /// <summary>The whole request, default 30 000 ms.</summary>
    public int? RequestMs { get; init; }
}

/// <summary>
/// A stored resource with its bookkeeping. <c>Attached</c>: the variables its saver was allowed to attach
/// (<c>*</c>: every one); null for a resource saved before that was checked.
/// </summary>
internal sealed record ResourceRecord(
    string Name, ResourceDefinition Definition, long Version, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt,
    [property: System.Text.Json.Serialization.JsonIgnore] IReadOnlyList<string>? Attached = null);

/// <summary>The JSON options for configuration documents: camelCase, and an unknown field is an error, not silently ignored.</summary>
internal static class ConfigJson
{
    public static readonly System.Text.Json.JsonSerializerOptions Options = new(System.Text.Json.JsonSerializerDefaults.Web)
    {
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        AllowTrailingCommas = true,
        ReadCommentHandling = System.Text.Json.JsonCommentHandling.Skip,
    };
}

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
    /// <summary><c>none</c>, <c>bearer</c>, <c>basic</c>, <c>digest</c>, <c>apiKey</c>, <c>awsSigV4</c>, <c>oauth1</c>, <c>oauth2</c>, <c>githubApp</c> or <c>custom</c>.</summary>
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

    /// <summary>bearer: the token (a template over a secret variable); oauth1: the access token (a template; optional).</summary>
    public string? Token { get; init; }

    /// <summary>bearer: the scheme word (default <c>Bearer</c>); apiKey: text put before the value.</summary>
    public string? Prefix { get; init; }

    /// <summary>basic, digest: the user name.</summary>
    public string? Username { get; init; }

    /// <summary>basic, digest: the password (a template over a secret variable).</summary>
    public string? Password { get; init; }

    /// <summary>apiKey: <c>header</c>, <c>query</c> or <c>cookie</c>; oauth2: <c>header</c> (default) or <c>query</c> for the access token; oauth1: <c>header</c> (default) or <c>query</c> for the protocol parameters.</summary>
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

    /// <summary>awsSigV4: assume a role through STS and sign with its temporary credentials (the key above signs only the AssumeRole request).</summary>
    public AuthAssumeRoleDefinition? AssumeRole { get; init; }

    /// <summary>oauth1: the consumer key (a template; it may read a plain or a secret variable).</summary>
    public string? ConsumerKey { get; init; }

    /// <summary>oauth1 HMAC-SHA1 or HMAC-SHA256: the consumer secret (a template over a secret variable).</summary>
    public string? ConsumerSecret { get; init; }

    /// <summary>oauth1 HMAC-SHA1 or HMAC-SHA256: the access token's secret (a template over a secret variable; with <see cref="Token"/>).</summary>
    public string? TokenSecret { get; init; }

    /// <summary>oauth1: <c>HMAC-SHA1</c> (default), <c>HMAC-SHA256</c> or <c>RSA-SHA1</c> (with <see cref="PrivateKey"/>).</summary>
    public string? SignatureMethod { get; init; }

    /// <summary>oauth1: the <c>realm</c> of the Authorization header (optional, plain text).</summary>
    public string? Realm { get; init; }

    /// <summary>oauth2 jwt_bearer or private_key_jwt, githubApp, oauth1 RSA-SHA1: the PEM private key that signs (a template over a secret variable).</summary>
    public string? PrivateKey { get; init; }

    /// <summary>oauth2 jwt_bearer or private_key_jwt: the <c>kid</c> header of the signed JWTs (optional).</summary>
    public string? KeyId { get; init; }

    /// <summary>oauth2 jwt_bearer or private_key_jwt: <c>RS256</c> or <c>ES256</c> (default: the key's).</summary>
    public string? Algorithm { get; init; }

    /// <summary>oauth2 jwt_bearer: the claims of the assertion.</summary>
    public AuthAssertionDefinition? Assertion { get; init; }

    /// <summary>
    /// oauth2: bind the tokens to a key pair Keyway holds, with DPoP (RFC 9449): <c>true</c>, or <c>{ algorithm: ES256 }</c>
    /// (<c>ES256</c>, <c>RS256</c> or <c>PS256</c>).
    /// </summary>
    public DPoPDefinition? Dpop { get; init; }

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

    /// <summary>custom: where the flow's variables go on every request; oauth2, githubApp: where the token goes, if not in the default header.</summary>
    public AuthApplyDefinition? Apply { get; init; }

    /// <summary>custom: a template giving the session's lifetime in seconds, measured from local receipt.</summary>
    public string? ExpiresIn { get; init; }

    /// <summary>custom: a template giving a JWT whose <c>exp</c> says when the session ends.</summary>
    public string? Jwt { get; init; }

    /// <summary>custom: what, besides expiry, makes Keyway log in again.</summary>
    public AuthRefreshDefinition? Refresh { get; init; }
}

/// <summary>An awsSigV4 resource's role: STS <c>AssumeRole</c>, its temporary credentials cached and renewed by the credential engine.</summary>
internal sealed record AuthAssumeRoleDefinition
{
    /// <summary>The role to assume, <c>arn:aws:iam::123456789012:role/reader</c>.</summary>
    public string? RoleArn { get; init; }

    /// <summary>The role session's name, seen in CloudTrail (default <c>keyway</c>).</summary>
    public string? SessionName { get; init; }

    /// <summary>The external id the role's trust policy asks for, if any.</summary>
    public string? ExternalId { get; init; }

    /// <summary>How long the temporary credentials last, 900 to 43200 seconds (default 3600; the role's maximum bounds it).</summary>
    public int? DurationSeconds { get; init; }

    /// <summary>The STS endpoint (default <c>https://sts.REGION.amazonaws.com</c>, REGION the resource's).</summary>
    public string? StsUrl { get; init; }
}

/// <summary>
/// DPoP for an oauth2 resource: written <c>dpop: true</c> (ES256) or <c>dpop: { algorithm: RS256 }</c>; <c>false</c> is no DPoP.
/// </summary>
[JsonConverter(typeof(DPoPDefinitionConverter))]
internal sealed record DPoPDefinition
{
    /// <summary><c>ES256</c> (the default), <c>RS256</c> or <c>PS256</c>.</summary>
    public string? Algorithm { get; init; }
}

/// <summary>Reads <c>true</c>, <c>false</c> or an object; writes <c>true</c> when nothing but the default is set.</summary>
internal sealed class DPoPDefinitionConverter : JsonConverter<DPoPDefinition>
{
    public override bool HandleNull => false;

    public override DPoPDefinition? Read(ref System.Text.Json.Utf8JsonReader reader, Type typeToConvert, System.Text.Json.JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case System.Text.Json.JsonTokenType.True:
                return new DPoPDefinition();
            case System.Text.Json.JsonTokenType.False:
                return null;
            case System.Text.Json.JsonTokenType.StartObject:
                var fields = System.Text.Json.JsonSerializer.Deserialize<Fields>(ref reader, options)!;
                return new DPoPDefinition { Algorithm = fields.Algorithm };
            default:
                throw new System.Text.Json.JsonException("Use true, or an object such as { \"algorithm\": \"ES256\" }.");
        }
    }

    public override void Write(System.Text.Json.Utf8JsonWriter writer, DPoPDefinition value, System.Text.Json.JsonSerializerOptions options)
    {
        if (value.Algorithm is null)
        {
            writer.WriteBooleanValue(true);
            return;
        }

        writer.WriteStartObject();
        writer.WriteString("algorithm", value.Algorithm);
        writer.WriteEndObject();
    }

    /// <summary>The object form's fields (an unknown one is refused like any other).</summary>
    private sealed record Fields
    {
        public string? Algorithm { get; init; }
    }
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

/// <summary>
/// Where a dynamic credential is put: a custom flow's variables, or an oauth2 or githubApp token
/// (<c>{{ credential.accessToken }}</c>) in place of its default header. Every value is a template over them.
/// </summary>
internal sealed record AuthApplyDefinition
{
    public Dictionary<string, string>? Headers { get; init; }

    public Dictionary<string, string>? Query { get; init; }

    public Dictionary<string, string>? Cookies { get; init; }

    /// <summary>Fields set in the request's body: a JSON object's top-level members, or a form's fields.</summary>
    public Dictionary<string, string>? Body { get; init; }
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

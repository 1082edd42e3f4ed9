namespace Keyway.Tests.Infrastructure;

/// <summary>How an <see cref="AuthServer"/> issues tokens, and whom it knows.</summary>
public sealed record AuthServerOptions
{
    /// <summary>Lifetime of access tokens (the JWT <c>exp</c> and <c>expires_in</c>). Tests use a few seconds.</summary>
    public TimeSpan AccessTokenLifetime { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Lifetime of refresh tokens.</summary>
    public TimeSpan RefreshTokenLifetime { get; init; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Rolling refresh tokens: each use answers a new refresh token and marks the one presented
    /// as redeemed; presenting a redeemed one again is reuse, which revokes every token of its
    /// authorization and answers <c>invalid_grant</c>. When false, a refresh token can be used
    /// any number of times and no new one is returned.
    /// </summary>
    public bool RotateRefreshTokens { get; init; } = true;

    /// <summary>
    /// How long after its redemption a rolling refresh token may still be used without counting
    /// as reuse (OpenIddict's <c>RefreshTokenReuseLeeway</c>, 30 s by default there). Null here:
    /// the second use is always reuse, concurrent uses included (of requests racing with one
    /// refresh token, exactly one succeeds). With a leeway, OpenIddict's own lenient rules apply:
    /// uses within it succeed, and so may concurrent ones.
    /// </summary>
    public TimeSpan? RefreshTokenReuseLeeway { get; init; }

    /// <summary>
    /// States <c>expires_in</c> as the configured <see cref="AccessTokenLifetime"/> in whole seconds
    /// in every token response, as most providers do (a fixed 3600 or 3599), while the JWT
    /// <c>exp</c> is counted from the issue time truncated to the second: the token dies up to a
    /// second before "received + expires_in". By default OpenIddict states the time left until
    /// <c>exp</c>, rounded to the nearest second (off by up to half a second either way).
    /// </summary>
    public bool StateNominalExpiresIn { get; init; }

    /// <summary>Leaves <c>expires_in</c> out of token responses, so a client must read the JWT <c>exp</c>. Can be changed later with <see cref="AuthServer.OmitExpiresIn"/>.</summary>
    public bool OmitExpiresIn { get; init; }

    /// <summary>The clients known at start. More can be added with <see cref="AuthServer.AddClientAsync"/>.</summary>
    public IReadOnlyList<AuthServerClient> Clients { get; init; } = [AuthServerClient.Default];

    /// <summary>The users: for the password grant, and for <c>login_hint</c> at the authorization endpoint.</summary>
    public IReadOnlyList<AuthServerUser> Users { get; init; } = [AuthServerUser.Alice, AuthServerUser.Bob];

    /// <summary>
    /// Serves HTTPS with this certificate (with its key) instead of HTTP, asking every client for a certificate (optional at
    /// the TLS layer), and enables RFC 8705: <c>self_signed_tls_client_auth</c> for clients registered with a
    /// <see cref="AuthServerClient.Certificate"/>, and access tokens bound to the certificate a token request presented
    /// (<c>cnf.x5t#S256</c>), which <c>/api/bound</c> checks against the certificate its own requests present.
    /// </summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2? ServerCertificate { get; init; }
}

/// <summary>
/// A confidential client, allowed every grant the server supports, authenticated with
/// <c>client_secret_basic</c> or <c>client_secret_post</c>.
/// </summary>
public sealed record AuthServerClient
{
    /// <summary><c>keyway</c> / <c>keyway-secret</c>, without redirect URIs.</summary>
    public static AuthServerClient Default { get; } = new() { ClientId = "keyway", ClientSecret = "keyway-secret" };

    /// <summary>The <c>client_id</c>.</summary>
    public required string ClientId { get; init; }

    /// <summary>The <c>client_secret</c>; empty for a client that authenticates with its <see cref="Certificate"/>.</summary>
    public string ClientSecret { get; init; } = "";

    /// <summary>A self-signed certificate (public part) the client authenticates with (<c>self_signed_tls_client_auth</c>), registered in its key set.</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2? Certificate { get; init; }

    /// <summary>The redirect URIs the authorization endpoint accepts for this client (exact match).</summary>
    public IReadOnlyList<Uri> RedirectUris { get; init; } = [];
}

/// <summary>A user of the authorization server.</summary>
public sealed record AuthServerUser(string Username, string Password)
{
    /// <summary><c>alice</c> / <c>alice-password</c>.</summary>
    public static AuthServerUser Alice { get; } = new("alice", "alice-password");

    /// <summary><c>bob</c> / <c>bob-password</c>.</summary>
    public static AuthServerUser Bob { get; } = new("bob", "bob-password");

    /// <summary>The <c>email</c> claim: the user name at example.test.</summary>
    public string Email => $"{Username}@example.test";

    /// <summary>The <c>name</c> claim; the user name when null.</summary>
    public string? DisplayName { get; init; }

    /// <summary>The <c>groups</c> claim (in the ID token and the access token), as an OpenID Connect provider sends it for single sign-on.</summary>
    public IReadOnlyList<string> Groups { get; init; } = [];
}

/// <summary>One request to the token endpoint, as the server answered it.</summary>
/// <param name="GrantType">The <c>grant_type</c> form field (empty when missing).</param>
/// <param name="ClientId">The client, from the form or the Basic header; null when none was sent.</param>
/// <param name="StatusCode">The HTTP status the server answered.</param>
/// <param name="Error">The OAuth <c>error</c> code, when the answer was an error.</param>
public sealed record AuthServerTokenRequest(string GrantType, string? ClientId, int StatusCode, string? Error);

/// <summary>A redeemed refresh token presented again, which revoked its authorization's tokens.</summary>
/// <param name="TokenId">The token entry of the reused refresh token.</param>
/// <param name="AuthorizationId">The authorization whose tokens were revoked.</param>
public sealed record AuthServerRefreshTokenReuse(string TokenId, string? AuthorizationId);

/// <summary>A successful request to the revocation endpoint (RFC 7009).</summary>
/// <param name="Token">The token the client asked to revoke.</param>
/// <param name="TokenTypeHint">The <c>token_type_hint</c>, if any.</param>
/// <param name="ClientId">The client that asked.</param>
public sealed record AuthServerRevocation(string Token, string? TokenTypeHint, string? ClientId);

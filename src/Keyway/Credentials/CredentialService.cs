using System.Security.Cryptography;
using System.Text;
using Duende.IdentityModel.Client;
using Keyway.Access;
using Keyway.Api;
using Keyway.Resources;
using Keyway.Secrets;
using Keyway.Storage;

namespace Keyway.Credentials;

/// <summary>A credential's status as the API shows it: never a token.</summary>
internal sealed record CredentialStatus(
    string Resource, string Environment, string Owner, string State, DateTimeOffset? ExpiresAt, DateTimeOffset? LastRefreshedAt,
    DateTimeOffset? NextRefreshAt, long RefreshCount, long FailureCount, string? LastError, string? ConnectUrl,
    string? RefreshingReplica = null, DateTimeOffset? RefreshStartedAt = null);

/// <summary>The body of <c>PUT …/credential</c>: a token set obtained elsewhere.</summary>
internal sealed record ImportRequest(string? AccessToken, string? RefreshToken, long? ExpiresIn, string? TokenType);

/// <summary>What the API does with credentials: status, import, refresh, disconnect, and the authorization-code connect flow.</summary>
internal sealed partial class CredentialService(
    Database database, KeyRing keys, CredentialEngine engine, CredentialStore store, OAuth2Client oauth,
    ResourceService resources, ResourceResolver resolver, TimeProvider time, ILogger<CredentialService> logger)
{
    private static readonly TimeSpan PendingLifetime = TimeSpan.FromMinutes(10);

    /// <summary>The associated data of a pending connection's encrypted PKCE verifier (<c>oauth_pending.code_verifier</c>; RekeyJob's registry uses it too).</summary>
    public static string PendingAssociatedData(string state) => $"oauth_pending:{state}:code_verifier";

    /// <summary>The binding of a resource with a dynamic credential, or a 400 saying it has none.</summary>
    public async Task<(ResolvedResource Resolved, CredentialBinding Binding)> BindingAsync(string resource, string environment, Caller? caller, CancellationToken ct)
    {
        var compiled = await resources.GetCompiledAsync(resource, ct);
        var resolved = await resolver.ResolveAsync(compiled, environment, caller, ct);
        return resolved.Credential is { } binding
            ? (resolved, binding)
            : throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request",
                $"Resource '{resource}' uses static auth ({compiled.Definition.Auth?.Type ?? "none"}): it has no credential to manage.");
    }

    public static CredentialKey KeyFor(CredentialBinding binding, string resource, string environment, Caller caller, string? user) =>
        binding.Shared ? new CredentialKey(resource, environment, CredentialKey.Shared) : new CredentialKey(resource, environment, user ?? caller.UserId);

    public async Task<CredentialStatus> StatusAsync(CredentialKey key, CredentialBinding binding, string? connectUrl, CancellationToken ct)
    {
        var stored = await store.ReadAsync(key, ct);
        var now = time.GetUtcNow();
        string state;
        if (engine.IsRefreshing(key) || (stored?.RefreshStartedAt is not null && stored.ParametersHash == binding.Provider.ParametersHash))
        {
            // Here, or marked in flight by a replica (whose answer may wait in its journal for the store).
            state = "refreshing";
        }
        else if (stored is null || (stored.Tokens is null && stored.State is not (CredentialState.Failed or CredentialState.ReconnectRequired)))
        {
            state = "not_connected";
        }
        else if (stored.ParametersHash != binding.Provider.ParametersHash)
        {
            // Minted under settings that changed: the next use obtains new tokens.
            state = binding.Provider.CanAcquire ? "expired" : "reconnect_required";
        }
        else if (stored.State is CredentialState.Failed or CredentialState.ReconnectRequired)
        {
            state = CredentialStore.StateName(stored.State);
        }
        else if (stored.Tokens?.ExpiresAt is { } expires && now >= expires)
        {
            state = "expired";
        }
        else if (stored.NextRefreshAt is { } next && now >= next)
        {
            state = "expiring";
        }
        else
        {
            state = "valid";
        }

        return new CredentialStatus(key.Resource, key.Environment, key.Owner, state, stored?.Tokens?.ExpiresAt, stored?.LastRefreshedAt,
            stored?.NextRefreshAt, stored?.RefreshCount ?? 0, stored?.FailureCount ?? 0, stored?.LastError,
            state is "not_connected" or "reconnect_required" && binding.OAuth2?.Settings.Grant == "authorization_code" ? connectUrl : null,
            stored?.RefreshOwner, stored?.RefreshStartedAt);
    }

    public async Task ImportAsync(CredentialKey key, CredentialBinding binding, ImportRequest request, CancellationToken ct)
    {
        if (binding.OAuth2 is null)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request",
                $"Resource '{key.Resource}' gets its credential by itself (a custom flow or a GitHub App): there is no token set to import. Force a new one with POST …/credential/refresh.");
        }

        if (string.IsNullOrEmpty(request.AccessToken) && string.IsNullOrEmpty(request.RefreshToken))
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request", "Send an accessToken, a refreshToken, or both.");
        }

        if (request.ExpiresIn is <= 0)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request", "expiresIn must be a positive number of seconds.");
        }

        var now = time.GetUtcNow();
        var access = string.IsNullOrEmpty(request.AccessToken) ? null : new Secret(request.AccessToken);
        var tokens = new TokenSet
        {
            // Without an access token the set is stored already expired, and refreshed at once.
            AccessToken = access ?? new Secret(""),
            RefreshToken = string.IsNullOrEmpty(request.RefreshToken) ? null : new Secret(request.RefreshToken),
            TokenType = request.TokenType,
            ObtainedAt = now,
            ExpiresAt = access is null ? now : TokenExpiry.Compute(now, request.ExpiresIn, access, binding.Provider.DefaultLifetime),
        };
        await engine.StoreAsync(key, binding.Provider, tokens, ct);
        if (access is null)
        {
            await engine.RefreshAsync(key, binding.Provider, ct);
        }
    }

    /// <summary>Revokes the tokens at the provider when it offers RFC 7009 revocation, then forgets them.</summary>
    public async Task<bool> DisconnectAsync(CredentialKey key, CredentialBinding binding, CancellationToken ct)
    {
        var stored = await store.ReadAsync(key, ct);
        var revoked = false;
        if (stored?.Tokens is { } tokens && binding.OAuth2 is { } provider)
        {
            try
            {
                if (tokens.RefreshToken is { } refresh)
                {
                    revoked = await oauth.RevokeAsync(provider.Settings, refresh, "refresh_token", ct);
                }

                if (tokens.AccessToken.Length > 0)
                {
                    revoked |= await oauth.RevokeAsync(provider.Settings, tokens.AccessToken, "access_token", ct);
                }
            }
            catch (HttpRequestException e)
            {
                Log.RevocationFailed(logger, key.ToString(), e.GetType().Name);
            }
        }

        await engine.ForgetAsync(key, ct);
        return revoked;
    }

    /// <summary>Starts an authorization-code connection: stores state, PKCE verifier and nonce, and returns the provider's URL.</summary>
    public async Task<string> StartConnectAsync(
        CredentialKey key, CredentialBinding binding, string callbackUrl, string? returnTo, string startedBy, CancellationToken ct)
    {
        var settings = binding.OAuth2?.Settings;
        if (settings?.Grant != "authorization_code")
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request",
                $"Resource '{key.Resource}' uses {(settings is null ? "a custom login flow" : "the " + settings.Grant + " grant")}: there is nothing to connect. Its credential is obtained on first use.");
        }

        OAuth2Endpoints endpoints;
        try
        {
            endpoints = await oauth.EndpointsAsync(settings, ct);
        }
        catch (TokenRequestException e)
        {
            throw new KeywayException(StatusCodes.Status502BadGateway, "credential_failed", e.Message);
        }

        if (endpoints.AuthorizeUrl is null)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config", $"Resource '{key.Resource}' has no authorization endpoint: set auth.authorizeUrl or auth.issuer.");
        }

        var state = ApiKeyService.Base64Url(RandomNumberGenerator.GetBytes(32));
        var verifier = ApiKeyService.Base64Url(RandomNumberGenerator.GetBytes(32));
        var nonce = ApiKeyService.Base64Url(RandomNumberGenerator.GetBytes(16));
        var challenge = ApiKeyService.Base64Url(SHA256.HashData(Encoding.ASCII.GetBytes(verifier)));
        var now = time.GetUtcNow();
        await using (var connection = await database.OpenAsync(ct))
        {
            await connection.ExecuteAsync("DELETE FROM oauth_pending WHERE created_at < @cutoff", new { cutoff = (now - PendingLifetime).ToStore() });
            await connection.ExecuteAsync(
                """
                INSERT INTO oauth_pending (state, resource, environment, owner, code_verifier, nonce, redirect_uri, return_to, created_at, started_by)
                VALUES (@state, @Resource, @Environment, @Owner, @verifier, @nonce, @callbackUrl, @returnTo, @now, @startedBy)
                """,
                new
                {
                    startedBy,
                    state,
                    key.Resource,
                    key.Environment,
                    key.Owner,
                    verifier = keys.Encrypt(new Secret(verifier), PendingAssociatedData(state)),
                    nonce,
                    callbackUrl,
                    returnTo,
                    now = now.ToStore(),
                });
        }

        var extra = new Parameters();
        if (settings.Audience is { } audience)
        {
            extra.Add("audience", audience);
        }

        if (settings.ResourceIndicator is { } resourceIndicator)
        {
            extra.Add("resource", resourceIndicator);
        }

        return new RequestUrl(endpoints.AuthorizeUrl).CreateAuthorizeUrl(
            clientId: settings.ClientId, responseType: "code", scope: settings.Scope, redirectUri: callbackUrl, state: state, nonce: nonce,
            codeChallenge: challenge, codeChallengeMethod: "S256", extra: extra);
    }

    /// <summary>Finishes a connection: checks the state, exchanges the code with the PKCE verifier, stores the tokens.</summary>
    /// <remarks>
    /// <paramref name="browser"/> is who the callback's browser is signed in to Keyway as: it must be who
    /// started connecting. Otherwise a connect link sent to someone else would tie their account to the
    /// sender's credential, and the sender would act as them.
    /// </remarks>
    public async Task<(CredentialKey Key, string? ReturnTo)> FinishConnectAsync(string state, string code, Access.Caller? browser, CancellationToken ct)
    {
        Pending? pending;
        await using (var connection = await database.OpenAsync(ct))
        {
            pending = await connection.QuerySingleOrDefaultAsync<Pending>(
                "SELECT state, resource, environment, owner, code_verifier, redirect_uri, return_to, created_at, started_by FROM oauth_pending WHERE state = @state", new { state });
            // One use only, whatever happens next.
            await connection.ExecuteAsync("DELETE FROM oauth_pending WHERE state = @state", new { state });
        }

        if (pending is null || time.GetUtcNow() - Time.From(pending.CreatedAt) > PendingLifetime)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request",
                "This connection link is unknown, already used, or older than ten minutes. Start connecting again.");
        }

        if (pending.StartedBy is { } startedBy && browser?.UserId != startedBy)
        {
            throw new KeywayException(StatusCodes.Status403Forbidden, "connect_elsewhere",
                "This connection was started by someone else, or this browser is not signed in to Keyway as the person who started it. " +
                "Sign in to the Keyway console in this browser as that person, then start connecting again.");
        }

        var key = new CredentialKey(pending.Resource, pending.Environment, pending.Owner);
        var (_, binding) = await BindingAsync(key.Resource, key.Environment, null, ct);
        var verifier = (await DecryptVerifierAsync(pending.CodeVerifier, state, ct)).Reveal();
        var provider = binding.OAuth2 ?? throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request", $"Resource '{key.Resource}' has no authorization-code grant to connect.");
        var result = await provider.ExchangeCodeAsync(key, code, verifier, pending.RedirectUri, ct);
        if (result.Tokens is not { } tokens)
        {
            throw new KeywayException(StatusCodes.Status502BadGateway, "credential_failed", $"The provider refused the authorization code: {result.Error}");
        }

        await engine.StoreAsync(key, binding.Provider, tokens, ct);
        Log.Connected(logger, key.ToString());
        return (key, pending.ReturnTo);
    }

    /// <summary>
    /// Decrypts a pending connection's verifier. One under a data key this process does not hold
    /// yet (another replica started the connection, or a rekey moved it) reloads the key ring and
    /// is tried once more.
    /// </summary>
    private async Task<Secret> DecryptVerifierAsync(byte[] ciphertext, string state, CancellationToken ct)
    {
        try
        {
            return keys.DecryptSecret(ciphertext, PendingAssociatedData(state));
        }
        catch (DecryptionException e) when (e.Reason == DecryptionFailure.UnknownDataKey)
        {
            await keys.ReloadAsync(ct);
            return keys.DecryptSecret(ciphertext, PendingAssociatedData(state));
        }
    }

    private sealed class Pending
    {
        public string State { get; init; } = "";
        public string Resource { get; init; } = "";
        public string Environment { get; init; } = "";
        public string Owner { get; init; } = "";
        public byte[] CodeVerifier { get; init; } = [];
        public string RedirectUri { get; init; } = "";
        public string? ReturnTo { get; init; }
        public long CreatedAt { get; init; }
        public string? StartedBy { get; init; }
    }

    private static partial class Log
    {
        [LoggerMessage(320, LogLevel.Information, "Credential {Credential} connected through the authorization-code flow")]
        public static partial void Connected(ILogger logger, string credential);

        [LoggerMessage(321, LogLevel.Warning, "Revoking the tokens of {Credential} at the provider failed ({Error}); they are forgotten here anyway")]
        public static partial void RevocationFailed(ILogger logger, string credential, string error);
    }
}

using Microsoft.AspNetCore;
using Microsoft.EntityFrameworkCore;
using OpenIddict.Abstractions;
using OpenIddict.Server;
using OpenIddict.Server.AspNetCore;
using static OpenIddict.Abstractions.OpenIddictConstants;
using static OpenIddict.Server.OpenIddictServerEvents;

namespace Keyway.Tests.Infrastructure;

/// <summary>The OpenIddict stores of one <see cref="AuthServer"/>: an in-memory SQLite database.</summary>
internal sealed class AuthServerDbContext(DbContextOptions<AuthServerDbContext> options) : DbContext(options);

/// <summary>
/// What an <see cref="AuthServer"/> records for assertions and the knobs tests turn while it
/// runs. One instance per server, shared by the middleware and the OpenIddict handlers; every
/// member is thread-safe.
/// </summary>
internal sealed class AuthServerState(AuthServerOptions options)
{
    /// <summary>Where a handler leaves the OAuth error of a token response for the recorder.</summary>
    public const string ErrorItem = "AuthServer.Error";

    private readonly Lock _lock = new();
    private readonly List<AuthServerTokenRequest> _tokenRequests = [];
    private readonly List<AuthServerRefreshTokenReuse> _reuses = [];
    private readonly List<AuthServerRevocation> _revocations = [];
    private readonly List<string> _issuedRefreshTokens = [];
    private readonly List<string> _redeemedRefreshTokens = [];
    private readonly Dictionary<string, string> _refreshTokenIds = new(StringComparer.Ordinal);
    private readonly HashSet<string> _rejectedClients = new(StringComparer.Ordinal);
    private readonly HashSet<string> _spentRefreshTokenIds = new(StringComparer.Ordinal);
    private readonly List<int> _apiStatusCodes = [];
    private readonly List<AuthServerApiRejection> _apiRejections = [];
    private readonly List<AuthServerHold> _holds = [];
    private int _failuresLeft;
    private int _failureStatus;
    private volatile bool _omitExpiresIn = options.OmitExpiresIn;

    public AuthServerOptions Options { get; } = options;

    /// <summary>Every access token <c>/api/bound</c> was presented, oldest first.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> BoundApiTokens { get; } = new();

    /// <summary>The user the authorization endpoint signs in when the request has no <c>login_hint</c>.</summary>
    public volatile string? SignInUser;

    public bool OmitExpiresIn
    {
        get => _omitExpiresIn;
        set => _omitExpiresIn = value;
    }

    public IReadOnlyList<AuthServerTokenRequest> TokenRequests => Snapshot(_tokenRequests);

    public IReadOnlyList<AuthServerRefreshTokenReuse> Reuses => Snapshot(_reuses);

    public IReadOnlyList<AuthServerRevocation> Revocations => Snapshot(_revocations);

    public IReadOnlyList<string> IssuedRefreshTokens => Snapshot(_issuedRefreshTokens);

    public IReadOnlyList<string> RedeemedRefreshTokens => Snapshot(_redeemedRefreshTokens);

    public IReadOnlyList<int> ApiStatusCodes => Snapshot(_apiStatusCodes);

    public IReadOnlyList<AuthServerApiRejection> ApiRejections => Snapshot(_apiRejections);

    public void FailNext(int count, int status)
    {
        lock (_lock)
        {
            _failuresLeft = count;
            _failureStatus = status;
        }
    }

    public bool TryTakeFailure(out int status)
    {
        lock (_lock)
        {
            status = _failureStatus;
            if (_failuresLeft <= 0)
                return false;
            _failuresLeft--;
            return true;
        }
    }

    public void SetRejected(string clientId, bool rejected)
    {
        lock (_lock)
        {
            if (rejected)
                _rejectedClients.Add(clientId);
            else
                _rejectedClients.Remove(clientId);
        }
    }

    public bool IsRejected(string? clientId)
    {
        lock (_lock)
            return clientId is not null && _rejectedClients.Contains(clientId);
    }

    /// <summary>Marks a refresh token entry spent; false when it already was (a double spend).</summary>
    public bool TrySpend(string tokenId)
    {
        lock (_lock)
            return _spentRefreshTokenIds.Add(tokenId);
    }

    public string? RefreshTokenId(string refreshToken)
    {
        lock (_lock)
            return _refreshTokenIds.GetValueOrDefault(refreshToken);
    }

    public AuthServerHold AddHold(string? grantType, string? clientId)
    {
        var hold = new AuthServerHold(grantType, clientId, RemoveHold);
        Add(_holds, hold);
        return hold;
    }

    /// <summary>The first hold that takes an answer to this request, if any.</summary>
    public AuthServerHold? HoldFor(string grantType, string? clientId)
    {
        lock (_lock)
            return _holds.FirstOrDefault(h => h.Matches(grantType, clientId));
    }

    public void ReleaseHolds()
    {
        foreach (var hold in Snapshot(_holds))
            hold.Dispose();
    }

    public void RecordTokenRequest(AuthServerTokenRequest request) => Add(_tokenRequests, request);

    public void RecordReuse(AuthServerRefreshTokenReuse reuse) => Add(_reuses, reuse);

    public void RecordRevocation(AuthServerRevocation revocation) => Add(_revocations, revocation);

    public void RecordApiStatus(int status) => Add(_apiStatusCodes, status);

    public void RecordApiRejection(AuthServerApiRejection rejection) => Add(_apiRejections, rejection);

    public void RecordIssuedRefreshToken(string token, string? tokenId)
    {
        lock (_lock)
        {
            _issuedRefreshTokens.Add(token);
            if (tokenId is not null)
                _refreshTokenIds[token] = tokenId;
        }
    }

    public void RecordRedeemedRefreshToken(string token) => Add(_redeemedRefreshTokens, token);

    public void Clear()
    {
        lock (_lock)
        {
            _tokenRequests.Clear();
            _reuses.Clear();
            _revocations.Clear();
            _issuedRefreshTokens.Clear();
            _redeemedRefreshTokens.Clear();
            _apiStatusCodes.Clear();
            _apiRejections.Clear();
        }
    }

    private void RemoveHold(AuthServerHold hold)
    {
        lock (_lock)
            _holds.Remove(hold);
    }

    private void Add<T>(List<T> list, T item)
    {
        lock (_lock)
            list.Add(item);
    }

    private List<T> Snapshot<T>(List<T> list)
    {
        lock (_lock)
            return [.. list];
    }
}

/// <summary>
/// Records a redeemed refresh token presented again, with OpenIddict's own reuse rule (the
/// leeway), and revokes its authorization. Runs just before OpenIddict's <c>ValidateTokenEntry</c>,
/// which then rejects the request (<c>invalid_grant</c>) and revokes every token of the authorization.
/// </summary>
internal sealed class DetectRefreshTokenReuse(IOpenIddictTokenManager tokens, IOpenIddictAuthorizationManager authorizations, AuthServerState state) : IOpenIddictServerHandler<ValidateTokenContext>
{
    public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
        OpenIddictServerHandlerDescriptor.CreateBuilder<ValidateTokenContext>()
            .UseScopedHandler<DetectRefreshTokenReuse>()
            .SetOrder(OpenIddictServerHandlers.Protection.ValidateTokenEntry.Descriptor.Order - 500)
            .SetType(OpenIddictServerHandlerType.Custom)
            .Build();

    public async ValueTask HandleAsync(ValidateTokenContext context)
    {
        if (context.Principal is null || !context.Principal.HasTokenType(TokenTypeIdentifiers.RefreshToken))
            return;
        var identifier = context.Principal.GetTokenId();
        if (string.IsNullOrEmpty(identifier))
            return;
        var token = await tokens.FindByIdAsync(identifier);
        if (token is null || !await tokens.HasStatusAsync(token, Statuses.Redeemed))
            return;

        var leeway = context.Options.RefreshTokenReuseLeeway;
        var redeemedAt = await tokens.GetRedemptionDateAsync(token);
        if (leeway is not null && (redeemedAt is null || DateTimeOffset.UtcNow < redeemedAt + leeway))
            return;

        var authorizationId = await tokens.GetAuthorizationIdAsync(token);
        state.RecordReuse(new AuthServerRefreshTokenReuse(identifier, authorizationId));
        // OpenIddict revokes the tokens next; the authorization too, so that tokens another
        // request is issuing right now under it are dead on arrival.
        await RevokeGrant.AuthorizationAsync(authorizations, authorizationId);
    }
}

/// <summary>
/// Spends each refresh token exactly once. OpenIddict lets concurrent requests that present the
/// same refresh token all succeed when each passes validation before any marks it redeemed (it
/// ignores the failed redemption on purpose); a test server must catch that double spend. The
/// first request to get here wins; any other answers <c>invalid_grant</c> and takes the grant
/// down (every token and the authorization revoked), as sequential reuse does.
/// </summary>
internal sealed class SpendRefreshTokenOnce(IOpenIddictTokenManager tokens, IOpenIddictAuthorizationManager authorizations, AuthServerState state)
    : IOpenIddictServerHandler<ProcessSignInContext>
{
    public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
        OpenIddictServerHandlerDescriptor.CreateBuilder<ProcessSignInContext>()
            .UseScopedHandler<SpendRefreshTokenOnce>()
            .SetOrder(OpenIddictServerHandlers.RedeemTokenEntry.Descriptor.Order - 500)
            .SetType(OpenIddictServerHandlerType.Custom)
            .Build();

    public async ValueTask HandleAsync(ProcessSignInContext context)
    {
        if (context.EndpointType is not OpenIddictServerEndpointType.Token || context.Request?.IsRefreshTokenGrantType() != true)
            return;
        var authentication = context.Transaction.GetProperty<ProcessAuthenticationContext>(typeof(ProcessAuthenticationContext).FullName!);
        if (authentication?.RefreshTokenPrincipal?.GetTokenId() is not { Length: > 0 } identifier || state.TrySpend(identifier))
            return;

        context.Reject(Errors.InvalidGrant, "The specified refresh token has already been redeemed.");
        var authorizationId = authentication.RefreshTokenPrincipal.GetAuthorizationId();
        state.RecordReuse(new AuthServerRefreshTokenReuse(identifier, authorizationId));
        await RevokeGrant.TokensAsync(tokens, authorizationId);
        await RevokeGrant.AuthorizationAsync(authorizations, authorizationId);
    }
}

internal static class RevokeGrant
{
    public static async Task TokensAsync(IOpenIddictTokenManager tokens, string? authorizationId)
    {
        if (string.IsNullOrEmpty(authorizationId))
            return;
        await foreach (var token in tokens.FindByAuthorizationIdAsync(authorizationId))
            await tokens.TryRevokeAsync(token);
    }

    public static async Task AuthorizationAsync(IOpenIddictAuthorizationManager authorizations, string? authorizationId)
    {
        if (string.IsNullOrEmpty(authorizationId) || await authorizations.FindByIdAsync(authorizationId) is not { } authorization)
            return;
        await authorizations.TryRevokeAsync(authorization);
    }
}

/// <summary>
/// Records every refresh token issued (with its token entry id, to look its status up later)
/// and, on a successful rolling refresh, the one that was redeemed.
/// </summary>
internal sealed class RecordRefreshTokens(AuthServerState state) : IOpenIddictServerHandler<ProcessSignInContext>
{
    public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
        OpenIddictServerHandlerDescriptor.CreateBuilder<ProcessSignInContext>()
            .UseSingletonHandler<RecordRefreshTokens>()
            .SetOrder(OpenIddictServerHandlers.AttachSignInParameters.Descriptor.Order + 500)
            .SetType(OpenIddictServerHandlerType.Custom)
            .Build();

    public ValueTask HandleAsync(ProcessSignInContext context)
    {
        if (context.RefreshToken is { Length: > 0 } issued)
            state.RecordIssuedRefreshToken(issued, context.RefreshTokenPrincipal?.GetTokenId());
        if (context.Request is { } request && request.IsRefreshTokenGrantType() && request.RefreshToken is { } presented && state.Options.RotateRefreshTokens)
            state.RecordRedeemedRefreshToken(presented);
        return default;
    }
}

/// <summary>Answers 401 <c>invalid_client</c> for the clients a test told the server to reject.</summary>
internal sealed class RejectClients(AuthServerState state) : IOpenIddictServerHandler<ValidateTokenRequestContext>
{
    public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
        OpenIddictServerHandlerDescriptor.CreateBuilder<ValidateTokenRequestContext>()
            .UseSingletonHandler<RejectClients>()
            .SetOrder(int.MinValue + 50_000)
            .SetType(OpenIddictServerHandlerType.Custom)
            .Build();

    public ValueTask HandleAsync(ValidateTokenRequestContext context)
    {
        if (state.IsRejected(context.ClientId))
            context.Reject(Errors.InvalidClient, "The client is rejected by the test.");
        return default;
    }
}

/// <summary>Leaves <c>expires_in</c> out or states the nominal lifetime when asked, and hands the OAuth error to the request recorder.</summary>
internal sealed class ShapeTokenResponse(AuthServerState state) : IOpenIddictServerHandler<ApplyTokenResponseContext>
{
    public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
        OpenIddictServerHandlerDescriptor.CreateBuilder<ApplyTokenResponseContext>()
            .UseSingletonHandler<ShapeTokenResponse>()
            .SetOrder(int.MinValue + 50_000)
            .SetType(OpenIddictServerHandlerType.Custom)
            .Build();

    public ValueTask HandleAsync(ApplyTokenResponseContext context)
    {
        if (state.OmitExpiresIn)
            context.Response.ExpiresIn = null;
        else if (state.Options.StateNominalExpiresIn && context.Response.ExpiresIn is not null)
            context.Response.ExpiresIn = (long)state.Options.AccessTokenLifetime.TotalSeconds;
        if (context.Transaction.GetHttpRequest() is { } http)
            http.HttpContext.Items[AuthServerState.ErrorItem] = context.Response.Error;
        return default;
    }
}

/// <summary>Records successful revocation requests.</summary>
internal sealed class RecordRevocations(AuthServerState state) : IOpenIddictServerHandler<ApplyRevocationResponseContext>
{
    public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
        OpenIddictServerHandlerDescriptor.CreateBuilder<ApplyRevocationResponseContext>()
            .UseSingletonHandler<RecordRevocations>()
            .SetOrder(int.MinValue + 50_000)
            .SetType(OpenIddictServerHandlerType.Custom)
            .Build();

    public ValueTask HandleAsync(ApplyRevocationResponseContext context)
    {
        if (context.Response.Error is null && context.Request?.Token is { } token)
            state.RecordRevocation(new AuthServerRevocation(token, context.Request.TokenTypeHint, context.Request.ClientId));
        return default;
    }
}

/// <summary>
/// Without rotation, a refresh answers no refresh token (the client keeps its own), as many
/// providers do; OpenIddict would otherwise issue a new one beside the old.
/// </summary>
internal sealed class KeepRefreshTokenWithoutRotation : IOpenIddictServerHandler<ProcessSignInContext>
{
    public static OpenIddictServerHandlerDescriptor Descriptor { get; } =
        OpenIddictServerHandlerDescriptor.CreateBuilder<ProcessSignInContext>()
            .UseSingletonHandler<KeepRefreshTokenWithoutRotation>()
            .SetOrder(OpenIddictServerHandlers.EvaluateGeneratedTokens.Descriptor.Order + 1)
            .SetType(OpenIddictServerHandlerType.Custom)
            .Build();

    public ValueTask HandleAsync(ProcessSignInContext context)
    {
        if (context.Request is { } request && request.IsRefreshTokenGrantType())
            context.GenerateRefreshToken = context.IncludeRefreshToken = false;
        return default;
    }
}

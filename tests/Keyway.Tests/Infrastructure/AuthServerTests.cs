using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Duende.IdentityModel.Client;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using Xunit.Abstractions;

namespace Keyway.Tests.Infrastructure;

[Trait("Category", "Integration")]
public sealed class AuthServerTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, UseCookies = false });
    private static readonly JsonSerializerOptions _json = new(JsonSerializerDefaults.Web);
    private readonly List<AuthServer> _servers = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var server in _servers)
            await server.DisposeAsync();
    }

    [Fact]
    public async Task Discovery_lists_the_endpoints_grants_and_S256_only()
    {
        var server = await StartAsync();

        var discovery = await _http.GetDiscoveryDocumentAsync(server.BaseUrl);

        Assert.False(discovery.IsError, discovery.Error);
        Assert.Equal(server.Issuer, discovery.Issuer);
        Assert.Equal(server.TokenEndpoint, discovery.TokenEndpoint);
        Assert.Equal(server.AuthorizationEndpoint, discovery.AuthorizeEndpoint);
        Assert.Equal(server.RevocationEndpoint, discovery.RevocationEndpoint);
        Assert.Equal(server.UserInfoEndpoint, discovery.UserInfoEndpoint);
        Assert.Equal(["authorization_code", "client_credentials", "password", "refresh_token"], discovery.GrantTypesSupported.Order());
        Assert.Equal(["S256"], discovery.CodeChallengeMethodsSupported);
        Assert.Contains("client_secret_basic", discovery.TokenEndpointAuthenticationMethodsSupported);
        Assert.Contains("client_secret_post", discovery.TokenEndpointAuthenticationMethodsSupported);
        Assert.NotEmpty(discovery.KeySet!.Keys);
        output.WriteLine($"AuthServer started in {server.StartDuration.TotalMilliseconds:0} ms");
    }

    [Theory]
    [InlineData(ClientCredentialStyle.AuthorizationHeader)]
    [InlineData(ClientCredentialStyle.PostBody)]
    public async Task Client_credentials_returns_a_JWT_access_token_with_exp_and_expires_in(ClientCredentialStyle style)
    {
        var server = await StartAsync(new AuthServerOptions { AccessTokenLifetime = TimeSpan.FromSeconds(30) });

        var response = await _http.RequestClientCredentialsTokenAsync(new ClientCredentialsTokenRequest
        {
            Address = server.TokenEndpoint,
            ClientId = "keyway",
            ClientSecret = "keyway-secret",
            ClientCredentialStyle = style,
            Scope = "api",
        });

        Assert.False(response.IsError, response.Raw);
        // OpenIddict counts down from the exp claim, whole seconds.
        Assert.InRange(response.ExpiresIn, 29, 30);
        Assert.Null(response.RefreshToken);
        var jwt = new JsonWebToken(response.AccessToken);
        Assert.Equal(server.Issuer, jwt.Issuer);
        Assert.Equal("keyway", jwt.Subject);
        Assert.Equal("at+jwt", jwt.Typ);
        Assert.InRange(jwt.ValidTo, DateTime.UtcNow.AddSeconds(25), DateTime.UtcNow.AddSeconds(31));
        Assert.Equal(new AuthServerTokenRequest("client_credentials", "keyway", 200, null), server.TokenRequests.Single());
        Assert.Equal(1, server.TokenRequestCount("client_credentials"));
    }

    [Fact]
    public async Task A_wrong_client_secret_answers_401_invalid_client()
    {
        var server = await StartAsync();

        var response = await _http.RequestClientCredentialsTokenAsync(new ClientCredentialsTokenRequest
        {
            Address = server.TokenEndpoint,
            ClientId = "keyway",
            ClientSecret = "wrong",
        });

        Assert.Equal(HttpStatusCode.Unauthorized, response.HttpStatusCode);
        Assert.Equal("invalid_client", OAuthError(response));
    }

    [Fact]
    public async Task A_rejected_client_answers_401_invalid_client_until_accepted_again()
    {
        var server = await StartAsync();

        server.RejectClient("keyway");
        var rejected = await ClientCredentialsAsync(server);
        server.AcceptClient("keyway");
        var accepted = await ClientCredentialsAsync(server);

        Assert.Equal(HttpStatusCode.Unauthorized, rejected.HttpStatusCode);
        Assert.Equal("invalid_client", OAuthError(rejected));
        Assert.False(accepted.IsError, accepted.Raw);
        Assert.Equal([401, 200], server.TokenRequests.Select(r => r.StatusCode));
        Assert.Equal("invalid_client", server.TokenRequests[0].Error);
    }

    [Fact]
    public async Task The_password_grant_issues_tokens_for_alice_and_refuses_a_wrong_password()
    {
        var server = await StartAsync();

        var alice = await PasswordAsync(server, "alice", "alice-password");
        var wrong = await PasswordAsync(server, "bob", "alice-password");

        Assert.False(alice.IsError, alice.Raw);
        Assert.NotNull(alice.RefreshToken);
        Assert.Equal("alice", new JsonWebToken(alice.AccessToken).Subject);
        Assert.Equal(HttpStatusCode.BadRequest, wrong.HttpStatusCode);
        Assert.Equal("invalid_grant", wrong.Error);
        Assert.Equal(1, server.IssuedRefreshTokenCount);
        Assert.Equal(2, server.TokenRequestCount("password"));
    }

    [Fact]
    public async Task A_refresh_token_used_once_yields_new_tokens_and_is_redeemed()
    {
        var server = await StartAsync();
        var first = await PasswordAsync(server, "alice", "alice-password");

        var refreshed = await RefreshAsync(server, first.RefreshToken!);

        Assert.False(refreshed.IsError, refreshed.Raw);
        Assert.NotNull(refreshed.RefreshToken);
        Assert.NotEqual(first.RefreshToken, refreshed.RefreshToken);
        Assert.NotEqual(first.AccessToken, refreshed.AccessToken);
        Assert.Equal("alice", new JsonWebToken(refreshed.AccessToken).Subject);
        Assert.Equal([first.RefreshToken!], server.RedeemedRefreshTokens);
        Assert.Equal("redeemed", await server.GetRefreshTokenStatusAsync(first.RefreshToken!));
        Assert.Equal("valid", await server.GetRefreshTokenStatusAsync(refreshed.RefreshToken!));
        Assert.Equal(2, server.IssuedRefreshTokenCount);
        Assert.Equal(1, server.TokenRequestCount("refresh_token"));
    }

    [Fact]
    public async Task A_refresh_token_used_twice_is_refused_and_revokes_every_token_of_the_grant()
    {
        var server = await StartAsync();
        var first = await PasswordAsync(server, "alice", "alice-password");
        var rotated = await RefreshAsync(server, first.RefreshToken!);
        Assert.False(rotated.IsError, rotated.Raw);

        var reused = await RefreshAsync(server, first.RefreshToken!);
        var successor = await RefreshAsync(server, rotated.RefreshToken!);

        Assert.Equal(HttpStatusCode.BadRequest, reused.HttpStatusCode);
        Assert.Equal("invalid_grant", reused.Error);
        Assert.Equal("invalid_grant", successor.Error);
        Assert.Single(server.RefreshTokenReuses);
        Assert.Equal("revoked", await server.GetRefreshTokenStatusAsync(first.RefreshToken!));
        Assert.Equal("revoked", await server.GetRefreshTokenStatusAsync(rotated.RefreshToken!));
        // The access token issued with the rotated refresh token is revoked too.
        Assert.Equal(HttpStatusCode.Unauthorized, (await CallApiAsync(server, rotated.AccessToken!)).StatusCode);
        output.WriteLine($"reuse: {reused.Raw}");
        output.WriteLine($"successor: {successor.Raw}");
    }

    [Fact]
    public async Task Of_concurrent_refreshes_with_one_refresh_token_one_succeeds_and_the_double_spend_revokes_the_grant()
    {
        var server = await StartAsync();
        var first = await PasswordAsync(server, "alice", "alice-password");

        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => RefreshAsync(server, first.RefreshToken!)));

        var winner = Assert.Single(responses, r => !r.IsError);
        Assert.All(responses.Where(r => r.IsError), r => Assert.Equal("invalid_grant", OAuthError(r)));
        // Losers that come after the grant was revoked are refused as revoked, not as reuse.
        Assert.InRange(server.RefreshTokenReuses.Count, 1, 7);
        // The double spend took the grant down, the winner's new tokens included.
        Assert.Equal("invalid_grant", OAuthError(await RefreshAsync(server, winner.RefreshToken!)));
        using var api = await CallApiAsync(server, winner.AccessToken!);
        Assert.Equal(HttpStatusCode.Unauthorized, api.StatusCode);
    }

    [Fact]
    public async Task Without_rotation_a_refresh_token_works_again_and_no_new_one_is_issued()
    {
        var server = await StartAsync(new AuthServerOptions { RotateRefreshTokens = false });
        var first = await PasswordAsync(server, "alice", "alice-password");

        var once = await RefreshAsync(server, first.RefreshToken!);
        var twice = await RefreshAsync(server, first.RefreshToken!);

        Assert.False(once.IsError, once.Raw);
        Assert.False(twice.IsError, twice.Raw);
        Assert.Null(once.RefreshToken);
        Assert.Empty(server.RefreshTokenReuses);
        Assert.Equal("valid", await server.GetRefreshTokenStatusAsync(first.RefreshToken!));
    }

    [Fact]
    public async Task The_api_answers_200_with_a_fresh_token_and_401_once_it_expires()
    {
        var server = await StartAsync(new AuthServerOptions { AccessTokenLifetime = TimeSpan.FromSeconds(2) });
        // Started before the token is asked for: the token is issued after this, so it lives at least 1 s past it
        // however long its answer takes to arrive on a busy machine.
        var issued = Stopwatch.StartNew();
        var token = await ClientCredentialsAsync(server);

        using var fresh = await CallApiAsync(server, token.AccessToken!);
        var me = await fresh.Content.ReadFromJsonAsync<AuthServerApiIdentity>(_json);
        HttpStatusCode status = 0;
        var challenge = "";
        await Poll.UntilAsync(async () =>
        {
            using var response = await CallApiAsync(server, token.AccessToken!);
            status = response.StatusCode;
            challenge = response.Headers.WwwAuthenticate.ToString();
            return status != HttpStatusCode.OK;
        }, TimeSpan.FromSeconds(10), "the access token to expire");

        Assert.Equal(HttpStatusCode.OK, fresh.StatusCode);
        Assert.Equal(("keyway", "keyway"), (me!.Subject, me.ClientId));
        Assert.Equal(["api"], me.Scopes);
        Assert.Equal(HttpStatusCode.Unauthorized, status);
        Assert.StartsWith("Bearer", challenge, StringComparison.Ordinal);
        Assert.Contains("invalid_token", challenge, StringComparison.Ordinal);
        // The JWT exp is in whole seconds, so a 2 s token lives between 1 and 2 s from its issue.
        Assert.True(issued.Elapsed > TimeSpan.FromSeconds(1), $"expired after {issued.Elapsed}");
        Assert.Equal(200, server.ApiStatusCodes[0]);
        Assert.Equal(401, server.ApiStatusCodes[^1]);
        output.WriteLine($"401 after {issued.Elapsed.TotalMilliseconds:0} ms");
    }

    [Fact]
    public async Task A_held_refresh_answer_is_redeemed_at_the_provider_before_the_client_receives_it()
    {
        var server = await StartAsync();
        var first = await PasswordAsync(server, "alice", "alice-password");
        using var hold = server.HoldTokenAnswers(grantType: "refresh_token");

        var refresh = RefreshAsync(server, first.RefreshToken!);
        await hold.Arrived.WaitAsync(TimeSpan.FromSeconds(10));
        var statusWhileHeld = await server.GetRefreshTokenStatusAsync(first.RefreshToken!);
        var heldToken = Assert.Single(hold.RefreshTokens);
        var statusOfHeld = await server.GetRefreshTokenStatusAsync(heldToken);
        var receivedWhileHeld = refresh.IsCompleted;
        // Another grant type is not held.
        var password = await PasswordAsync(server, "bob", "bob-password");
        hold.Release();
        var refreshed = await refresh.WaitAsync(TimeSpan.FromSeconds(10));
        await hold.Delivered.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.False(receivedWhileHeld);
        Assert.Equal("redeemed", statusWhileHeld);
        Assert.Equal("valid", statusOfHeld);
        Assert.False(password.IsError, password.Raw);
        Assert.False(refreshed.IsError, refreshed.Raw);
        Assert.Equal(heldToken, refreshed.RefreshToken);
        Assert.Equal(1, hold.HeldCount);
        // Released: later answers pass.
        Assert.False((await RefreshAsync(server, refreshed.RefreshToken!)).IsError);
        Assert.Equal(0, await server.CountRevokedGrantsAsync());
    }

    [Fact]
    public async Task A_hold_for_one_client_lets_other_clients_answers_through()
    {
        var server = await StartAsync();
        await server.AddClientAsync(new AuthServerClient { ClientId = "other", ClientSecret = "other-secret" });
        using var hold = server.HoldTokenAnswers(clientId: "other");

        var keyway = await ClientCredentialsAsync(server);
        var other = _http.RequestClientCredentialsTokenAsync(new ClientCredentialsTokenRequest
        {
            Address = server.TokenEndpoint,
            ClientId = "other",
            ClientSecret = "other-secret",
        });
        await hold.Arrived.WaitAsync(TimeSpan.FromSeconds(10));
        var otherReceivedWhileHeld = other.IsCompleted;
        hold.Dispose();

        Assert.False(keyway.IsError, keyway.Raw);
        Assert.False(otherReceivedWhileHeld);
        Assert.False((await other.WaitAsync(TimeSpan.FromSeconds(10))).IsError);
    }

    [Fact]
    public async Task The_api_accepts_an_access_token_until_its_exp_and_refuses_it_from_then_on_without_clock_skew()
    {
        var server = await StartAsync(new AuthServerOptions { AccessTokenLifetime = TimeSpan.FromSeconds(2) });
        var token = await ClientCredentialsAsync(server);
        var exp = DateTimeOffset.FromUnixTimeSeconds(new JsonWebToken(token.AccessToken).GetPayloadValue<long>("exp"));
        DateTimeOffset lastAccepted = default, firstRefused = default;

        await Poll.UntilAsync(async () =>
        {
            var sent = DateTimeOffset.UtcNow;
            using var response = await CallApiAsync(server, token.AccessToken!);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                lastAccepted = DateTimeOffset.UtcNow;
                return false;
            }
            firstRefused = sent;
            return true;
        }, TimeSpan.FromSeconds(10), "the access token to expire");

        // A provider states whole seconds: expires_in is an integer, the JWT exp a whole second.
        Assert.InRange(token.ExpiresIn, 1, 2);
        Assert.True(lastAccepted <= exp + TimeSpan.FromMilliseconds(50), $"accepted at {lastAccepted:O}, after its exp {exp:O}");
        Assert.True(firstRefused <= exp + TimeSpan.FromMilliseconds(500), $"first refused when sent at {firstRefused:O}, exp {exp:O}");
        Assert.Equal(1, server.ApiRejectionCount);
        Assert.True(Assert.Single(server.ApiRejections).Late > TimeSpan.Zero);
    }

    [Fact]
    public async Task A_nominal_expires_in_states_the_whole_lifetime_while_the_token_dies_at_its_truncated_exp()
    {
        var server = await StartAsync(new AuthServerOptions { AccessTokenLifetime = TimeSpan.FromSeconds(3), StateNominalExpiresIn = true });

        var before = DateTimeOffset.UtcNow;
        var token = await ClientCredentialsAsync(server);
        var after = DateTimeOffset.UtcNow;
        var exp = DateTimeOffset.FromUnixTimeSeconds(new JsonWebToken(token.AccessToken).GetPayloadValue<long>("exp"));

        Assert.Equal(3, token.ExpiresIn);
        // The exp counts from the issue second (somewhere between sending and receiving, cut to the second):
        // at most 3 s after the answer came, more than 2 s after the request was sent.
        Assert.InRange(exp, before.AddSeconds(2), after.AddSeconds(3));
    }

    [Fact]
    public async Task Reuse_revokes_the_grant_and_the_grant_is_counted()
    {
        var server = await StartAsync();
        var first = await PasswordAsync(server, "alice", "alice-password");
        Assert.False((await RefreshAsync(server, first.RefreshToken!)).IsError);
        Assert.Equal(0, await server.CountRevokedGrantsAsync());

        await RefreshAsync(server, first.RefreshToken!);

        Assert.Single(server.RefreshTokenReuses);
        Assert.Equal(1, await server.CountRevokedGrantsAsync());
    }

    [Fact]
    public async Task The_api_answers_401_without_a_token_or_with_a_forged_one()
    {
        var server = await StartAsync();
        var token = await ClientCredentialsAsync(server);
        var forged = token.AccessToken![..^4] + "AAAA";

        using var none = await _http.GetAsync(server.ApiEndpoint);
        using var bad = await CallApiAsync(server, forged);

        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, bad.StatusCode);
    }

    [Fact]
    public async Task Authorization_code_with_PKCE_through_the_real_redirect()
    {
        var server = await StartAsync();
        var redirectUri = new Uri("http://127.0.0.1:1/oauth/callback");
        await server.AddRedirectUriAsync("keyway", redirectUri);
        var verifier = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(32));
        var challenge = Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(verifier)));
        var authorizeUrl = new RequestUrl(server.AuthorizationEndpoint).CreateAuthorizeUrl(
            clientId: "keyway",
            responseType: "code",
            scope: "openid profile offline_access api",
            redirectUri: redirectUri.ToString(),
            state: "state-123",
            loginHint: "bob",
            codeChallenge: challenge,
            codeChallengeMethod: "S256");

        using var redirect = await _http.GetAsync(authorizeUrl);
        var location = redirect.Headers.Location!;
        var query = QueryHelpers.ParseQuery(location.Query);
        var tokens = await _http.RequestAuthorizationCodeTokenAsync(new AuthorizationCodeTokenRequest
        {
            Address = server.TokenEndpoint,
            ClientId = "keyway",
            ClientSecret = "keyway-secret",
            Code = query["code"].ToString(),
            RedirectUri = redirectUri.ToString(),
            CodeVerifier = verifier,
        });
        using var me = await CallApiAsync(server, tokens.AccessToken!);
        var userInfo = await _http.GetUserInfoAsync(new UserInfoRequest { Address = server.UserInfoEndpoint, Token = tokens.AccessToken });

        Assert.Equal(HttpStatusCode.Found, redirect.StatusCode);
        Assert.Equal(redirectUri.GetLeftPart(UriPartial.Path), location.GetLeftPart(UriPartial.Path));
        Assert.Equal("state-123", query["state"]);
        Assert.False(tokens.IsError, tokens.Raw);
        Assert.NotNull(tokens.RefreshToken);
        Assert.NotNull(tokens.IdentityToken);
        Assert.Equal("bob", (await me.Content.ReadFromJsonAsync<AuthServerApiIdentity>(_json))!.Subject);
        Assert.False(userInfo.IsError, userInfo.Raw);
        Assert.Equal("bob", userInfo.TryGet("sub"));
        Assert.Equal(1, server.TokenRequestCount("authorization_code"));
    }

    [Fact]
    public async Task Authorization_code_needs_PKCE_and_the_right_verifier()
    {
        var server = await StartAsync();
        var redirectUri = "http://127.0.0.1:1/oauth/callback";
        await server.AddRedirectUriAsync("keyway", new Uri(redirectUri));
        var request = new RequestUrl(server.AuthorizationEndpoint);

        using var withoutPkce = await _http.GetAsync(request.CreateAuthorizeUrl("keyway", "code", "api", redirectUri, state: "s1"));
        var challenge = Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(new string('v', 43))));
        using var withPkce = await _http.GetAsync(request.CreateAuthorizeUrl("keyway", "code", "api", redirectUri, state: "s2", codeChallenge: challenge, codeChallengeMethod: "S256"));
        var code = QueryHelpers.ParseQuery(withPkce.Headers.Location!.Query)["code"].ToString();
        var wrongVerifier = await _http.RequestAuthorizationCodeTokenAsync(new AuthorizationCodeTokenRequest
        {
            Address = server.TokenEndpoint,
            ClientId = "keyway",
            ClientSecret = "keyway-secret",
            Code = code,
            RedirectUri = redirectUri,
            CodeVerifier = new string('w', 43),
        });

        // OpenIddict answers this one itself rather than trusting the redirect_uri with it.
        Assert.Equal(HttpStatusCode.BadRequest, withoutPkce.StatusCode);
        Assert.Contains("code_challenge", await withoutPkce.Content.ReadAsStringAsync());
        Assert.Equal("invalid_grant", wrongVerifier.Error);
    }

    [Fact]
    public async Task Revocation_revokes_a_refresh_token_and_an_access_token()
    {
        var server = await StartAsync();
        var tokens = await PasswordAsync(server, "alice", "alice-password");

        var revokeRefresh = await RevokeAsync(server, tokens.RefreshToken!, "refresh_token");
        var revokeAccess = await RevokeAsync(server, tokens.AccessToken!, "access_token");
        var refresh = await RefreshAsync(server, tokens.RefreshToken!);
        using var api = await CallApiAsync(server, tokens.AccessToken!);

        Assert.False(revokeRefresh.IsError, revokeRefresh.Raw);
        Assert.False(revokeAccess.IsError, revokeAccess.Raw);
        Assert.Equal("invalid_grant", refresh.Error);
        Assert.Equal(HttpStatusCode.Unauthorized, api.StatusCode);
        Assert.Equal([tokens.RefreshToken!, tokens.AccessToken!], server.Revocations.Select(r => r.Token));
        Assert.Equal("revoked", await server.GetRefreshTokenStatusAsync(tokens.RefreshToken!));
    }

    [Theory]
    [InlineData(503)]
    [InlineData(429)]
    public async Task Injected_failures_answer_the_next_token_requests_then_the_server_recovers(int status)
    {
        var server = await StartAsync();

        server.FailNextTokenRequests(2, status);
        var first = await ClientCredentialsAsync(server);
        var second = await ClientCredentialsAsync(server);
        var third = await ClientCredentialsAsync(server);

        Assert.Equal((HttpStatusCode)status, first.HttpStatusCode);
        Assert.Equal((HttpStatusCode)status, second.HttpStatusCode);
        Assert.Equal("temporarily_unavailable", OAuthError(first));
        Assert.False(third.IsError, third.Raw);
        Assert.Equal([status, status, 200], server.TokenRequests.Select(r => r.StatusCode));
        if (status == 429)
            Assert.Equal(TimeSpan.FromSeconds(1), first.HttpResponse!.Headers.RetryAfter!.Delta);
    }

    [Fact]
    public async Task Omitting_expires_in_leaves_only_the_JWT_exp()
    {
        var server = await StartAsync(new AuthServerOptions { OmitExpiresIn = true, AccessTokenLifetime = TimeSpan.FromSeconds(20) });

        var omitted = await ClientCredentialsAsync(server);
        server.OmitExpiresIn = false;
        var included = await ClientCredentialsAsync(server);

        Assert.False(omitted.IsError, omitted.Raw);
        Assert.False(omitted.Json!.Value.TryGetProperty("expires_in", out _));
        Assert.InRange(new JsonWebToken(omitted.AccessToken).ValidTo, DateTime.UtcNow.AddSeconds(15), DateTime.UtcNow.AddSeconds(21));
        Assert.InRange(included.ExpiresIn, 19, 20);
    }

    [Fact]
    public async Task A_client_added_after_start_can_get_tokens()
    {
        var server = await StartAsync();

        await server.AddClientAsync(new AuthServerClient { ClientId = "late", ClientSecret = "late-secret" });
        var response = await _http.RequestClientCredentialsTokenAsync(new ClientCredentialsTokenRequest
        {
            Address = server.TokenEndpoint,
            ClientId = "late",
            ClientSecret = "late-secret",
        });

        Assert.False(response.IsError, response.Raw);
        Assert.Equal("late", new JsonWebToken(response.AccessToken).Subject);
    }

    private async Task<AuthServer> StartAsync(AuthServerOptions? options = null)
    {
        var server = await AuthServer.StartAsync(options ?? new AuthServerOptions());
        _servers.Add(server);
        return server;
    }

    // Duende's Error holds the reason phrase for statuses other than 400; the OAuth code is in the body.
    private static string? OAuthError(TokenResponse response) =>
        response.Json is { ValueKind: JsonValueKind.Object } json && json.TryGetProperty("error", out var error) ? error.GetString() : null;

    private static Task<TokenResponse> ClientCredentialsAsync(AuthServer server) =>
        _http.RequestClientCredentialsTokenAsync(new ClientCredentialsTokenRequest
        {
            Address = server.TokenEndpoint,
            ClientId = "keyway",
            ClientSecret = "keyway-secret",
            Scope = "api",
        });

    private static Task<TokenResponse> PasswordAsync(AuthServer server, string user, string password) =>
        _http.RequestPasswordTokenAsync(new PasswordTokenRequest
        {
            Address = server.TokenEndpoint,
            ClientId = "keyway",
            ClientSecret = "keyway-secret",
            UserName = user,
            Password = password,
            Scope = "api offline_access",
        });

    private static Task<TokenResponse> RefreshAsync(AuthServer server, string refreshToken) =>
        _http.RequestRefreshTokenAsync(new RefreshTokenRequest
        {
            Address = server.TokenEndpoint,
            ClientId = "keyway",
            ClientSecret = "keyway-secret",
            RefreshToken = refreshToken,
        });

    private static Task<TokenRevocationResponse> RevokeAsync(AuthServer server, string token, string hint) =>
        _http.RevokeTokenAsync(new TokenRevocationRequest
        {
            Address = server.RevocationEndpoint,
            ClientId = "keyway",
            ClientSecret = "keyway-secret",
            Token = token,
            TokenTypeHint = hint,
        });

    private static Task<HttpResponseMessage> CallApiAsync(AuthServer server, string accessToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, server.ApiEndpoint);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", accessToken);
        return _http.SendAsync(request);
    }
}

/// <summary>The custom-login API that stands beside <see cref="AuthServer"/> for Keyway's <c>custom</c> auth flows.</summary>
[Trait("Category", "Integration")]
public sealed class AuthServerLoginApiTests : IAsyncLifetime
{
    private static readonly HttpClient _http = new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, UseCookies = false });
    private readonly List<LoginApi> _apis = [];

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var api in _apis)
            await api.DisposeAsync();
    }

    [Fact]
    public async Task Login_answers_a_session_token_that_data_accepts_as_bearer_or_cookie()
    {
        var api = await StartAsync(new LoginApiOptions { SessionLifetime = TimeSpan.FromSeconds(2) });

        using var login = await LoginAsync(api, "alice", "alice-password");
        var (token, expiresIn) = await ReadSessionAsync(login);
        using var bearer = await DataAsync(api, token);
        using var cookie = await DataAsync(api, token, asCookie: true);

        Assert.Equal(HttpStatusCode.OK, login.StatusCode);
        Assert.Equal(2, expiresIn);
        Assert.Contains($"session={token}", login.Headers.GetValues("Set-Cookie").Single(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, bearer.StatusCode);
        Assert.Equal("alice", (await bearer.Content.ReadFromJsonAsync<Dictionary<string, string>>())!["user"]);
        Assert.Equal(HttpStatusCode.OK, cookie.StatusCode);
        Assert.Equal((1, 2, 0), (api.LoginCount, api.DataRequestCount, api.RejectedDataRequestCount));
    }

    [Fact]
    public async Task A_wrong_password_and_an_unknown_token_answer_401()
    {
        var api = await StartAsync();

        using var login = await LoginAsync(api, "alice", "bob-password");
        using var data = await DataAsync(api, "not-a-token");
        using var none = await _http.GetAsync(api.Url("/data"));

        Assert.Equal(HttpStatusCode.Unauthorized, login.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, data.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
        Assert.Equal((0, 1, 2), (api.LoginCount, api.FailedLoginCount, api.RejectedDataRequestCount));
    }

    [Fact]
    public async Task Data_answers_401_once_the_session_expires()
    {
        var api = await StartAsync(new LoginApiOptions { SessionLifetime = TimeSpan.FromSeconds(1) });
        using var login = await LoginAsync(api, "bob", "bob-password");
        var (token, _) = await ReadSessionAsync(login);

        await Poll.UntilAsync(async () =>
        {
            using var response = await DataAsync(api, token);
            return response.StatusCode == HttpStatusCode.Unauthorized;
        }, TimeSpan.FromSeconds(10), "the session to expire");

        Assert.False(api.IsValid(token));
    }

    [Fact]
    public async Task Refresh_replaces_the_token_and_the_old_one_stops_working()
    {
        var fakeTime = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(DateTimeOffset.UtcNow);
        var api = await StartAsync(new LoginApiOptions { SessionLifetime = TimeSpan.FromSeconds(2), TimeProvider = fakeTime });
        using var login = await LoginAsync(api, "alice", "alice-password");
        var (first, _) = await ReadSessionAsync(login);
        fakeTime.Advance(TimeSpan.FromSeconds(3));
        using var expired = await DataAsync(api, first);

        using var refresh = await _http.PostAsJsonAsync(api.Url("/refresh"), new { token = first });
        var (second, expiresIn) = await ReadSessionAsync(refresh);
        using var withNew = await DataAsync(api, second);
        using var withOld = await DataAsync(api, first);
        using var refreshOldAgain = await _http.PostAsJsonAsync(api.Url("/refresh"), new { token = first });
        using var refreshByBearer = new HttpRequestMessage(HttpMethod.Post, api.Url("/refresh"));
        refreshByBearer.Headers.Authorization = new AuthenticationHeaderValue("Bearer", second);
        using var third = await _http.SendAsync(refreshByBearer);

        Assert.Equal(HttpStatusCode.Unauthorized, expired.StatusCode);
        Assert.Equal(HttpStatusCode.OK, refresh.StatusCode);
        Assert.NotEqual(first, second);
        Assert.Equal(2, expiresIn);
        Assert.Equal(HttpStatusCode.OK, withNew.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, withOld.StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, refreshOldAgain.StatusCode);
        Assert.Equal(HttpStatusCode.OK, third.StatusCode);
        Assert.Equal((1, 2), (api.LoginCount, api.RefreshCount));
    }

    [Fact]
    public async Task JWT_session_tokens_carry_an_exp_the_lifetime_away()
    {
        var api = await StartAsync(new LoginApiOptions { JwtTokens = true, SessionLifetime = TimeSpan.FromSeconds(30) });

        using var login = await LoginAsync(api, "alice", "alice-password");
        var (token, _) = await ReadSessionAsync(login);
        var jwt = new JsonWebToken(token);

        Assert.Equal("alice", jwt.Subject);
        Assert.InRange(jwt.ValidTo - jwt.IssuedAt, TimeSpan.FromSeconds(29), TimeSpan.FromSeconds(30));
        Assert.InRange(jwt.ValidTo, DateTime.UtcNow.AddSeconds(25), DateTime.UtcNow.AddSeconds(31));
        Assert.True(api.IsValid(token));
    }

    [Fact]
    public async Task An_expired_session_can_answer_200_with_an_error_body()
    {
        var api = await StartAsync(new LoginApiOptions { ExpiredSessionAnswersOkWithError = true });
        using var login = await LoginAsync(api, "alice", "alice-password");
        var (token, _) = await ReadSessionAsync(login);

        api.ExpireAllSessions();
        using var data = await DataAsync(api, token);

        Assert.Equal(HttpStatusCode.OK, data.StatusCode);
        Assert.Equal("""{"error":"session expired"}""", await data.Content.ReadAsStringAsync());
        Assert.Equal(1, api.RejectedDataRequestCount);
    }

    private async Task<LoginApi> StartAsync(LoginApiOptions? options = null)
    {
        var api = await LoginApi.StartAsync(options);
        _apis.Add(api);
        return api;
    }

    private static Task<HttpResponseMessage> LoginAsync(LoginApi api, string username, string password) =>
        _http.PostAsJsonAsync(api.Url("/login"), new { username, password });

    private static Task<HttpResponseMessage> DataAsync(LoginApi api, string token, bool asCookie = false)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, api.Url("/data"));
        if (asCookie)
            request.Headers.Add("Cookie", $"{LoginApi.SessionCookie}={token}");
        else
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return _http.SendAsync(request);
    }

    private static async Task<(string Token, int ExpiresIn)> ReadSessionAsync(HttpResponseMessage response)
    {
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var session = body.RootElement.GetProperty("session");
        return (session.GetProperty("token").GetString()!, session.GetProperty("expiresIn").GetInt32());
    }
}

using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Keyway.Outbound;
using Keyway.Secrets;

namespace Keyway.Credentials;

/// <summary>A <c>githubApp</c> auth method with every template evaluated for one environment.</summary>
internal sealed record GitHubAppSettings
{
    public required string AppId { get; init; }

    public required string InstallationId { get; init; }

    /// <summary>The REST API's base URL, no trailing slash.</summary>
    public required string ApiUrl { get; init; }

    public required SigningKey Key { get; init; }

    /// <summary>The secrets bound to origins among those the settings were rendered from: checked on the token request.</summary>
    public SecretBindings Bindings { get; init; } = SecretBindings.None;

    /// <summary>The versions of the secret variables the settings were rendered from: a new key gets a new token.</summary>
    public string SecretVersions { get; init; } = "";

    public string ParametersHash =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\n', "githubApp", ApiUrl, AppId, InstallationId, SecretVersions))))[..32];

    /// <summary><c>POST {api}/app/installations/{id}/access_tokens</c>.</summary>
    public Uri TokenUrl => new($"{ApiUrl}/app/installations/{InstallationId}/access_tokens");
}

/// <summary>
/// GitHub App authentication: an app JWT (RS256, <c>iss</c> the app id, <c>iat</c> 60 s in the past for clock
/// drift, <c>exp</c> 9 minutes ahead, inside GitHub's 10-minute bound) exchanged for an installation access token,
/// which lives an hour and carries its <c>expires_at</c>. Sent on Keyway's outbound pool.
/// </summary>
internal sealed class GitHubAppClient(HttpClient http, TimeProvider time)
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The app JWT GitHub wants to mint an installation token.</summary>
    public string AppJwt(GitHubAppSettings settings)
    {
        var now = time.GetUtcNow().ToUnixTimeSeconds();
        return settings.Key.Sign(claims =>
        {
            claims.WriteNumber("iat", now - 60);
            claims.WriteNumber("exp", now + (9 * 60));
            claims.WriteString("iss", settings.AppId);
        });
    }

    public async Task<TokenResult> RequestTokenAsync(GitHubAppSettings settings, CancellationToken cancellationToken)
    {
        var url = settings.TokenUrl;
        if (settings.Bindings.FirstRefusing(url) is { } refusing)
        {
            return TokenResult.Fail(FailureKind.Misconfigured, SecretBindings.Refused(refusing, url, "the GitHub App token request").Message);
        }

        var jwt = AppJwt(settings);
        using var request = new HttpRequestMessage(HttpMethod.Post, url);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", jwt);
        request.Headers.Accept.ParseAdd("application/vnd.github+json");
        request.Headers.TryAddWithoutValidation("X-GitHub-Api-Version", "2022-11-28");
        request.Headers.UserAgent.ParseAdd("Keyway");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(RequestTimeout);
        var sentAt = time.GetUtcNow();
        HttpResponseMessage response;
        string body;
        try
        {
            response = await http.SendAsync(request, timeout.Token);
            body = await response.Content.ReadAsStringAsync(timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return TokenResult.Fail(FailureKind.Transient, $"GitHub did not answer the installation token request within {RequestTimeout.TotalSeconds:0} s.");
        }
        catch (HttpRequestException e)
        {
            return TokenResult.Fail(FailureKind.Transient, $"GitHub could not be reached for an installation token: {e.HttpRequestError}.");
        }

        using (response)
        {
            var redactor = Redactor.For([new Secret(jwt)]);
            var status = (int)response.StatusCode;
            if (response.IsSuccessStatusCode && Parse(body) is { } token)
            {
                var accessToken = new Secret(token.Token);
                // expires_at is GitHub's clock; an hour from the request bounds it should the clocks disagree.
                var expiresAt = token.ExpiresAt is { } at ? (at < sentAt.AddHours(1) ? at : sentAt.AddHours(1)) : sentAt.AddHours(1);
                return TokenResult.Success(new TokenSet
                {
                    AccessToken = accessToken,
                    TokenType = "token",
                    ObtainedAt = time.GetUtcNow(),
                    ExpiresAt = expiresAt,
                });
            }

            var message = Message(body) is { } m ? $" ({Truncate(redactor.Redact(m))})" : "";
            if (status is 0 or 408 or 429 or >= 500 || response.IsSuccessStatusCode)
            {
                TimeSpan? retryAfter = response.Headers.RetryAfter is { } header ? header.Delta ?? (header.Date - time.GetUtcNow()) : null;
                return TokenResult.Fail(FailureKind.Transient, response.IsSuccessStatusCode
                    ? "GitHub's answer to the installation token request had no token."
                    : $"GitHub answered the installation token request with {status}{message}.", retryAfter);
            }

            // 401: the app id or key is wrong (or the JWT's clock is off); 404: no such installation for this app; 403/422: not allowed.
            var hint = status switch
            {
                401 => " Check auth.appId and that auth.privateKey is the app's current key.",
                404 => " Check auth.installationId: the app must be installed there.",
                _ => "",
            };
            return TokenResult.Fail(FailureKind.Misconfigured, $"GitHub refused the installation token request with {status}{message}.{hint}");
        }
    }

    private static (string Token, DateTimeOffset? ExpiresAt)? Parse(string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("token", out var token) || token.ValueKind != JsonValueKind.String ||
                token.GetString() is not { Length: > 0 } value)
            {
                return null;
            }

            DateTimeOffset? expiresAt = root.TryGetProperty("expires_at", out var at) && at.ValueKind == JsonValueKind.String &&
                                        DateTimeOffset.TryParse(at.GetString(), System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var parsed)
                ? parsed
                : null;
            return (value, expiresAt);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string? Message(string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("message", out var message) &&
                   message.ValueKind == JsonValueKind.String
                ? message.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Truncate(string text) => text.Length <= 200 ? text : text[..200] + "…";
}

/// <summary>The githubApp auth method as the engine sees it: acquired without a person, refreshed by minting a new token.</summary>
internal sealed class GitHubAppProvider(GitHubAppClient client, GitHubAppSettings settings) : ITokenProvider
{
    public GitHubAppSettings Settings { get; } = settings;

    public bool CanAcquire => true;

    public string ParametersHash { get; } = settings.ParametersHash;

    /// <summary>Installation tokens live an hour; the answer says exactly when they end.</summary>
    public TimeSpan? DefaultLifetime => TimeSpan.FromHours(1);

    public Task<TokenResult> AcquireAsync(CredentialKey key, CancellationToken cancellationToken) => client.RequestTokenAsync(Settings, cancellationToken);

    public Task<TokenResult> RefreshAsync(CredentialKey key, TokenSet current, CancellationToken cancellationToken) => client.RequestTokenAsync(Settings, cancellationToken);
}

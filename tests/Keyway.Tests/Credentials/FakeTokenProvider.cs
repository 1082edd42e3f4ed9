using System.Collections.Concurrent;
using Keyway.Credentials;
using Keyway.Secrets;
using Microsoft.Extensions.Time.Testing;

namespace Keyway.Tests.Credentials;

/// <summary>
/// A provider that behaves like a strict OAuth server: every refresh rotates the refresh token, and
/// presenting a spent refresh token revokes the whole grant (reuse detection), as real providers do.
/// </summary>
internal sealed class FakeTokenProvider(FakeTimeProvider time) : ITokenProvider
{
    private readonly ConcurrentDictionary<string, bool> _liveRefreshTokens = new();
    private readonly ConcurrentQueue<TokenResult> _failures = new();
    private int _issued;
    private int _calls;
    private int _reuses;
    private volatile bool _revoked;

    public bool CanAcquire { get; init; } = true;

    public string ParametersHash { get; set; } = "params-1";

    public TimeSpan? DefaultLifetime { get; init; }

    public TimeSpan? KeepAlive { get; init; }

    public Cronos.CronExpression? Schedule { get; init; }

    public DateTimeOffset? NextScheduledRefresh(DateTimeOffset after) =>
        Schedule?.GetNextOccurrence(after.UtcDateTime, TimeZoneInfo.Utc) is { } next ? new DateTimeOffset(next, TimeSpan.Zero) : null;

    /// <summary>Seconds in <c>expires_in</c>; null leaves it out.</summary>
    public long? ExpiresIn { get; init; } = 3600;

    /// <summary>Whether access tokens are JWTs whose <c>exp</c> says when they expire.</summary>
    public bool JwtAccessTokens { get; init; }

    /// <summary>While set, token requests wait for it: lets a test pile callers up on one refresh.</summary>
    public TaskCompletionSource? Gate { get; set; }

    public int Calls => Volatile.Read(ref _calls);

    public int Reuses => Volatile.Read(ref _reuses);

    public bool GrantRevoked => _revoked;

    public string? LatestRefreshToken { get; private set; }

    public void FailNext(TokenResult failure) => _failures.Enqueue(failure);

    /// <summary>Spends a refresh token as if another (crashed) process had used it.</summary>
    public void Spend(string refreshToken) => _liveRefreshTokens.TryRemove(refreshToken, out _);

    public Task<TokenResult> AcquireAsync(CredentialKey key, CancellationToken cancellationToken) => IssueAsync(null);

    public Task<TokenResult> RefreshAsync(CredentialKey key, TokenSet current, CancellationToken cancellationToken) => IssueAsync(current.RefreshToken!.Reveal());

    private async Task<TokenResult> IssueAsync(string? refreshToken)
    {
        Interlocked.Increment(ref _calls);
        if (Gate is { } gate)
        {
            await gate.Task;
        }

        if (_failures.TryDequeue(out var failure))
        {
            return failure;
        }

        if (refreshToken is not null)
        {
            if (_revoked || !_liveRefreshTokens.TryRemove(refreshToken, out _))
            {
                // Reuse of a spent refresh token: the provider takes the whole grant down.
                Interlocked.Increment(ref _reuses);
                _revoked = true;
                _liveRefreshTokens.Clear();
                return TokenResult.Fail(FailureKind.GrantRevoked, "invalid_grant: the refresh token was already used");
            }
        }

        var n = Interlocked.Increment(ref _issued);
        var now = time.GetUtcNow();
        var access = JwtAccessTokens ? Jwt(now.AddHours(1)) + "." + n : "access-" + n;
        var refresh = "refresh-" + n;
        _liveRefreshTokens[refresh] = true;
        LatestRefreshToken = refresh;
        return TokenResult.Success(new TokenSet
        {
            AccessToken = new Secret(access),
            RefreshToken = new Secret(refresh),
            ObtainedAt = now,
            ExpiresAt = TokenExpiry.Compute(now, ExpiresIn, new Secret(access), DefaultLifetime),
        });
    }

    internal static string Jwt(DateTimeOffset exp)
    {
        static string B64(string json) => Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(json)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return B64("{\"alg\":\"none\"}") + "." + B64($"{{\"exp\":{exp.ToUnixTimeSeconds()}}}");
    }
}

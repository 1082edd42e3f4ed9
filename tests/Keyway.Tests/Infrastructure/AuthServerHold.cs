using System.Text.Json;
using Microsoft.AspNetCore.Http;
using static OpenIddict.Abstractions.OpenIddictConstants;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// Holds the token endpoint's answers that match it (<see cref="AuthServer.HoldTokenAnswers"/>)
/// after the server has processed them: a refresh token presented is already redeemed and the
/// new tokens exist at the provider, but the client has not received them until
/// <see cref="Release"/>. A fault can so be injected at the exact moment a refresh is "at the
/// provider". Every matching answer is held until released; answers after the release pass.
/// Disposing releases and stops holding.
/// </summary>
public sealed class AuthServerHold : IDisposable
{
    private readonly Lock _lock = new();
    private readonly List<string> _refreshTokens = [];
    private readonly TaskCompletionSource _arrived = NewSignal();
    private readonly TaskCompletionSource _released = NewSignal();
    private readonly TaskCompletionSource _delivered = NewSignal();
    private readonly Action<AuthServerHold> _remove;
    private int _held;

    internal AuthServerHold(string? grantType, string? clientId, Action<AuthServerHold> remove)
    {
        GrantType = grantType;
        ClientId = clientId;
        _remove = remove;
    }

    /// <summary>The <c>grant_type</c> whose answers are held; null for every grant.</summary>
    public string? GrantType { get; }

    /// <summary>The client whose answers are held; null for every client.</summary>
    public string? ClientId { get; }

    /// <summary>Completes when the first held answer is ready (processed by the server, not yet sent).</summary>
    public Task Arrived => _arrived.Task;

    /// <summary>Completes when the first held answer has been written to its client after <see cref="Release"/>.</summary>
    public Task Delivered => _delivered.Task;

    /// <summary>How many answers were held so far.</summary>
    public int HeldCount => Volatile.Read(ref _held);

    /// <summary>The refresh tokens in the held answers, in arrival order.</summary>
    public IReadOnlyList<string> RefreshTokens
    {
        get
        {
            lock (_lock)
                return [.. _refreshTokens];
        }
    }

    /// <summary>Sends every held answer, and lets later ones through.</summary>
    public void Release() => _released.TrySetResult();

    /// <inheritdoc />
    public void Dispose()
    {
        _remove(this);
        Release();
    }

    internal bool Matches(string grantType, string? clientId) =>
        !_released.Task.IsCompleted
        && (GrantType is null || GrantType == grantType)
        && (ClientId is null || ClientId == clientId);

    /// <summary>Runs the rest of the pipeline into a buffer, signals, waits for the release, then sends the answer.</summary>
    internal async Task PassAsync(HttpContext context, RequestDelegate next)
    {
        var original = context.Response.Body;
        using var buffer = new MemoryStream();
        context.Response.Body = buffer;
        try
        {
            await next(context);
        }
        finally
        {
            context.Response.Body = original;
        }

        lock (_lock)
        {
            if (ReadRefreshToken(buffer.ToArray()) is { } refreshToken)
                _refreshTokens.Add(refreshToken);
        }
        Interlocked.Increment(ref _held);
        _arrived.TrySetResult();

        // Not bound to the request: a client that gave up meanwhile loses the answer, as it would with a slow provider.
        await _released.Task;
        buffer.Position = 0;
        await buffer.CopyToAsync(original, context.RequestAborted);
        await original.FlushAsync(context.RequestAborted);
        _delivered.TrySetResult();
    }

    private static string? ReadRefreshToken(byte[] body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            return json.RootElement.ValueKind == JsonValueKind.Object && json.RootElement.TryGetProperty(Parameters.RefreshToken, out var token)
                ? token.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

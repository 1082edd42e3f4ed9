using System.Net.Http.Headers;
using System.Text;
using Keyway.Outbound;
using Keyway.SignIn;
using Keyway.Storage;

namespace Keyway.Alerts;

/// <summary>Delivery settings, from the environment (docs/configuration.md).</summary>
internal sealed record WebhookOptions
{
    public const string TimeoutSetting = "KEYWAY_WEBHOOK_TIMEOUT";
    public const string RetentionSetting = "KEYWAY_WEBHOOK_RETENTION";

    /// <summary>How long one attempt may take, connect to last byte.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long finished deliveries are kept as history.</summary>
    public TimeSpan Retention { get; init; } = TimeSpan.FromDays(30);

    /// <summary>At most this many finished deliveries are kept per endpoint, however recent.</summary>
    public int KeepPerEndpoint { get; init; } = 1000;

    /// <summary>How often the queue is looked at when nothing wakes the sender.</summary>
    public TimeSpan Poll { get; init; } = TimeSpan.FromSeconds(1);

    public static WebhookOptions FromEnvironment() => new()
    {
        Timeout = SignInSettings.ParseDuration(Environment.GetEnvironmentVariable(TimeoutSetting), TimeoutSetting) ?? TimeSpan.FromSeconds(10),
        Retention = SignInSettings.ParseDuration(Environment.GetEnvironmentVariable(RetentionSetting), RetentionSetting) ?? TimeSpan.FromDays(30),
    };
}

/// <summary>
/// Sends queued deliveries: claims due rows (one replica per delivery), signs each per Standard
/// Webhooks and POSTs it through <see cref="OutboundClient"/>, so the destination deny list
/// applies as it does to runs. A 2xx answer delivers it; anything else, a timeout or a refused
/// connection is retried after <see cref="WebhookQueue.Backoff"/>. Woken at once when an alert is
/// queued here, and otherwise every <see cref="WebhookOptions.Poll"/> (deliveries queued by
/// another replica, retries coming due). Finished history is pruned hourly.
/// </summary>
internal sealed partial class WebhookSender(
    WebhookQueue queue, WebhookStore endpoints, Database database, OutboundClient outbound, TimeProvider time,
    WebhookOptions options, ILogger<WebhookSender> logger) : BackgroundService
{
    private const int BatchSize = 16;
    private static readonly TimeSpan PruneEvery = TimeSpan.FromHours(1);

    private readonly SemaphoreSlim _wake = new(0, 1);
    private DateTimeOffset _nextPrune = DateTimeOffset.MinValue;

    /// <summary>Something was queued: look at the queue now rather than at the next poll.</summary>
    public void Wake()
    {
        try
        {
            if (_wake.CurrentCount == 0)
            {
                _wake.Release();
            }
        }
        catch (SemaphoreFullException)
        {
            // Already awake.
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    while (await RunOnceAsync(stoppingToken) == BatchSize)
                    {
                        // A full batch: there may be more due.
                    }

                    if (time.GetUtcNow() >= _nextPrune)
                    {
                        _nextPrune = time.GetUtcNow() + PruneEvery;
                        await queue.PruneAsync(options.Retention, options.KeepPerEndpoint, stoppingToken);
                    }
                }
                catch (Exception e) when (StoreFailure.IsUnavailable(e))
                {
                    Log.WaitsForStore(logger, e.GetType().Name);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Log.SendFailed(logger, e.GetType().Name);
                }

                await WaitAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: a delivery being sent keeps its lease and is sent again after a restart.
        }
    }

    private async Task WaitAsync(CancellationToken stoppingToken)
    {
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        await Task.WhenAny(Task.Delay(options.Poll, time, waiting.Token), _wake.WaitAsync(waiting.Token));
        await waiting.CancelAsync();
        stoppingToken.ThrowIfCancellationRequested();
    }

    /// <summary>Claims the due deliveries and sends them; how many were claimed.</summary>
    internal async Task<int> RunOnceAsync(CancellationToken ct)
    {
        // The lease outlasts an attempt, so no other replica sends the same row while this one still may.
        var claimed = await queue.ClaimAsync(BatchSize, (options.Timeout * 2) + TimeSpan.FromSeconds(30), ct);
        await Task.WhenAll(claimed.Select(d => SendAsync(d, ct)));
        return claimed.Count;
    }

    private async Task SendAsync(ClaimedDelivery delivery, CancellationToken ct)
    {
        if (!delivery.Enabled || delivery.Url.Length == 0)
        {
            await queue.RecordAsync(delivery, delivered: false, null, delivery.Url.Length == 0 ? "endpoint_deleted" : "endpoint_disabled", giveUp: true);
            return;
        }

        IReadOnlyList<Secrets.Secret> secrets;
        await using (var connection = await database.OpenAsync(ct))
        {
            secrets = await endpoints.SigningSecretsAsync(connection, delivery.Endpoint, ct);
        }

        var timestamp = time.GetUtcNow().ToUnixTimeSeconds();
        using var request = new HttpRequestMessage(HttpMethod.Post, delivery.Url)
        {
            Content = new StringContent(delivery.Payload, Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
        };
        request.Headers.TryAddWithoutValidation("webhook-id", delivery.Id);
        request.Headers.TryAddWithoutValidation("webhook-timestamp", timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation("webhook-signature",
            WebhookSignature.Header(secrets.Select(s => s.Reveal()), delivery.Id, timestamp, delivery.Payload));
        request.Headers.TryAddWithoutValidation("User-Agent", "Keyway-Webhooks");

        int? status = null;
        string? error = null;
        var delivered = false;
        using var timeout = new CancellationTokenSource(options.Timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeout.Token);
        try
        {
            using var response = await outbound.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token);
            status = (int)response.StatusCode;
            delivered = response.IsSuccessStatusCode;
            error = delivered ? null : $"HTTP {status}";
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            error = "timeout";
        }
        catch (Exception e) when (OutboundRequestException.FindIn(e) is { } refused)
        {
            error = refused.Code;
        }
        catch (HttpRequestException e)
        {
            // The kind of failure only: an exception's message may quote what the receiver sent.
            error = "connection_failed" + (e.HttpRequestError == HttpRequestError.Unknown ? "" : ": " + e.HttpRequestError);
        }

        await queue.RecordAsync(delivery, delivered, status, error);
        if (delivered)
        {
            Log.Delivered(logger, delivery.Id, delivery.Endpoint, status ?? 0);
        }
        else
        {
            Log.AttemptFailed(logger, delivery.Id, delivery.Endpoint, delivery.Attempts + 1, error ?? "");
        }
    }

    public override void Dispose()
    {
        _wake.Dispose();
        base.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(900, LogLevel.Information, "Webhook delivery {Id} to {Endpoint} delivered ({Status})")]
        public static partial void Delivered(ILogger logger, string id, string endpoint, int status);

        [LoggerMessage(901, LogLevel.Warning, "Webhook delivery {Id} to {Endpoint} failed, attempt {Attempt} ({Error})")]
        public static partial void AttemptFailed(ILogger logger, string id, string endpoint, int attempt, string error);

        [LoggerMessage(902, LogLevel.Warning, "Webhook deliveries wait for the store ({Error}); they are sent when it answers")]
        public static partial void WaitsForStore(ILogger logger, string error);

        [LoggerMessage(903, LogLevel.Error, "Sending webhook deliveries failed ({Error}); trying again shortly")]
        public static partial void SendFailed(ILogger logger, string error);
    }
}

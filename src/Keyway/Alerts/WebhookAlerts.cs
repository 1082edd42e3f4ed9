using System.Text.Json;
using Keyway.Environments;
using Keyway.Storage;

namespace Keyway.Alerts;

/// <summary>
/// The alert sink that delivers: an alert becomes one queued delivery per enabled endpoint that
/// subscribes to its type, in the store, so it survives a restart; <see cref="WebhookSender"/>
/// sends it. The payload is the Standard Webhooks shape, <c>{"type", "timestamp", "data"}</c>, with
/// <c>data</c> the alert's subject and fields: names and states only. It is redacted of every
/// known secret before it is stored, in case a field quotes one (a provider's error that echoes a
/// client secret). Raising never fails the caller: a store that cannot take the alert is logged.
/// </summary>
internal sealed partial class WebhookAlerts(
    Database database, WebhookQueue queue, KnownSecrets known, TimeProvider time, ILogger<WebhookAlerts> logger) : IAlertSink
{
    /// <summary>Set once the sender exists: woken when something is queued.</summary>
    public Action? Queued { get; set; }

    public async ValueTask RaiseAsync(Alert alert, CancellationToken cancellationToken = default)
    {
        try
        {
            await EnqueueAsync(alert, null, cancellationToken);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Log.NotQueued(logger, alert.Type, alert.Subject, e.GetType().Name);
        }
    }

    /// <summary>
    /// Queues <paramref name="alert"/> for every endpoint that takes it, or for <paramref name="onlyEndpoint"/>
    /// whatever its event filter (the test event); the ids of the deliveries queued.
    /// </summary>
    public async Task<IReadOnlyList<(string Endpoint, string Id)>> EnqueueAsync(Alert alert, string? onlyEndpoint, CancellationToken ct)
    {
        var payload = await PayloadAsync(alert, ct);
        var queued = new List<(string, string)>();
        await using (var connection = await database.OpenAsync(ct))
        {
            var targets = await connection.QueryAsync<Target>(
                onlyEndpoint is null
                    ? "SELECT name, events FROM webhook_endpoints WHERE enabled = 1 ORDER BY name"
                    : "SELECT name, events FROM webhook_endpoints WHERE name = @onlyEndpoint",
                onlyEndpoint is null ? null : new { onlyEndpoint });
            foreach (var target in targets)
            {
                if (onlyEndpoint is null && target.Events is { } events && !JsonSerializer.Deserialize<string[]>(events)!.Contains(alert.Type))
                {
                    continue;
                }

                queued.Add((target.Name, await queue.EnqueueAsync(connection, null, target.Name, alert.Type, payload)));
            }
        }

        if (queued.Count > 0)
        {
            Log.Queued(logger, alert.Type, alert.Subject, queued.Count);
            Queued?.Invoke();
        }

        return queued;
    }

    /// <summary>The body sent for <paramref name="alert"/>, redacted of every known secret.</summary>
    internal async Task<string> PayloadAsync(Alert alert, CancellationToken ct)
    {
        var data = new SortedDictionary<string, string?>(StringComparer.Ordinal);
        foreach (var (name, value) in alert.Data)
        {
            data[name] = value;
        }

        data["subject"] = alert.Subject;
        var json = JsonSerializer.Serialize(new Payload(alert.Type, time.GetUtcNow(), data));
        var redactor = await known.GetAsync(ct);
        return redactor.IsEmpty ? json : redactor.Redact(json);
    }

    private sealed record Payload(
        [property: System.Text.Json.Serialization.JsonPropertyName("type")] string Type,
        [property: System.Text.Json.Serialization.JsonPropertyName("timestamp")] DateTimeOffset Timestamp,
        [property: System.Text.Json.Serialization.JsonPropertyName("data")] IReadOnlyDictionary<string, string?> Data);

    private sealed class Target
    {
        public string Name { get; init; } = "";
        public string? Events { get; init; }
    }

    private static partial class Log
    {
        [LoggerMessage(910, LogLevel.Information, "Alert {Type} about {Subject} queued for {Count} webhook endpoint(s)")]
        public static partial void Queued(ILogger logger, string type, string subject, int count);

        [LoggerMessage(911, LogLevel.Error, "Alert {Type} about {Subject} could not be queued for webhooks ({Error})")]
        public static partial void NotQueued(ILogger logger, string type, string subject, string error);
    }
}

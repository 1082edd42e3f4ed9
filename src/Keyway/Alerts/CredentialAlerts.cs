using System.Collections.Concurrent;
using Keyway.Credentials;

namespace Keyway.Alerts;

/// <summary>
/// Raises the credential alerts from the engine's transitions, once per transition rather than once
/// per failed attempt: <c>credential.failed</c> on the first failure since the credential last
/// worked (the store's failure count is 1, so one replica raises it however many retry),
/// <c>credential.reconnect_required</c> when the provider revoked the grant, and
/// <c>credential.recovered</c> when a refresh succeeds after failures. The last alert raised per
/// credential is also remembered here, so this replica does not repeat one before the state changes.
/// </summary>
internal sealed class CredentialAlerts(CredentialEvents events, IAlertSink alerts)
{
    private readonly ConcurrentDictionary<CredentialKey, string> _last = new();

    public void Subscribe() => events.Raised += OnRaised;

    private void OnRaised(CredentialEvent e)
    {
        var type = e.Kind switch
        {
            CredentialEventKind.RefreshFailed or CredentialEventKind.Failed when e.Failures is null or 1 => AlertTypes.CredentialFailed,
            CredentialEventKind.ReconnectRequired => AlertTypes.CredentialReconnectRequired,
            CredentialEventKind.Recovered => AlertTypes.CredentialRecovered,
            _ => null,
        };
        if (e.Kind is CredentialEventKind.Refreshed or CredentialEventKind.Connected or CredentialEventKind.Disconnected)
        {
            _last.TryRemove(e.Key, out _);
        }

        if (type is null || (_last.TryGetValue(e.Key, out var last) && last == type))
        {
            return;
        }

        _last[e.Key] = type;
        var state = e.Kind switch
        {
            CredentialEventKind.ReconnectRequired => "reconnect_required",
            CredentialEventKind.Failed => "failed",
            CredentialEventKind.RefreshFailed => "refresh_failed",
            _ => "valid",
        };
        var alert = new Alert(type, $"credential:{e.Key}", new Dictionary<string, string?>
        {
            ["resource"] = e.Key.Resource,
            ["environment"] = e.Key.Environment,
            ["owner"] = e.Key.Owner,
            ["state"] = state,
            // The provider's error text: redacted of every known secret before the payload is stored.
            ["error"] = e.Detail,
        });
        // Subscribers run on the refresh path: the sink queues in the background and never throws.
        _ = alerts.RaiseAsync(alert).AsTask();
    }
}

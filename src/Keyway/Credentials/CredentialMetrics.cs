using System.Diagnostics.Metrics;
using Keyway.Hosting;

namespace Keyway.Credentials;

/// <summary>
/// Credential metrics: refreshes and their duration by result, credentials by state (counted by
/// the proactive sweep), and answers waiting for the store. Exported on <c>/metrics</c> as keyway_credential_*.
/// </summary>
internal sealed class CredentialMetrics : IDisposable
{
    private readonly Meter _meter = new(KeywayMetrics.MeterName);
    private readonly Counter<long> _events;
    private readonly Histogram<double> _duration;
    private volatile IReadOnlyDictionary<string, long> _byState = new Dictionary<string, long>();

    public CredentialMetrics(CredentialEvents events, CredentialEngine engine)
    {
        _events = _meter.CreateCounter<long>("keyway.credential.events", description: "Credential transitions, by kind (refreshed, refresh_failed, recovered, reconnect_required, failed, connected, disconnected).");
        _duration = _meter.CreateHistogram<double>("keyway.credential.refresh.duration", unit: "s", description: "Time the provider took to answer a token request, by result.");
        _meter.CreateObservableGauge("keyway.credentials", () => _byState.Select(kv => new Measurement<long>(kv.Value, new KeyValuePair<string, object?>("state", kv.Key))),
            description: "Stored credentials by state.");
        _meter.CreateObservableGauge("keyway.credential.pending_writes", () => engine.PendingWrites,
            description: "Token answers this replica holds (in memory and in its journal) that the store has not taken yet: nonzero only while the store is unreachable.");
        events.Raised += Record;
    }

    public void SetCounts(IReadOnlyDictionary<string, long> byState) => _byState = byState;

    private void Record(CredentialEvent e)
    {
        var kind = e.Kind switch
        {
            CredentialEventKind.Connected => "connected",
            CredentialEventKind.Refreshed => "refreshed",
            CredentialEventKind.RefreshFailed => "refresh_failed",
            CredentialEventKind.Recovered => "recovered",
            CredentialEventKind.ReconnectRequired => "reconnect_required",
            CredentialEventKind.Failed => "failed",
            _ => "disconnected",
        };
        var tag = new KeyValuePair<string, object?>("kind", kind);
        _events.Add(1, tag);
        if (e.Duration is { } duration)
        {
            _duration.Record(duration.TotalSeconds, new KeyValuePair<string, object?>("result", kind));
        }
    }

    public void Dispose() => _meter.Dispose();
}

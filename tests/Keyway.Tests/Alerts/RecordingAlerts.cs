using Keyway.Alerts;

namespace Keyway.Tests.Alerts;

/// <summary>An alert sink that keeps what it is given, for tests of what a feature raises.</summary>
internal sealed class RecordingAlerts : IAlertSink
{
    private readonly Lock _lock = new();
    private readonly List<Alert> _raised = [];

    public IReadOnlyList<Alert> Raised
    {
        get
        {
            lock (_lock)
                return [.. _raised];
        }
    }

    public ValueTask RaiseAsync(Alert alert, CancellationToken cancellationToken = default)
    {
        lock (_lock)
            _raised.Add(alert);
        return ValueTask.CompletedTask;
    }
}

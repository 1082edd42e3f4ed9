namespace Keyway.Hosting;

/// <summary>The name under which Keyway's own meters and activity sources publish.</summary>
internal static class KeywayMetrics
{
    public const string MeterName = "Keyway";
}

/// <summary>Which metrics <c>/metrics</c> (and an OTLP collector) receive: <c>KEYWAY_METRICS</c>.</summary>
internal enum MetricsSelection
{
    /// <summary>ASP.NET Core's and HttpClient's request metrics, plus Keyway's own.</summary>
    All,

    /// <summary>
    /// Keyway's own meter only (the default): runs, credentials and the audit log. ASP.NET Core and
    /// HttpClient then record no request duration histograms at all (they record only while
    /// something listens), which saves CPU and allocation on every proxied request; the runs are
    /// still measured, by <c>keyway.run.duration</c>, off the request path.
    /// </summary>
    Keyway,

    /// <summary>No metrics; <c>/metrics</c> answers an empty exposition.</summary>
    None,
}

internal static class MetricsSelections
{
    /// <exception cref="StartupException">The value is not one of <c>all</c>, <c>keyway</c>, <c>none</c>.</exception>
    public static MetricsSelection Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "all" => MetricsSelection.All,
        null or "" or "keyway" => MetricsSelection.Keyway,
        "none" => MetricsSelection.None,
        _ => throw new StartupException($"KEYWAY_METRICS must be all, keyway or none; '{value}' is not."),
    };
}

namespace Keyway.Hosting;

/// <summary>The name under which Keyway's own meters and activity sources publish.</summary>
internal static class KeywayMetrics
{
    public const string MeterName = "Keyway";
}

using Keyway.Access;
using Keyway.Hosting;
using Keyway.SignIn;

namespace Keyway.Audit;

/// <summary>How runs (proxied requests, <c>/run</c>, saved-query runs) reach the audit log.</summary>
internal enum TrafficMode
{
    /// <summary>One <c>traffic.rollup</c> event per caller, resource, environment, kind, method and status class per interval.</summary>
    Rollup,

    /// <summary>One <c>run</c> event per request.</summary>
    Each,

    /// <summary>No audit event (the access log still gets its line); only for a resource that sends no secret.</summary>
    Off,
}

internal static class TrafficModes
{
    /// <summary>The mode a setting names, or null when it names none (<c>rollup</c>, <c>each</c>, <c>off</c>).</summary>
    public static TrafficMode? Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        "rollup" => TrafficMode.Rollup,
        "each" => TrafficMode.Each,
        "off" => TrafficMode.Off,
        _ => null,
    };
}

/// <summary>
/// The server-wide traffic settings: <c>KEYWAY_AUDIT_TRAFFIC</c> (<c>rollup</c>, the default, or
/// <c>each</c>) and <c>KEYWAY_AUDIT_ROLLUP_INTERVAL</c> (default 60 s).
/// </summary>
internal sealed record TrafficOptions
{
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(60);

    public TrafficMode Mode { get; init; } = TrafficMode.Rollup;

    /// <summary>How long a rollup interval lasts. Intervals are aligned to the clock (a 60 s one closes on each minute).</summary>
    public TimeSpan Interval { get; init; } = DefaultInterval;

    /// <exception cref="StartupException">A value is not valid.</exception>
    public static TrafficOptions FromEnvironment(Func<string, string?>? variable = null)
    {
        variable ??= Environment.GetEnvironmentVariable;
        var options = new TrafficOptions();
        var mode = variable("KEYWAY_AUDIT_TRAFFIC");
        if (!string.IsNullOrWhiteSpace(mode))
        {
            // Off is a per-resource choice, made where it can be checked that the resource sends no secret.
            options = TrafficModes.Parse(mode) is { } parsed and not TrafficMode.Off
                ? options with { Mode = parsed }
                : throw new StartupException($"KEYWAY_AUDIT_TRAFFIC must be rollup or each, not '{mode.Trim()}'. " +
                                             "(Turning the audit of traffic off is a setting of a resource that sends no secret: audit.traffic: off.)");
        }

        var interval = variable("KEYWAY_AUDIT_ROLLUP_INTERVAL");
        if (!string.IsNullOrWhiteSpace(interval))
        {
            TimeSpan? parsed;
            try
            {
                parsed = SignInSettings.ParseDuration(interval, "KEYWAY_AUDIT_ROLLUP_INTERVAL");
            }
            catch (StartupException)
            {
                parsed = null;
            }

            options = parsed is { } span && span >= TimeSpan.FromSeconds(1) && span <= TimeSpan.FromHours(1) && span.Ticks % TimeSpan.TicksPerSecond == 0
                ? options with { Interval = span }
                : throw new StartupException($"KEYWAY_AUDIT_ROLLUP_INTERVAL must be a whole number of seconds from 1s to 1h, such as 60s or 5m; '{interval.Trim()}' is not.");
        }

        return options;
    }
}

/// <summary>
/// Where runs are recorded. Every run gets its access log line (the per-request detail stream). The
/// audit log then gets, by the resource's mode (else the server's): one <c>run</c> event (<c>each</c>),
/// a count in the open rollup interval (<c>rollup</c>: <see cref="TrafficRollup"/>, a few interlocked
/// additions on the request thread and no allocation), or nothing (<c>off</c>). A run a person starts
/// from a console session (no API key) is always recorded one by one.
/// </summary>
internal sealed class TrafficAudit(IAuditLog audit, TrafficRollup rollup, TrafficOptions options, TimeProvider time, AccessLog? access = null, AuditLog? metrics = null)
{
    /// <summary>The server-wide mode.</summary>
    public TrafficMode DefaultMode => options.Mode;

    /// <summary>See <see cref="IAuditLog.IsStalled"/>.</summary>
    public bool IsStalled => audit.IsStalled;

    /// <summary>The mode a run is recorded in.</summary>
    public TrafficMode ModeFor(Caller caller, TrafficMode? resourceMode) =>
        caller.ApiKeyId is null ? TrafficMode.Each : resourceMode ?? options.Mode;

    /// <summary>
    /// Records a request a rotation sent (<paramref name="kind"/> <c>rotation.mint</c>, <c>rotation.verify</c>,
    /// <c>rotation.revoke</c>; the target is the rotated variable). Always one by one, whatever the traffic mode: a
    /// rotation sends a handful of requests that create and revoke credentials, each worth its own event, as a
    /// console session's runs are. <paramref name="actor"/> is null for a schedule's or a recovery's rotation.
    /// </summary>
    public ValueTask RecordRotationAsync(
        string kind, Caller? actor, string variable, string resource, string environment, string method, string path,
        int? status, long durationMs, bool refreshed, string? errorCode) =>
        audit.RecordAsync(AuditEntries.Run(kind, actor, resource, environment, method, path, status, durationMs, refreshed, errorCode, variable),
            CancellationToken.None);

    /// <summary>Records a run (the parameters are those of <see cref="AuditEntries.Run"/>).</summary>
    public ValueTask RecordRunAsync(
        TrafficMode? resourceMode, string kind, Caller caller, string resource, string environment, string method, string path,
        int? status, long durationMs, bool refreshed, string? errorCode, string? queryName = null, long? bytesOut = null, long? bytesIn = null)
    {
        var mode = ModeFor(caller, resourceMode);
        if (mode == TrafficMode.Each)
        {
            // The audit log writes the access line too.
            return audit.RecordAsync(AuditEntries.Run(kind, caller, resource, environment, method, path, status, durationMs, refreshed, errorCode,
                queryName, bytesOut, bytesIn), CancellationToken.None);
        }

        var at = time.GetUtcNow().ToUnixTimeMilliseconds();
        var run = new RunDetail(kind, method, path, status, durationMs, refreshed, errorCode);
        access?.Write(at, caller, resource, environment, queryName, run, bytesOut, bytesIn);
        if (mode == TrafficMode.Rollup)
        {
            rollup.Add(caller, resource, environment, queryName, run, at, bytesIn, bytesOut);
        }

        // A run written one by one is measured by the writer; one rolled up (or not recorded) is measured here.
        metrics?.RecordRunMetric(resource, environment, run);
        return ValueTask.CompletedTask;
    }
}

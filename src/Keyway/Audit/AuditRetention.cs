using Keyway.Hosting;
using Keyway.SignIn;

namespace Keyway.Audit;

/// <summary>
/// How long audit events are kept, by class (<c>KEYWAY_AUDIT_RETAIN_*</c>; docs/audit.md, "Retention
/// and checkpoints"). <b>Traffic</b> is the record of requests (<c>run</c>: runs, saved queries and
/// proxied requests, and <c>traffic.rollup</c>: their counts per interval), nearly every event and nearly all of the log's size; <b>changes</b> is everything
/// else: configuration, keys, users, grants, sign-ins, credential transitions, denials. A null period
/// keeps that class for ever.
/// </summary>
internal sealed record AuditRetention
{
    /// <summary>
    /// Thirty days: long enough to look into an incident noticed weeks later, short enough that a
    /// busy proxy's log stays a few gigabytes. Longer histories of traffic belong in a SIEM (the export).
    /// </summary>
    public static readonly TimeSpan DefaultTraffic = TimeSpan.FromDays(30);

    /// <summary>
    /// Four hundred days: a year of changes, the period audits such as SOC 2 type II and PCI DSS ask
    /// about, and a month's slack for the audit that reviews it.
    /// </summary>
    public static readonly TimeSpan DefaultChanges = TimeSpan.FromDays(400);

    /// <summary>The actions counted as traffic (runs one by one, and their rollups); every other action is a change.</summary>
    public static readonly IReadOnlyList<string> TrafficActions = [AuditEntries.RunAction, TrafficRollup.Action];

    public TimeSpan? Traffic { get; init; } = DefaultTraffic;

    public TimeSpan? Changes { get; init; } = DefaultChanges;

    /// <summary>
    /// How often the server prunes (<c>KEYWAY_AUDIT_PRUNE_INTERVAL</c>, default an hour); null (<c>off</c>)
    /// prunes only when asked (<c>keyway audit prune</c>, from a scheduler of the operator's choosing).
    /// </summary>
    public TimeSpan? Interval { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Where each prune writes the events it deletes, as JSON lines, before it deletes them; null writes none.</summary>
    public string? ArchiveDirectory { get; init; }

    /// <summary>How many events one delete statement (and one transaction) removes.</summary>
    public int BatchSize { get; init; } = 1000;

    public static bool IsTraffic(string action) => TrafficActions.Contains(action, StringComparer.Ordinal);

    /// <summary>
    /// Reads <c>KEYWAY_AUDIT_RETAIN_TRAFFIC</c>, <c>KEYWAY_AUDIT_RETAIN_CHANGES</c> (a duration such as
    /// <c>30d</c>, or <c>forever</c>), <c>KEYWAY_AUDIT_PRUNE_INTERVAL</c> (or <c>off</c>) and <c>KEYWAY_AUDIT_ARCHIVE_DIR</c>.
    /// </summary>
    /// <exception cref="StartupException">A value is malformed, or the archive directory cannot be made.</exception>
    public static AuditRetention FromEnvironment(Func<string, string?>? variable = null)
    {
        variable ??= Environment.GetEnvironmentVariable;
        var retention = new AuditRetention
        {
            Traffic = Period(variable("KEYWAY_AUDIT_RETAIN_TRAFFIC"), "KEYWAY_AUDIT_RETAIN_TRAFFIC", DefaultTraffic),
            Changes = Period(variable("KEYWAY_AUDIT_RETAIN_CHANGES"), "KEYWAY_AUDIT_RETAIN_CHANGES", DefaultChanges),
        };
        if (string.Equals(variable("KEYWAY_AUDIT_PRUNE_INTERVAL")?.Trim(), "off", StringComparison.OrdinalIgnoreCase))
        {
            retention = retention with { Interval = null };
        }
        else if (SignInSettings.ParseDuration(variable("KEYWAY_AUDIT_PRUNE_INTERVAL"), "KEYWAY_AUDIT_PRUNE_INTERVAL") is { } interval)
        {
            retention = interval >= TimeSpan.FromMinutes(1) && interval <= TimeSpan.FromDays(7)
                ? retention with { Interval = interval }
                : throw new StartupException($"KEYWAY_AUDIT_PRUNE_INTERVAL must be from 1m to 7d, or 'off'; '{variable("KEYWAY_AUDIT_PRUNE_INTERVAL")}' is not.");
        }

        if (variable("KEYWAY_AUDIT_ARCHIVE_DIR") is { Length: > 0 } directory)
        {
            try
            {
                retention = retention with { ArchiveDirectory = Directory.CreateDirectory(directory.Trim()).FullName };
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                throw new StartupException($"KEYWAY_AUDIT_ARCHIVE_DIR '{directory}' cannot be used as a directory ({e.Message}); " +
                                           "name a directory Keyway can create and write, or unset it to prune without an archive.");
            }
        }

        return retention;
    }

    private static TimeSpan? Period(string? value, string name, TimeSpan fallback)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return fallback;
        }

        if (string.Equals(value.Trim(), "forever", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        try
        {
            return SignInSettings.ParseDuration(value, name);
        }
        catch (StartupException)
        {
            throw new StartupException($"{name} must be how long to keep the events, such as 30d, 400d or 12h, or 'forever'; '{value.Trim()}' is not.");
        }
    }
}

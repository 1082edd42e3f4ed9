using Keyway.Access;
using Keyway.Environments;
using Keyway.Schedules;
using Keyway.Storage;

namespace Keyway.Alerts;

/// <summary>
/// One thing that needs an operator: a variable expired, expiring or past its rotate-by date, a
/// credential that failed, needs a reconnect, expires soon or is not connected, or a schedule whose
/// last run failed. <c>Kind</c> is <c>variable</c>, <c>credential</c> or <c>schedule</c>; <c>Name</c>
/// the variable, the resource or the schedule; <c>Owner</c> a credential's (<c>shared</c> or a user id,
/// <c>OwnerName</c> the user's name); <c>State</c> one of <see cref="AttentionStates"/>; <c>At</c> when it
/// expires, expired, should be rotated, or last failed; <c>Detail</c> a policy, the credential's last
/// error or the schedule run's error code. Never a value.
/// </summary>
internal sealed record AttentionItem(
    string Kind, string Environment, string Name, string? Owner, string State, DateTimeOffset? At, string? Detail, long? Version = null,
    string? OwnerName = null);

/// <summary>The states an <see cref="AttentionItem"/> can be in, most urgent first.</summary>
internal static class AttentionStates
{
    public const string Expired = "expired";
    public const string ReconnectRequired = "reconnect_required";
    public const string Failed = "failed";
    public const string RotateOverdue = "rotate_overdue";
    public const string Expiring = "expiring";
    public const string RotateDue = "rotate_due";
    public const string NotConnected = "not_connected";

    public static int Rank(string state) => state switch
    {
        Expired => 0,
        ReconnectRequired => 1,
        Failed => 2,
        RotateOverdue => 3,
        Expiring => 4,
        RotateDue => 5,
        _ => 6,
    };
}

/// <summary>
/// What needs attention, for <c>GET /api/v1/status/attention</c> and <c>keyway status</c>: sorted by
/// urgency (state, then the soonest date). Variables are shown to callers who may administer their
/// environment (variables are admin-only); credentials (from <see cref="CredentialHealth"/>) to callers
/// who may read the resource there, a personal credential only to its owner and admins; one that is not
/// connected only when it needs a person to connect it (a client-credentials grant connects on first use);
/// schedules whose last run failed to callers who may see the schedule.
/// </summary>
internal sealed class Attention(
    Database database, TimeProvider time, VariableOptions options, AccessPolicy access, CredentialHealth credentials, ScheduleStore schedules,
    ScheduleTargets targets)
{
    public async Task<IReadOnlyList<AttentionItem>> ListAsync(Caller caller, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var window = options.LeadTimes.Count > 0 ? options.LeadTimes.Max() : TimeSpan.FromDays(30);
        var horizon = (now + window).ToStore();
        var items = new List<AttentionItem>();
        await using var connection = await database.OpenAsync(cancellationToken);
        var variables = await connection.QueryAsync<VariableRow>(
            """
            SELECT v.environment, v.name, v.version, v.expires_at, v.expired_policy, v.rotate_every, vv.value_set_at, v.updated_at
            FROM variables v JOIN variable_versions vv ON vv.environment = v.environment AND vv.name = v.name AND vv.version = v.version
            WHERE v.expires_at <= @horizon OR v.rotate_every IS NOT NULL
            """,
            new { horizon });
        foreach (var v in variables)
        {
            if (!access.Allows(caller, Permission.Admin, null, v.Environment))
            {
                continue;
            }

            if (Time.From(v.ExpiresAt) is { } expires && expires <= now + window)
            {
                items.Add(new AttentionItem("variable", v.Environment, v.Name, null, expires <= now ? AttentionStates.Expired : AttentionStates.Expiring, expires,
                    $"policy {v.ExpiredPolicy ?? ExpiredPolicy.Warn}", v.Version));
            }

            if (v.RotateEvery is { } every)
            {
                var rotateBy = Time.From(v.ValueSetAt ?? v.UpdatedAt) + TimeSpan.FromSeconds(every);
                if (rotateBy <= now + window)
                {
                    items.Add(new AttentionItem("variable", v.Environment, v.Name, null, rotateBy <= now ? AttentionStates.RotateOverdue : AttentionStates.RotateDue,
                        rotateBy, $"rotate every {SecretPolicy.Format(TimeSpan.FromSeconds(every))}", v.Version));
                }
            }
        }

        foreach (var c in await credentials.ListAsync(caller, cancellationToken))
        {
            if (c.State is AttentionStates.Failed or AttentionStates.ReconnectRequired or AttentionStates.Expired or AttentionStates.Expiring
                || (c.State == AttentionStates.NotConnected && !c.Renewable))
            {
                items.Add(new AttentionItem("credential", c.Environment, c.Resource, c.Owner, c.State,
                    c.State is AttentionStates.Expired or AttentionStates.Expiring ? c.ExpiresAt : c.FailedAt,
                    c.LastError, OwnerName: c.OwnerName));
            }
        }

        // A schedule whose last run failed, until a run succeeds (or it is disabled).
        var last = await schedules.LastRunsAsync(cancellationToken);
        foreach (var schedule in await schedules.ListAsync(cancellationToken))
        {
            if (schedule.Compiled.Enabled && last.GetValueOrDefault(schedule.Name) is { Outcome: RunKinds.Failed } run &&
                await targets.MaySeeAsync(caller, schedule.Compiled, cancellationToken))
            {
                items.Add(new AttentionItem("schedule", schedule.Compiled.Action == ScheduleActions.Verify ? "" : schedule.Compiled.Environment,
                    schedule.Name, null, AttentionStates.Failed, run.FinishedAt ?? run.StartedAt, run.ErrorCode));
            }
        }

        return items
            .OrderBy(i => AttentionStates.Rank(i.State))
            .ThenBy(i => i.At ?? DateTimeOffset.MaxValue)
            .ThenBy(i => i.Environment, StringComparer.Ordinal)
            .ThenBy(i => i.Name, StringComparer.Ordinal)
            .ToList();
    }

    private sealed class VariableRow
    {
        public string Environment { get; init; } = "";
        public string Name { get; init; } = "";
        public long Version { get; init; }
        public long? ExpiresAt { get; init; }
        public string? ExpiredPolicy { get; init; }
        public long? RotateEvery { get; init; }
        public long? ValueSetAt { get; init; }
        public long UpdatedAt { get; init; }
    }
}

internal static class AttentionEndpoints
{
    internal sealed record AttentionList(DateTimeOffset Now, IReadOnlyList<AttentionItem> Items);

    public static RouteGroupBuilder MapStatus(this RouteGroupBuilder api)
    {
        api.MapGet("/status/attention", async (Attention attention, TimeProvider time, HttpContext http, CancellationToken ct) =>
                TypedResults.Ok(new AttentionList(time.GetUtcNow(), await attention.ListAsync(Caller.From(http.User)!, ct))))
            .Requires(Permission.Read)
            .WithTags("Status")
            .WithSummary("What needs attention, most urgent first: variables expired, expiring or due for rotation; credentials failed, needing a reconnect, expiring or not connected; schedules whose last run failed. Only what the caller may see.");
        return api;
    }
}

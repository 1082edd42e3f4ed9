using Keyway.Alerts;
using Keyway.Storage;

namespace Keyway.Environments;

/// <summary>
/// Alerts about expiring and expired variables: <c>secret.expiring</c> once per lead time
/// (<see cref="VariableOptions.LeadTimes"/>: 30, 7 and 1 days by default) and <c>secret.expired</c>
/// once, per version (a new value, or a rollback, starts over). Each alert is claimed in the
/// <c>alert_claims</c> table before it is raised (<c>INSERT … ON CONFLICT DO NOTHING</c>, raised only
/// when the insert added the row), so a restart or a second replica never raises it again; the
/// price is at most once: a replica killed between its claim and the raise loses that alert.
/// When a sweep first sees a version past several lead times at once (set with 5 days left), it
/// claims them all and raises one alert, for the nearest. A variable with <c>rotateEvery</c> whose
/// rotate-by date (when its current value was first set, plus the period) has passed raises
/// <c>secret.rotation_due</c> once per version, claimed the same way: a new value starts the period over.
/// </summary>
internal sealed partial class SecretExpirySweep(
    Database database, IAlertSink alerts, TimeProvider time, VariableOptions options, ILogger<SecretExpirySweep> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.SweepInterval, time);
        try
        {
            do
            {
                try
                {
                    await SweepAsync(stoppingToken);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // The store may be unreachable; the next tick tries again. The type only: a message could quote SQL.
                    Log.SweepFailed(logger, e.GetType().Name);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping (or a start that failed, such as a taken port): nothing to report.
        }
    }

    /// <summary>One pass: claims and raises what is due now. Returns the alerts raised.</summary>
    public async Task<IReadOnlyList<Alert>> SweepAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var longest = options.LeadTimes.Count > 0 ? options.LeadTimes.Max() : TimeSpan.Zero;
        List<ExpiringRow> rows;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            rows = (await connection.QueryAsync<ExpiringRow>(
                """
                SELECT environment, name, version, secret, expires_at, expired_policy FROM variables
                WHERE expires_at IS NOT NULL AND expires_at <= @horizon ORDER BY expires_at
                """,
                new { horizon = (now + longest).ToStore() })).ToList();
        }

        var raised = new List<Alert>();
        foreach (var row in rows)
        {
            var expiresAt = Time.From(row.ExpiresAt);
            var subject = $"variable:{row.Environment}/{row.Name}";
            var data = new Dictionary<string, string?>
            {
                ["environment"] = row.Environment,
                ["name"] = row.Name,
                ["version"] = row.Version.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["secret"] = row.Secret != 0 ? "true" : "false",
                ["expiresAt"] = expiresAt.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
                ["expiredPolicy"] = row.ExpiredPolicy ?? ExpiredPolicy.Warn,
            };
            Alert? alert = null;
            if (expiresAt <= now)
            {
                if (await ClaimAsync($"{AlertTypes.SecretExpired}:{row.Environment}/{row.Name}#{row.Version}", now, cancellationToken))
                {
                    alert = new Alert(AlertTypes.SecretExpired, subject, data);
                }
            }
            else
            {
                TimeSpan? nearest = null;
                foreach (var lead in options.LeadTimes.OrderDescending())
                {
                    if (expiresAt - now <= lead &&
                        await ClaimAsync($"{AlertTypes.SecretExpiring}:{row.Environment}/{row.Name}#{row.Version}:{SecretPolicy.Format(lead)}", now, cancellationToken))
                    {
                        nearest = lead;
                    }
                }

                if (nearest is { } crossed)
                {
                    data["leadTime"] = SecretPolicy.Format(crossed);
                    alert = new Alert(AlertTypes.SecretExpiring, subject, data);
                }
            }

            if (alert is not null)
            {
                Log.Raised(logger, alert.Type, alert.Subject);
                await alerts.RaiseAsync(alert, cancellationToken);
                raised.Add(alert);
            }
        }

        foreach (var alert in await RotationDueAsync(now, cancellationToken))
        {
            Log.Raised(logger, alert.Type, alert.Subject);
            await alerts.RaiseAsync(alert, cancellationToken);
            raised.Add(alert);
        }

        return raised;
    }

    /// <summary>Claims and returns a <c>secret.rotation_due</c> for each variable past its rotate-by date, once per version.</summary>
    private async Task<List<Alert>> RotationDueAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        List<RotateRow> rows;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            rows = (await connection.QueryAsync<RotateRow>(
                """
                SELECT v.environment, v.name, v.version, v.secret, v.rotate_every, vv.value_set_at, v.updated_at
                FROM variables v JOIN variable_versions vv ON vv.environment = v.environment AND vv.name = v.name AND vv.version = v.version
                WHERE v.rotate_every IS NOT NULL
                """)).ToList();
        }

        var due = new List<Alert>();
        foreach (var row in rows)
        {
            var every = TimeSpan.FromSeconds(row.RotateEvery);
            var rotateBy = Time.From(row.ValueSetAt ?? row.UpdatedAt) + every;
            if (rotateBy > now ||
                !await ClaimAsync($"{AlertTypes.SecretRotationDue}:{row.Environment}/{row.Name}#{row.Version}", now, cancellationToken))
            {
                continue;
            }

            due.Add(new Alert(AlertTypes.SecretRotationDue, $"variable:{row.Environment}/{row.Name}", new Dictionary<string, string?>
            {
                ["environment"] = row.Environment,
                ["name"] = row.Name,
                ["version"] = row.Version.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["secret"] = row.Secret != 0 ? "true" : "false",
                ["rotateEvery"] = SecretPolicy.Format(every),
                ["rotateBy"] = rotateBy.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
            }));
        }

        return due;
    }

    /// <summary>Claims one alert for this cluster: true only for the one caller whose insert added the row.</summary>
    internal async Task<bool> ClaimAsync(string claim, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await connection.ExecuteAsync(
            "INSERT INTO alert_claims (claim, claimed_at) VALUES (@claim, @now) ON CONFLICT (claim) DO NOTHING",
            new { claim, now = now.ToStore() }) == 1;
    }

    private sealed class ExpiringRow
    {
        public string Environment { get; init; } = "";
        public string Name { get; init; } = "";
        public long Version { get; init; }
        public long Secret { get; init; }
        public long ExpiresAt { get; init; }
        public string? ExpiredPolicy { get; init; }
    }

    private sealed class RotateRow
    {
        public string Environment { get; init; } = "";
        public string Name { get; init; } = "";
        public long Version { get; init; }
        public long Secret { get; init; }
        public long RotateEvery { get; init; }
        public long? ValueSetAt { get; init; }
        public long UpdatedAt { get; init; }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4101, Level = LogLevel.Information, Message = "Alert {Type} raised for {Subject}.")]
        public static partial void Raised(ILogger logger, string type, string subject);

        [LoggerMessage(EventId = 4102, Level = LogLevel.Warning, Message = "The secret expiry sweep failed ({Error}); it tries again on its next tick.")]
        public static partial void SweepFailed(ILogger logger, string error);
    }
}

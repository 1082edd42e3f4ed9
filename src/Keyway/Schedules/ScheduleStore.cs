using System.Data.Common;
using System.Text.Json;
using Keyway.Access;
using Keyway.Api;
using Keyway.Environments;
using Keyway.Resources;
using Keyway.Storage;

namespace Keyway.Schedules;

/// <summary>
/// A stored schedule: its definition, who it runs as (narrowed by the scope of the key that saved it),
/// its version. <see cref="OwnerKeyId"/> is the API key it was saved with (null when a signed-in person
/// saved it): a run needs that key still in force. <see cref="QueryHash"/> is a <c>run</c>
/// schedule's saved query's definition hash when the schedule was saved.
/// </summary>
internal sealed record StoredSchedule(
    CompiledSchedule Compiled, string OwnerId, KeyScope? OwnerScope, long Version, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt,
    string? OwnerKeyId = null, string? QueryHash = null)
{
    public string Name => Compiled.Name;
}

/// <summary>One run of a schedule, as history shows it: times, outcome, attempts, an error code. Never a body or a secret.</summary>
internal sealed record ScheduleRun(
    string Schedule, DateTimeOffset ScheduledAt, string Kind, string Replica, DateTimeOffset StartedAt, DateTimeOffset? FinishedAt,
    string Outcome, int Attempts, string? ErrorCode, int? Status)
{
    public long? DurationMs => FinishedAt is { } finished ? (long)(finished - StartedAt).TotalMilliseconds : null;

    /// <summary>The run's id: its occurrence's time in Unix milliseconds (with the schedule's name, its key).</summary>
    public long Id => ScheduledAt.ToUnixTimeMilliseconds();
}

/// <summary>Run kinds and outcomes, as stored and shown.</summary>
internal static class RunKinds
{
    public const string Cron = "cron";
    public const string CatchUp = "catch_up";
    public const string Manual = "manual";

    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Skipped = "skipped";
}

/// <summary>
/// The <c>schedules</c> and <c>schedule_runs</c> tables. A run's row is also its claim: inserting
/// (schedule, occurrence) succeeds on one replica only, on SQLite and PostgreSQL alike.
/// </summary>
internal sealed class ScheduleStore(Database database, ChangeFeed changes)
{
    public const string ChangeKind = "schedules";

    /// <summary>Runs kept per schedule; older ones are deleted as new ones finish.</summary>
    public const int HistoryLimit = 100;

    private const string RunColumns = "schedule, scheduled_at, kind, replica, started_at, finished_at, outcome, attempts, error_code, status";

    /// <summary>
    /// Creates or replaces a schedule, owned by <paramref name="ownerId"/> through <paramref name="ownerKeyId"/> (null: a
    /// session); a <c>run</c> schedule records <paramref name="queryHash"/>, its query as the owner saw it.
    /// <paramref name="audit"/> runs in the same transaction.
    /// </summary>
    public async Task<(StoredSchedule Schedule, bool Created)> PutAsync(
        CompiledSchedule schedule, string ownerId, KeyScope? scope, DateTimeOffset now, CancellationToken cancellationToken,
        Func<DbTransaction, bool, Task>? audit = null, string? ownerKeyId = null, string? queryHash = null)
    {
        long version;
        var config = JsonSerializer.Serialize(schedule.Definition, ConfigJson.Options);
        var ownerScope = scope is null ? null : JsonSerializer.Serialize(scope, ConfigJson.Options);
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            if (await connection.QuerySingleOrDefaultAsync<Row>(
                    "SELECT name, config, owner_id, owner_scope, owner_key_id, query_hash, version, created_at, updated_at FROM schedules WHERE name = @name",
                    new { name = schedule.Name }, transaction) is { } stored
                && stored.Config == config && stored.OwnerId == ownerId && stored.OwnerScope == ownerScope
                && stored.OwnerKeyId == ownerKeyId && stored.QueryHash == queryHash)
            {
                // The same schedule saved again by the same owner through the same key (an apply of unchanged files):
                // nothing is written or audited, the version stays. Another owner, key or query is a takeover, and written.
                return (ToSchedule(stored), false);
            }

            version = await connection.ExecuteScalarAsync<long>(
                """
                INSERT INTO schedules (name, config, owner_id, owner_scope, owner_key_id, query_hash, version, created_at, updated_at)
                VALUES (@name, @config, @ownerId, @ownerScope, @ownerKeyId, @queryHash, 1, @now, @now)
                ON CONFLICT (name) DO UPDATE SET config = excluded.config, owner_id = excluded.owner_id, owner_scope = excluded.owner_scope,
                    owner_key_id = excluded.owner_key_id, query_hash = excluded.query_hash,
                    version = schedules.version + 1, updated_at = excluded.updated_at
                RETURNING version
                """,
                new
                {
                    name = schedule.Name,
                    config,
                    ownerId,
                    ownerScope,
                    ownerKeyId,
                    queryHash,
                    now = now.ToStore(),
                }, transaction);
            if (audit is not null)
            {
                await audit(transaction, version == 1);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        changes.Publish(new Change(ChangeKind, schedule.Name));
        return ((await GetAsync(schedule.Name, cancellationToken))!, version == 1);
    }

    public async Task<StoredSchedule?> GetAsync(string name, CancellationToken cancellationToken) =>
        (await QueryAsync("WHERE name = @name", new { name }, cancellationToken)) is [var schedule] ? schedule : null;

    public Task<IReadOnlyList<StoredSchedule>> ListAsync(CancellationToken cancellationToken) =>
        QueryAsync("ORDER BY name", new { }, cancellationToken);

    /// <summary>Deletes a schedule and its history; <paramref name="audit"/> runs in the same transaction when one was deleted.</summary>
    public async Task<bool> DeleteAsync(string name, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        bool deleted;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            deleted = await connection.ExecuteAsync("DELETE FROM schedules WHERE name = @name", new { name }, transaction) > 0;
            await connection.ExecuteAsync("DELETE FROM schedule_runs WHERE schedule = @name", new { name }, transaction);
            if (deleted && audit is not null)
            {
                await audit(transaction);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        changes.Publish(new Change(ChangeKind, name));
        return deleted;
    }

    /// <summary>Each schedule's latest claimed occurrence (manual runs aside): the point its next occurrence is counted from.</summary>
    public async Task<Dictionary<string, DateTimeOffset>> LatestOccurrencesAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<Latest>(
            "SELECT schedule, MAX(scheduled_at) AS scheduled_at FROM schedule_runs WHERE kind <> @manual GROUP BY schedule", new { manual = RunKinds.Manual });
        return rows.ToDictionary(r => r.Schedule, r => Time.From(r.ScheduledAt), StringComparer.Ordinal);
    }

    /// <summary>
    /// Claims an occurrence: inserts its run row unless one exists. True on exactly one replica per
    /// (schedule, occurrence): the primary key decides, in either engine.
    /// </summary>
    public async Task<bool> TryClaimAsync(
        string schedule, DateTimeOffset scheduledAt, string kind, string replica, DateTimeOffset now, string outcome, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await connection.ExecuteAsync(
            """
            INSERT INTO schedule_runs (schedule, scheduled_at, kind, replica, started_at, finished_at, outcome, attempts)
            VALUES (@schedule, @scheduledAt, @kind, @replica, @now, @finished, @outcome, 0)
            ON CONFLICT (schedule, scheduled_at) DO NOTHING
            """,
            new
            {
                schedule,
                scheduledAt = scheduledAt.ToStore(),
                kind,
                replica,
                now = now.ToStore(),
                finished = outcome == RunKinds.Running ? (long?)null : now.ToStore(),
                outcome,
            }) == 1;
    }

    /// <summary>Records a run's attempts so far and its last error code while it waits to retry (it is still running).</summary>
    public async Task ProgressAsync(ScheduleRun run, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await connection.ExecuteAsync(
            "UPDATE schedule_runs SET attempts = @Attempts, error_code = @ErrorCode, status = @status WHERE schedule = @Schedule AND scheduled_at = @scheduledAt",
            new { run.Attempts, run.ErrorCode, status = (long?)run.Status, run.Schedule, scheduledAt = run.ScheduledAt.ToStore() });
    }

    /// <summary>One run, by its id (its occurrence's time in Unix milliseconds).</summary>
    public async Task<ScheduleRun?> GetRunAsync(string schedule, long id, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<RunRow>(
            $"SELECT {RunColumns} FROM schedule_runs WHERE schedule = @schedule AND scheduled_at = @id", new { schedule, id });
        return rows.Select(r => r.ToRun()).FirstOrDefault();
    }

    /// <summary>Records how a run ended, with <paramref name="audit"/> in the same transaction, and trims the history.</summary>
    public async Task FinishAsync(ScheduleRun run, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            await connection.ExecuteAsync(
                """
                UPDATE schedule_runs SET finished_at = @finished, outcome = @Outcome, attempts = @Attempts, error_code = @ErrorCode, status = @status
                WHERE schedule = @Schedule AND scheduled_at = @scheduledAt
                """,
                new
                {
                    finished = run.FinishedAt.ToStore(),
                    run.Outcome,
                    run.Attempts,
                    run.ErrorCode,
                    status = (long?)run.Status,
                    run.Schedule,
                    scheduledAt = run.ScheduledAt.ToStore(),
                }, transaction);
            if (audit is not null)
            {
                await audit(transaction);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        await TrimAsync(connection, run.Schedule);
    }

    /// <summary>The latest runs of a schedule, newest first.</summary>
    public async Task<IReadOnlyList<ScheduleRun>> HistoryAsync(string schedule, int limit, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<RunRow>(
            $"SELECT {RunColumns} FROM schedule_runs WHERE schedule = @schedule ORDER BY started_at DESC, scheduled_at DESC LIMIT @limit",
            new { schedule, limit = (long)Math.Clamp(limit, 1, HistoryLimit) });
        return rows.Select(r => r.ToRun()).ToList();
    }

    /// <summary>Each schedule's most recent run.</summary>
    public async Task<Dictionary<string, ScheduleRun>> LastRunsAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<RunRow>(
            $"""
            SELECT {string.Join(", ", RunColumns.Split(", ").Select(c => "r." + c))} FROM schedule_runs r
            JOIN (SELECT schedule, MAX(started_at) AS latest FROM schedule_runs GROUP BY schedule) l ON l.schedule = r.schedule AND l.latest = r.started_at
            """);
        var last = new Dictionary<string, ScheduleRun>(StringComparer.Ordinal);
        foreach (var row in rows)
        {
            last[row.Schedule] = row.ToRun();
        }

        return last;
    }

    private static Task<int> TrimAsync(DbConnection connection, string schedule) =>
        // The row at position HistoryLimit (newest first) and older go; fewer rows: the subquery is empty and nothing does.
        connection.ExecuteAsync(
            """
            DELETE FROM schedule_runs WHERE schedule = @schedule AND scheduled_at <=
                (SELECT scheduled_at FROM schedule_runs WHERE schedule = @schedule ORDER BY scheduled_at DESC LIMIT 1 OFFSET @keep)
            """,
            new { schedule, keep = (long)HistoryLimit });

    private async Task<IReadOnlyList<StoredSchedule>> QueryAsync(string where, object parameters, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<Row>(
            $"SELECT name, config, owner_id, owner_scope, owner_key_id, query_hash, version, created_at, updated_at FROM schedules {where}", parameters);
        return rows.Select(ToSchedule).ToList();
    }

    private static StoredSchedule ToSchedule(Row r) => new(
        CompiledSchedule.Compile(r.Name, JsonSerializer.Deserialize<ScheduleDefinition>(r.Config, ConfigJson.Options)!),
        r.OwnerId,
        r.OwnerScope is null ? null : JsonSerializer.Deserialize<KeyScope>(r.OwnerScope, ConfigJson.Options),
        r.Version, Time.From(r.CreatedAt), Time.From(r.UpdatedAt), r.OwnerKeyId, r.QueryHash);

    private sealed class Row
    {
        public string Name { get; init; } = "";
        public string Config { get; init; } = "";
        public string OwnerId { get; init; } = "";
        public string? OwnerScope { get; init; }
        public string? OwnerKeyId { get; init; }
        public string? QueryHash { get; init; }
        public long Version { get; init; }
        public long CreatedAt { get; init; }
        public long UpdatedAt { get; init; }
    }

    private sealed class Latest
    {
        public string Schedule { get; init; } = "";
        public long ScheduledAt { get; init; }
    }

    private sealed class RunRow
    {
        public string Schedule { get; init; } = "";
        public long ScheduledAt { get; init; }
        public string Kind { get; init; } = "";
        public string Replica { get; init; } = "";
        public long StartedAt { get; init; }
        public long? FinishedAt { get; init; }
        public string Outcome { get; init; } = "";
        public long Attempts { get; init; }
        public string? ErrorCode { get; init; }
        public long? Status { get; init; }

        public ScheduleRun ToRun() => new(
            Schedule, Time.From(ScheduledAt), Kind, Replica, Time.From(StartedAt), Time.From(FinishedAt), Outcome, (int)Attempts, ErrorCode, (int?)Status);
    }
}

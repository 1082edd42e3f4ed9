using System.Data.Common;
using Keyway.Storage;

namespace Keyway.Rotations;

/// <summary>The states of a rotation (docs/operations.md, "Rotation flows").</summary>
internal static class RotationStates
{
    /// <summary>The mint steps are running; nothing is stored yet.</summary>
    public const string Minting = "minting";

    /// <summary>The minted value is stored encrypted as a pending version; not used yet.</summary>
    public const string Pending = "pending";

    /// <summary>The verify request is being sent with the pending value.</summary>
    public const string Verifying = "verifying";

    /// <summary>The new value is the current version; nothing to revoke.</summary>
    public const string Committed = "committed";

    /// <summary>Committed; the old secret is revoked at the provider once <c>revoke_due_at</c> has passed.</summary>
    public const string RevokePending = "revoke_pending";

    public const string Revoked = "revoked";

    /// <summary>Committed, but the revoke kept failing: the old secret may still be valid at the provider.</summary>
    public const string RevokeFailed = "revoke_failed";

    /// <summary>Nothing changed (a mint step failed, or the rotation was interrupted while minting).</summary>
    public const string Failed = "failed";

    /// <summary>
    /// The minted value did not verify (or was superseded): kept as a retired version, never used. Its key is then
    /// revoked at the provider (<see cref="RotationInfo.AbandonedRevoke"/>); the row stays unfinished until that is done.
    /// </summary>
    public const string RolledBack = "rolled_back";

    /// <summary>The states of a rotation still under way, at most one per variable (a unique index says so).</summary>
    public static bool IsActive(string state) => state is Minting or Pending or Verifying;
}

/// <summary>One rotation as history shows it: versions, provider ids, states and error codes, never a value.</summary>
internal sealed record RotationInfo(
    string Id, string Environment, string Name, string State, string Trigger, string? Actor, long? FromVersion, long? Version,
    string? NewId, string? PreviousId, string? ErrorCode, string? Error, DateTimeOffset StartedAt, DateTimeOffset UpdatedAt,
    DateTimeOffset? FinishedAt, DateTimeOffset? RevokeDueAt, int RevokeAttempts)
{
    /// <summary>
    /// What became of the key a rolled-back rotation minted (<see cref="AbandonedRevokes"/>): <c>pending</c>, <c>revoked</c>,
    /// <c>failed</c> or <c>skipped</c>; null when nothing was abandoned.
    /// </summary>
    public string? AbandonedRevoke { get; init; }

    /// <summary>Why the abandoned key's revoke failed or was skipped (redacted like every rotation error).</summary>
    public string? AbandonedRevokeError { get; init; }

    /// <summary>The token of the claim this worker holds (set by start and claim); never shown.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string? Claim { get; init; }
}

/// <summary>The outcomes of an abandoned key's revoke (<see cref="RotationInfo.AbandonedRevoke"/>).</summary>
internal static class AbandonedRevokes
{
    /// <summary>Owed: sent as soon as the rotation service gets to it (retried with backoff like any revoke).</summary>
    public const string Pending = "pending";

    public const string Revoked = "revoked";

    /// <summary>Gave up after the last attempt: revoke the key at the provider by hand.</summary>
    public const string Failed = "failed";

    /// <summary>Not sent: no revoke step, no provider id, or a step that does not name the key by <c>rotation.revoke.id</c>.</summary>
    public const string Skipped = "skipped";
}

/// <summary>What changes with a state: null members keep what the row has.</summary>
internal sealed record RotationUpdate(string State)
{
    public string? AbandonedRevoke { get; init; }
    public string? AbandonedRevokeError { get; init; }

    public long? PendingVersion { get; init; }
    public string? NewId { get; init; }
    public string? ErrorCode { get; init; }
    public string? Error { get; init; }
    public DateTimeOffset? RevokeDueAt { get; init; }
    public int? RevokeAttempts { get; init; }
    public bool Finished { get; init; }

    /// <summary>Hands the row back (no owner, no lease): a revoke waiting for its next attempt.</summary>
    public bool Release { get; init; }
}

/// <summary>
/// The <c>rotations</c> table: the write-ahead record of every rotation. A row is inserted in state
/// <c>minting</c> before the provider is called, and each state is written before the step it leads
/// to; <c>owner</c> and <c>lease_until</c> say which replica works on it, so recovery (at start, and
/// for a lease that ran out) takes over only what nobody works on.
/// </summary>
internal sealed class RotationStore(Database database, TimeProvider time, string owner)
{
    /// <summary>How long a replica may work on a rotation before another may take it over: far above any step's timeout.</summary>
    public static readonly TimeSpan Lease = TimeSpan.FromMinutes(10);

    /// <summary>How many rotations of a variable history keeps.</summary>
    public const int KeepHistory = 100;

    /// <summary>
    /// Inserts a new rotation in state <c>minting</c>, with <paramref name="also"/> in the same transaction, and returns
    /// its claim token; null (nothing written) when another rotation of the variable is under way.
    /// </summary>
    public async Task<string?> TryStartAsync(RotationInfo rotation, string? actorKey, Func<DbTransaction, Task> also, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var claim = NewClaim();
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var inserted = await connection.ExecuteAsync(
            """
            INSERT INTO rotations (id, environment, name, state, trigger, actor, actor_key, from_version, previous_id, owner, claim, lease_until, started_at, updated_at)
            VALUES (@Id, @Environment, @Name, @State, @Trigger, @Actor, @actorKey, @FromVersion, @PreviousId, @owner, @claim, @leaseUntil, @now, @now)
            ON CONFLICT DO NOTHING
            """,
            new
            {
                rotation.Id,
                rotation.Environment,
                rotation.Name,
                rotation.State,
                rotation.Trigger,
                rotation.Actor,
                actorKey,
                rotation.FromVersion,
                rotation.PreviousId,
                owner,
                claim,
                leaseUntil = (now + Lease).ToStore(),
                now = now.ToStore(),
            },
            transaction) > 0;
        if (!inserted)
        {
            return null;
        }

        await also(transaction);
        // History is bounded per variable: the oldest finished rotations go.
        await connection.ExecuteAsync(
            """
            DELETE FROM rotations WHERE environment = @Environment AND name = @Name AND finished_at IS NOT NULL AND started_at < (
                SELECT started_at FROM rotations WHERE environment = @Environment AND name = @Name ORDER BY started_at DESC LIMIT 1 OFFSET @keep)
            """,
            new { rotation.Environment, rotation.Name, keep = KeepHistory }, transaction);
        await transaction.CommitAsync(cancellationToken);
        return claim;
    }

    /// <summary>
    /// Moves <paramref name="rotation"/> from the state it has (<see cref="RotationInfo.State"/>) to
    /// <paramref name="update"/>'s inside <paramref name="transaction"/>, renewing the lease unless released or finished.
    /// Only with the claim this worker holds, on an unfinished row still in that state: a worker whose lease ran out and
    /// whose rotation another took over (and perhaps finished) matches nothing and is refused with
    /// <c>rotation_lease_lost</c>, with the transaction (a pending value, a commit); the row stays as the other left it.
    /// </summary>
    public async Task UpdateAsync(DbConnection connection, DbTransaction? transaction, RotationInfo rotation, RotationUpdate update)
    {
        var now = time.GetUtcNow();
        var updated = rotation.Claim is { } claim && await connection.ExecuteAsync(
            """
            UPDATE rotations SET state = @State, updated_at = @now,
                pending_version = COALESCE(@PendingVersion, pending_version), new_id = COALESCE(@NewId, new_id),
                error_code = COALESCE(@ErrorCode, error_code), error = COALESCE(@Error, error),
                revoke_due_at = COALESCE(@revokeDueAt, revoke_due_at), revoke_attempts = COALESCE(@RevokeAttempts, revoke_attempts),
                abandoned_revoke = COALESCE(@AbandonedRevoke, abandoned_revoke), abandoned_revoke_error = COALESCE(@AbandonedRevokeError, abandoned_revoke_error),
                finished_at = CASE WHEN @finished = 1 THEN @now ELSE finished_at END,
                lease_until = CASE WHEN @release = 1 OR @finished = 1 THEN NULL ELSE @leaseUntil END,
                owner = CASE WHEN @release = 1 OR @finished = 1 THEN NULL ELSE owner END,
                claim = CASE WHEN @release = 1 OR @finished = 1 THEN NULL ELSE claim END
            WHERE id = @id AND claim = @claim AND finished_at IS NULL AND state = @expected
            """,
            new
            {
                id = rotation.Id,
                claim,
                expected = rotation.State,
                update.State,
                now = now.ToStore(),
                update.PendingVersion,
                update.NewId,
                update.ErrorCode,
                update.Error,
                revokeDueAt = update.RevokeDueAt.ToStore(),
                update.RevokeAttempts,
                update.AbandonedRevoke,
                update.AbandonedRevokeError,
                finished = update.Finished ? 1 : 0,
                release = update.Release ? 1 : 0,
                leaseUntil = (now + Lease).ToStore(),
            },
            transaction) > 0;
        if (!updated)
        {
            throw new Api.KeywayException(StatusCodes.Status409Conflict, "rotation_lease_lost",
                $"Rotation {rotation.Id} was taken over by another worker (this one held it longer than {Lease.TotalMinutes:0} minutes); it goes on there, and this one changed nothing.");
        }
    }

    /// <summary><see cref="UpdateAsync(DbConnection, DbTransaction?, RotationInfo, RotationUpdate)"/> in a transaction of its own, with <paramref name="also"/>.</summary>
    public async Task UpdateAsync(RotationInfo rotation, RotationUpdate update, Func<DbTransaction, Task>? also, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await UpdateAsync(connection, transaction, rotation, update);
        if (also is not null)
        {
            await also(transaction);
        }

        await transaction.CommitAsync(cancellationToken);
    }

    public async Task<RotationInfo?> GetAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<Row>(Select + " WHERE id = @id", new { id });
        return row?.ToInfo();
    }

    /// <summary>A variable's rotations, newest first.</summary>
    public async Task<IReadOnlyList<RotationInfo>> ListAsync(string environment, string name, int limit, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<Row>(
            Select + " WHERE environment = @environment AND name = @name ORDER BY started_at DESC, id LIMIT @limit", new { environment, name, limit });
        return rows.Select(r => r.ToInfo()).ToList();
    }

    /// <summary>
    /// Rotations this replica should take over now: one under way (or a due revoke) that no replica holds —
    /// its lease ran out, or (<paramref name="atStart"/>) this replica held it before it restarted.
    /// </summary>
    public async Task<IReadOnlyList<RotationInfo>> ListRecoverableAsync(bool atStart, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow().ToStore();
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<Row>(
            Select + """
             WHERE (state IN ('minting', 'pending', 'verifying') OR (state = 'revoke_pending' AND revoke_due_at <= @now)
                    OR (state = 'rolled_back' AND finished_at IS NULL AND abandoned_revoke = 'pending' AND revoke_due_at <= @now))
               AND (lease_until IS NULL OR lease_until < @now OR (@atStart = 1 AND owner = @owner))
             ORDER BY started_at
            """,
            new { now, owner, atStart = atStart ? 1 : 0 });
        return rows.Select(r => r.ToInfo()).ToList();
    }

    /// <summary>
    /// Takes <paramref name="rotation"/> for this replica if no one else took it since it was read (compare and swap
    /// on its owner, lease and state) with a new claim token, which every later write must give; null when another
    /// worker was first. The token of any earlier claim no longer matches: its worker's writes are refused.
    /// </summary>
    public async Task<string?> ClaimAsync(RotationInfo rotation, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        await using var connection = await database.OpenAsync(cancellationToken);
        var seen = await connection.QuerySingleOrDefaultAsync<LeaseRow>(
            "SELECT owner, lease_until FROM rotations WHERE id = @Id AND state = @State", new { rotation.Id, rotation.State });
        if (seen is null)
        {
            return null;
        }

        var claim = NewClaim();
        return await connection.ExecuteAsync(
            """
            UPDATE rotations SET owner = @owner, claim = @claim, lease_until = @leaseUntil
            WHERE id = @Id AND state = @State AND finished_at IS NULL AND COALESCE(owner, '') = @seenOwner AND COALESCE(lease_until, 0) = @seenLease
            """,
            new { rotation.Id, rotation.State, owner, claim, leaseUntil = (now + Lease).ToStore(), seenOwner = seen.Owner ?? "", seenLease = seen.LeaseUntil ?? 0 }) > 0
            ? claim
            : null;
    }

    private static string NewClaim() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

    private const string Select =
        """
        SELECT id, environment, name, state, trigger, actor, from_version, pending_version, new_id, previous_id, error_code, error,
               started_at, updated_at, finished_at, revoke_due_at, revoke_attempts, abandoned_revoke, abandoned_revoke_error FROM rotations
        """;

    private sealed class LeaseRow
    {
        public string? Owner { get; init; }
        public long? LeaseUntil { get; init; }
    }

    private sealed class Row
    {
        public string Id { get; init; } = "";
        public string Environment { get; init; } = "";
        public string Name { get; init; } = "";
        public string State { get; init; } = "";
        public string Trigger { get; init; } = "";
        public string? Actor { get; init; }
        public long? FromVersion { get; init; }
        public long? PendingVersion { get; init; }
        public string? NewId { get; init; }
        public string? PreviousId { get; init; }
        public string? ErrorCode { get; init; }
        public string? Error { get; init; }
        public long StartedAt { get; init; }
        public long UpdatedAt { get; init; }
        public long? FinishedAt { get; init; }
        public long? RevokeDueAt { get; init; }
        public long RevokeAttempts { get; init; }
        public string? AbandonedRevoke { get; init; }
        public string? AbandonedRevokeError { get; init; }

        public RotationInfo ToInfo() => new(
            Id, Environment, Name, State, Trigger, Actor, FromVersion, PendingVersion, NewId, PreviousId, ErrorCode, Error,
            Time.From(StartedAt), Time.From(UpdatedAt), Time.From(FinishedAt), Time.From(RevokeDueAt), (int)RevokeAttempts)
        {
            AbandonedRevoke = AbandonedRevoke,
            AbandonedRevokeError = AbandonedRevokeError,
        };
    }
}

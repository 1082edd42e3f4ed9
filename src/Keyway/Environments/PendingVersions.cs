using System.Data.Common;
using Keyway.Secrets;
using Keyway.Storage;

namespace Keyway.Environments;

/// <summary>
/// The versions a rotation writes ahead: a minted value is stored encrypted as a <c>pending</c>
/// version before anything else is done with it, then either committed (it becomes the one current
/// version, in one transaction that also retires the old one) or retired (kept, never used unless
/// someone rolls back to it). Each write takes the variable's turn (<see cref="LockVariableAsync"/>)
/// and runs the caller's own statements (the rotation's record, its audit event) in the same
/// transaction.
/// </summary>
internal sealed partial class VariableService
{
    /// <summary>A version's key is live at the provider and a rotation's revoke is owed (pending, retried or failed): never pruned.</summary>
    public const string RevokeOwed = "owed";

    /// <summary>A version's key was revoked at the provider.</summary>
    public const string RevokeRevoked = "revoked";

    /// <summary>Nothing will revoke a version's key (the flow has no revoke step any more, or its step cannot name this key).</summary>
    public const string RevokeSkipped = "skipped";

    /// <summary>The outcome of <see cref="CommitPendingAsync"/>.</summary>
    public enum CommitOutcome
    {
        Committed,

        /// <summary>Another version became current after the rotation started (a <c>var set</c>, a rollback): the pending one is retired.</summary>
        Superseded,

        /// <summary>The variable or its pending version is gone (deleted meanwhile).</summary>
        Gone,
    }

    /// <summary>A variable's rotation definition (JSON) and whether it is secret; null when there is no such variable.</summary>
    public async Task<(string? Rotation, bool Secret, long Version)?> GetRotationAsync(string environment, string name, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<RotationRow>(
            "SELECT rotation, secret, version FROM variables WHERE environment = @environment AND name = @name", new { environment, name });
        return row is null ? null : (row.Rotation, row.Secret != 0, row.Version);
    }

    /// <summary>Stores (or with null removes) a variable's rotation definition; false when there is no such variable.</summary>
    public async Task<bool> SetRotationAsync(
        string environment, string name, string? rotationJson, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var updated = await connection.ExecuteAsync(
            "UPDATE variables SET rotation = @rotationJson, updated_at = @now WHERE environment = @environment AND name = @name",
            new { environment, name, rotationJson, now = time.GetUtcNow().ToStore() }, transaction) > 0;
        if (updated && audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(cancellationToken);
        return updated;
    }

    /// <summary>
    /// Stores <paramref name="value"/> encrypted as a new <c>pending</c> version of a secret variable and runs
    /// <paramref name="also"/> (given the version number) in the same transaction. Null when the variable is gone.
    /// The change is published: the value is redacted everywhere from now on, before it is ever sent.
    /// <paramref name="revokeOwed"/>: the flow has a revoke step, so a version with a provider id is recorded as
    /// owed a revoke (<see cref="RevokeOwed"/>) and is not pruned until its key is revoked.
    /// </summary>
    public async Task<long?> WritePendingAsync(
        string environment, string name, Secret value, string? providerId, VersionAuthor author, bool revokeOwed,
        Func<DbConnection, DbTransaction, long, Task> also, CancellationToken cancellationToken)
    {
        var plain = value.Reveal();
        var (expiry, expiresFrom) = SecretPolicy.JwtExpiry(plain) is { } exp ? (exp, "jwt") : ((DateTimeOffset?)null, (string?)null);
        var now = time.GetUtcNow().ToStore();
        long version;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await LockVariableAsync(connection, transaction, environment, name);
            if (await connection.ExecuteScalarAsync<long>(
                    "SELECT COUNT(*) FROM variables WHERE environment = @environment AND name = @name AND secret = 1", new { environment, name }, transaction) == 0)
            {
                return null;
            }

            version = await NextVersionAsync(connection, transaction, environment, name);
            await connection.ExecuteAsync(
                """
                INSERT INTO variable_versions (environment, name, version, value, ciphertext, created_at, state, set_by, set_by_key, expires_at, expires_from, value_set_at, provider_id,
                    origins, revoke_state)
                VALUES (@environment, @name, @version, NULL, @ciphertext, @now, @state, @setBy, @setByKey, @expiresAt, @expiresFrom, @now, @providerId,
                    (SELECT origins FROM variables WHERE environment = @environment AND name = @name), @revokeState)
                """,
                new
                {
                    environment,
                    name,
                    version,
                    ciphertext = keys.Encrypt(value, AssociatedData(environment, name, version)),
                    now,
                    state = StatePending,
                    setBy = author.Name,
                    setByKey = author.KeyId,
                    expiresAt = expiry.ToStore(),
                    expiresFrom,
                    providerId,
                    revokeState = revokeOwed && providerId is not null ? RevokeOwed : null,
                },
                transaction);
            await also(connection, transaction, version);
            await transaction.CommitAsync(cancellationToken);
        }

        changes.Publish(new Change("variables", environment));
        return version;
    }

    /// <summary>The value of a pending version, or null when it is not pending (committed, retired, pruned).</summary>
    public async Task<Secret?> ReadPendingAsync(string environment, string name, long version, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var ciphertext = await connection.QuerySingleOrDefaultAsync<byte[]>(
            "SELECT ciphertext FROM variable_versions WHERE environment = @environment AND name = @name AND version = @version AND state = @pending",
            new { environment, name, version, pending = StatePending });
        return ciphertext is null ? null : await DecryptAsync(ciphertext, AssociatedData(environment, name, version), cancellationToken);
    }

    /// <summary>The provider id recorded for the current version of a variable (what a revoke names), or null.</summary>
    public async Task<string?> CurrentProviderIdAsync(string environment, string name, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await connection.QuerySingleOrDefaultAsync<string>(
            """
            SELECT vv.provider_id FROM variables v JOIN variable_versions vv
              ON vv.environment = v.environment AND vv.name = v.name AND vv.version = v.version
            WHERE v.environment = @environment AND v.name = @name
            """,
            new { environment, name });
    }

    /// <summary>
    /// Makes pending <paramref name="version"/> the current one, if <paramref name="expectedCurrent"/> is still
    /// current: the old current version is retired, the variable points at the new one, and retired versions
    /// past the keep count are pruned, with <paramref name="also"/>, in one transaction. A superseded pending
    /// version is retired instead (still with <paramref name="also"/>, told the outcome).
    /// </summary>
    public async Task<CommitOutcome> CommitPendingAsync(
        string environment, string name, long version, long expectedCurrent,
        Func<DbConnection, DbTransaction, CommitOutcome, Task> also, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow().ToStore();
        CommitOutcome outcome;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await LockVariableAsync(connection, transaction, environment, name);
            var current = await connection.QuerySingleOrDefaultAsync<long?>(
                "SELECT version FROM variables WHERE environment = @environment AND name = @name", new { environment, name }, transaction);
            var pending = await connection.QuerySingleOrDefaultAsync<PendingRow>(
                "SELECT version, expires_at FROM variable_versions WHERE environment = @environment AND name = @name AND version = @version AND state = @state",
                new { environment, name, version, state = StatePending }, transaction);
            if (current is null || pending is null)
            {
                outcome = CommitOutcome.Gone;
            }
            else if (current != expectedCurrent)
            {
                outcome = CommitOutcome.Superseded;
                await SetStateAsync(connection, transaction, environment, name, version, StateRetired);
            }
            else
            {
                outcome = CommitOutcome.Committed;
                await connection.ExecuteAsync(
                    "UPDATE variable_versions SET state = @retired WHERE environment = @environment AND name = @name AND state = @current",
                    new { environment, name, retired = StateRetired, current = StateCurrent }, transaction);
                await SetStateAsync(connection, transaction, environment, name, version, StateCurrent);
                // The version becomes current under the binding in force now (it may have changed since it was minted).
                await connection.ExecuteAsync(
                    """
                    UPDATE variable_versions SET origins = (SELECT origins FROM variables WHERE environment = @environment AND name = @name)
                    WHERE environment = @environment AND name = @name AND version = @version
                    """,
                    new { environment, name, version }, transaction);
                await connection.ExecuteAsync(
                    "UPDATE variables SET version = @version, expires_at = @expiresAt, updated_at = @now WHERE environment = @environment AND name = @name",
                    new { environment, name, version, expiresAt = pending.ExpiresAt, now }, transaction);
                await PruneAsync(connection, transaction, environment, name);
            }

            await also(connection, transaction, outcome);
            await transaction.CommitAsync(cancellationToken);
        }

        changes.Publish(new Change("variables", environment));
        return outcome;
    }

    /// <summary>
    /// Retires a pending version that will not be committed (its verification failed): kept, so the minted
    /// value is never lost, but never used unless someone rolls back to it. <paramref name="also"/> runs in the
    /// same transaction.
    /// </summary>
    public async Task RetirePendingAsync(
        string environment, string name, long version, Func<DbConnection, DbTransaction, Task> also, CancellationToken cancellationToken)
    {
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await LockVariableAsync(connection, transaction, environment, name);
            await connection.ExecuteAsync(
                "UPDATE variable_versions SET state = @retired WHERE environment = @environment AND name = @name AND version = @version AND state = @pending",
                new { environment, name, version, retired = StateRetired, pending = StatePending }, transaction);
            await also(connection, transaction);
            await transaction.CommitAsync(cancellationToken);
        }

        changes.Publish(new Change("variables", environment));
    }

    /// <summary>
    /// Records what became of a version's key at the provider (<see cref="RevokeRevoked"/>, <see cref="RevokeSkipped"/>),
    /// inside the caller's transaction; only a version still <see cref="RevokeOwed"/> changes. From then on it may be
    /// pruned like any retired version.
    /// </summary>
    public static Task<int> SetRevokeStateAsync(DbConnection connection, DbTransaction transaction, string environment, string name, long version, string state) =>
        connection.ExecuteAsync(
            "UPDATE variable_versions SET revoke_state = @state WHERE environment = @environment AND name = @name AND version = @version AND revoke_state = @owed",
            new { environment, name, version, state, owed = RevokeOwed }, transaction);

    /// <summary>
    /// Records, inside the caller's transaction, that a version's key will be revoked (a commit whose revoke is now
    /// pending): a version with a provider id not yet marked (minted before the flow had a revoke step) becomes
    /// <see cref="RevokeOwed"/>, so it is not pruned before its revoke.
    /// </summary>
    public static Task<int> MarkRevokeOwedAsync(DbConnection connection, DbTransaction transaction, string environment, string name, long version) =>
        connection.ExecuteAsync(
            """
            UPDATE variable_versions SET revoke_state = @owed
            WHERE environment = @environment AND name = @name AND version = @version AND provider_id IS NOT NULL AND revoke_state IS NULL
            """,
            new { environment, name, version, owed = RevokeOwed }, transaction);

    private static Task<int> SetStateAsync(DbConnection connection, DbTransaction transaction, string environment, string name, long version, string state) =>
        connection.ExecuteAsync(
            "UPDATE variable_versions SET state = @state WHERE environment = @environment AND name = @name AND version = @version",
            new { environment, name, version, state }, transaction);

    private sealed class RotationRow
    {
        public string? Rotation { get; init; }
        public long Secret { get; init; }
        public long Version { get; init; }
    }

    private sealed class PendingRow
    {
        public long Version { get; init; }
        public long? ExpiresAt { get; init; }
    }
}

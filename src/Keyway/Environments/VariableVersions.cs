using System.Data.Common;
using System.Globalization;
using Keyway.Api;
using Keyway.Hosting;
using Keyway.Secrets;
using Keyway.Storage;

namespace Keyway.Environments;

/// <summary>How variables keep versions and how their expiry is tracked (<c>KEYWAY_VARIABLE_*</c>, <c>KEYWAY_SECRET_EXPIRY_*</c>; docs/configuration.md).</summary>
internal sealed record VariableOptions
{
    /// <summary>How many versions a variable keeps when it says nothing (<c>KEYWAY_VARIABLE_KEEP_VERSIONS</c>, 1 to 1000).</summary>
    public int KeepVersions { get; init; } = 10;

    /// <summary>How long before a secret expires <c>secret.expiring</c> is raised, once each (<c>KEYWAY_SECRET_EXPIRY_LEAD_TIMES</c>).</summary>
    public IReadOnlyList<TimeSpan> LeadTimes { get; init; } = [TimeSpan.FromDays(30), TimeSpan.FromDays(7), TimeSpan.FromDays(1)];

    /// <summary>How often the expiry sweep looks (<c>KEYWAY_SECRET_EXPIRY_SWEEP</c>).</summary>
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromMinutes(1);

    public static VariableOptions FromEnvironment(Func<string, string?>? variable = null)
    {
        variable ??= Environment.GetEnvironmentVariable;
        var options = new VariableOptions();
        if (variable("KEYWAY_VARIABLE_KEEP_VERSIONS") is { Length: > 0 } keep)
        {
            options = int.TryParse(keep, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 1000
                ? options with { KeepVersions = n }
                : throw new StartupException($"KEYWAY_VARIABLE_KEEP_VERSIONS must be a whole number from 1 to 1000; '{keep}' is not.");
        }

        if (variable("KEYWAY_SECRET_EXPIRY_LEAD_TIMES") is { Length: > 0 } leads)
        {
            var parsed = leads.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(l => SignIn.SignInSettings.ParseDuration(l, "KEYWAY_SECRET_EXPIRY_LEAD_TIMES")!.Value)
                .Distinct().OrderDescending().ToArray();
            options = options with { LeadTimes = parsed };
        }

        if (SignIn.SignInSettings.ParseDuration(variable("KEYWAY_SECRET_EXPIRY_SWEEP"), "KEYWAY_SECRET_EXPIRY_SWEEP") is { } sweep)
        {
            options = options with { SweepInterval = sweep };
        }

        return options;
    }
}

/// <summary>A variable's policies as a write gives them; a null member keeps what the variable had.</summary>
/// <param name="KeepVersions">Versions to keep, current included (0: the server's default).</param>
/// <param name="RotateEvery">How often to rotate (<c>90d</c>, <c>P90D</c>; empty: no policy).</param>
/// <param name="ExpiredPolicy"><c>warn</c> or <c>block</c>.</param>
internal sealed record VariablePolicy(int? KeepVersions = null, string? RotateEvery = null, string? ExpiredPolicy = null);

/// <summary>Who wrote a version: the user's name and, when it came through an API key, the key's id.</summary>
internal readonly record struct VersionAuthor(string? Name, string? KeyId);

/// <summary>
/// One stored version as the API lists it: never the value. <c>State</c> is <c>current</c>, <c>retired</c>
/// or <c>pending</c> (written ahead of a rotation, not in use yet). <c>RestoredFrom</c>: the version a
/// rollback copied the value of. <c>Revoke</c>: what became of a rotation-minted key at the provider
/// (<c>owed</c>, <c>revoked</c>, <c>skipped</c>; null when there is nothing to revoke).
/// </summary>
internal sealed record VariableVersionInfo(
    long Version, string State, bool Current, string? SetBy, string? SetByKey, DateTimeOffset SetAt,
    DateTimeOffset? ExpiresAt, string? ExpiresFrom, long? RestoredFrom, bool Expired, string? Revoke = null);

/// <summary>
/// A variable's versions. Every write makes a new version number (the largest ever stored plus one),
/// so the audit trail reads as a sequence: a rollback to version 3 is version 7 with the value of 3
/// (<c>restoredFrom</c> 3), never a pointer moved back. The one current version is
/// <c>variables.version</c> and the row whose state is <c>current</c>; a rotation may later write a
/// <c>pending</c> version above it that is not used until committed. Retired versions past the keep
/// count are deleted in the writer's transaction; <see cref="KnownSecrets"/> redacts every version
/// still stored, and stops needing a pruned one only once it is gone.
/// </summary>
internal sealed partial class VariableService
{
    public const string StateCurrent = "current";
    public const string StateRetired = "retired";
    public const string StatePending = "pending";

    private sealed record NewVersion(
        string Environment, string Name, long Version, bool Secret, string Value, DateTimeOffset? ExpiresAt, string? ExpiresFrom,
        long ValueSetAt, long? RestoredFrom, VersionAuthor Author);

    /// <summary>
    /// On PostgreSQL, makes writers of one variable take turns until the transaction ends: each computes the next
    /// version number from what is stored, so two at once would pick the same one. SQLite's write transactions
    /// are serialized already.
    /// </summary>
    private Task LockVariableAsync(DbConnection connection, DbTransaction transaction, string environment, string name) =>
        database.Kind == StoreKind.Postgres
            ? connection.ExecuteAsync("SELECT pg_advisory_xact_lock(@lockClass, hashtext(@key))", new { lockClass = VariableLockClass, key = environment + "/" + name }, transaction)
            : Task.CompletedTask;

    // The first key of the two-key advisory locks taken per variable ("KV").
    private const int VariableLockClass = 0x4B56;

    private static Task<long> NextVersionAsync(DbConnection connection, DbTransaction transaction, string environment, string name) =>
        connection.ExecuteScalarAsync<long>(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM variable_versions WHERE environment = @environment AND name = @name",
            new { environment, name }, transaction);

    /// <summary>Retires the current version, inserts the new one as current, and prunes retired ones past the keep count.</summary>
    private async Task InsertVersionAsync(DbConnection connection, DbTransaction transaction, NewVersion v, long now)
    {
        await connection.ExecuteAsync(
            "UPDATE variable_versions SET state = @retired WHERE environment = @Environment AND name = @Name AND state = @current",
            new { v.Environment, v.Name, retired = StateRetired, current = StateCurrent }, transaction);
        await connection.ExecuteAsync(
            """
            INSERT INTO variable_versions (environment, name, version, value, ciphertext, created_at, state, set_by, set_by_key, expires_at, expires_from, restored_from,
                value_set_at, origins)
            VALUES (@environment, @name, @version, @plain, @ciphertext, @now, @state, @setBy, @setByKey, @expiresAt, @expiresFrom, @restoredFrom, @valueSetAt,
                (SELECT origins FROM variables WHERE environment = @environment AND name = @name))
            """,
            new
            {
                environment = v.Environment,
                name = v.Name,
                version = v.Version,
                plain = v.Secret ? null : v.Value,
                ciphertext = v.Secret ? keys.Encrypt(new Secret(v.Value), AssociatedData(v.Environment, v.Name, v.Version)) : null,
                now,
                state = StateCurrent,
                setBy = v.Author.Name,
                setByKey = v.Author.KeyId,
                expiresAt = v.ExpiresAt.ToStore(),
                expiresFrom = v.ExpiresFrom,
                restoredFrom = v.RestoredFrom,
                valueSetAt = v.ValueSetAt,
            },
            transaction);
        await PruneAsync(connection, transaction, v.Environment, v.Name);
    }

    /// <summary>
    /// Deletes the retired versions past the variable's keep count, except those whose key is still owed a revoke
    /// (<see cref="RevokeOwed"/>): a key live at the provider keeps its value known, so answers stay redacted of it,
    /// until its rotation's revoke succeeds or is skipped; then a later write prunes it.
    /// </summary>
    private async Task PruneAsync(DbConnection connection, DbTransaction transaction, string environment, string name)
    {
        var keep = await connection.ExecuteScalarAsync<long?>(
            "SELECT keep_versions FROM variables WHERE environment = @environment AND name = @name", new { environment, name }, transaction) ?? _options.KeepVersions;
        // The current version counts toward the keep count; pending ones are never pruned (a rotation owns them).
        await connection.ExecuteAsync(
            """
            DELETE FROM variable_versions WHERE environment = @environment AND name = @name AND state = @retired
              AND (revoke_state IS NULL OR revoke_state <> @owed) AND version <= (
                SELECT version FROM variable_versions WHERE environment = @environment AND name = @name AND state = @retired
                ORDER BY version DESC LIMIT 1 OFFSET @offset)
            """,
            new { environment, name, retired = StateRetired, owed = RevokeOwed, offset = Math.Max(0, keep - 1) }, transaction);
    }

    private static (int? Keep, long? RotateEvery, string? ExpiredPolicy) CheckPolicy(VariablePolicy? policy)
    {
        if (policy is null)
        {
            return (null, null, null);
        }

        if (policy.KeepVersions is < 0 or > 1000)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request",
                "keepVersions is how many versions to keep, the current one included: 1 to 1000 (0: the server's default).");
        }

        return (
            policy.KeepVersions is > 0 ? policy.KeepVersions : null,
            policy.RotateEvery is { Length: > 0 } every ? (long)SecretPolicy.ParseRotateEvery(every).TotalSeconds : null,
            policy.ExpiredPolicy is { } p ? Environments.ExpiredPolicy.Parse(p) : null);
    }

    /// <summary>A variable's stored versions, newest first; null when there is no such variable.</summary>
    public async Task<IReadOnlyList<VariableVersionInfo>?> ListVersionsAsync(string environment, string name, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<VersionRow>(
            """
            SELECT version, state, set_by, set_by_key, created_at, expires_at, expires_from, restored_from, revoke_state
            FROM variable_versions WHERE environment = @environment AND name = @name ORDER BY version DESC
            """,
            new { environment, name });
        if (rows.Count == 0)
        {
            return null;
        }

        var now = time.GetUtcNow();
        return rows.Select(r => new VariableVersionInfo(
            r.Version, r.State, r.State == StateCurrent, r.SetBy, r.SetByKey, Time.From(r.CreatedAt),
            Time.From(r.ExpiresAt), r.ExpiresAt is null ? null : r.ExpiresFrom ?? "set", r.RestoredFrom, Time.From(r.ExpiresAt) <= now, r.RevokeState)).ToList();
    }

    /// <summary>
    /// Makes <paramref name="version"/>'s value current again, as a new version (<c>restoredFrom</c> says
    /// which), with that value's expiry and first-set time, and, for a value that was secret, its origin
    /// binding: each version records the origins in force while it was current, so a secret comes back
    /// bound where it was, whatever was set in between (a plain value drops the binding). Null when the
    /// variable does not exist.
    /// <paramref name="audit"/> runs in the same transaction, given the variable as written.
    /// </summary>
    public async Task<VariableInfo?> RollbackAsync(
        string environment, string name, long version, VersionAuthor author, CancellationToken cancellationToken, Func<DbTransaction, VariableInfo, Task>? audit = null)
    {
        var now = time.GetUtcNow().ToStore();
        VariableInfo info;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await LockVariableAsync(connection, transaction, environment, name);
            if (await connection.ExecuteAsync(
                    "UPDATE variables SET updated_at = @now WHERE environment = @environment AND name = @name", new { environment, name, now }, transaction) == 0)
            {
                return null;
            }

            var current = await connection.QuerySingleOrDefaultAsync<CurrentRow>(
                "SELECT version, secret FROM variables WHERE environment = @environment AND name = @name", new { environment, name }, transaction);
            var target = await connection.QuerySingleOrDefaultAsync<TargetRow>(
                """
                SELECT version, state, value, ciphertext, expires_at, expires_from, value_set_at, created_at, origins
                FROM variable_versions WHERE environment = @environment AND name = @name AND version = @version
                """,
                new { environment, name, version }, transaction);
            if (target is null || target.State == StatePending)
            {
                throw new KeywayException(StatusCodes.Status404NotFound, "version_not_found",
                    $"'{name}' in '{environment}' has no stored version {version} to roll back to (older ones are pruned). See them: keyway var versions {name} --env {environment}");
            }

            if (current!.Version == version)
            {
                throw new KeywayException(StatusCodes.Status409Conflict, "already_current",
                    $"Version {version} of '{name}' in '{environment}' is already the current one.");
            }

            // The restored value stays secret if it was secret then or is secret now: a rollback never reveals a value.
            var secret = current.Secret != 0 || target.Ciphertext is not null;
            var value = target.Ciphertext is { } ciphertext
                ? (await DecryptAsync(ciphertext, AssociatedData(environment, name, version), cancellationToken)).Reveal()
                : target.Value ?? "";
            var next = await NextVersionAsync(connection, transaction, environment, name);
            await connection.ExecuteAsync(
                """
                UPDATE variables SET version = @next, secret = @secret, expires_at = @expiresAt, updated_at = @now,
                    origins = CASE WHEN @restoreOrigins = 1 THEN @origins ELSE origins END
                WHERE environment = @environment AND name = @name
                """,
                new
                {
                    environment,
                    name,
                    next,
                    secret = secret ? 1 : 0,
                    expiresAt = target.ExpiresAt,
                    now,
                    // A secret comes back with its own binding; a value that was plain then keeps what the variable has now.
                    restoreOrigins = target.Ciphertext is not null ? 1 : 0,
                    origins = target.Origins,
                }, transaction);
            await InsertVersionAsync(connection, transaction, new NewVersion(
                environment, name, next, secret, value, Time.From(target.ExpiresAt), target.ExpiresFrom, target.ValueSetAt ?? target.CreatedAt, version, author), now);
            info = (await QueryAsync(connection, transaction, environment, name))[0];
            if (audit is not null)
            {
                await audit(transaction, info);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        changes.Publish(new Change("variables", environment));
        return info;
    }

    private sealed class VersionRow
    {
        public long Version { get; init; }
        public string State { get; init; } = "";
        public string? SetBy { get; init; }
        public string? SetByKey { get; init; }
        public long CreatedAt { get; init; }
        public long? ExpiresAt { get; init; }
        public string? ExpiresFrom { get; init; }
        public long? RestoredFrom { get; init; }
        public string? RevokeState { get; init; }
    }

    private sealed class CurrentRow
    {
        public long Version { get; init; }
        public long Secret { get; init; }
    }

    private sealed class TargetRow
    {
        public long Version { get; init; }
        public string State { get; init; } = "";
        public string? Value { get; init; }
        public byte[]? Ciphertext { get; init; }
        public long? ExpiresAt { get; init; }
        public string? ExpiresFrom { get; init; }
        public long? ValueSetAt { get; init; }
        public long CreatedAt { get; init; }
        public string? Origins { get; init; }
    }
}

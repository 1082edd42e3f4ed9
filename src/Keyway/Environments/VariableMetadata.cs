using System.Data.Common;
using Keyway.Storage;

namespace Keyway.Environments;

/// <summary>
/// A variable's metadata changed without its value: its origin binding and its policies (keep count,
/// rotate-every, expired policy). No new version is written, so <c>keyway apply</c> can bring a
/// secret's configuration to what the files say without ever holding its value.
/// </summary>
internal sealed partial class VariableService
{
    /// <summary>
    /// Sets what <paramref name="origins"/> and <paramref name="policy"/> name (null members keep what the
    /// variable had); null when there is no such variable. <paramref name="audit"/> runs in the same transaction.
    /// </summary>
    public async Task<VariableInfo?> SetMetadataAsync(
        string environment, string name, IReadOnlyList<string>? origins, VariablePolicy policy, CancellationToken cancellationToken,
        Func<DbTransaction, VariableInfo, Task>? audit = null)
    {
        if (await GetAsync(environment, name, cancellationToken) is not { } current)
        {
            return null;
        }

        var originsJson = origins is null ? null : OriginsJson(origins, current.Secret);
        var (keep, rotateEvery, expiredPolicy) = CheckPolicy(policy);
        VariableInfo? info;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await LockVariableAsync(connection, transaction, environment, name);
            await connection.ExecuteAsync(
                """
                UPDATE variables SET updated_at = @now,
                    origins = CASE WHEN @setOrigins = 1 THEN @originsJson ELSE origins END,
                    keep_versions = CASE WHEN @setKeep = 1 THEN @keep ELSE keep_versions END,
                    rotate_every = CASE WHEN @setRotate = 1 THEN @rotateEvery ELSE rotate_every END,
                    expired_policy = CASE WHEN @setPolicy = 1 THEN @expiredPolicy ELSE expired_policy END
                WHERE environment = @environment AND name = @name
                """,
                new
                {
                    environment,
                    name,
                    now = time.GetUtcNow().ToStore(),
                    setOrigins = origins is null ? 0 : 1,
                    originsJson,
                    setKeep = policy.KeepVersions is null ? 0 : 1,
                    keep,
                    setRotate = policy.RotateEvery is null ? 0 : 1,
                    rotateEvery,
                    setPolicy = policy.ExpiredPolicy is null ? 0 : 1,
                    expiredPolicy,
                },
                transaction);
            if (origins is not null)
            {
                // The current version's record of its binding follows, so a later rollback to it restores this one.
                await connection.ExecuteAsync(
                    "UPDATE variable_versions SET origins = @originsJson WHERE environment = @environment AND name = @name AND state = 'current'",
                    new { environment, name, originsJson }, transaction);
            }

            info = (await QueryAsync(connection, transaction, environment, name)) is [var written, ..] ? written : null;
            if (info is not null && audit is not null)
            {
                await audit(transaction, info);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        changes.Publish(new Change("variables", environment));
        return info;
    }
}

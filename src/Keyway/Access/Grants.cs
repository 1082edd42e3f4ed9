using System.Data.Common;
using System.Security.Cryptography;
using Keyway.Api;
using Keyway.Environments;
using Keyway.Storage;

namespace Keyway.Access;

/// <summary>
/// A permission on a resource (or on every resource, <c>*</c>) for a user or a group, in one
/// environment or in every one (<c>*</c>). <see cref="Principal"/> is a user id or a group name;
/// <see cref="PrincipalName"/> is what people read (the user's name, or the group's).
/// </summary>
internal sealed record GrantInfo(
    string Id, string Resource, string PrincipalKind, string Principal, string PrincipalName, string Permission, string Environment,
    DateTimeOffset CreatedAt, string? CreatedBy);

internal static class PrincipalKinds
{
    public const string User = "user";
    public const string Group = "group";

    /// <summary>Every user, people and service identities alike, now and later (principal <c>*</c>).</summary>
    public const string Everyone = "everyone";
}

/// <summary>
/// The <c>grants</c> table. Writers publish a <c>grants</c> change and wait until this process's
/// <see cref="AccessPolicy"/> has reloaded, so the writer's next request sees its own change.
/// </summary>
internal sealed class GrantStore(Database database, TimeProvider time, ChangeFeed changes)
{
    public const string ChangeKind = "grants";

    /// <summary>Every resource, for a grant on <c>*</c>.</summary>
    public const string Any = "*";

    private const string Select =
        """
        SELECT g.id, g.resource, g.principal_kind, g.principal,
               CASE WHEN g.principal_kind = 'everyone' THEN 'everyone' ELSE COALESCE(u.name, g.principal) END AS principal_name, g.permission, g.environment,
               g.created_at, g.created_by
        FROM grants g LEFT JOIN users u ON g.principal_kind = 'user' AND u.id = g.principal
        """;

    public static string NewId() => "grt_" + ApiKeyService.Base64Url(RandomNumberGenerator.GetBytes(9));

    public async Task<IReadOnlyList<GrantInfo>> ListAllAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return (await connection.QueryAsync<Row>(Select)).Select(r => r.ToInfo()).ToList();
    }

    /// <summary>The grants on one resource and the grants on every resource (<c>*</c>).</summary>
    public async Task<IReadOnlyList<GrantInfo>> ListForResourceAsync(string resource, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return (await connection.QueryAsync<Row>(
            Select + " WHERE g.resource = @resource OR g.resource = '*' ORDER BY g.resource, g.created_at, g.id", new { resource }))
            .Select(r => r.ToInfo()).ToList();
    }

    public async Task<GrantInfo?> GetAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return (await connection.QuerySingleOrDefaultAsync<Row>(Select + " WHERE g.id = @id", new { id }))?.ToInfo();
    }

    /// <summary>Adds a grant; an identical one that exists already is returned instead (granting twice is harmless).</summary>
    /// <summary>Grants a permission; when it did not exist, <paramref name="audit"/> runs in the same transaction, given the new grant.</summary>
    public async Task<(GrantInfo Grant, bool Created)> AddAsync(
        string resource, string principalKind, string principal, string permission, string environment, string? createdBy,
        CancellationToken cancellationToken, Func<DbTransaction, GrantInfo, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var added = await AddAsync(connection, transaction, resource, principalKind, principal, permission, environment, createdBy);
        if (added.Created && audit is not null)
        {
            await audit(transaction, added.Grant);
        }

        await transaction.CommitAsync(cancellationToken);
        return added;
    }

    /// <summary>
    /// Gives <paramref name="userId"/> <c>own</c> on a resource it has just created, inside the
    /// transaction that creates it: a resource never exists without its creator's grant.
    /// </summary>
    public async Task<GrantInfo> AddCreatorAsync(DbConnection connection, DbTransaction transaction, string resource, string userId) =>
        (await AddAsync(connection, transaction, resource, PrincipalKinds.User, userId, "own", Any, userId)).Grant;

    private async Task<(GrantInfo Grant, bool Created)> AddAsync(
        DbConnection connection, DbTransaction? transaction, string resource, string principalKind, string principal, string permission,
        string environment, string? createdBy)
    {
        var id = NewId();
        var inserted = await connection.ExecuteAsync(
            """
            INSERT INTO grants (id, resource, principal_kind, principal, permission, environment, created_at, created_by)
            VALUES (@id, @resource, @principalKind, @principal, @permission, @environment, @now, @createdBy)
            ON CONFLICT (resource, principal_kind, principal, permission, environment) DO NOTHING
            """,
            new { id, resource, principalKind, principal, permission, environment, now = time.GetUtcNow().ToStore(), createdBy }, transaction);
        var row = await connection.QuerySingleAsync<Row>(
            Select + " WHERE g.resource = @resource AND g.principal_kind = @principalKind AND g.principal = @principal AND g.permission = @permission AND g.environment = @environment",
            new { resource, principalKind, principal, permission, environment }, transaction);
        return (row.ToInfo(), inserted > 0);
    }

    /// <summary>Revokes a grant; <paramref name="audit"/> runs in the same transaction when one was deleted.</summary>
    public async Task<bool> RemoveAsync(string id, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var deleted = await connection.ExecuteAsync("DELETE FROM grants WHERE id = @id", new { id }, transaction) > 0;
        if (deleted && audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(cancellationToken);
        return deleted;
    }

    /// <summary>Publishes the change and waits until this process's policy sees it.</summary>
    public Task PublishAsync(AccessPolicy policy, string what)
    {
        changes.Publish(new Change(ChangeKind, what));
        return policy.ReloadAsync(CancellationToken.None);
    }

    /// <summary>Checks a permission name from the API: <c>use</c>, <c>edit</c> or <c>own</c>.</summary>
    public static string CheckPermission(string? permission) => permission?.Trim().ToLowerInvariant() switch
    {
        "use" => "use",
        "edit" => "edit",
        "own" => "own",
        _ => throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request",
            $"'{permission}' is not a permission. Choose use (run queries, proxy), edit (change the configuration; never read secrets) or own (edit, delete, manage permissions)."),
    };

    private sealed class Row
    {
        public string Id { get; init; } = "";
        public string Resource { get; init; } = "";
        public string PrincipalKind { get; init; } = "";
        public string Principal { get; init; } = "";
        public string PrincipalName { get; init; } = "";
        public string Permission { get; init; } = "";
        public string Environment { get; init; } = "";
        public long CreatedAt { get; init; }
        public string? CreatedBy { get; init; }

        public GrantInfo ToInfo() => new(Id, Resource, PrincipalKind, Principal, PrincipalName, Permission, Environment, Time.From(CreatedAt), CreatedBy);
    }
}

/// <summary>Who a grant or a right is given to, as the API names it: a user, a group or everyone.</summary>
internal static class Principals
{
    public static bool NamesOne(string? user, string? group, bool everyone) =>
        (user is not null ? 1 : 0) + (group is not null ? 1 : 0) + (everyone ? 1 : 0) == 1;

    /// <summary>(kind, stored principal, name shown), or null when the user or group does not exist.</summary>
    public static async Task<(string Kind, string Principal, string Shown)?> ResolveAsync(
        string? user, string? group, bool everyone, UserStore users, CancellationToken cancellationToken)
    {
        if (user is not null)
        {
            return await users.FindByNameAsync(user, cancellationToken) is { } found ? (PrincipalKinds.User, found.Id, found.Name) : null;
        }

        if (everyone)
        {
            return (PrincipalKinds.Everyone, GrantStore.Any, "everyone");
        }

        return await users.GetGroupAsync(group!, cancellationToken) is null ? null : (PrincipalKinds.Group, group!, group!);
    }

    public static string NotFoundMessage(string? user, string? group) => user is not null
        ? $"There is no user named '{user}'."
        : $"There is no group named '{group}'. An admin creates it with 'keyway group create {group}'.";
}

using System.Data.Common;
using System.Security.Cryptography;
using Keyway.Api;
using Keyway.Storage;

namespace Keyway.Access;

/// <summary>
/// A right that is not about one resource, held by a user, a group or everyone:
/// <c>build</c> (create resources; target <c>*</c>) or <c>attach</c> (save a resource definition
/// that reads a secret variable; target a variable name or <c>*</c> for every variable).
/// Admins hold every right without a row.
/// </summary>
internal sealed record RightInfo(
    string Id, string Right, string Target, string PrincipalKind, string Principal, string PrincipalName,
    DateTimeOffset CreatedAt, string? CreatedBy);

/// <summary>The names of the rights.</summary>
internal static class Rights
{
    /// <summary>Create resources (their creator then owns them).</summary>
    public const string Build = "build";

    /// <summary>Save a resource definition that reads a secret variable.</summary>
    public const string Attach = "attach";

    public const string Any = "*";

    /// <summary>Checks a right name from the API.</summary>
    public static string Check(string? right) => right?.Trim().ToLowerInvariant() switch
    {
        Build => Build,
        Attach => Attach,
        _ => throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request",
            $"'{right}' is not a right. Choose build (create resources) or attach (save resources that read a secret variable; name the variable, or '*')."),
    };
}

/// <summary>
/// The <c>rights</c> table. Read at save time only (creating a resource, saving a definition that
/// reads a secret), never on the request path, so it needs no cache.
/// </summary>
internal sealed class RightStore(Database database, TimeProvider time)
{
    private const string Select =
        """
        SELECT r.id, r."right" AS "right", r.target, r.principal_kind, r.principal,
               CASE WHEN r.principal_kind = 'everyone' THEN 'everyone' ELSE COALESCE(u.name, r.principal) END AS principal_name,
               r.created_at, r.created_by
        FROM rights r LEFT JOIN users u ON r.principal_kind = 'user' AND u.id = r.principal
        """;

    public async Task<IReadOnlyList<RightInfo>> ListAsync(string? right, string? target, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<Row>(
            Select + """
                      WHERE (@right IS NULL OR r."right" = @right) AND (@target IS NULL OR r.target = @target)
                     ORDER BY r."right", r.target, r.created_at, r.id
                     """,
            new { right, target });
        return rows.Select(r => r.ToInfo()).ToList();
    }

    public async Task<RightInfo?> GetAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return (await connection.QuerySingleOrDefaultAsync<Row>(Select + " WHERE r.id = @id", new { id }))?.ToInfo();
    }

    /// <summary>Gives a right; an identical one that exists already is returned instead.</summary>
    /// <summary>Gives a right; when it did not exist, <paramref name="audit"/> runs in the same transaction, given the new right.</summary>
    public async Task<(RightInfo Right, bool Created)> AddAsync(
        string right, string target, string principalKind, string principal, string? createdBy, CancellationToken cancellationToken,
        Func<DbTransaction, RightInfo, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var id = "rgt_" + ApiKeyService.Base64Url(RandomNumberGenerator.GetBytes(9));
        var inserted = await connection.ExecuteAsync(
            """
            INSERT INTO rights (id, "right", target, principal_kind, principal, created_at, created_by)
            VALUES (@id, @right, @target, @principalKind, @principal, @now, @createdBy)
            ON CONFLICT ("right", target, principal_kind, principal) DO NOTHING
            """,
            new { id, right, target, principalKind, principal, now = time.GetUtcNow().ToStore(), createdBy }, transaction);
        var row = await connection.QuerySingleAsync<Row>(
            Select + """ WHERE r."right" = @right AND r.target = @target AND r.principal_kind = @principalKind AND r.principal = @principal""",
            new { right, target, principalKind, principal }, transaction);
        var info = row.ToInfo();
        if (inserted > 0 && audit is not null)
        {
            await audit(transaction, info);
        }

        await transaction.CommitAsync(cancellationToken);
        return (info, inserted > 0);
    }

    /// <summary>Takes a right back; <paramref name="audit"/> runs in the same transaction when one was deleted.</summary>
    public async Task<bool> RemoveAsync(string id, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var deleted = await connection.ExecuteAsync("DELETE FROM rights WHERE id = @id", new { id }, transaction) > 0;
        if (deleted && audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(cancellationToken);
        return deleted;
    }

    /// <summary>
    /// The targets of <paramref name="right"/> that <paramref name="caller"/> holds, directly, through a
    /// group or as everyone (<c>*</c> among them when it holds the right on every target). Admins hold
    /// every right: for them the answer is just <c>*</c>. An API key's scope narrows it: only a key that
    /// may own <paramref name="resource"/> in every environment acts with its owner's rights to build or attach there.
    /// </summary>
    public async Task<IReadOnlySet<string>> TargetsAsync(Caller caller, string right, string resource, CancellationToken cancellationToken)
    {
        if (!AccessPolicy.ScopeAllows(caller.Scope, Permission.Own, resource, null))
        {
            return new HashSet<string>();
        }

        if (caller.IsAdmin)
        {
            return new HashSet<string> { Rights.Any };
        }

        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<Row>(
            Select + """ WHERE r."right" = @right""", new { right });
        var groups = caller.Groups;
        return rows
            .Where(r => r.PrincipalKind switch
            {
                PrincipalKinds.User => r.Principal == caller.UserId,
                PrincipalKinds.Group => groups.Contains(r.Principal, StringComparer.Ordinal),
                PrincipalKinds.Everyone => true,
                _ => false,
            })
            .Select(r => r.Target)
            .ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>Whether <paramref name="caller"/> may create the resource <paramref name="resource"/>.</summary>
    public async Task<bool> MayBuildAsync(Caller caller, string resource, CancellationToken cancellationToken) =>
        (await TargetsAsync(caller, Rights.Build, resource, cancellationToken)).Count > 0;

    private sealed class Row
    {
        public string Id { get; init; } = "";
        public string Right { get; init; } = "";
        public string Target { get; init; } = "";
        public string PrincipalKind { get; init; } = "";
        public string Principal { get; init; } = "";
        public string PrincipalName { get; init; } = "";
        public long CreatedAt { get; init; }
        public string? CreatedBy { get; init; }

        public RightInfo ToInfo() => new(Id, Right, Target, PrincipalKind, Principal, PrincipalName, Time.From(CreatedAt), CreatedBy);
    }
}

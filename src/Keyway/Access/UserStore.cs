using System.Data.Common;
using System.Security.Cryptography;
using System.Text.Json;
using Keyway.Environments;
using Keyway.Storage;

namespace Keyway.Access;

/// <summary>A user row. <see cref="PasswordHash"/> is a PasswordHasher hash, never a password.</summary>
internal sealed class UserRecord
{
    public string Id { get; init; } = "";
    public string Name { get; init; } = "";
    public string? Email { get; init; }
    public string? DisplayName { get; init; }
    public string Role { get; init; } = Caller.MemberRole;

    /// <summary><c>local</c> (password), <c>oidc</c> (single sign-on) or <c>service</c> (owns API keys only).</summary>
    public string Source { get; init; } = UserSources.Local;

    /// <summary>For single sign-on users: <c>issuer|subject</c>.</summary>
    public string? ExternalId { get; init; }

    public string? PasswordHash { get; init; }

    /// <summary>The identity provider's claims from the last sign-on, as a JSON object of strings.</summary>
    public string? Claims { get; init; }

    public long? DisabledAt { get; init; }
    public long FailedSignIns { get; init; }
    public long? LockedUntil { get; init; }
    public long? PasswordChangedAt { get; init; }

    /// <summary>Bumped to end every session of the user (password change, disable, role change).</summary>
    public long SessionVersion { get; init; }

    public long CreatedAt { get; init; }
    public long? UpdatedAt { get; init; }

    public IReadOnlyDictionary<string, string>? ClaimMap => Claims is null
        ? null
        : JsonSerializer.Deserialize<Dictionary<string, string>>(Claims);
}

internal static class UserSources
{
    public const string Local = "local";
    public const string Oidc = "oidc";
    public const string Service = "service";
}

/// <summary>A user to create.</summary>
internal sealed record NewUser(string Name, string Role, string Source)
{
    public string? Email { get; init; }
    public string? DisplayName { get; init; }
    public string? ExternalId { get; init; }
    public string? PasswordHash { get; init; }
    public IReadOnlyDictionary<string, string>? Claims { get; init; }
}

/// <summary>
/// The user and group rows, shared by the admin API, sign-in and API-key authentication. Writers
/// publish a <c>users</c> change so caches of callers (API keys, sessions, grants) drop what they hold.
/// </summary>
internal sealed class UserStore(Database database, TimeProvider time, ChangeFeed changes)
{
    public const string ChangeKind = "users";

    private const string Columns =
        "id, name, email, display_name, role, source, external_id, password_hash, claims, disabled_at, failed_sign_ins, locked_until, password_changed_at, session_version, created_at, updated_at";

    public static string NewId() => "usr_" + ApiKeyService.Base64Url(RandomNumberGenerator.GetBytes(9));

    public async Task<UserRecord?> FindByIdAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await connection.QuerySingleOrDefaultAsync<UserRecord>($"SELECT {Columns} FROM users WHERE id = @id", new { id });
    }

    public async Task<UserRecord?> FindByNameAsync(string name, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await connection.QuerySingleOrDefaultAsync<UserRecord>($"SELECT {Columns} FROM users WHERE name = @name", new { name });
    }

    public async Task<UserRecord?> FindByExternalIdAsync(string externalId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await connection.QuerySingleOrDefaultAsync<UserRecord>($"SELECT {Columns} FROM users WHERE external_id = @externalId", new { externalId });
    }

    public async Task<IReadOnlyList<UserRecord>> ListAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return (await connection.QueryAsync<UserRecord>($"SELECT {Columns} FROM users ORDER BY name")).ToList();
    }

    /// <summary>Creates a user; throws a 409 problem when the name is taken.</summary>
    /// <summary>Creates a user; <paramref name="audit"/> runs in the same transaction.</summary>
    public async Task<UserRecord> CreateAsync(NewUser user, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        var id = NewId();
        var now = time.GetUtcNow().ToStore();
        var claims = user.Claims is null ? null : JsonSerializer.Serialize(user.Claims);
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var inserted = await connection.ExecuteAsync(
            """
            INSERT INTO users (id, name, email, display_name, role, source, external_id, password_hash, claims, password_changed_at, created_at, updated_at)
            VALUES (@id, @Name, @Email, @DisplayName, @Role, @Source, @ExternalId, @PasswordHash, @claims, @changed, @now, @now)
            ON CONFLICT DO NOTHING
            """,
            new { id, user.Name, user.Email, user.DisplayName, user.Role, user.Source, user.ExternalId, user.PasswordHash, claims, changed = user.PasswordHash is null ? (long?)null : now, now },
            transaction);
        if (inserted == 0)
        {
            throw new Api.KeywayException(StatusCodes.Status409Conflict, "conflict",
                $"A user named '{user.Name}' already exists (or that single sign-on identity is linked to another user).");
        }

        if (audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(cancellationToken);
        changes.Publish(new Change(ChangeKind, id));
        return (await FindByIdAsync(id, cancellationToken))!;
    }

    /// <summary>The names of the groups a user belongs to, sorted.</summary>
    public async Task<IReadOnlyList<string>> GroupsOfAsync(string userId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return (await connection.QueryAsync<string>(
            "SELECT group_name FROM group_members WHERE user_id = @userId ORDER BY group_name", new { userId })).ToList();
    }

    /// <summary>
    /// Makes the user's memberships of <paramref name="source"/> exactly <paramref name="groups"/>
    /// (other sources' memberships stay). Groups that do not exist are created when
    /// <paramref name="createMissing"/>, else ignored. Returns the groups the user is now in from that source.
    /// </summary>
    public async Task<IReadOnlyList<string>> SyncGroupsAsync(
        string userId, IEnumerable<string> groups, string source, bool createMissing, CancellationToken cancellationToken)
    {
        var wanted = groups.Where(g => !string.IsNullOrWhiteSpace(g)).Select(g => g.Trim()).Distinct(StringComparer.Ordinal).ToList();
        var now = time.GetUtcNow().ToStore();
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        if (createMissing)
        {
            foreach (var group in wanted)
            {
                await connection.ExecuteAsync(
                    "INSERT INTO groups (name, created_at) VALUES (@group, @now) ON CONFLICT (name) DO NOTHING", new { group, now }, transaction);
            }
        }

        var existing = (await connection.QueryAsync<string>("SELECT name FROM groups", transaction: transaction)).ToHashSet(StringComparer.Ordinal);
        var kept = wanted.Where(existing.Contains).ToList();
        await connection.ExecuteAsync("DELETE FROM group_members WHERE user_id = @userId AND source = @source", new { userId, source }, transaction);
        foreach (var group in kept)
        {
            await connection.ExecuteAsync(
                "INSERT INTO group_members (group_name, user_id, source, created_at) VALUES (@group, @userId, @source, @now) ON CONFLICT (group_name, user_id) DO NOTHING",
                new { group, userId, source, now }, transaction);
        }

        await transaction.CommitAsync(cancellationToken);
        changes.Publish(new Change(ChangeKind, userId));
        return kept;
    }

    /// <summary>The caller a user id stands for, with groups; null when the user is gone or disabled.</summary>
    public async Task<Caller?> LoadCallerAsync(string userId, string? apiKeyId, KeyScope? scope, CancellationToken cancellationToken)
    {
        var user = await FindByIdAsync(userId, cancellationToken);
        if (user is null || user.DisabledAt is not null)
        {
            return null;
        }

        return new Caller(user.Id, user.Name, user.Role, apiKeyId, user.Email)
        {
            Groups = await GroupsOfAsync(user.Id, cancellationToken),
            DisplayName = user.DisplayName,
            Scope = scope,
            Claims = user.ClaimMap,
        };
    }
    // ---- Administration (users, groups): the admin API's writes. ----

    /// <summary>A change to a user; null fields stay as they are.</summary>
    internal sealed record UserUpdate
    {
        public string? Role { get; init; }
        public string? Email { get; init; }
        public string? DisplayName { get; init; }
        public bool? Disabled { get; init; }
        public string? PasswordHash { get; init; }
    }

    /// <summary>
    /// Applies <paramref name="update"/>. Demoting or disabling the last active admin is refused
    /// (409 <c>last_admin</c>) inside the same statement, so two admins cannot demote each other at once.
    /// Disabling, a role change or a new password bumps <c>session_version</c> (every session ends).
    /// </summary>
    public async Task<UserRecord> UpdateAsync(UserRecord user, UserUpdate update, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        var now = time.GetUtcNow().ToStore();
        var losesAdmin = user.Role == Caller.AdminRole && user.DisabledAt is null &&
                         ((update.Role is { } r && r != Caller.AdminRole) || update.Disabled == true);
        var endsSessions = update.Disabled == true || (update.Role is not null && update.Role != user.Role) || update.PasswordHash is not null;
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var changed = await connection.ExecuteAsync(
            $"""
            UPDATE users SET
                role = COALESCE(@Role, role),
                email = COALESCE(@Email, email),
                display_name = COALESCE(@DisplayName, display_name),
                disabled_at = CASE WHEN @disable = 1 THEN COALESCE(disabled_at, @now) WHEN @disable = 0 THEN NULL ELSE disabled_at END,
                password_hash = COALESCE(@PasswordHash, password_hash),
                password_changed_at = CASE WHEN @PasswordHash IS NULL THEN password_changed_at ELSE @now END,
                failed_sign_ins = CASE WHEN @disable = 0 THEN 0 ELSE failed_sign_ins END,
                locked_until = CASE WHEN @disable = 0 THEN NULL ELSE locked_until END,
                session_version = session_version + @bump,
                updated_at = @now
            WHERE id = @id {(losesAdmin ? LastAdminGuard : "")}
            """,
            new
            {
                id = user.Id,
                update.Role,
                update.Email,
                update.DisplayName,
                update.PasswordHash,
                now,
                disable = update.Disabled switch { true => 1, false => 0, null => -1 },
                bump = endsSessions ? 1 : 0,
                admin = Caller.AdminRole,
            },
            transaction);
        if (changed == 0)
        {
            throw LastAdmin(user.Name, update.Disabled == true ? "disable" : "demote");
        }

        if (audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(cancellationToken);

        changes.Publish(new Change(ChangeKind, user.Id));
        return (await FindByIdAsync(user.Id, cancellationToken))!;
    }

    /// <summary>Deletes a user, their keys, memberships and grants. The last active admin cannot be deleted.</summary>
    public async Task<bool> DeleteAsync(UserRecord user, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var losesAdmin = user.Role == Caller.AdminRole && user.DisabledAt is null;
        await connection.ExecuteAsync("DELETE FROM grants WHERE principal_kind = 'user' AND principal = @id", new { id = user.Id }, transaction);
        await connection.ExecuteAsync("DELETE FROM rights WHERE principal_kind = 'user' AND principal = @id", new { id = user.Id }, transaction);
        await connection.ExecuteAsync("DELETE FROM api_keys WHERE user_id = @id", new { id = user.Id }, transaction);
        await connection.ExecuteAsync("DELETE FROM group_members WHERE user_id = @id", new { id = user.Id }, transaction);
        var deleted = await connection.ExecuteAsync(
            $"DELETE FROM users WHERE id = @id {(losesAdmin ? LastAdminGuard : "")}", new { id = user.Id, admin = Caller.AdminRole }, transaction);
        if (deleted == 0)
        {
            await transaction.RollbackAsync(cancellationToken);
            if (losesAdmin)
            {
                throw LastAdmin(user.Name, "delete");
            }

            return false;
        }

        if (audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(cancellationToken);
        changes.Publish(new Change(ChangeKind, user.Id));
        changes.Publish(new Change("keys", user.Id));
        changes.Publish(new Change(GrantStore.ChangeKind, user.Id));
        return true;
    }

    private const string LastAdminGuard =
        "AND (SELECT COUNT(*) FROM users o WHERE o.role = @admin AND o.disabled_at IS NULL AND o.id <> @id) > 0";

    private static Api.KeywayException LastAdmin(string name, string verb) =>
        new(StatusCodes.Status409Conflict, "last_admin",
            $"'{name}' is the last active admin; Keyway will not {verb} them. Make another user an admin first ('keyway user update NAME --role admin').");

    /// <summary>A group and its members' names.</summary>
    internal sealed record GroupInfo(string Name, string? Description, DateTimeOffset CreatedAt, IReadOnlyList<GroupMember> Members);

    internal sealed record GroupMember(string User, string Source);

    public async Task<IReadOnlyList<GroupInfo>> ListGroupsAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var groups = await connection.QueryAsync<(string Name, string? Description, long CreatedAt)>("SELECT name, description, created_at FROM groups ORDER BY name");
        var members = (await connection.QueryAsync<(string GroupName, string User, string Source)>(
                "SELECT m.group_name, u.name, m.source FROM group_members m JOIN users u ON u.id = m.user_id ORDER BY u.name"))
            .ToLookup(m => m.GroupName, StringComparer.Ordinal);
        return groups.Select(g => new GroupInfo(g.Name, g.Description, Storage.Time.From(g.CreatedAt),
            members[g.Name].Select(m => new GroupMember(m.User, m.Source)).ToList())).ToList();
    }

    public async Task<GroupInfo?> GetGroupAsync(string name, CancellationToken cancellationToken) =>
        (await ListGroupsAsync(cancellationToken)).FirstOrDefault(g => g.Name == name);

    /// <summary>Creates a group (or updates its description); true when it was created. <paramref name="audit"/> runs in the same transaction, told which.</summary>
    public async Task<bool> PutGroupAsync(string name, string? description, CancellationToken cancellationToken, Func<DbTransaction, bool, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var created = await connection.ExecuteAsync(
            "INSERT INTO groups (name, description, created_at) VALUES (@name, @description, @now) ON CONFLICT (name) DO NOTHING",
            new { name, description, now = time.GetUtcNow().ToStore() }, transaction) > 0;
        if (!created && description is not null)
        {
            await connection.ExecuteAsync("UPDATE groups SET description = @description WHERE name = @name", new { name, description }, transaction);
        }

        if (audit is not null)
        {
            await audit(transaction, created);
        }

        await transaction.CommitAsync(cancellationToken);
        return created;
    }

    /// <summary>Deletes a group, its memberships and the grants given to it.</summary>
    public async Task<bool> DeleteGroupAsync(string name, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await connection.ExecuteAsync("DELETE FROM grants WHERE principal_kind = 'group' AND principal = @name", new { name }, transaction);
        await connection.ExecuteAsync("DELETE FROM rights WHERE principal_kind = 'group' AND principal = @name", new { name }, transaction);
        await connection.ExecuteAsync("DELETE FROM group_members WHERE group_name = @name", new { name }, transaction);
        var deleted = await connection.ExecuteAsync("DELETE FROM groups WHERE name = @name", new { name }, transaction) > 0;
        if (deleted && audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(cancellationToken);
        if (deleted)
        {
            changes.Publish(new Change(ChangeKind, name));
            changes.Publish(new Change(GrantStore.ChangeKind, name));
        }

        return deleted;
    }

    /// <summary>Adds a user to a group by hand (source <c>manual</c>); false when they were in it already.</summary>
    /// <remarks><paramref name="audit"/> runs in the same transaction, whether or not the user was in the group already.</remarks>
    public async Task<bool> AddMemberAsync(string group, string userId, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        bool added;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            added = await connection.ExecuteAsync(
                "INSERT INTO group_members (group_name, user_id, source, created_at) VALUES (@group, @userId, 'manual', @now) ON CONFLICT (group_name, user_id) DO NOTHING",
                new { group, userId, now = time.GetUtcNow().ToStore() }, transaction) > 0;
            if (audit is not null)
            {
                await audit(transaction);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        changes.Publish(new Change(ChangeKind, userId));
        return added;
    }

    /// <summary>Removes a user from a group; <paramref name="audit"/> runs in the same transaction when they were in it.</summary>
    public async Task<bool> RemoveMemberAsync(string group, string userId, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        bool removed;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            removed = await connection.ExecuteAsync("DELETE FROM group_members WHERE group_name = @group AND user_id = @userId", new { group, userId }, transaction) > 0;
            if (removed && audit is not null)
            {
                await audit(transaction);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        changes.Publish(new Change(ChangeKind, userId));
        return removed;
    }

    // Sign-in (the identity branch): failure counting, password changes and single sign-on profiles.

    /// <summary>
    /// Counts one more consecutive failed sign-in; when <paramref name="lockFor"/> answers a period for
    /// the new count, the account is locked until then. <paramref name="audit"/> stages the failure's
    /// event, given the new count, in the same transaction. Returns the new count.
    /// </summary>
    public async Task<long> RecordFailedSignInAsync(
        string userId, Func<long, TimeSpan?> lockFor, CancellationToken cancellationToken, Func<long, DbTransaction, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        var failures = await connection.ExecuteScalarAsync<long>(
            "UPDATE users SET failed_sign_ins = failed_sign_ins + 1 WHERE id = @userId RETURNING failed_sign_ins", new { userId }, transaction);
        if (lockFor(failures) is { } period)
        {
            await connection.ExecuteAsync(
                "UPDATE users SET locked_until = @until WHERE id = @userId", new { userId, until = (time.GetUtcNow() + period).ToStore() }, transaction);
        }

        if (audit is not null)
        {
            await audit(failures, transaction);
        }

        await transaction.CommitAsync(cancellationToken);
        return failures;
    }

    /// <summary>Clears the failure count and any lock (after a successful sign-in).</summary>
    public async Task ResetFailuresAsync(string userId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await connection.ExecuteAsync(
            "UPDATE users SET failed_sign_ins = 0, locked_until = NULL WHERE id = @userId AND (failed_sign_ins <> 0 OR locked_until IS NOT NULL)",
            new { userId });
    }

    /// <summary>Ends every console session of the user, on every replica: the session version moves on.</summary>
    public async Task EndSessionsAsync(string userId, CancellationToken cancellationToken)
    {
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await connection.ExecuteAsync(
                "UPDATE users SET session_version = session_version + 1, updated_at = @now WHERE id = @userId", new { userId, now = time.GetUtcNow().ToStore() });
        }

        changes.Publish(new Change(ChangeKind, userId));
    }

    /// <summary>
    /// Stores a new password hash. With <paramref name="endSessions"/> (a password change) the session
    /// version is bumped, which ends every console session of the user; a rehash of the same password
    /// passes false. Returns the session version now in force.
    /// </summary>
    /// <remarks><paramref name="audit"/> runs in the same transaction.</remarks>
    public async Task<long> SetPasswordAsync(string userId, string passwordHash, bool endSessions, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        var now = time.GetUtcNow().ToStore();
        long version;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            version = await connection.ExecuteScalarAsync<long>(
                endSessions
                    ? "UPDATE users SET password_hash = @passwordHash, password_changed_at = @now, updated_at = @now, session_version = session_version + 1 WHERE id = @userId RETURNING session_version"
                    : "UPDATE users SET password_hash = @passwordHash WHERE id = @userId RETURNING session_version",
                new { userId, passwordHash, now }, transaction);
            if (audit is not null)
            {
                await audit(transaction);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        if (endSessions)
        {
            changes.Publish(new Change(ChangeKind, userId));
        }

        return version;
    }

    /// <summary>Updates what single sign-on says about a user (at each sign-on): email, display name, role and claims.</summary>
    public async Task UpdateProfileAsync(
        string userId, string? email, string? displayName, string role, IReadOnlyDictionary<string, string>? claims, CancellationToken cancellationToken)
    {
        var json = claims is null ? null : JsonSerializer.Serialize(claims);
        await using var connection = await database.OpenAsync(cancellationToken);
        await connection.ExecuteAsync(
            "UPDATE users SET email = @email, display_name = @displayName, role = @role, claims = @json, updated_at = @now WHERE id = @userId",
            new { userId, email, displayName, role, json, now = time.GetUtcNow().ToStore() });
        changes.Publish(new Change(ChangeKind, userId));
    }
}

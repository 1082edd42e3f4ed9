using System.Collections.Concurrent;
using System.Data.Common;
using System.Text.Json;
using Keyway.Api;
using Keyway.Environments;
using Keyway.Storage;

namespace Keyway.Resources;

/// <summary>
/// Stores resources and serves them compiled. The compiled form is cached per name and dropped
/// when the change feed says the resource changed.
/// </summary>
internal sealed class ResourceService(Database database, TimeProvider time, ChangeFeed changes)
{
    private readonly ConcurrentDictionary<string, Task<CompiledResource?>> _compiled = new(StringComparer.Ordinal);

    public void Subscribe() => changes.Changed += change =>
    {
        if (change.IsAll)
        {
            _compiled.Clear();
        }
        else if (change.Kind == "resources")
        {
            _compiled.TryRemove(change.Name, out _);
        }
    };

    /// <summary>Creates or replaces a resource. It is validated (and compiled) before anything is stored.</summary>
    public async Task<(ResourceRecord Resource, bool Created)> PutAsync(string name, ResourceDefinition definition, CancellationToken cancellationToken) =>
        (await PutAsync(name, definition, expectedVersion: null, attached: ["*"], createdBy: null, whenCreated: null, cancellationToken))!.Value;

    /// <summary>
    /// Creates or replaces a resource, if it is still at <paramref name="expectedVersion"/> (0: it must
    /// not exist yet; null: whatever it is); otherwise nothing is written and the result is null, for
    /// the caller's checks were made against another version. <paramref name="attached"/> is what the
    /// saver was allowed to attach. <paramref name="createdBy"/> is recorded on creation, and
    /// <paramref name="whenCreated"/> runs in the same transaction (the creator's grant), so both land or neither does;
    /// so does <paramref name="audit"/>, last, told the version written and whether it was created.
    /// </summary>
    /// <remarks>
    /// Replacing a resource whose base URL moves to another origin deletes its stored credentials in the
    /// same transaction: tokens minted for one API are not handed to another (people reconnect).
    /// </remarks>
    public async Task<(ResourceRecord Resource, bool Created)?> PutAsync(
        string name, ResourceDefinition definition, long? expectedVersion, IReadOnlyList<string> attached, string? createdBy,
        Func<DbConnection, DbTransaction, Task>? whenCreated, CancellationToken cancellationToken, ResourceDefinition? replacing = null,
        Func<DbTransaction, long, bool, Task>? audit = null)
    {
        ResourceCompiler.Compile(name, 0, definition);
        var now = time.GetUtcNow().ToStore();
        var config = JsonSerializer.Serialize(definition, ConfigJson.Options);
        var attachedJson = JsonSerializer.Serialize(attached);
        var createOnly = expectedVersion == 0;
        long? version;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            if (!createOnly && await connection.QuerySingleOrDefaultAsync<ResourceRow>(
                    "SELECT name, config, version, created_at, updated_at, attached FROM resources WHERE name = @name", new { name }, transaction) is { } stored
                && stored.Config == config && (expectedVersion is null || stored.Version == expectedVersion)
                && SameAttached(stored.Attached, attached))
            {
                // The same definition again, saved by someone who may attach the same secrets (an apply of unchanged
                // files): nothing is written, the version stays. A save that attaches other secrets is written.
                return (stored.ToRecord(), false);
            }

            var onConflict = createOnly
                ? "ON CONFLICT (name) DO NOTHING"
                : $"""
                   ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, config = excluded.config, attached = excluded.attached,
                       version = resources.version + 1, updated_at = excluded.updated_at
                   {(expectedVersion is null ? "" : "WHERE resources.version = @expectedVersion")}
                   """;
            version = await connection.ExecuteScalarAsync<long?>(
                $"""
                INSERT INTO resources (name, kind, config, version, created_at, updated_at, created_by, attached)
                VALUES (@name, @kind, @config, 1, @now, @now, @createdBy, @attachedJson)
                {onConflict}
                RETURNING version
                """,
                new { name, kind = definition.Kind, config, now, createdBy, attachedJson, expectedVersion = expectedVersion ?? 0 }, transaction);
            if (version is null)
            {
                return null;
            }

            if (version == 1 && whenCreated is not null)
            {
                await whenCreated(connection, transaction);
            }
            else if (version > 1 && replacing is not null && Moves(replacing, definition))
            {
                await connection.ExecuteAsync("DELETE FROM credentials WHERE resource = @name", new { name }, transaction);
                await Credentials.DPoPKeyStore.DeleteAsync(connection, transaction, "resource = @name", new { name });
            }

            if (audit is not null)
            {
                await audit(transaction, version.Value, version == 1);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        changes.Publish(new Change("resources", name));
        var record = await GetAsync(name, cancellationToken) ?? throw new InvalidOperationException("The resource vanished.");
        return (record, version == 1);
    }

    /// <summary>Whether the base URL goes to another origin (a templated one that changed counts as moved).</summary>
    internal static bool Moves(ResourceDefinition before, ResourceDefinition after)
    {
        if (before.BaseUrl == after.BaseUrl)
        {
            return false;
        }

        return !Uri.TryCreate(before.BaseUrl, UriKind.Absolute, out var a) || !Uri.TryCreate(after.BaseUrl, UriKind.Absolute, out var b) ||
               before.BaseUrl!.Contains("{{", StringComparison.Ordinal) || after.BaseUrl!.Contains("{{", StringComparison.Ordinal) ||
               Uri.Compare(a, b, UriComponents.SchemeAndServer, UriFormat.UriEscaped, StringComparison.OrdinalIgnoreCase) != 0;
    }

    public async Task<ResourceRecord?> GetAsync(string name, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<ResourceRow>(
            "SELECT name, config, version, created_at, updated_at, attached FROM resources WHERE name = @name", new { name });
        return row?.ToRecord();
    }

    public async Task<IReadOnlyList<ResourceRecord>> ListAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<ResourceRow>("SELECT name, config, version, created_at, updated_at, attached FROM resources ORDER BY name");
        return rows.Select(r => r.ToRecord()).ToList();
    }

    /// <summary>Deletes a resource, its credentials and grants; <paramref name="audit"/> runs in the same transaction when one was deleted.</summary>
    public async Task<bool> DeleteAsync(string name, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        // Its credentials go with it: nothing may refresh tokens for a resource that no longer exists.
        await connection.ExecuteAsync("DELETE FROM credentials WHERE resource = @name", new { name }, transaction);
        await Credentials.DPoPKeyStore.DeleteAsync(connection, transaction, "resource = @name", new { name });
        // And its grants: a resource created later under the same name must not inherit them.
        var grants = await connection.ExecuteAsync("DELETE FROM grants WHERE resource = @name", new { name }, transaction);
        var deleted = await connection.ExecuteAsync("DELETE FROM resources WHERE name = @name", new { name }, transaction) > 0;
        if (deleted && audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(cancellationToken);
        changes.Publish(new Change("resources", name));
        if (grants > 0)
        {
            changes.Publish(new Change(Access.GrantStore.ChangeKind, name));
        }

        return deleted;
    }

    /// <summary>The compiled resource, or a 404 problem naming it.</summary>
    public async ValueTask<CompiledResource> GetCompiledAsync(string name, CancellationToken cancellationToken)
    {
        var task = _compiled.GetOrAdd(name, n => LoadCompiledAsync(n));
        CompiledResource? resource;
        try
        {
            resource = await task.WaitAsync(cancellationToken);
        }
        catch
        {
            _compiled.TryRemove(new KeyValuePair<string, Task<CompiledResource?>>(name, task));
            throw;
        }

        if (resource is null)
        {
            _compiled.TryRemove(new KeyValuePair<string, Task<CompiledResource?>>(name, task));
            throw new KeywayException(StatusCodes.Status404NotFound, "not_found",
                $"There is no resource named '{name}'. List them with 'keyway resource list'.");
        }

        return resource;
    }

    private async Task<CompiledResource?> LoadCompiledAsync(string name)
    {
        var record = await GetAsync(name, CancellationToken.None);
        return record is null
            ? null
            : ResourceCompiler.Compile(record.Name, record.Version, record.Definition, record.Attached?.ToHashSet(StringComparer.Ordinal));
    }

    private static bool SameAttached(string? stored, IReadOnlyList<string> attached) =>
        stored is not null && new HashSet<string>(JsonSerializer.Deserialize<string[]>(stored) ?? [], StringComparer.Ordinal).SetEquals(attached);

    private sealed class ResourceRow
    {
        public string Name { get; init; } = "";
        public string Config { get; init; } = "";
        public long Version { get; init; }
        public long CreatedAt { get; init; }
        public long UpdatedAt { get; init; }
        public string? Attached { get; init; }

        public ResourceRecord ToRecord() => new(
            Name, JsonSerializer.Deserialize<ResourceDefinition>(Config, ConfigJson.Options)!, Version, Time.From(CreatedAt), Time.From(UpdatedAt),
            Attached is null ? null : JsonSerializer.Deserialize<string[]>(Attached));
    }
}

using System.Collections.Concurrent;
using System.Data.Common;
using System.Text.Json;
using Keyway.Api;
using Keyway.Environments;
using Keyway.Resources;
using Keyway.Storage;

namespace Keyway.Queries;

/// <summary>Stores saved queries and serves them compiled (cached until they change).</summary>
internal sealed class QueryService(Database database, TimeProvider time, ChangeFeed changes, ResourceService resources)
{
    private readonly ConcurrentDictionary<string, CompiledQuery> _compiled = new(StringComparer.Ordinal);

    // Bumped by every change: a query compiled from rows read before a change must not stay cached after it.
    private long _generation;

    public void Subscribe() => changes.Changed += change =>
    {
        Interlocked.Increment(ref _generation);
        if (change.Kind == "queries")
        {
            _compiled.TryRemove(change.Name, out _);
        }
        else if (change.Kind == "resources" || change.IsAll)
        {
            // A query compiles against its resource's kind.
            _compiled.Clear();
        }
    };

    /// <summary>Creates or replaces a saved query; <paramref name="audit"/> runs in the same transaction, told whether it was created.</summary>
    public async Task<(QueryRecord Query, bool Created)> PutAsync(
        string name, QueryDefinition definition, CancellationToken cancellationToken, Func<DbTransaction, bool, Task>? audit = null)
    {
        var resource = await resources.GetCompiledAsync(definition.Resource ?? "", cancellationToken);
        CompiledQuery.Compile(name, 0, definition, resource.IsGraphQL);
        var now = time.GetUtcNow().ToStore();
        long version;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            var config = JsonSerializer.Serialize(definition, ConfigJson.Options);
            if (await connection.QuerySingleOrDefaultAsync<Row>(
                    "SELECT name, config, version, created_at, updated_at FROM queries WHERE name = @name", new { name }, transaction) is { } stored
                && stored.Config == config)
            {
                // The same definition again (an apply of unchanged files): nothing is written, the version stays.
                return (ToRecord(stored), false);
            }

            version = await connection.ExecuteScalarAsync<long>(
                """
                INSERT INTO queries (name, resource, config, version, created_at, updated_at) VALUES (@name, @resource, @config, 1, @now, @now)
                ON CONFLICT (name) DO UPDATE SET resource = excluded.resource, config = excluded.config,
                    version = queries.version + 1, updated_at = excluded.updated_at
                RETURNING version
                """,
                new { name, resource = definition.Resource, config, now }, transaction);
            if (audit is not null)
            {
                await audit(transaction, version == 1);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        changes.Publish(new Change("queries", name));
        return ((await GetAsync(name, cancellationToken))!, version == 1);
    }

    public async Task<QueryRecord?> GetAsync(string name, CancellationToken cancellationToken) =>
        (await QueryAsync("WHERE name = @name", new { name }, cancellationToken)) is [var query] ? query : null;

    public Task<IReadOnlyList<QueryRecord>> ListAsync(string? resource, CancellationToken cancellationToken) =>
        QueryAsync("WHERE @resource IS NULL OR resource = @resource ORDER BY name", new { resource }, cancellationToken);

    /// <summary>Deletes a saved query; <paramref name="audit"/> runs in the same transaction when one was deleted.</summary>
    public async Task<bool> DeleteAsync(string name, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        bool deleted;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            deleted = await connection.ExecuteAsync("DELETE FROM queries WHERE name = @name", new { name }, transaction) > 0;
            if (deleted && audit is not null)
            {
                await audit(transaction);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        changes.Publish(new Change("queries", name));
        return deleted;
    }

    public async Task<(CompiledQuery Query, CompiledResource Resource)> GetCompiledAsync(string name, CancellationToken cancellationToken)
    {
        if (!_compiled.TryGetValue(name, out var query))
        {
            var generation = Interlocked.Read(ref _generation);
            var record = await GetAsync(name, cancellationToken) ?? throw new KeywayException(StatusCodes.Status404NotFound, "not_found",
                $"There is no query named '{name}'. List them with 'keyway query list'.");
            var owner = await resources.GetCompiledAsync(record.Definition.Resource!, cancellationToken);
            query = CompiledQuery.Compile(record.Name, record.Version, record.Definition, owner.IsGraphQL);
            _compiled[name] = query;
            if (Interlocked.Read(ref _generation) != generation)
            {
                // A change arrived while this was loading (from another replica, the window is real): do not keep it.
                _compiled.TryRemove(new KeyValuePair<string, CompiledQuery>(name, query));
            }
        }

        return (query, await resources.GetCompiledAsync(query.Definition.Resource!, cancellationToken));
    }

    private async Task<IReadOnlyList<QueryRecord>> QueryAsync(string where, object parameters, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<Row>($"SELECT name, config, version, created_at, updated_at FROM queries {where}", parameters);
        return rows.Select(ToRecord).ToList();
    }

    private static QueryRecord ToRecord(Row r) => new(
        r.Name, r.Version, Time.From(r.CreatedAt), Time.From(r.UpdatedAt), JsonSerializer.Deserialize<QueryDefinition>(r.Config, ConfigJson.Options)!);

    private sealed class Row
    {
        public string Name { get; init; } = "";
        public string Config { get; init; } = "";
        public long Version { get; init; }
        public long CreatedAt { get; init; }
        public long UpdatedAt { get; init; }
    }
}

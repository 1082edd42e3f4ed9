using System.Text;
using Keyway.Storage;

namespace Keyway.Audit;

/// <summary>
/// Which events to read. <see cref="Action"/> ending in <c>.</c> (or <c>.*</c>) is a prefix
/// (<c>credential.</c> matches every credential event); otherwise it is matched exactly.
/// <see cref="Actor"/> matches a user id, a user name or an API key id.
/// </summary>
internal sealed record AuditQuery
{
    public string? Actor { get; init; }
    public string? Resource { get; init; }
    public string? Action { get; init; }
    public DateTimeOffset? Since { get; init; }
    public DateTimeOffset? Until { get; init; }

    /// <summary>Only events after this sequence number (a cursor: the previous page's <c>next</c>).</summary>
    public long? After { get; init; }

    /// <summary>Only events before this sequence number: with no <see cref="After"/>, the newest page older than it (paging back).</summary>
    public long? Before { get; init; }

    public int Limit { get; init; } = 100;
}

/// <summary>Reads the audit log: filtered pages for the API, and the chain in order for verification and export.</summary>
internal sealed class AuditStore(Database database)
{
    public const int MaxLimit = 1000;

    private const string Columns = "seq, id, at, actor_id, actor_name, actor_kind, key_id, action, outcome, resource, environment, target, detail, prev_hash, hash";

    /// <summary>
    /// Events matching <paramref name="query"/>, oldest first. With a cursor (<see cref="AuditQuery.After"/>)
    /// the page starts right after it; without one it is the newest <see cref="AuditQuery.Limit"/> events.
    /// </summary>
    public async Task<IReadOnlyList<AuditEvent>> QueryAsync(AuditQuery query, CancellationToken cancellationToken)
    {
        var (sql, parameters) = Select(query);
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = (await connection.QueryAsync<AuditEvent>(sql, parameters)).ToList();
        if (query.After is null)
        {
            rows.Reverse();
        }

        return rows;
    }

    /// <summary>The statement <see cref="QueryAsync"/> runs for <paramref name="query"/> (the index tests explain it).</summary>
    internal static (string Sql, SqlParameters Parameters) Select(AuditQuery query)
    {
        var sql = new StringBuilder($"SELECT {Columns} FROM audit_events WHERE 1 = 1");
        var parameters = new SqlParameters();
        if (!string.IsNullOrEmpty(query.Actor))
        {
            sql.Append(" AND (actor_id = @actor OR actor_name = @actor OR key_id = @actor)");
            parameters.Add("actor", query.Actor);
        }

        if (!string.IsNullOrEmpty(query.Resource))
        {
            sql.Append(" AND resource = @resource");
            parameters.Add("resource", query.Resource);
        }

        if (!string.IsNullOrEmpty(query.Action))
        {
            var action = query.Action.EndsWith(".*", StringComparison.Ordinal) ? query.Action[..^1] : query.Action;
            if (action.EndsWith('.'))
            {
                sql.Append(@" AND action LIKE @action ESCAPE '\'");
                parameters.Add("action", action.Replace(@"\", @"\\", StringComparison.Ordinal).Replace("%", @"\%", StringComparison.Ordinal)
                    .Replace("_", @"\_", StringComparison.Ordinal) + "%");
            }
            else
            {
                sql.Append(" AND action = @action");
                parameters.Add("action", action);
                if (action != AuditEntries.RunAction)
                {
                    // Repeats the partial index's condition as text: SQLite plans before it sees the
                    // parameter, so it cannot prove @action <> 'run' itself (schema 8).
                    sql.Append(" AND action <> '" + AuditEntries.RunAction + "'");
                }
            }
        }

        if (query.Since is { } since)
        {
            sql.Append(" AND at >= @since");
            parameters.Add("since", since.ToStore());
        }

        if (query.Until is { } until)
        {
            sql.Append(" AND at < @until");
            parameters.Add("until", until.ToStore());
        }

        if (query.Before is { } before)
        {
            sql.Append(" AND seq < @before");
            parameters.Add("before", before);
        }

        if (query.After is { } after)
        {
            sql.Append(" AND seq > @after ORDER BY seq LIMIT @limit");
            parameters.Add("after", after);
        }
        else
        {
            sql.Append(" ORDER BY seq DESC LIMIT @limit");
        }

        parameters.Add("limit", Math.Clamp(query.Limit, 1, MaxLimit));
        return (sql.ToString(), parameters);
    }

    /// <summary>The chain from <paramref name="after"/> on, in order, one page at a time.</summary>
    public async Task<IReadOnlyList<AuditEvent>> PageAsync(long after, int size, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return (await connection.QueryAsync<AuditEvent>(
            $"SELECT {Columns} FROM audit_events WHERE seq > @after ORDER BY seq LIMIT @size", new { after, size })).ToList();
    }

    /// <summary>The event whose hash is <paramref name="hash"/>, if one is stored.</summary>
    public async Task<AuditEvent?> FindByHashAsync(string hash, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await connection.QueryFirstOrDefaultAsync<AuditEvent>(
            $"SELECT {Columns} FROM audit_events WHERE hash = @hash ORDER BY seq LIMIT 1", new { hash });
    }

    public async Task<AuditEvent?> FindBySeqAsync(long seq, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await connection.QuerySingleOrDefaultAsync<AuditEvent>($"SELECT {Columns} FROM audit_events WHERE seq = @seq", new { seq });
    }

    /// <summary>The newest retention checkpoint (docs/audit.md, "Retention and checkpoints"), or null before the first prune.</summary>
    public async Task<AuditCheckpoint?> NewestCheckpointAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await connection.QueryFirstOrDefaultAsync<AuditCheckpoint>(
            "SELECT number, seq, event_id, hash, at, made_at, traffic_before, changes_before, pruned, kept, kept_digest, archive, seal, seal_key " +
            "FROM audit_checkpoints ORDER BY number DESC LIMIT 1");
    }

    /// <summary>The chain head: the newest event's seq, id and hash as the writer last recorded them.</summary>
    public async Task<AuditHead> HeadAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await connection.QuerySingleAsync<AuditHead>("SELECT seq, event_id, hash, seal, seal_key FROM audit_head WHERE id = 1");
    }
}

/// <summary>The chain head as stored.</summary>
internal sealed record AuditHead
{
    public long Seq { get; init; }
    public string? EventId { get; init; }
    public string Hash { get; init; } = "";

    /// <summary>The head's seal (<see cref="AuditSeal"/>), null before the first write that sealed it.</summary>
    public string? Seal { get; init; }

    /// <summary>The id of the master key the seal was made under.</summary>
    public string? SealKey { get; init; }
}

using System.Data.Common;
using System.Globalization;
using System.Text;
using Keyway.Access;
using Keyway.Secrets;
using Keyway.Storage;

namespace Keyway.Audit;

/// <summary>
/// The audit outbox (<c>audit_outbox</c>, schema 15): where a change's event waits for the chain. A
/// change inserts its event here in its own transaction (<see cref="IAuditLog.StageAsync"/>), so the
/// change and its event commit together or not at all, and an acknowledged change has its event even
/// if the process is killed the next moment. The audit writer takes the rows under its append lock,
/// chains them (seq, previous hash, hash, the head's seal) and deletes them in the same transaction.
/// The detail is stored already redacted: the table never holds a secret value.
/// </summary>
internal static class AuditOutbox
{
    private const string InsertSql =
        """
        INSERT INTO audit_outbox (id, at, actor_id, actor_name, actor_kind, key_id, action, outcome, resource, environment, target, detail)
        VALUES (@Id, @At, @ActorId, @ActorName, @ActorKind, @KeyId, @Action, @Outcome, @Resource, @Environment, @Target, @Detail)
        """;

    /// <summary>Inserts <paramref name="entry"/>, stamped <paramref name="at"/>, in <paramref name="transaction"/>.</summary>
    public static Task StageAsync(DbTransaction transaction, AuditEntry entry, long at, Redactor redactor)
    {
        var connection = transaction.Connection ?? throw new InvalidOperationException("The transaction has no connection: it was committed or rolled back.");
        var row = new AuditRow { Entry = entry };
        var detail = entry.Run is { } run ? AuditRedaction.Serialize(run, redactor) : AuditRedaction.Serialize(entry.Detail, redactor);
        return connection.ExecuteAsync(InsertSql, new StagedRow
        {
            Id = AuditLog.NewId(at),
            At = at,
            ActorId = row.ActorId,
            ActorName = row.ActorName,
            ActorKind = row.ActorKindName,
            KeyId = row.KeyId,
            Action = entry.Action,
            Outcome = entry.Outcome,
            Resource = entry.Resource,
            Environment = entry.Environment,
            Target = entry.Target,
            Detail = detail,
        }, transaction);
    }

    /// <summary>Whether any event waits (a read outside the append lock, so an idle poll takes no write lock).</summary>
    public static async Task<bool> AnyAsync(Database database, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM (SELECT 1 FROM audit_outbox LIMIT 1) o") > 0;
    }

    /// <summary>Up to <paramref name="limit"/> waiting events, in the order they were staged (the writer holds the append lock).</summary>
    public static Task<IReadOnlyList<StagedRow>> TakeAsync(DbConnection connection, DbTransaction transaction, int limit) =>
        connection.QueryAsync<StagedRow>(
            """
            SELECT id, at, actor_id, actor_name, actor_kind, key_id, action, outcome, resource, environment, target, detail
            FROM audit_outbox ORDER BY n LIMIT @limit
            """,
            new { limit }, transaction);

    /// <summary>Deletes the events just chained, by id (never by range: a row committed meanwhile with a lower id must stay).</summary>
    public static async Task DeleteAsync(DbConnection connection, DbTransaction transaction, IReadOnlyList<StagedRow> rows)
    {
        const int PerStatement = 100;
        for (var offset = 0; offset < rows.Count; offset += PerStatement)
        {
            var count = Math.Min(PerStatement, rows.Count - offset);
            var sql = new StringBuilder("DELETE FROM audit_outbox WHERE id IN (");
            var parameters = new SqlParameters();
            for (var i = 0; i < count; i++)
            {
                var name = "p" + i.ToString(CultureInfo.InvariantCulture);
                sql.Append(i == 0 ? "@" : ", @").Append(name);
                parameters.Add(name, rows[offset + i].Id);
            }

            await connection.ExecuteAsync(sql.Append(')').ToString(), parameters, transaction);
        }
    }

    /// <summary>A waiting event as stored.</summary>
    internal sealed class StagedRow
    {
        public string Id { get; init; } = "";
        public long At { get; init; }
        public string ActorId { get; init; } = "";
        public string ActorName { get; init; } = "";
        public string ActorKind { get; init; } = "";
        public string? KeyId { get; init; }
        public string Action { get; init; } = "";
        public string Outcome { get; init; } = "";
        public string? Resource { get; init; }
        public string? Environment { get; init; }
        public string? Target { get; init; }
        public string? Detail { get; init; }

        /// <summary>
        /// The row the writer chains: an entry whose actor gives back the stored actor columns (the role and
        /// e-mail are not stored, and not hashed), with the stored, already redacted detail.
        /// </summary>
        public AuditRow ToRow()
        {
            var actor = ActorKind == Keyway.Audit.ActorKind.System
                ? null
                : new Caller(ActorId, ActorName, Caller.MemberRole, ActorKind == Keyway.Audit.ActorKind.Key ? KeyId : null, null);
            return new AuditRow
            {
                Entry = new AuditEntry(Action, Outcome) { Actor = actor, Resource = Resource, Environment = Environment, Target = Target },
                Id = Id,
                At = At,
                Detail = Detail,
                Staged = true,
            };
        }
    }
}

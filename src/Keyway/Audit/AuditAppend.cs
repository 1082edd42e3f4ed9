using System.Buffers;
using System.Data;
using System.Data.Common;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Keyway.Secrets;
using Keyway.Storage;

namespace Keyway.Audit;

/// <summary>
/// One event on its way into <c>audit_events</c>: the queued entry and what the writer adds to it. The
/// actor's columns are read from the entry's caller, so a row holds no more than the entry already does.
/// </summary>
internal struct AuditRow
{
    public AuditEntry Entry;
    public long Seq;
    public string Id;
    public long At;
    public string? Detail;
    public string PrevHash;
    public string Hash;

    public readonly string ActorId => Entry.Actor?.UserId ?? ActorKind.System;
    public readonly string ActorName => Entry.Actor?.UserName ?? "keyway";

    public readonly string ActorKindName =>
        Entry.Actor is not { } actor ? ActorKind.System : actor.ApiKeyId is null ? ActorKind.User : ActorKind.Key;

    public readonly string? KeyId => Entry.Actor?.ApiKeyId;
}

/// <summary>
/// Serializes, redacts and hashes rows for the audit writer into buffers it keeps from event to event,
/// so an event costs its stored strings (id, detail, hash) and little else. Not thread-safe: the
/// writer uses its one encoder under its write lock.
/// </summary>
internal sealed class AuditEncoder : IDisposable
{
    private readonly ArrayBufferWriter<byte> _detail = new(512);
    private readonly Utf8JsonWriter _detailWriter;
    private readonly ArrayBufferWriter<byte> _canonical = new(1024);
    private readonly Utf8JsonWriter _canonicalWriter;

    public AuditEncoder()
    {
        _detailWriter = new Utf8JsonWriter(_detail);
        _canonicalWriter = new Utf8JsonWriter(_canonical);
    }

    /// <summary>Sets <paramref name="row"/>'s detail (redacted JSON text) and its hash; its other fields must be set.</summary>
    public void Encode(ref AuditRow row, Redactor redactor)
    {
        _detail.ResetWrittenCount();
        _detailWriter.Reset();
        var unchanged = false;
        row.Detail = AuditRedaction.Write(_detailWriter, row.Entry)
            ? AuditRedaction.Redact(_detail.WrittenSpan, redactor, out unchanged)
            : null;

        _canonical.ResetWrittenCount();
        _canonicalWriter.Reset();
        var entry = row.Entry;
        AuditHash.WriteCanonical(_canonicalWriter, row.Seq, row.Id, row.At, row.ActorId, row.ActorName, row.ActorKindName, row.KeyId,
            entry.Action, entry.Outcome, entry.Resource, entry.Environment, entry.Target, row.Detail,
            unchanged ? _detail.WrittenSpan : default, row.PrevHash);
        _canonicalWriter.Flush();
        row.Hash = AuditHash.Hex(_canonical.WrittenSpan);
    }

    public void Dispose()
    {
        _detailWriter.Dispose();
        _canonicalWriter.Dispose();
    }
}

/// <summary>
/// Inserts rows into <c>audit_events</c> with commands created once per batch and bound again for each
/// statement. On PostgreSQL a statement is a multi-row <c>INSERT … VALUES (…), (…)</c> of up to
/// <see cref="PostgresRowsPerStatement"/> rows: one round trip per chunk instead of one per event. On
/// SQLite there is no round trip to save, and Microsoft.Data.Sqlite looks each parameter up by name on
/// every execution, so a statement's cost grows with its parameter count times its rows: one prepared
/// single-row statement, executed per row, is the fastest there (measured: docs/benchmarks.md).
/// </summary>
internal static class AuditInsert
{
    /// <summary>
    /// Rows per statement on PostgreSQL: 64 × 15 = 960 parameters, far below its 65,535, and a statement
    /// small enough that parsing it once per batch costs little.
    /// </summary>
    public const int PostgresRowsPerStatement = 64;

    private const int Columns = 15;

    private const string Insert =
        "INSERT INTO audit_events (seq, id, at, actor_id, actor_name, actor_kind, key_id, action, outcome, resource, environment, target, detail, prev_hash, hash) VALUES ";

    // The statement text for each row count, per store, built once.
    private static readonly string?[] s_sqlite = new string?[2];
    private static readonly string?[] s_postgres = new string?[PostgresRowsPerStatement + 1];

    /// <summary>The prepared single-row insert on SQLite, kept by the writer for its connection's life.</summary>
    public static DbCommand SqliteCommand(DbConnection connection) => Command(connection, null, StoreKind.Sqlite, 1);

    /// <summary>
    /// SQLite: one execution of the prepared single-row <paramref name="command"/> per row (measured faster
    /// than multi-row statements with Microsoft.Data.Sqlite, whose cost per execution grows with the parameters).
    /// </summary>
    public static async Task InsertSqliteAsync(DbCommand command, DbTransaction transaction, ReadOnlyMemory<AuditRow> rows,
        CancellationToken cancellationToken)
    {
        command.Transaction = transaction;
        for (var i = 0; i < rows.Length; i++)
        {
            Bind(command, rows.Span.Slice(i, 1));
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
    }

    /// <summary>PostgreSQL: statements of <see cref="PostgresRowsPerStatement"/> rows, one round trip each.</summary>
    public static async Task InsertPostgresAsync(DbConnection connection, DbTransaction transaction, ReadOnlyMemory<AuditRow> rows,
        CancellationToken cancellationToken)
    {
        const StoreKind kind = StoreKind.Postgres;
        DbCommand? full = null;
        try
        {
            for (var offset = 0; offset < rows.Length; offset += PostgresRowsPerStatement)
            {
                var count = Math.Min(PostgresRowsPerStatement, rows.Length - offset);
                if (count == PostgresRowsPerStatement)
                {
                    full ??= Command(connection, transaction, kind, count);
                    Bind(full, rows.Span.Slice(offset, count));
                    await full.ExecuteNonQueryAsync(cancellationToken);
                }
                else
                {
                    await using var tail = Command(connection, transaction, kind, count);
                    Bind(tail, rows.Span.Slice(offset, count));
                    await tail.ExecuteNonQueryAsync(cancellationToken);
                }
            }
        }
        finally
        {
            if (full is not null)
            {
                await full.DisposeAsync();
            }
        }
    }

    private static DbCommand Command(DbConnection connection, DbTransaction? transaction, StoreKind kind, int count)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = Sql(kind, count);
        for (var i = 0; i < count * Columns; i++)
        {
            var parameter = command.CreateParameter();
            // SQLite binds by name; Npgsql binds unnamed parameters to $1, $2, … as they are, without rewriting the SQL.
            if (kind == StoreKind.Sqlite)
            {
                parameter.ParameterName = string.Create(CultureInfo.InvariantCulture, $"@p{i}");
            }

            var column = i % Columns;
            parameter.DbType = column is 0 or 2 ? DbType.Int64 : DbType.String;
            command.Parameters.Add(parameter);
        }

        return command;
    }

    private static void Bind(DbCommand command, ReadOnlySpan<AuditRow> rows)
    {
        var parameters = command.Parameters;
        var p = 0;
        foreach (ref readonly var row in rows)
        {
            var entry = row.Entry;
            parameters[p++].Value = row.Seq;
            parameters[p++].Value = row.Id;
            parameters[p++].Value = row.At;
            parameters[p++].Value = row.ActorId;
            parameters[p++].Value = row.ActorName;
            parameters[p++].Value = row.ActorKindName;
            parameters[p++].Value = (object?)row.KeyId ?? DBNull.Value;
            parameters[p++].Value = entry.Action;
            parameters[p++].Value = entry.Outcome;
            parameters[p++].Value = (object?)entry.Resource ?? DBNull.Value;
            parameters[p++].Value = (object?)entry.Environment ?? DBNull.Value;
            parameters[p++].Value = (object?)entry.Target ?? DBNull.Value;
            parameters[p++].Value = (object?)row.Detail ?? DBNull.Value;
            parameters[p++].Value = row.PrevHash;
            parameters[p++].Value = row.Hash;
        }
    }

    private static string Sql(StoreKind kind, int count)
    {
        var cache = kind == StoreKind.Sqlite ? s_sqlite : s_postgres;
        return cache[count] ??= Build(kind, count);
    }

    private static string Build(StoreKind kind, int count)
    {
        var sql = new StringBuilder(Insert, Insert.Length + count * Columns * 7);
        for (var row = 0; row < count; row++)
        {
            sql.Append(row == 0 ? "(" : ", (");
            for (var column = 0; column < Columns; column++)
            {
                var i = row * Columns + column;
                sql.Append(column == 0 ? "" : ", ");
                if (kind == StoreKind.Sqlite)
                {
                    sql.Append(CultureInfo.InvariantCulture, $"@p{i}");
                }
                else
                {
                    sql.Append(CultureInfo.InvariantCulture, $"${i + 1}");
                }
            }

            sql.Append(')');
        }

        return sql.ToString();
    }
}

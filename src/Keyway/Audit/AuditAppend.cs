using System.Buffers;
using System.Data;
using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Keyway.Secrets;
using Keyway.Storage;
using Microsoft.Data.Sqlite;
using SQLitePCL;

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

    /// <summary>Taken from the outbox: <see cref="Detail"/> is already set, redacted when it was staged.</summary>
    public bool Staged;

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
    // The largest detail escaped by AuditHash's table; a larger one takes System.Text.Json's escaper.
    private const int MaxTableEscaped = 8 * 1024;

    private readonly ArrayBufferWriter<byte> _detail = new(512);
    private readonly Utf8JsonWriter _detailWriter;
    private readonly ArrayBufferWriter<byte> _detailString = new(1024);
    private readonly ArrayBufferWriter<byte> _canonical = new(1024);
    private readonly Utf8JsonWriter _canonicalWriter;
    private readonly IncrementalHash _sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

    public AuditEncoder()
    {
        _detailWriter = new Utf8JsonWriter(_detail);
        _canonicalWriter = new Utf8JsonWriter(_canonical);
    }

    /// <summary>Sets <paramref name="row"/>'s detail (redacted JSON text) and its hash; its other fields must be set.</summary>
    public void Encode(ref AuditRow row, Redactor redactor)
    {
        if (row.Staged)
        {
            Hash(ref row, default);
            return;
        }

        _detail.ResetWrittenCount();
        _detailWriter.Reset();
        var unchanged = false;
        row.Detail = AuditRedaction.Write(_detailWriter, row.Entry)
            ? AuditRedaction.Redact(_detail.WrittenSpan, redactor, out unchanged)
            : null;

        // Unredacted, the stored detail is exactly the bytes written: escape those for the canonical form
        // (a large one, rare, takes the general path rather than grow a buffer kept for every event).
        _detailString.ResetWrittenCount();
        var detailString = unchanged && _detail.WrittenCount <= MaxTableEscaped && AuditHash.WriteEscapedString(_detail.WrittenSpan, _detailString)
            ? _detailString.WrittenSpan
            : default;
        Hash(ref row, detailString);
    }

    private void Hash(ref AuditRow row, ReadOnlySpan<byte> detailString)
    {
        _canonical.ResetWrittenCount();
        _canonicalWriter.Reset();
        var entry = row.Entry;
        AuditHash.WriteCanonical(_canonicalWriter, row.Seq, row.Id, row.At, row.ActorId, row.ActorName, row.ActorKindName, row.KeyId,
            entry.Action, entry.Outcome, entry.Resource, entry.Environment, entry.Target, row.Detail, detailString, row.PrevHash);
        _canonicalWriter.Flush();
        row.Hash = AuditHash.Hex(_sha256, _canonical.WrittenSpan);
    }

    public void Dispose()
    {
        _detailWriter.Dispose();
        _canonicalWriter.Dispose();
        _sha256.Dispose();
    }
}

/// <summary>
/// Inserts rows into <c>audit_events</c>. On PostgreSQL a statement is a multi-row
/// <c>INSERT … VALUES (…), (…)</c> of up to <see cref="PostgresRowsPerStatement"/> rows, created once per
/// batch and bound again for each chunk: one round trip per chunk instead of one per event. On SQLite
/// there is no round trip to save: <see cref="SqliteAuditAppend"/> steps one prepared single-row
/// statement per row (measured: docs/benchmarks.md).
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

    // The statement text for each row count, built once.
    private static readonly string?[] s_postgres = new string?[PostgresRowsPerStatement + 1];

    /// <summary>The single-row insert with SQLite's numbered parameters, <c>?1</c> to <c>?15</c>.</summary>
    public static readonly string SqliteSql = Build(StoreKind.Sqlite, 1);

    /// <summary>PostgreSQL: statements of <see cref="PostgresRowsPerStatement"/> rows, one round trip each.</summary>
    public static async Task InsertPostgresAsync(DbConnection connection, DbTransaction transaction, ReadOnlyMemory<AuditRow> rows,
        CancellationToken cancellationToken)
    {
        DbCommand? full = null;
        try
        {
            for (var offset = 0; offset < rows.Length; offset += PostgresRowsPerStatement)
            {
                var count = Math.Min(PostgresRowsPerStatement, rows.Length - offset);
                if (count == PostgresRowsPerStatement)
                {
                    full ??= PostgresCommand(connection, transaction, count);
                    Bind(full, rows.Span.Slice(offset, count));
                    await full.ExecuteNonQueryAsync(cancellationToken);
                }
                else
                {
                    await using var tail = PostgresCommand(connection, transaction, count);
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

    private static DbCommand PostgresCommand(DbConnection connection, DbTransaction transaction, int count)
    {
        var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = s_postgres[count] ??= Build(StoreKind.Postgres, count);
        for (var i = 0; i < count * Columns; i++)
        {
            // Npgsql binds unnamed parameters to $1, $2, … as they are, without rewriting the SQL.
            var parameter = command.CreateParameter();
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
                sql.Append(kind == StoreKind.Sqlite ? '?' : '$').Append((i + 1).ToString(CultureInfo.InvariantCulture));
            }

            sql.Append(')');
        }

        return sql.ToString();
    }
}

/// <summary>
/// The SQLite writer's prepared statements (read the chain head, insert a row, move the head), bound and
/// stepped through SQLitePCL's own API on the writer's connection, inside the transaction the writer
/// holds (<c>BEGIN IMMEDIATE</c>: the write lock is already taken, so a step never waits on another
/// writer). Microsoft.Data.Sqlite's command looks each parameter up by name, boxes each value and
/// builds a reader on every execution: that plumbing was a third of the audit writer's CPU under proxy
/// load. Text is bound as UTF-8, the database's own encoding, encoded here into one reused buffer
/// (SQLite copies it): bound as UTF-16, SQLite converted every value itself, more slowly. Not
/// thread-safe: the writer uses it under its lock.
/// </summary>
internal sealed class SqliteAuditAppend : IDisposable
{
    private const string HeadSql = "SELECT seq, hash FROM audit_head WHERE id = 1";
    private const string MoveHeadSql = "UPDATE audit_head SET seq = ?1, event_id = ?2, hash = ?3, seal = ?4, seal_key = ?5 WHERE id = 1";

    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _head;
    private readonly sqlite3_stmt _insert;
    private readonly sqlite3_stmt _moveHead;
    private byte[] _utf8 = new byte[1024];

    // What the insert's repeating parameters hold, by index (see Repeated): the string bound, BoundNull
    // for a bound NULL, or null when not known (never bound, or a bind that failed).
    private static readonly object BoundNull = new();
    private readonly object?[] _bound = new object?[16]; // by parameter number, 1 to 15

    public SqliteAuditAppend(SqliteConnection connection)
    {
        _db = connection.Handle ?? throw new InvalidOperationException("The audit writer's SQLite connection is not open.");
        _head = Prepare(HeadSql);
        _insert = Prepare(AuditInsert.SqliteSql);
        _moveHead = Prepare(MoveHeadSql);
    }

    /// <summary>The newest event's seq and hash.</summary>
    /// <exception cref="SqliteException">SQLite refused the read, or the head row is missing.</exception>
    public (long Seq, string Hash) ReadHead()
    {
        try
        {
            var rc = raw.sqlite3_step(_head);
            if (rc != raw.SQLITE_ROW)
            {
                SqliteException.ThrowExceptionForRC(rc == raw.SQLITE_DONE ? raw.SQLITE_CORRUPT : rc, _db);
            }

            return (raw.sqlite3_column_int64(_head, 0), Encoding.UTF8.GetString(raw.sqlite3_column_blob(_head, 1)));
        }
        finally
        {
            raw.sqlite3_reset(_head);
        }
    }

    /// <summary>Inserts <paramref name="rows"/>, one step each.</summary>
    /// <exception cref="SqliteException">SQLite refused a row (the writer's transaction is then rolled back).</exception>
    public void Insert(ReadOnlySpan<AuditRow> rows)
    {
        foreach (ref readonly var row in rows)
        {
            var entry = row.Entry;
            Int64(_insert, 1, row.Seq);
            Text(_insert, 2, row.Id);
            Int64(_insert, 3, row.At);
            Repeated(4, row.ActorId);
            Repeated(5, row.ActorName);
            Repeated(6, row.ActorKindName);
            Repeated(7, row.KeyId);
            Repeated(8, entry.Action);
            Repeated(9, entry.Outcome);
            Repeated(10, entry.Resource);
            Repeated(11, entry.Environment);
            Repeated(12, entry.Target);
            Text(_insert, 13, row.Detail);
            Text(_insert, 14, row.PrevHash);
            Text(_insert, 15, row.Hash);
            Step(_insert);
        }
    }

    /// <summary>Points the chain head at <paramref name="last"/>, the batch's newest row.</summary>
    public void MoveHead(in AuditRow last, string seal, string sealKey)
    {
        Int64(_moveHead, 1, last.Seq);
        Text(_moveHead, 2, last.Id);
        Text(_moveHead, 3, last.Hash);
        Text(_moveHead, 4, seal);
        Text(_moveHead, 5, sealKey);
        Step(_moveHead);
    }

    private sqlite3_stmt Prepare(string sql)
    {
        var rc = raw.sqlite3_prepare_v2(_db, sql, out var statement);
        SqliteException.ThrowExceptionForRC(rc, _db);
        return statement;
    }

    private void Step(sqlite3_stmt statement)
    {
        var rc = raw.sqlite3_step(statement);
        raw.sqlite3_reset(statement);
        if (rc != raw.SQLITE_DONE)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }

    /// <summary>
    /// Binds a column that mostly repeats from row to row (the actor, the action, the resource) only
    /// when it differs from what the insert already holds: <c>sqlite3_reset</c> keeps a statement's
    /// bindings (SQLite's own copies), and under proxy load one caller's runs on one resource differ in
    /// little but their id, time, detail and hashes. Each bind saved is a transcoding and a P/Invoke.
    /// </summary>
    private void Repeated(int index, string? value)
    {
        // Strings compare by value (ordinal), BoundNull by reference; an unknown binding equals nothing.
        var binding = (object?)value ?? BoundNull;
        if (Equals(_bound[index], binding))
        {
            return;
        }

        _bound[index] = null;
        Text(_insert, index, value);
        _bound[index] = binding;
    }

    private void Int64(sqlite3_stmt statement, int index, long value) => Check(raw.sqlite3_bind_int64(statement, index, value));

    private void Text(sqlite3_stmt statement, int index, string? value)
    {
        if (value is null)
        {
            Check(raw.sqlite3_bind_null(statement, index));
            return;
        }

        var most = Encoding.UTF8.GetMaxByteCount(value.Length);
        if (_utf8.Length < most)
        {
            _utf8 = new byte[Math.Max(most, _utf8.Length * 2)];
        }

        var length = Encoding.UTF8.GetBytes(value, _utf8);
        Check(raw.sqlite3_bind_text(statement, index, _utf8.AsSpan(0, length)));
    }

    private void Check(int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            SqliteException.ThrowExceptionForRC(rc, _db);
        }
    }

    public void Dispose()
    {
        _head.Dispose();
        _insert.Dispose();
        _moveHead.Dispose();
    }
}

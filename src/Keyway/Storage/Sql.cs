using System.Data.Common;

namespace Keyway.Storage;

/// <summary>
/// Keyway's data access over ADO.NET: SQL text with <c>@name</c> parameters taken from an object,
/// and rows mapped to objects by column name. The methods are named and shaped as Dapper's, which
/// this replaced: Dapper's static constructor registers type handlers for DataTable and the XML
/// document types, and it emits IL for every row type, which loads System.Private.Xml,
/// System.Linq.Expressions and System.Reflection.Emit (about 8 MB of resident memory). Here rows are
/// read with plain reflection, planned once per type (<see cref="SqlRows"/>); no query of Keyway's
/// is hot enough for that to matter.
/// </summary>
/// <remarks>
/// <para>Parameters (<see cref="SqlParameters.Bind"/>): the public properties of <c>param</c>, an
/// anonymous object, a record or a <see cref="SqlParameters"/>, that the SQL names as <c>@name</c>.</para>
/// <para>The connection must be open (every caller opens it through <see cref="Database.OpenAsync"/>);
/// unlike Dapper, a closed one is not opened here. Commands get the transaction, and are disposed
/// with their readers. As with Dapper, a call is cancelled only through a <see cref="SqlStatement"/>
/// that carries a token: an optional token on every method would have the analyzers (CA2016) ask
/// for one at every call, and cancelling a write half way is a decision for each caller to make.</para>
/// </remarks>
internal static class Sql
{
    /// <summary>Runs a statement; returns the number of rows it changed.</summary>
    public static Task<int> ExecuteAsync(this DbConnection connection, string sql, object? param = null, DbTransaction? transaction = null) =>
        connection.ExecuteAsync(new SqlStatement(sql, param, transaction));

    /// <inheritdoc cref="ExecuteAsync(DbConnection, string, object?, DbTransaction?)"/>
    public static async Task<int> ExecuteAsync(this DbConnection connection, SqlStatement statement)
    {
        await using var command = connection.CreateCommand(statement.Sql, statement.Parameters, statement.Transaction);
        return await command.ExecuteNonQueryAsync(statement.CancellationToken);
    }

    /// <summary>The synchronous <c>ExecuteAsync</c>, for callers that cannot await (Data Protection's key repository).</summary>
    public static int Execute(this DbConnection connection, string sql, object? param = null, DbTransaction? transaction = null)
    {
        using var command = connection.CreateCommand(sql, param, transaction);
        return command.ExecuteNonQuery();
    }

    /// <summary>The first column of the first row as <typeparamref name="T"/>; default when there is no row or it is NULL.</summary>
    public static Task<T?> ExecuteScalarAsync<T>(this DbConnection connection, string sql, object? param = null, DbTransaction? transaction = null) =>
        connection.ExecuteScalarAsync<T>(new SqlStatement(sql, param, transaction));

    /// <inheritdoc cref="ExecuteScalarAsync{T}(DbConnection, string, object?, DbTransaction?)"/>
    public static async Task<T?> ExecuteScalarAsync<T>(this DbConnection connection, SqlStatement statement)
    {
        await using var command = connection.CreateCommand(statement.Sql, statement.Parameters, statement.Transaction);
        return SqlRows.Scalar<T>(await command.ExecuteScalarAsync(statement.CancellationToken));
    }

    /// <summary>Every row, mapped to <typeparamref name="T"/> (see <see cref="SqlRows"/>).</summary>
    public static Task<IReadOnlyList<T>> QueryAsync<T>(this DbConnection connection, string sql, object? param = null, DbTransaction? transaction = null) =>
        connection.QueryAsync<T>(new SqlStatement(sql, param, transaction));

    /// <inheritdoc cref="QueryAsync{T}(DbConnection, string, object?, DbTransaction?)"/>
    public static async Task<IReadOnlyList<T>> QueryAsync<T>(this DbConnection connection, SqlStatement statement)
    {
        await using var command = connection.CreateCommand(statement.Sql, statement.Parameters, statement.Transaction);
        await using var reader = await command.ExecuteReaderAsync(statement.CancellationToken);
        var rows = new List<T>();
        if (reader.FieldCount == 0)
        {
            return rows;
        }

        var read = SqlRows.Reader<T>(reader);
        while (await reader.ReadAsync(statement.CancellationToken))
        {
            rows.Add(read(reader));
        }

        return rows;
    }

    /// <summary>The synchronous <c>QueryAsync</c>, for callers that cannot await (Data Protection's key repository).</summary>
    public static IReadOnlyList<T> Query<T>(this DbConnection connection, string sql, object? param = null, DbTransaction? transaction = null)
    {
        using var command = connection.CreateCommand(sql, param, transaction);
        using var reader = command.ExecuteReader();
        var rows = new List<T>();
        if (reader.FieldCount == 0)
        {
            return rows;
        }

        var read = SqlRows.Reader<T>(reader);
        while (reader.Read())
        {
            rows.Add(read(reader));
        }

        return rows;
    }

    /// <summary>The one row; <see cref="InvalidOperationException"/> when there is none or more than one.</summary>
    public static async Task<T> QuerySingleAsync<T>(this DbConnection connection, string sql, object? param = null, DbTransaction? transaction = null) =>
        (await QueryOneAsync<T>(connection, new SqlStatement(sql, param, transaction), Expect.One))!;

    /// <inheritdoc cref="QuerySingleAsync{T}(DbConnection, string, object?, DbTransaction?)"/>
    public static async Task<T> QuerySingleAsync<T>(this DbConnection connection, SqlStatement statement) =>
        (await QueryOneAsync<T>(connection, statement, Expect.One))!;

    /// <summary>The one row, or default when there is none; <see cref="InvalidOperationException"/> when there is more than one.</summary>
    public static Task<T?> QuerySingleOrDefaultAsync<T>(this DbConnection connection, string sql, object? param = null, DbTransaction? transaction = null) =>
        QueryOneAsync<T>(connection, new SqlStatement(sql, param, transaction), Expect.AtMostOne);

    /// <inheritdoc cref="QuerySingleOrDefaultAsync{T}(DbConnection, string, object?, DbTransaction?)"/>
    public static Task<T?> QuerySingleOrDefaultAsync<T>(this DbConnection connection, SqlStatement statement) =>
        QueryOneAsync<T>(connection, statement, Expect.AtMostOne);

    /// <summary>The first row, or default when there is none.</summary>
    public static Task<T?> QueryFirstOrDefaultAsync<T>(this DbConnection connection, string sql, object? param = null, DbTransaction? transaction = null) =>
        QueryOneAsync<T>(connection, new SqlStatement(sql, param, transaction), Expect.Any);

    /// <inheritdoc cref="QueryFirstOrDefaultAsync{T}(DbConnection, string, object?, DbTransaction?)"/>
    public static Task<T?> QueryFirstOrDefaultAsync<T>(this DbConnection connection, SqlStatement statement) =>
        QueryOneAsync<T>(connection, statement, Expect.Any);

    /// <summary>
    /// A command for <paramref name="sql"/> with its parameters bound and the transaction attached,
    /// for a caller that reads the rows itself. The caller disposes it, after its reader.
    /// </summary>
    public static DbCommand CreateCommand(this DbConnection connection, string sql, object? param = null, DbTransaction? transaction = null)
    {
        var command = connection.CreateCommand();
        try
        {
            command.CommandText = sql;
            command.Transaction = transaction;
            if (param is not null)
            {
                SqlParameters.Bind(command, param);
            }

            return command;
        }
        catch
        {
            command.Dispose();
            throw;
        }
    }

    private enum Expect
    {
        One,
        AtMostOne,
        Any,
    }

    private static async Task<T?> QueryOneAsync<T>(DbConnection connection, SqlStatement statement, Expect expect)
    {
        await using var command = connection.CreateCommand(statement.Sql, statement.Parameters, statement.Transaction);
        await using var reader = await command.ExecuteReaderAsync(statement.CancellationToken);
        if (reader.FieldCount == 0 || !await reader.ReadAsync(statement.CancellationToken))
        {
            return expect == Expect.One
                ? throw new InvalidOperationException($"The query returned no row; exactly one {SqlRows.Name(typeof(T))} was expected.")
                : default;
        }

        var row = SqlRows.Reader<T>(reader)(reader);
        if (expect != Expect.Any && await reader.ReadAsync(statement.CancellationToken))
        {
            throw new InvalidOperationException($"The query returned more than one row; at most one {SqlRows.Name(typeof(T))} was expected.");
        }

        return row;
    }
}

/// <summary>
/// SQL with its parameters, the transaction it runs in and the token that cancels it: what a call
/// that may be cancelled passes instead of the plain arguments (Dapper's <c>CommandDefinition</c>).
/// </summary>
internal readonly struct SqlStatement(string sql, object? parameters = null, DbTransaction? transaction = null, CancellationToken cancellationToken = default)
{
    public string Sql { get; } = sql;

    /// <summary>An object whose properties are the parameters, or a <see cref="SqlParameters"/>.</summary>
    public object? Parameters { get; } = parameters;

    public DbTransaction? Transaction { get; } = transaction;

    public CancellationToken CancellationToken { get; } = cancellationToken;
}

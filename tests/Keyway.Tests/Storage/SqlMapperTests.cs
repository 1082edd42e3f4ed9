using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Storage;

/// <summary>
/// Keyway's data mapper (<see cref="Sql"/>) against real databases, both engines: what goes in as a
/// parameter, how rows come out, and what an error may say.
/// </summary>
[Trait("Category", "Integration")]
public sealed class SqlMapperTests
{
    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Columns_fill_properties_by_exact_name_then_any_case_then_without_underscores(StoreKind kind)
    {
        await using var scratch = await ThingsAsync(kind);
        await using var connection = await scratch.Database.OpenAsync(CancellationToken.None);

        var thing = await connection.QuerySingleAsync<ThingRow>(
            """SELECT 1 AS "CODE", 2 AS "Code", name AS "NAME", created_at, note, level, flag, 'ignored' AS nobody FROM things WHERE id = 1""");

        // Without regard to case first, "Code" would have gone to CODE, the first of the two.
        Assert.Equal(1, thing.CODE);
        Assert.Equal(2, thing.Code);
        Assert.Equal("first", thing.Name);
        Assert.Equal(1_700_000_000_000, thing.CreatedAt);
        Assert.Equal("kept", thing.Note); // NULL leaves the initializer's value.
        Assert.Equal(Level.High, thing.Level);
        Assert.True(thing.Flag);
        Assert.Equal("untouched", thing.Unselected);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_positional_record_is_made_with_the_constructor_whose_parameters_name_the_columns(StoreKind kind)
    {
        await using var scratch = await ThingsAsync(kind);
        await using var connection = await scratch.Database.OpenAsync(CancellationToken.None);

        var things = await connection.QueryAsync<ThingRecord>("SELECT note, created_at, name, id, 'ignored' AS nobody FROM things ORDER BY id");

        Assert.Equal(
            [new ThingRecord(1, "first", 1_700_000_000_000, null), new ThingRecord(2, "second", 1_700_000_000_001, "a note")],
            things);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_value_tuple_takes_the_columns_in_order_whatever_their_names(StoreKind kind)
    {
        await using var scratch = await ThingsAsync(kind);
        await using var connection = await scratch.Database.OpenAsync(CancellationToken.None);

        // COUNT(*) has no name here; PostgreSQL's CASE gives an integer, read as a long.
        var rows = await connection.QueryAsync<(string Name, long Count, long Big, string? Note)>(
            "SELECT name, COUNT(*), CASE WHEN id > 1 THEN 1 ELSE 0 END, MAX(note) FROM things GROUP BY id, name ORDER BY id");

        (string, long, long, string?)[] expected = [("first", 1, 0, null), ("second", 1, 1, "a note")];
        Assert.Equal(expected, rows);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_scalar_is_the_first_column_converted_and_NULL_or_no_row_is_its_default(StoreKind kind)
    {
        await using var scratch = await ThingsAsync(kind);
        await using var connection = await scratch.Database.OpenAsync(CancellationToken.None);

        Assert.Equal([1L, 2L], await connection.QueryAsync<long>("SELECT id, name FROM things ORDER BY id"));
        Assert.Equal(2, await connection.ExecuteScalarAsync<int>("SELECT COUNT(*) FROM things"));
        Assert.Equal(1L, await connection.ExecuteScalarAsync<long>("SELECT 1"));
        Assert.True(await connection.ExecuteScalarAsync<bool>("SELECT flag FROM things WHERE id = 1"));
        Assert.Equal(Level.High, await connection.ExecuteScalarAsync<Level>("SELECT level FROM things WHERE id = 1"));
        Assert.Null(await connection.ExecuteScalarAsync<long?>("SELECT id FROM things WHERE id = 99"));
        Assert.Null(await connection.ExecuteScalarAsync<string?>("SELECT note FROM things WHERE id = 1"));
        Assert.Equal([null, "a note"], await connection.QueryAsync<string?>("SELECT note FROM things ORDER BY id"));
        Assert.Equal([0L, 1L], await connection.QueryAsync<long>("SELECT flag FROM things ORDER BY id DESC"));
        Assert.Equal([1, 2, 3], await connection.ExecuteScalarAsync<byte[]>("SELECT blob FROM things WHERE id = 1"));
        Assert.Equal([[1, 2, 3]], await connection.QueryAsync<byte[]>("SELECT blob FROM things WHERE blob IS NOT NULL"));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Single_single_or_default_and_first_or_default_count_rows_as_Dapper_did(StoreKind kind)
    {
        await using var scratch = await ThingsAsync(kind);
        await using var connection = await scratch.Database.OpenAsync(CancellationToken.None);
        const string None = "SELECT name FROM things WHERE id > 99";
        const string Two = "SELECT name FROM things ORDER BY id";

        await Assert.ThrowsAsync<InvalidOperationException>(() => connection.QuerySingleAsync<string>(None));
        await Assert.ThrowsAsync<InvalidOperationException>(() => connection.QuerySingleAsync<string>(Two));
        Assert.Null(await connection.QuerySingleOrDefaultAsync<string>(None));
        await Assert.ThrowsAsync<InvalidOperationException>(() => connection.QuerySingleOrDefaultAsync<string>(Two));
        Assert.Null(await connection.QueryFirstOrDefaultAsync<ThingRow>("SELECT id FROM things WHERE id > 99"));
        Assert.Equal("first", await connection.QueryFirstOrDefaultAsync<string>(Two));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Parameters_are_the_properties_the_SQL_names_NULLs_typed_enums_as_integers_byte_arrays_as_blobs(StoreKind kind)
    {
        await using var scratch = await ThingsAsync(kind);
        await using var connection = await scratch.Database.OpenAsync(CancellationToken.None);
        var parameters = new
        {
            id = 3L,
            name = "third",
            note = (string?)null,
            level = Level.High,
            blob = new byte[] { 9, 8 },
            // Never named by the SQL, so never sent: either would be refused as a parameter.
            unused = new List<int> { 1, 2 },
            when = DateTimeOffset.UnixEpoch,
        };

        Assert.Equal(1, await connection.ExecuteAsync(
            "INSERT INTO things (id, name, created_at, note, level, flag, blob) VALUES (@id, @name, 5, @note, @level, 0, @blob)", parameters));

        var typeOf = kind == StoreKind.Sqlite ? "typeof" : "pg_typeof";
        Assert.Equal(
            kind == StoreKind.Sqlite ? ("blob", "integer") : ("bytea", "integer"),
            await connection.QuerySingleAsync<(string, string)>($"SELECT CAST({typeOf}(blob) AS TEXT), CAST({typeOf}(level) AS TEXT) FROM things WHERE id = 3"));
        Assert.Equal([9, 8], await connection.ExecuteScalarAsync<byte[]>("SELECT blob FROM things WHERE id = 3"));
        Assert.Equal(Level.High, await connection.ExecuteScalarAsync<Level>("SELECT level FROM things WHERE id = 3"));
        // A NULL string is sent as a NULL string: PostgreSQL must know its type for "@note IS NULL".
        Assert.Equal(3, await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM things WHERE @note IS NULL OR note = @note", parameters));
        Assert.Equal("third", await connection.ExecuteScalarAsync<string>("SELECT name FROM things WHERE id = @id", new { id = 3 }));

        await Assert.ThrowsAsync<NotSupportedException>(() => connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM things WHERE id IN @unused", parameters));
        await Assert.ThrowsAsync<NotSupportedException>(() => connection.ExecuteScalarAsync<long>("SELECT @when", parameters));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Parameters_added_one_by_one_keep_the_last_value_of_a_name_and_are_typed_as_declared(StoreKind kind)
    {
        await using var scratch = await ThingsAsync(kind);
        await using var connection = await scratch.Database.OpenAsync(CancellationToken.None);
        var parameters = new SqlParameters();
        parameters.Add("id", 99L);
        parameters.Add("id", 2L);
        parameters.Add<object>("key", "second");
        parameters.Add("note", (string?)null);
        parameters.AddProperties(new { limit = 5, unused = DateTimeOffset.UnixEpoch });

        var names = await connection.QueryAsync<string>(
            "SELECT name FROM things WHERE (id = @id AND name = @key) OR (@note IS NOT NULL) ORDER BY id LIMIT @limit", parameters);

        Assert.Equal(["second"], names);
    }

    [Fact]
    public async Task Two_parameters_named_alike_but_for_case_are_refused_as_Npgsql_would_give_both_one_value()
    {
        await using var scratch = await ThingsAsync(StoreKind.Sqlite);
        await using var connection = await scratch.Database.OpenAsync(CancellationToken.None);
        var parameters = new SqlParameters();
        parameters.AddProperties(new { owner = "replica-7" });
        parameters.AddProperties(new { Owner = "shared" });

        var error = await Assert.ThrowsAsync<ArgumentException>(() => connection.ExecuteScalarAsync<string>("SELECT @owner || @Owner", parameters));

        Assert.Contains("'Owner'", error.Message);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_value_that_cannot_be_converted_is_reported_by_column_and_member_never_by_value(StoreKind kind)
    {
        await using var scratch = await ThingsAsync(kind);
        await using var connection = await scratch.Database.OpenAsync(CancellationToken.None);
        var canary = "canary-" + Guid.NewGuid().ToString("N");
        await connection.ExecuteAsync("UPDATE things SET note = @canary WHERE id = 2", new { canary });

        var failures = new List<Exception>
        {
            await Assert.ThrowsAsync<InvalidCastException>(() => connection.QuerySingleAsync<NoteAsNumber>("SELECT note FROM things WHERE id = 2")),
            await Assert.ThrowsAsync<InvalidCastException>(() => connection.QuerySingleAsync<NoteRecord>("SELECT note FROM things WHERE id = 2")),
            await Assert.ThrowsAsync<InvalidCastException>(() => connection.QuerySingleAsync<(long, string)>("SELECT note, name FROM things WHERE id = 2")),
            await Assert.ThrowsAsync<InvalidCastException>(() => connection.QuerySingleAsync<Level>("SELECT note FROM things WHERE id = 2")),
            await Assert.ThrowsAsync<InvalidCastException>(() => connection.ExecuteScalarAsync<Guid>("SELECT note FROM things WHERE id = 2")),
        };

        Assert.Contains("'note'", failures[0].Message);
        Assert.Contains("NoteAsNumber.Note", failures[0].Message);
        Assert.Contains("Int64", failures[0].Message);
        Assert.Contains("'Note' of NoteRecord", failures[1].Message);
        Assert.Contains("item 1 of (Int64, String)", failures[2].Message);
        Assert.All(failures, failure =>
        {
            Assert.Null(failure.InnerException);
            Assert.DoesNotContain(canary, failure.ToString(), StringComparison.Ordinal);
        });
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Commands_run_in_the_transaction_given_and_a_cancelled_token_stops_them(StoreKind kind)
    {
        await using var scratch = await ThingsAsync(kind);
        await using var connection = await scratch.Database.OpenAsync(CancellationToken.None);
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await connection.ExecuteAsync("DELETE FROM things WHERE id = @id", new { id = 1 }, transaction);
            Assert.Equal(1, await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM things", transaction: transaction));
            await transaction.RollbackAsync();
        }

        Assert.Equal(2, await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM things"));
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            connection.ExecuteAsync(new SqlStatement("DELETE FROM things", cancellationToken: cancelled.Token)));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            connection.QueryAsync<string>(new SqlStatement("SELECT name FROM things", cancellationToken: cancelled.Token)));
        Assert.Equal(2, await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM things"));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task The_synchronous_calls_map_alike(StoreKind kind)
    {
        await using var scratch = await ThingsAsync(kind);
        await using var connection = await scratch.Database.OpenAsync(CancellationToken.None);

        Assert.Equal(1, connection.Execute("UPDATE things SET note = @note WHERE id = @id", new { id = 1, note = "sync" }));

        var rows = connection.Query<(string Name, byte[]? Blob)>("SELECT name, blob FROM things ORDER BY id");
        Assert.Equal(["first", "second"], rows.Select(r => r.Name));
        Assert.Equal([1, 2, 3], rows[0].Blob);
        Assert.Null(rows[1].Blob);
        Assert.Equal(["sync", "a note"], connection.Query<ThingRecord>("SELECT id, name, created_at, note FROM things ORDER BY id").Select(t => t.Note));
    }

    [Fact]
    public void Parameter_names_are_whole_words_after_an_at_sign()
    {
        var names = SqlParameters.ReferencedNames("SELECT @a, @ab_1,@Name2 FROM t WHERE x = @a AND j @> '{}' AND e = 'x@y'; -- @");

        Assert.Equal(["Name2", "a", "ab_1", "y"], names.Order(StringComparer.Ordinal));
        Assert.Contains("name2", names);
    }

    private static async Task<ScratchStore> ThingsAsync(StoreKind kind)
    {
        var scratch = await ScratchStore.CreateAsync(kind);
        try
        {
            await using var connection = await scratch.Database.OpenAsync(CancellationToken.None);
            var blob = kind == StoreKind.Sqlite ? "BLOB" : "BYTEA";
            await connection.ExecuteAsync(
                $"""
                CREATE TABLE things (
                    id BIGINT PRIMARY KEY, name TEXT NOT NULL, created_at BIGINT NOT NULL, note TEXT,
                    level INTEGER NOT NULL, flag BIGINT NOT NULL, blob {blob})
                """);
            await connection.ExecuteAsync(
                """
                INSERT INTO things (id, name, created_at, note, level, flag, blob) VALUES
                    (1, 'first', 1700000000000, NULL, 2, 1, @blob),
                    (2, 'second', 1700000000001, 'a note', 0, 0, NULL)
                """,
                new { blob = new byte[] { 1, 2, 3 } });
            return scratch;
        }
        catch
        {
            await scratch.DisposeAsync();
            throw;
        }
    }

    internal enum Level
    {
        Low,
        Middle,
        High,
    }

#pragma warning disable IDE1006 // CODE and Code: a column may name either.
    private sealed class ThingRow
    {
        public long CODE { get; init; }
        public long Code { get; init; }
        public string Name { get; init; } = "";
        public long CreatedAt { get; init; }
        public string? Note { get; init; } = "kept";
        public Level Level { get; private set; }
        public bool Flag { get; set; }
        public string Unselected { get; init; } = "untouched";
    }
#pragma warning restore IDE1006

    private sealed record ThingRecord(long Id, string Name, long CreatedAt, string? Note);

    private sealed class NoteAsNumber
    {
        public long Note { get; init; }
    }

    private sealed record NoteRecord(long Note);
}

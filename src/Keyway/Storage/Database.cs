using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace Keyway.Storage;

/// <summary>Which database engine holds Keyway's state.</summary>
internal enum StoreKind
{
    Sqlite,
    Postgres,
}

/// <summary>
/// Keyway's store: embedded SQLite by default, PostgreSQL to scale out. The SQL Keyway writes is
/// the common subset of both (ON CONFLICT upserts, RETURNING, BIGINT times), so one data-access
/// layer serves both; only migrations and cluster coordination differ.
/// </summary>
internal sealed class Database : IAsyncDisposable
{
    private readonly string? _sqliteConnectionString;
    // Typed as the base class, and made in a method of its own: on SQLite, Npgsql is never loaded.
    private readonly DbDataSource? _postgres;
    private readonly string? _postgresConnectionString;

    private Database(StoreKind kind, string description, string? sqliteConnectionString, string? postgresConnectionString)
    {
        Kind = kind;
        Description = description;
        _sqliteConnectionString = sqliteConnectionString;
        _postgresConnectionString = postgresConnectionString;
        _postgres = postgresConnectionString is null ? null : CreatePostgresSource(postgresConnectionString);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1859", Justification = "The base type keeps Npgsql unloaded on SQLite.")]
    private static DbDataSource CreatePostgresSource(string connectionString) => NpgsqlDataSource.Create(connectionString);

    public StoreKind Kind { get; }

    /// <summary>Where the store is, for logs: never a password.</summary>
    public string Description { get; }

    public static Database Sqlite(string path)
    {
        var builder = new SqliteConnectionStringBuilder
        {
            DataSource = path,
            Mode = SqliteOpenMode.ReadWriteCreate,
            ForeignKeys = true,
            Pooling = true,
            // Microsoft.Data.Sqlite retries SQLITE_BUSY until the command timeout: writers from
            // several requests queue up instead of failing.
            DefaultTimeout = 30,
        };
        return new Database(StoreKind.Sqlite, $"sqlite:{path}", builder.ToString(), null);
    }

    public static Database Postgres(string url)
    {
        var connectionString = PostgresUrl.ToConnectionString(url);
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        var description = $"postgres://{builder.Username}@{builder.Host}:{builder.Port}/{builder.Database}";
        return new Database(StoreKind.Postgres, description, null, connectionString);
    }

    public DbConnection CreateConnection() => Kind switch
    {
        StoreKind.Sqlite => new SqliteConnection(_sqliteConnectionString),
        _ => _postgres!.CreateConnection(),
    };

    /// <summary>A SQLite connection outside the pool, for a session whose settings must not leak to other users.</summary>
    public SqliteConnection CreateUnpooledConnection()
    {
        if (_sqliteConnectionString is null)
        {
            throw new InvalidOperationException("Unpooled connections here exist only on SQLite.");
        }

        return new SqliteConnection(new SqliteConnectionStringBuilder(_sqliteConnectionString) { Pooling = false }.ConnectionString);
    }

    /// <summary>
    /// A PostgreSQL connection of its own, outside the pool and tagged with <paramref name="applicationName"/>
    /// (visible in <c>pg_stat_activity</c>): for a session that holds state, such as <c>LISTEN</c>.
    /// </summary>
    public NpgsqlConnection CreateDedicatedConnection(string applicationName)
    {
        if (_postgresConnectionString is null)
        {
            throw new InvalidOperationException("Dedicated connections exist only on PostgreSQL.");
        }

        var builder = new NpgsqlConnectionStringBuilder(_postgresConnectionString) { ApplicationName = applicationName, Pooling = false };
        return new NpgsqlConnection(builder.ConnectionString);
    }

    public async Task<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = CreateConnection();
        try
        {
            await connection.OpenAsync(cancellationToken);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_postgres is not null)
        {
            await _postgres.DisposeAsync();
        }
        else
        {
            SqliteConnection.ClearAllPools();
        }
    }
}

/// <summary>Turns <c>postgres://user:password@host:port/db?sslmode=require</c> into an Npgsql connection string.</summary>
internal static class PostgresUrl
{
    /// <summary>Seconds to establish a connection, unless the URL says otherwise.</summary>
    public const int DefaultConnectTimeoutSeconds = 5;

    public static bool IsPostgres(string value) =>
        value.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase) ||
        value.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase);

    public static string ToConnectionString(string value)
    {
        if (!IsPostgres(value))
        {
            // Already a key=value connection string.
            return new NpgsqlConnectionStringBuilder(value).ConnectionString;
        }

        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            throw new ArgumentException("The database URL is not a valid postgres:// URL (expected postgres://user:password@host:port/database).");
        }

        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = uri.Host,
            Port = uri.IsDefaultPort || uri.Port <= 0 ? 5432 : uri.Port,
            Database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/')) is { Length: > 0 } db ? db : "keyway",
            // A database that drops packets instead of refusing holds a request no longer than this before it is
            // an outage (503 store_unavailable); Npgsql's own default is 15 s. `?Timeout=N` in the URL overrides it.
            Timeout = DefaultConnectTimeoutSeconds,
        };
        if (uri.UserInfo.Length > 0)
        {
            var parts = uri.UserInfo.Split(':', 2);
            builder.Username = Uri.UnescapeDataString(parts[0]);
            if (parts.Length == 2)
            {
                builder.Password = Uri.UnescapeDataString(parts[1]);
            }
        }

        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = pair.Split('=', 2);
            var key = Uri.UnescapeDataString(kv[0]);
            var val = kv.Length == 2 ? Uri.UnescapeDataString(kv[1]) : "";
            if (key.Equals("sslmode", StringComparison.OrdinalIgnoreCase))
            {
                builder.SslMode = Enum.Parse<SslMode>(val, ignoreCase: true);
            }
            else
            {
                builder[key] = val;
            }
        }

        return builder.ConnectionString;
    }
}

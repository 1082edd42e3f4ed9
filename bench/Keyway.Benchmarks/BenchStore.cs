using Keyway.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Keyway.Benchmarks;

/// <summary>A real SQLite store in a temporary directory, migrated; deleted on dispose.</summary>
internal sealed class BenchStore : IAsyncDisposable
{
    private readonly string _directory;

    private BenchStore(string directory, Database database)
    {
        _directory = directory;
        Database = database;
    }

    public Database Database { get; }

    public static async Task<BenchStore> CreateAsync()
    {
        var directory = Directory.CreateTempSubdirectory("keyway-bench-").FullName;
        var database = Database.Sqlite(Path.Combine(directory, "keyway.db"));
        await new Migrator(database, TimeProvider.System, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
        return new BenchStore(directory, database);
    }

    public async ValueTask DisposeAsync()
    {
        await Database.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }
}

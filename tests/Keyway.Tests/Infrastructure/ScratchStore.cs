using Keyway.Storage;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// An empty store of one test's own, on either engine: a SQLite file in a scratch directory, or a
/// fresh database on the run's PostgreSQL cluster. Deleted (dropped) when disposed.
/// </summary>
internal sealed class ScratchStore : IAsyncDisposable
{
    private readonly Func<Task> _delete;

    private ScratchStore(Database database, Func<Task> delete)
    {
        Database = database;
        _delete = delete;
    }

    public Database Database { get; }

    public static async Task<ScratchStore> CreateAsync(StoreKind kind)
    {
        if (kind == StoreKind.Sqlite)
        {
            var directory = TestDirectories.Create("store");
            return new ScratchStore(Database.Sqlite(Path.Combine(directory, "keyway.db")), () =>
            {
                TestDirectories.DeleteQuietly(directory);
                return Task.CompletedTask;
            });
        }

        var cluster = await PostgresCluster.GetSharedAsync();
        var database = await cluster.CreateDatabaseAsync();
        return new ScratchStore(Database.Postgres(database.Url), () => cluster.DropDatabaseAsync(database.Name));
    }

    public async ValueTask DisposeAsync()
    {
        await Database.DisposeAsync();
        await _delete();
    }
}

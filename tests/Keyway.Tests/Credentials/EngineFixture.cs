using Keyway.Credentials;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Keyway.Tests.Credentials;

/// <summary>A credential engine over a real SQLite store in a temp directory, on a fake clock.</summary>
internal sealed class EngineFixture : IAsyncDisposable
{
    private readonly string _directory;

    private EngineFixture(string directory, Database database, CredentialStore store, FakeTimeProvider time)
    {
        _directory = directory;
        Database = database;
        Store = store;
        Time = time;
        Engine = NewEngine();
    }

    public Database Database { get; }

    public CredentialStore Store { get; }

    public FakeTimeProvider Time { get; }

    public CredentialEngine Engine { get; }

    public CredentialEvents Events { get; } = new();

    public static readonly CredentialKey Key = new("api", "production", CredentialKey.Shared);

    public static async Task<EngineFixture> CreateAsync()
    {
        var directory = TestDirectories.Create("engine");
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 11, 28, 12, 0, 0, TimeSpan.Zero));
        var database = Database.Sqlite(Path.Combine(directory, "keyway.db"));
        await new Migrator(database, time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
        var keys = await KeyRing.OpenAsync(MasterKeyRing.FromKeys(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)), new DataKeyStore(database), time, CancellationToken.None);
        return new EngineFixture(directory, database, new CredentialStore(database, keys, time), time);
    }

    /// <summary>Another engine on the same store: a second process, as far as the engine knows.</summary>
    public CredentialEngine NewEngine() =>
        new(Store, new ClusterLock(Database), Time, NullLogger<CredentialEngine>.Instance, Events) { Random = () => 0 };

    public async ValueTask DisposeAsync()
    {
        await Database.DisposeAsync();
        TestDirectories.DeleteQuietly(_directory);
    }
}

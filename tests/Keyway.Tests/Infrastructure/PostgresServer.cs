using System.Collections.Concurrent;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// xunit fixture for tests that need PostgreSQL: <c>IClassFixture&lt;PostgresServer&gt;</c>.
/// Every fixture shares the one cluster of the test run (started on first use, stopped when
/// the run ends, see <see cref="KeywayTestFramework"/>) and hands out fresh databases, which
/// it drops when the test class is done. When PostgreSQL is not installed the tests fail with
/// a message that says to run scripts/test.sh; they are never skipped.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private readonly ConcurrentBag<string> _databases = [];
    private PostgresCluster? _cluster;

    /// <summary>Always 127.0.0.1: the cluster listens on loopback only.</summary>
    public const string Host = PostgresCluster.Host;

    /// <summary>The cluster's TCP port.</summary>
    public int Port => Cluster.Port;

    /// <summary>The superuser, trusted without a password from 127.0.0.1.</summary>
    public const string UserName = PostgresCluster.UserName;

    /// <summary>A connection string for the maintenance database <c>postgres</c>.</summary>
    public string AdminConnectionString => Cluster.AdminConnectionString;

    /// <summary>How long the shared cluster took to initdb and start.</summary>
    public TimeSpan StartDuration => Cluster.StartDuration;

    private PostgresCluster Cluster =>
        _cluster ?? throw new InvalidOperationException("PostgresServer is used before xunit initialized it.");

    /// <inheritdoc />
    public async Task InitializeAsync() => _cluster = await PostgresCluster.GetSharedAsync();

    /// <summary>Creates an empty database, dropped when this fixture is disposed.</summary>
    public async Task<PostgresDatabase> CreateDatabaseAsync(CancellationToken cancellationToken = default)
    {
        var database = await Cluster.CreateDatabaseAsync(cancellationToken);
        _databases.Add(database.Name);
        return database;
    }

    /// <inheritdoc />
    public async Task DisposeAsync()
    {
        if (_cluster is null)
            return;
        foreach (var name in _databases)
            await _cluster.DropDatabaseAsync(name);
    }
}

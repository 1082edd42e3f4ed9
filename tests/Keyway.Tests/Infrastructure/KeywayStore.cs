namespace Keyway.Tests.Infrastructure;

/// <summary>The two stores Keyway runs on; integration tests run against both.</summary>
public enum StoreKind
{
    /// <summary>The embedded default: SQLite in the data directory.</summary>
    Sqlite,

    /// <summary>A fresh database on the test run's PostgreSQL cluster (<c>--database postgres://…</c>).</summary>
    Postgres,
}

/// <summary>Theory data for running one test on every store.</summary>
/// <example><code>
/// [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
/// public async Task Something_works(StoreKind store) { await using var keyway = await KeywayProcess.StartAsync(store); … }
/// </code></example>
public static class KeywayStores
{
    /// <summary>Every <see cref="StoreKind"/>.</summary>
    public static TheoryData<StoreKind> All => [StoreKind.Sqlite, StoreKind.Postgres];
}

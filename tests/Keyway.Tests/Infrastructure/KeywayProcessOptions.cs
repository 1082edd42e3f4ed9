namespace Keyway.Tests.Infrastructure;

/// <summary>How to start a <see cref="KeywayProcess"/>.</summary>
public sealed record KeywayProcessOptions
{
    /// <summary>
    /// The store. For <see cref="StoreKind.Postgres"/> without a <see cref="DatabaseUrl"/>, a
    /// fresh database is created on the shared cluster and dropped when the process is disposed.
    /// </summary>
    public StoreKind Store { get; init; } = StoreKind.Sqlite;

    /// <summary>
    /// A database URL passed as <c>--database</c> as is, e.g. one database shared by several
    /// replicas (create it with <see cref="PostgresServer.CreateDatabaseAsync"/>). Wins over <see cref="Store"/>.
    /// </summary>
    public string? DatabaseUrl { get; init; }

    /// <summary>
    /// The <c>KEYWAY_OUTBOUND_ALLOW</c> every test server gets unless its <see cref="Environment"/> sets
    /// one: Keyway denies loopback by default, and the tests' upstreams listen on loopback. A test of the
    /// default sets <c>KEYWAY_OUTBOUND_ALLOW</c> to <c>""</c>.
    /// </summary>
    public const string LoopbackAllow = "127.0.0.0/8,::1/128";

    /// <summary>
    /// Environment variables for the server, e.g. <c>KEYWAY_ADMIN_TOKEN</c>, <c>KEYWAY_MASTER_KEY</c>.
    /// The test runner's own <c>KEYWAY_*</c> variables are never inherited.
    /// </summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>Arguments appended after <c>serve --data-dir … --urls …</c>.</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>
    /// An existing data directory to use (and keep); by default a fresh one is created and
    /// deleted on dispose.
    /// </summary>
    public string? DataDirectory { get; init; }

    /// <summary>How long to wait for <c>GET /readyz</c> to answer 200.</summary>
    public TimeSpan ReadyTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

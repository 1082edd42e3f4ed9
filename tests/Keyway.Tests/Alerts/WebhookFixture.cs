using Keyway.Alerts;
using Keyway.Environments;
using Keyway.Outbound;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Keyway.Tests.Alerts;

/// <summary>The webhook store, queue, sink and sender over a real SQLite store, on a fake clock, sending through the outbound client to loopback.</summary>
internal sealed class WebhookFixture : IAsyncDisposable
{
    private readonly string _directory;

    private WebhookFixture(string directory, Database database, KeyRing keys, FakeTimeProvider time)
    {
        _directory = directory;
        Database = database;
        Time = time;
        var changes = new ChangeFeed();
        Variables = new VariableService(database, keys, time, changes);
        Variables.Known.Subscribe();
        Store = new WebhookStore(database, keys, time, changes);
        // The middle of the jitter: every wait is its base plus 10%.
        Queue = new WebhookQueue(database, time) { Random = () => 0.5 };
        Alerts = new WebhookAlerts(database, Queue, Variables.Known, time, NullLogger<WebhookAlerts>.Instance);
        Outbound = new OutboundClient(new DestinationPolicy(new DestinationPolicyOptions { Allow = ["127.0.0.0/8"] }), new OutboundHandlerOptions());
        Sender = new WebhookSender(Queue, Store, database, Outbound, time, new WebhookOptions(), NullLogger<WebhookSender>.Instance);
    }

    public Database Database { get; }

    public FakeTimeProvider Time { get; }

    public VariableService Variables { get; }

    public WebhookStore Store { get; }

    public WebhookQueue Queue { get; }

    public WebhookAlerts Alerts { get; }

    public WebhookSender Sender { get; }

    public OutboundClient Outbound { get; }

    public static async Task<WebhookFixture> CreateAsync()
    {
        var directory = TestDirectories.Create("webhooks");
        // Now, not a fixed date: the npm verifier refuses timestamps more than five minutes from its own clock.
        var time = new FakeTimeProvider(TimeProvider.System.GetUtcNow());
        var database = Database.Sqlite(Path.Combine(directory, "keyway.db"));
        await new Migrator(database, time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
        var keys = await KeyRing.OpenAsync(MasterKeyRing.FromKeys(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)), new DataKeyStore(database), time, CancellationToken.None);
        var fixture = new WebhookFixture(directory, database, keys, time);
        await fixture.Variables.EnsureProductionAsync(CancellationToken.None);
        return fixture;
    }

    /// <summary>Creates an endpoint; its secret.</summary>
    public async Task<string> CreateEndpointAsync(string name, string url, IReadOnlyList<string>? events = null) =>
        (await Store.CreateAsync(name, new WebhookChange(url, events, events is null, true, null), CancellationToken.None))!.Value.Secret;

    public async ValueTask DisposeAsync()
    {
        Sender.Dispose();
        Outbound.Dispose();
        await Database.DisposeAsync();
        TestDirectories.DeleteQuietly(_directory);
    }
}

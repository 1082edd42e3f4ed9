using System.Security.Cryptography;
using Keyway.Alerts;
using Keyway.Api;
using Keyway.Environments;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Alerts;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Environments;

/// <summary>Versions, rollback, pruning and expiry alerts on both engines, on a fake clock.</summary>
[Trait("Category", "Integration")]
public sealed class VariableVersionTests
{
    private static readonly DateTimeOffset Start = new(2026, 3, 1, 9, 0, 0, TimeSpan.Zero);

    private sealed class Harness : IAsyncDisposable
    {
        private ScratchStore _scratch = null!;
        private KeyRing _keys = null!;

        public FakeTimeProvider Time { get; } = new(Start);

        public VariableService Variables { get; private set; } = null!;

        public Database Database => _scratch.Database;

        public RecordingAlerts Alerts { get; } = new();

        public static async Task<Harness> CreateAsync(StoreKind kind, VariableOptions? options = null)
        {
            var harness = new Harness { _scratch = await ScratchStore.CreateAsync(kind) };
            await new Migrator(harness.Database, harness.Time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
            harness._keys = await KeyRing.OpenAsync(MasterKeyRing.FromKeys(RandomNumberGenerator.GetBytes(32)), new DataKeyStore(harness.Database), harness.Time, CancellationToken.None);
            var changes = new ChangeFeed();
            harness.Variables = new VariableService(harness.Database, harness._keys, harness.Time, changes, options ?? new VariableOptions());
            harness.Variables.Subscribe();
            harness.Variables.Known.Subscribe();
            await harness.Variables.EnsureProductionAsync(CancellationToken.None);
            return harness;
        }

        public SecretExpirySweep Sweep(VariableOptions? options = null) =>
            new(Database, Alerts, Time, options ?? new VariableOptions(), NullLogger<SecretExpirySweep>.Instance);

        public Task<VariableInfo> SetAsync(string name, string value, DateTimeOffset? expiresAt = null, VariablePolicy? policy = null) =>
            Variables.SetAsync("production", name, value, secret: true, expiresAt, CancellationToken.None, policy: policy, author: new VersionAuthor("ana", "key_1"));

        public async Task<string> CurrentValueAsync(string name) =>
            ((Secret)(await Variables.GetValuesAsync("production", CancellationToken.None)).All[name]!).Reveal();

        public async ValueTask DisposeAsync()
        {
            _keys.Dispose();
            await _scratch.DisposeAsync();
        }
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_rollback_makes_an_old_value_current_as_a_new_version_and_lists_who_set_each(StoreKind kind)
    {
        await using var h = await Harness.CreateAsync(kind);
        await h.SetAsync("API_KEY", "value-one");
        h.Time.Advance(TimeSpan.FromHours(1));
        await h.SetAsync("API_KEY", "value-two");

        var rolled = await h.Variables.RollbackAsync("production", "API_KEY", 1, new VersionAuthor("bob", null), CancellationToken.None);

        Assert.Equal(3, rolled!.Version);
        Assert.Equal("value-one", await h.CurrentValueAsync("API_KEY"));
        var versions = (await h.Variables.ListVersionsAsync("production", "API_KEY", CancellationToken.None))!;
        Assert.Equal([3L, 2L, 1L], versions.Select(v => v.Version));
        Assert.Equal(["current", "retired", "retired"], versions.Select(v => v.State));
        Assert.Equal(1, versions[0].RestoredFrom);
        Assert.Equal("bob", versions[0].SetBy);
        Assert.Equal(("ana", "key_1"), (versions[1].SetBy, versions[1].SetByKey));
        // Every stored version is still redacted from answers.
        var known = await h.Variables.Known.GetAsync(CancellationToken.None);
        Assert.True(known.Contains("value-one") && known.Contains("value-two"));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Concurrent_sets_and_rollbacks_of_one_variable_each_get_a_version_of_their_own(StoreKind kind)
    {
        await using var h = await Harness.CreateAsync(kind, new VariableOptions { KeepVersions = 100 });
        await h.SetAsync("RACED", "v-first");
        await h.SetAsync("RACED", "v-second");

        var writers = Enumerable.Range(0, 12).Select(i => Task.Run(async () =>
        {
            if (i % 4 == 3)
            {
                await h.Variables.RollbackAsync("production", "RACED", 1, default, CancellationToken.None);
            }
            else
            {
                await h.SetAsync("RACED", $"v-{i}");
            }
        }));
        await Task.WhenAll(writers);

        var versions = await h.Variables.ListVersionsAsync("production", "RACED", CancellationToken.None);
        Assert.Equal(Enumerable.Range(1, 14).Select(v => (long)v), versions!.Select(v => v.Version).Order());
        Assert.Single(versions!, v => v.State == "current");
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Versions_past_the_keep_count_are_pruned_and_no_longer_redacted_or_restorable(StoreKind kind)
    {
        await using var h = await Harness.CreateAsync(kind, new VariableOptions { KeepVersions = 10 });
        await h.SetAsync("PRUNED", "pruned-value-1", policy: new VariablePolicy(KeepVersions: 3));
        for (var i = 2; i <= 5; i++)
        {
            await h.SetAsync("PRUNED", $"pruned-value-{i}");
        }

        var versions = (await h.Variables.ListVersionsAsync("production", "PRUNED", CancellationToken.None))!;
        Assert.Equal([5L, 4L, 3L], versions.Select(v => v.Version));
        var known = await h.Variables.Known.GetAsync(CancellationToken.None);
        Assert.False(known.Contains("pruned-value-1"));
        Assert.True(known.Contains("pruned-value-3"));
        var error = await Assert.ThrowsAsync<KeywayException>(() => h.Variables.RollbackAsync("production", "PRUNED", 1, default, CancellationToken.None));
        Assert.Equal("version_not_found", error.Code);
        var current = await Assert.ThrowsAsync<KeywayException>(() => h.Variables.RollbackAsync("production", "PRUNED", 5, default, CancellationToken.None));
        Assert.Equal("already_current", current.Code);
        Assert.Equal(3, (await h.Variables.GetAsync("production", "PRUNED", CancellationToken.None))!.KeepVersions);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_jwt_value_carries_its_expiry_and_rotate_every_gives_a_rotate_by_date(StoreKind kind)
    {
        await using var h = await Harness.CreateAsync(kind);
        var exp = Start.AddDays(20);
        var written = await h.SetAsync("JWT", SecretPolicyTests.Jwt($$"""{"exp":{{exp.ToUnixTimeSeconds()}}}"""), policy: new VariablePolicy(RotateEvery: "P30D", ExpiredPolicy: "block"));

        Assert.Equal(exp, written.ExpiresAt);
        Assert.Equal("jwt", written.ExpiresFrom);
        Assert.Equal(Start.AddDays(30), written.RotateBy);
        Assert.Equal("30d", written.RotateEvery);
        Assert.Equal("block", written.ExpiredPolicy);

        // A value given with an expiry keeps the one given; the policies carry over when left out.
        h.Time.Advance(TimeSpan.FromDays(31));
        var next = await h.SetAsync("JWT", "opaque", expiresAt: Start.AddDays(90));
        Assert.Equal(("set", "block", "30d"), (next.ExpiresFrom, next.ExpiredPolicy, next.RotateEvery));
        Assert.Null(next.Attention);
        var back = await h.Variables.RollbackAsync("production", "JWT", 1, default, CancellationToken.None);
        // The restored value keeps its own expiry and its rotate-by counts from when it was first set.
        Assert.Equal((exp, Start.AddDays(30), "expired"), (back!.ExpiresAt, back.RotateBy, back.Attention));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Expiring_is_alerted_once_per_lead_time_and_expired_once_even_across_replicas(StoreKind kind)
    {
        await using var h = await Harness.CreateAsync(kind);
        await h.SetAsync("EXPIRING", "expiring-value", expiresAt: Start.AddDays(40));
        var replicaA = h.Sweep();
        var replicaB = h.Sweep();

        Assert.Empty(await replicaA.SweepAsync(CancellationToken.None));
        h.Time.Advance(TimeSpan.FromDays(10) + TimeSpan.FromMinutes(1)); // 30 days less a minute left
        var both = await Task.WhenAll(replicaA.SweepAsync(CancellationToken.None), replicaB.SweepAsync(CancellationToken.None));
        Assert.Equal(["30d"], both.SelectMany(r => r).Select(a => a.Data["leadTime"]));
        Assert.Empty(await replicaB.SweepAsync(CancellationToken.None));

        h.Time.Advance(TimeSpan.FromDays(23)); // 7 days less a minute left
        Assert.Equal(["7d"], (await replicaB.SweepAsync(CancellationToken.None)).Select(a => a.Data["leadTime"]));
        h.Time.Advance(TimeSpan.FromDays(6));
        Assert.Equal(["1d"], (await replicaA.SweepAsync(CancellationToken.None)).Select(a => a.Data["leadTime"]));
        h.Time.Advance(TimeSpan.FromDays(1));
        var expired = await Task.WhenAll(replicaA.SweepAsync(CancellationToken.None), replicaB.SweepAsync(CancellationToken.None));
        Assert.Equal([AlertTypes.SecretExpired], expired.SelectMany(r => r).Select(a => a.Type));
        // A restart (a new sweep on the same store) does not repeat anything.
        Assert.Empty(await h.Sweep().SweepAsync(CancellationToken.None));
        Assert.Equal(4, h.Alerts.Raised.Count);
        Assert.All(h.Alerts.Raised, a => Assert.DoesNotContain("expiring-value", string.Join(' ', a.Data.Values)));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_value_first_seen_inside_several_lead_times_is_alerted_once_for_the_nearest_and_a_new_version_starts_over(StoreKind kind)
    {
        await using var h = await Harness.CreateAsync(kind);
        await h.SetAsync("LATE", "late-value", expiresAt: Start.AddDays(5));

        var first = await h.Sweep().SweepAsync(CancellationToken.None);
        Assert.Equal([("secret.expiring", "7d")], first.Select(a => (a.Type, a.Data["leadTime"])));
        Assert.Empty(await h.Sweep().SweepAsync(CancellationToken.None));

        await h.SetAsync("LATE", "late-value-2", expiresAt: Start.AddDays(5));
        Assert.Single(await h.Sweep().SweepAsync(CancellationToken.None));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_passed_rotate_by_date_raises_rotation_due_once_per_version_across_replicas_and_restarts(StoreKind kind)
    {
        await using var h = await Harness.CreateAsync(kind);
        await h.SetAsync("ROTATED", "rotated-value-1", policy: new VariablePolicy(RotateEvery: "30d"));
        var replicaA = h.Sweep();
        var replicaB = h.Sweep();

        h.Time.Advance(TimeSpan.FromDays(30) - TimeSpan.FromMinutes(1));
        Assert.Empty(await replicaA.SweepAsync(CancellationToken.None));
        h.Time.Advance(TimeSpan.FromMinutes(1));
        var both = await Task.WhenAll(replicaA.SweepAsync(CancellationToken.None), replicaB.SweepAsync(CancellationToken.None));
        var due = Assert.Single(both.SelectMany(r => r));
        Assert.Equal((AlertTypes.SecretRotationDue, "variable:production/ROTATED", "30d", "1"), (due.Type, due.Subject, due.Data["rotateEvery"], due.Data["version"]));
        Assert.Equal(Start.AddDays(30), DateTimeOffset.Parse(due.Data["rotateBy"]!, System.Globalization.CultureInfo.InvariantCulture));
        Assert.Empty(await h.Sweep().SweepAsync(CancellationToken.None));

        // A new value starts the period over: due again 30 days after it, once.
        await h.SetAsync("ROTATED", "rotated-value-2");
        h.Time.Advance(TimeSpan.FromDays(29));
        Assert.Empty(await replicaB.SweepAsync(CancellationToken.None));
        h.Time.Advance(TimeSpan.FromDays(1));
        Assert.Equal(["2"], (await replicaB.SweepAsync(CancellationToken.None)).Select(a => a.Data["version"]));
        Assert.Empty(await replicaA.SweepAsync(CancellationToken.None));
        Assert.All(h.Alerts.Raised, a => Assert.DoesNotContain("rotated-value", string.Join(' ', a.Data.Values)));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_rollback_after_a_plain_set_restores_the_secret_with_the_binding_it_had(StoreKind kind)
    {
        await using var h = await Harness.CreateAsync(kind);
        await h.Variables.SetAsync("production", "BOUND", "bound-secret-1", secret: true, null, CancellationToken.None, origins: ["https://api.example.com"]);
        var plain = await h.Variables.SetAsync("production", "BOUND", "a plain value", secret: false, null, CancellationToken.None);
        Assert.Null(plain.Origins);

        var back = (await h.Variables.RollbackAsync("production", "BOUND", 1, default, CancellationToken.None))!;

        Assert.True(back.Secret);
        Assert.Equal(["https://api.example.com"], back.Origins);
        var values = await h.Variables.GetValuesAsync("production", CancellationToken.None);
        Assert.True(values.Origins.ContainsKey("BOUND"));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_rollback_restores_the_binding_a_version_last_had_not_the_one_set_for_a_later_value(StoreKind kind)
    {
        await using var h = await Harness.CreateAsync(kind);
        await h.Variables.SetAsync("production", "REBOUND", "rebound-1", secret: true, null, CancellationToken.None, origins: ["https://one.example.com"]);
        await h.Variables.SetOriginsAsync("production", "REBOUND", ["https://two.example.com"], CancellationToken.None);
        await h.Variables.SetAsync("production", "REBOUND", "rebound-2", secret: true, null, CancellationToken.None, origins: ["https://three.example.com"]);

        var back = (await h.Variables.RollbackAsync("production", "REBOUND", 1, default, CancellationToken.None))!;

        Assert.Equal(["https://two.example.com"], back.Origins);
        Assert.Equal("rebound-1", await h.CurrentValueAsync("REBOUND"));
    }
}

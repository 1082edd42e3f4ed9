using System.Security.Cryptography;
using System.Text.Json;
using Keyway.Alerts;
using Keyway.Api;
using Keyway.Environments;
using Keyway.Rotations;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Alerts;
using Keyway.Tests.Audit;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Rotations;

/// <summary>
/// The rotation engine on a real store (SQLite or PostgreSQL) with a fake provider and a fake clock, shared by
/// the state machine's tests.
/// </summary>
internal sealed class RotationHarness : IAsyncDisposable
{
    public static readonly DateTimeOffset Start = new(2026, 6, 1, 9, 0, 0, TimeSpan.Zero);

    public const string Flow = """
        {
          "mint": [{ "name": "create", "resource": "admin-api", "method": "POST", "path": "/keys" }],
          "value": "{{ create.body.key }}",
          "id": "{{ create.body.id }}",
          "verify": { "resource": "api", "path": "/me" },
          "revoke": { "resource": "admin-api", "method": "DELETE", "path": "/keys/{{ rotation.previous.id }}" },
          "revokeAfter": "1h"
        }
        """;

    /// <summary><see cref="Flow"/> with a revoke that names the key by <c>rotation.revoke.id</c>, so abandoned keys are revoked too.</summary>
    public static readonly string FlowRevokingById = Flow.Replace("{{ rotation.previous.id }}", "{{ rotation.revoke.id }}", StringComparison.Ordinal);

    /// <summary>A provider: mints numbered keys, answers verify and revoke with set statuses, and keeps what it was sent.</summary>
    internal sealed class FakeProvider : IRotationSteps
    {
        private int _minted;

        public int VerifyStatus { get; set; } = 200;

        public int RevokeStatus { get; set; } = 204;

        public List<(string Step, string Path, string? Pending)> Sent { get; } = [];

        public string Canary { get; } = "canary-" + Guid.NewGuid().ToString("N");

        public string KeyOf(int n) => $"{Canary}-{n}";

        /// <summary>What the mint answer gives as id for a key (default <c>key_N</c>).</summary>
        public Func<string, string>? IdOf { get; set; }

        /// <summary>When set, the next verify waits for it (once): a worker that stalls past its lease.</summary>
        public TaskCompletionSource? HoldNextVerify { get => _hold; set => _hold = value; }

        private TaskCompletionSource? _hold;

        public TaskCompletionSource VerifyHeld { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task<RotationAnswer> SendAsync(RotationRequest request, CancellationToken cancellationToken)
        {
            var path = request.Step.Path.Render(request.Scope);
            lock (Sent)
                Sent.Add((request.Step.Name, path, request.Pending?.Value.Reveal()));
            if (request.Step.Name == "verify" && Interlocked.Exchange(ref _hold, null) is { } hold)
            {
                VerifyHeld.TrySetResult();
                await hold.Task.WaitAsync(cancellationToken);
            }

            return request.Step.Name switch
            {
                "create" => Answer(200, new { key = KeyOf(Interlocked.Increment(ref _minted)), id = IdOf?.Invoke(KeyOf(_minted)) ?? $"key_{_minted}" }),
                "verify" => Answer(VerifyStatus, new { error = request.Pending?.Value.Reveal() }), // an upstream that echoes what it got
                _ => Answer(RevokeStatus, new { }),
            };
        }

        private static RotationAnswer Answer(int status, object body) => new(status, new Dictionary<string, object?>
        {
            ["status"] = (long)status,
            ["headers"] = new Dictionary<string, object?>(),
            ["body"] = JsonSerializer.SerializeToElement(body),
        });
    }


    private ScratchStore _scratch = null!;
    private KeyRing _keys = null!;

    public FakeTimeProvider Time { get; } = new(Start);

    public VariableService Variables { get; private set; } = null!;

    public RecordingAlerts Alerts { get; } = new();

    public RecordingAuditLog Audit { get; } = new();

    public FakeProvider Provider { get; } = new();

    public RotationStore Store { get; private set; } = null!;

    public RotationEngine Engine { get; private set; } = null!;

    public Database Database => _scratch.Database;

    public static async Task<RotationHarness> CreateAsync(StoreKind kind)
    {
        var h = new RotationHarness { _scratch = await ScratchStore.CreateAsync(kind) };
        await new Migrator(h.Database, h.Time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
        h._keys = await KeyRing.OpenAsync(MasterKeyRing.FromKeys(RandomNumberGenerator.GetBytes(32)), new DataKeyStore(h.Database), h.Time, CancellationToken.None);
        var changes = new ChangeFeed();
        h.Variables = new VariableService(h.Database, h._keys, h.Time, changes, new VariableOptions());
        h.Variables.Subscribe();
        h.Variables.Known.Subscribe();
        await h.Variables.EnsureProductionAsync(CancellationToken.None);
        h.Store = new RotationStore(h.Database, h.Time, "replica-a");
        h.Engine = new RotationEngine(h.Store, h.Variables, h.Provider, h.Audit, h.Alerts, h.Time, NullLogger<RotationEngine>.Instance);
        return h;
    }

    public async Task DefineAsync(string name, string value, string flow = Flow)
    {
        await Variables.SetAsync("production", name, value, secret: true, null, CancellationToken.None);
        CompiledRotation.Parse(flow);
        Assert.True(await Variables.SetRotationAsync("production", name, flow, CancellationToken.None));
    }

    public Task<RotationInfo> RotateAsync(string name) =>
        Engine.RotateAsync("production", name, new RotationTrigger("manual", null), CancellationToken.None);

    public RotationService Service() => new(Engine, Store, new RotationOptions(), Time, NullLogger<RotationService>.Instance);

    public async Task<string> CurrentAsync(string name) =>
        ((Secret)(await Variables.GetValuesAsync("production", CancellationToken.None)).All[name]!).Reveal();

    public async Task<IReadOnlyList<VariableVersionInfo>> VersionsAsync(string name) =>
        (await Variables.ListVersionsAsync("production", name, CancellationToken.None))!;

    public async ValueTask DisposeAsync()
    {
        _keys.Dispose();
        await _scratch.DisposeAsync();
    }

    public async Task InsertAsync(string id, string state, string owner, long? pendingVersion, string name = "API_KEY")
    {
        var now = Time.GetUtcNow().ToStore();
        await using var connection = await Database.OpenAsync(CancellationToken.None);
        await connection.ExecuteAsync(
            """
            INSERT INTO rotations (id, environment, name, state, trigger, from_version, pending_version, owner, lease_until, started_at, updated_at)
            VALUES (@id, 'production', @name, @state, 'manual', 1, @pendingVersion, @owner, @lease, @now, @now)
            """,
            new { id, name, state, owner, pendingVersion, lease = now + (long)RotationStore.Lease.TotalMilliseconds, now });
    }
}

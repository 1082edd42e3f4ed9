using BenchmarkDotNet.Attributes;
using Keyway.Access;
using Keyway.Audit;
using Keyway.Secrets;
using Microsoft.Extensions.Logging.Abstractions;

namespace Keyway.Benchmarks;

/// <summary>
/// What recording an audit event costs a request (<see cref="AuditLog.RecordAsync"/>: build the entry,
/// stamp the time, enqueue; the writer is drained by the benchmark itself so only the hot path is
/// measured), and what hashing one event costs the background writer. Appending batches is
/// <see cref="AuditWriteBenchmarks"/>.
/// </summary>
[MemoryDiagnoser]
public class AuditBenchmarks
{
    private static readonly Caller s_caller = new("usr_bench", "bench", Caller.MemberRole, "key_bench", null);

    private BenchStore _store = null!;
    private AuditLog _log = null!;
    private AuditEvent _event = null!;
    private Redactor _secrets = null!;
    private AuditEncoder _encoder = null!;
    private AuditRow _row;

    [GlobalSetup]
    public async Task Setup()
    {
        _store = await BenchStore.CreateAsync();
        var time = new FrozenTime();
        Task<Redactor> secrets(CancellationToken _) => Task.FromResult(new Redactor(["bench-secret-value-1", "bench-secret-value-2"]));
        _log = new AuditLog(_store.Database, BenchSeal.New(), time, secrets, new AuditOptions(), NullLogger<AuditLog>.Instance);
        var entry = Entry();
        _secrets = new Redactor(["bench-secret-value-1", "bench-secret-value-2"]);
        _encoder = new AuditEncoder();
        _row = new AuditRow { Entry = entry, Seq = 42, Id = "ev_0198a1b2c3d4e5f60718293a4b5c6d7e", At = 1_700_000_000_000, PrevHash = AuditHash.Genesis };
        _event = AuditLog.ToEvent(entry, 1_700_000_000_000, 42, "ev_0198a1b2c3d4e5f60718293a4b5c6d7e", AuditRedaction.Serialize(entry.Run!.Value, Redactor.None), AuditHash.Genesis);
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        _log.Dispose();
        _encoder.Dispose();
        await _store.DisposeAsync();
    }

    private static AuditEntry Entry() =>
        AuditEntries.Run("proxy", s_caller, "github", "production", "GET", "/repos/keyway/issues?state=open&page=2", 200, 12, false, null);

    [Benchmark(Baseline = true)]
    public async ValueTask Record_a_proxied_request()
    {
        await _log.RecordAsync(Entry());
        _log.Queue.TryRead(out _);
    }

    /// <summary>The verifier's hash: a fresh buffer per event.</summary>
    [Benchmark]
    public string Hash_one_event() => AuditHash.Compute(_event);

    /// <summary>The writer's work on one run besides the insert: redact and serialize the detail, hash the row, in reused buffers.</summary>
    [Benchmark]
    public string Encode_one_run()
    {
        _encoder.Encode(ref _row, _secrets);
        return _row.Hash;
    }
}

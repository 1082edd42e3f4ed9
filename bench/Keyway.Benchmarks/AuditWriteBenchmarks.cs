using BenchmarkDotNet.Attributes;
using Keyway.Access;
using Keyway.Audit;
using Keyway.Secrets;
using Microsoft.Extensions.Logging.Abstractions;

namespace Keyway.Benchmarks;

/// <summary>
/// What the background audit writer spends per event: appending batches of 500 proxied-request runs
/// (redact, serialize, hash, insert, move the head, commit) to a real, migrated SQLite store that
/// grows as the benchmark runs. Mean is per event (1 s / Mean = the events per second one writer
/// sustains); Allocated is per event.
/// </summary>
[MemoryDiagnoser]
public class AuditWriteBenchmarks
{
    private const int BatchSize = 500;

    private static readonly Caller s_caller = new("usr_bench", "bench", Caller.MemberRole, "key_bench", null);

    private BenchStore _store = null!;
    private AuditLog _writer = null!;
    private List<AuditLog.Pending> _batch = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        _store = await BenchStore.CreateAsync();
        // Known secrets, as a store with secret variables has: the redactor scans every detail.
        Task<Redactor> secrets(CancellationToken _) => Task.FromResult(new Redactor(["bench-secret-value-1", "bench-secret-value-2"]));
        _writer = new AuditLog(_store.Database, BenchSeal.New(), new FrozenTime(), secrets, new AuditOptions { BatchSize = BatchSize }, NullLogger<AuditLog>.Instance);
        _batch = Enumerable.Range(0, BatchSize)
            .Select(i => new AuditLog.Pending(
                AuditEntries.Run("proxy", s_caller, "github", "production", "GET", "/repos/keyway/issues?state=open&page=" + i, 200, 12, false, null),
                1_700_000_000_000 + i))
            .ToList();
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        _writer.Dispose();
        await _store.DisposeAsync();
    }

    [Benchmark(OperationsPerInvoke = BatchSize)]
    public Task Append_500_runs_to_sqlite() => _writer.WriteAsync(_batch, CancellationToken.None);
}

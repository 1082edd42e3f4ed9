using System.Diagnostics;
using Keyway.Access;
using Keyway.Audit;
using Keyway.Secrets;
using Microsoft.Extensions.Logging.Abstractions;

namespace Keyway.Benchmarks;

/// <summary>
/// The audit writer's CPU time and allocations per event, appending batches of 500 proxied-request runs
/// to a real SQLite store: <c>dotnet run -c Release --project bench/Keyway.Benchmarks -- audit-cpu</c>.
/// BenchmarkDotNet reports wall time, which on a shared machine measures the machine's other load as
/// much as the writer; the process's CPU time moves much less with it.
/// </summary>
internal static class AuditWriterCpu
{
    private const int Events = 50_000;

    /// <param name="batchSize">Events per transaction: 500 is the writer's most; at 20,000 proxied requests a second the 10 ms linger gathers about 200.</param>
    public static async Task<int> RunAsync(int batchSize)
    {
        var batches = Events / batchSize;
        await using var store = await BenchStore.CreateAsync();
        var caller = new Caller("usr_bench", "bench", Caller.MemberRole, "key_bench", null);
        using var writer = new AuditLog(store.Database, BenchSeal.New(), new FrozenTime(),
            _ => Task.FromResult(new Redactor(["bench-secret-value-1", "bench-secret-value-2"])), new AuditOptions(), NullLogger<AuditLog>.Instance);
        var batch = Enumerable.Range(0, batchSize)
            .Select(i => new AuditLog.Pending(
                AuditEntries.Run("proxy", caller, "github", "production", "GET", "/repos/keyway/issues?state=open&page=" + i, 200, 12, false, null),
                1_700_000_000_000 + i))
            .ToList();
        // Each batch is stamped a second after the one before, as a live writer's would be: event ids
        // start with their time, so a batch that reused old times would insert all over the id index.
        var second = 0L;
        async Task WriteNextAsync()
        {
            second++;
            for (var i = 0; i < batch.Count; i++)
            {
                batch[i] = batch[i] with { At = 1_700_000_000_000 + (second * 1000) + (i % 1000) };
            }

            await writer.WriteAsync(batch, CancellationToken.None);
        }

        // Long enough for tiered compilation to settle: the first 100,000 events cost twice what later ones do.
        for (var i = 0; i < 125_000 / batchSize; i++)
        {
            await WriteNextAsync();
        }

        using var process = Process.GetCurrentProcess();
        for (var round = 1; round <= 5; round++)
        {
            process.Refresh();
            var cpu = process.TotalProcessorTime;
            var bytes = GC.GetTotalAllocatedBytes(precise: true);
            var wall = Stopwatch.StartNew();
            for (var i = 0; i < batches; i++)
            {
                await WriteNextAsync();
            }

            process.Refresh();
            double events = batches * batchSize;
            Console.WriteLine(
                $"round {round}: CPU {(process.TotalProcessorTime - cpu).TotalMicroseconds / events:F1} µs/event, " +
                $"wall {wall.Elapsed.TotalMicroseconds / events:F1} µs/event, {(GC.GetTotalAllocatedBytes(precise: true) - bytes) / events:F0} B/event");
        }

        return 0;
    }
}

using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;
using Keyway.Benchmarks;

// dotnet run -c Release --project bench/Keyway.Benchmarks -- --filter '*'
// While developing: add --job short. See docs/benchmarks.md.
// BenchmarkDotNet rebuilds this project (and Keyway) per job without the shared compiler; on a
// busy two-core machine that can pass its two-minute default, so the limit is raised.
if (args is ["seed", ..])
{
    // The harness's store filler (bench/harness/run.sh), not a benchmark.
    return await Seeder.RunAsync(args);
}

if (args is ["audit-cpu", .. var rest])
{
    // The audit writer's CPU time per event (AuditWriterCpu), not a BenchmarkDotNet run; optionally the batch size.
    var batchSize = 500;
    if (rest.Length > 1
        || (rest is [var size] && !(int.TryParse(size, System.Globalization.CultureInfo.InvariantCulture, out batchSize) && batchSize is >= 1 and <= 50_000)))
    {
        Console.Error.WriteLine("usage: audit-cpu [events per batch, 1 to 50000; default 500]");
        return 2;
    }

    return await AuditWriterCpu.RunAsync(batchSize);
}

var config = ManualConfig.Create(DefaultConfig.Instance).WithBuildTimeout(TimeSpan.FromMinutes(10));
BenchmarkSwitcher.FromAssembly(typeof(TemplateBenchmarks).Assembly).Run(args, config);
return 0;

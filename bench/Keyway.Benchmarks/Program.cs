using BenchmarkDotNet.Running;
using Keyway.Benchmarks;

// dotnet run -c Release --project bench/Keyway.Benchmarks -- --filter '*'
// While developing: add --job short. See docs/benchmarks.md.
BenchmarkSwitcher.FromAssembly(typeof(TemplateBenchmarks).Assembly).Run(args);

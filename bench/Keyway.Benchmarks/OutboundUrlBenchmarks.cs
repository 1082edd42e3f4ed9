using BenchmarkDotNet.Attributes;
using Keyway.Outbound;

namespace Keyway.Benchmarks;

/// <summary><see cref="OutboundUrl.Build"/>: run once per proxied or run request.</summary>
[MemoryDiagnoser]
public class OutboundUrlBenchmarks
{
    private readonly Uri _origin = new("https://api.example.com");
    private readonly Uri _withPath = new("https://api.example.com/v2/tenants/acme/");
    private readonly KeyValuePair<string, string?>[] _query = [new("page", "2"), new("per_page", "50")];

    [GlobalSetup]
    public void Setup()
    {
        // Force Uri's lazily computed parts (AbsoluteUri, AbsolutePath) as a resolved resource would have them.
        _ = _origin.AbsoluteUri + _origin.AbsolutePath + _withPath.AbsoluteUri + _withPath.AbsolutePath;
        if (Path_and_query().AbsoluteUri != "https://api.example.com/v1/users/42/orders?page=2&per_page=50" ||
            Base_with_path().AbsoluteUri != "https://api.example.com/v2/tenants/acme/users/42/orders" ||
            Hostile_path_rejected() is null)
        {
            throw new InvalidOperationException("The benchmark's setup does not build what it should.");
        }
    }

    [Benchmark(Baseline = true)]
    public Uri Path_and_query() => OutboundUrl.Build(_origin, "/v1/users/42/orders", _query);

    [Benchmark]
    public Uri Base_with_path() => OutboundUrl.Build(_withPath, "users/42/orders");

    /// <summary>A traversal attempt: the cost of the exception a hostile caller can make Keyway pay per request.</summary>
    [Benchmark]
    public object? Hostile_path_rejected()
    {
        try
        {
            return OutboundUrl.Build(_withPath, "users/%2e%2e/%2e%2e/admin");
        }
        catch (OutboundRequestException e)
        {
            return e;
        }
    }
}

using BenchmarkDotNet.Attributes;
using Keyway.Access;
using Keyway.Storage;

namespace Keyway.Benchmarks;

/// <summary>
/// <see cref="ApiKeyService.AuthenticateAsync"/> when the caller is cached (every request but one
/// per key per 30 s), over a real SQLite store, and the SHA-256 hash it starts with.
/// </summary>
[MemoryDiagnoser]
public class ApiKeyBenchmarks
{
    private BenchStore _store = null!;
    private ApiKeyService _keys = null!;
    private string _token = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        _store = await BenchStore.CreateAsync();
        var time = new FrozenTime();
        _keys = new ApiKeyService(_store.Database, time, new Keyway.Environments.ChangeFeed());
        await using (var connection = await _store.Database.OpenAsync(CancellationToken.None))
        {
            await connection.ExecuteAsync(
                "INSERT INTO users (id, name, role, created_at) VALUES ('usr_bench', 'bench', @role, @now)",
                new { role = Caller.MemberRole, now = time.GetUtcNow().ToUnixTimeMilliseconds() });
        }

        (_, _token) = await _keys.CreateAsync("usr_bench", "bench", null, null, CancellationToken.None);

        // The first call reads the store and fills the cache; the benchmark measures the hits after it.
        if (await _keys.AuthenticateAsync(_token, CancellationToken.None) is not { UserId: "usr_bench" })
        {
            throw new InvalidOperationException("The key does not authenticate.");
        }
    }

    [GlobalCleanup]
    public async Task Cleanup() => await _store.DisposeAsync();

    [Benchmark(Baseline = true)]
    public async ValueTask<object?> Authenticate_cache_hit() => await _keys.AuthenticateAsync(_token, CancellationToken.None);

    /// <summary>The proxy's and the API's fast path (<c>ApiKeyMiddleware</c>): hash on the stack, look up, no allocation.</summary>
    [Benchmark]
    public object? TryCached_hit() => _keys.TryCached(_token);

    [Benchmark]
    public string Hash_only() => ApiKeyService.Hash(_token);
}

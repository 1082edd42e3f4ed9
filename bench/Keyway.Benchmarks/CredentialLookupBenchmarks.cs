using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Keyway.Credentials;
using Keyway.Secrets;
using Keyway.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Keyway.Benchmarks;

/// <summary>
/// <see cref="CredentialEngine.GetAsync"/> on a cache hit, what the proxy does per request for an
/// OAuth 2.0 or custom-flow resource, with 1 and with 100,000 credentials held: the lookup is one
/// dictionary probe, so both rows should read the same (and allocate nothing).
/// </summary>
[MemoryDiagnoser]
public class CredentialLookupBenchmarks
{
    private BenchStore _store = null!;
    private KeyRing _ring = null!;
    private CredentialEngine _engine = null!;
    private readonly BenchTokenProvider _provider = new();
    private CredentialKey _key;

    [Params(1, 100_000)]
    public int Held { get; set; }

    [GlobalSetup]
    public async Task Setup()
    {
        var time = new FrozenTime();
        _store = await BenchStore.CreateAsync();
        var master = MasterKeyRing.FromKeys(RandomNumberGenerator.GetBytes(MasterKeyRing.KeySize));
        _ring = await KeyRing.OpenAsync(master, new DataKeyStore(_store.Database), time, CancellationToken.None);
        _engine = new CredentialEngine(new CredentialStore(_store.Database, _ring, time), new ClusterLock(_store.Database), time,
            NullLogger<CredentialEngine>.Instance, new CredentialEvents());
        for (var i = 0; i < Held; i++)
        {
            // Each one acquired (once) and persisted, as a real install would hold them.
            await _engine.GetAsync(new CredentialKey("api", "production", $"usr_{i}"), _provider, CancellationToken.None);
        }

        _key = new CredentialKey("api", "production", $"usr_{Held / 2}");
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        _ring.Dispose();
        await _store.DisposeAsync();
    }

    [Benchmark]
    public object Cache_hit()
    {
        var credential = _engine.GetAsync(_key, _provider, CancellationToken.None);
        return credential.IsCompletedSuccessfully ? credential.Result : throw new InvalidOperationException("Not a cache hit.");
    }

    private sealed class BenchTokenProvider : ITokenProvider
    {
        private int _issued;

        public bool CanAcquire => true;

        public string ParametersHash => "bench";

        public TimeSpan? DefaultLifetime => null;

        public Task<TokenResult> AcquireAsync(CredentialKey key, CancellationToken cancellationToken) =>
            Task.FromResult(TokenResult.Success(new TokenSet
            {
                AccessToken = new Secret($"access-{Interlocked.Increment(ref _issued)}"),
                ExpiresAt = DateTimeOffset.UtcNow.AddDays(1),
                ObtainedAt = DateTimeOffset.UtcNow,
            }));

        public Task<TokenResult> RefreshAsync(CredentialKey key, TokenSet current, CancellationToken cancellationToken) =>
            AcquireAsync(key, cancellationToken);
    }
}

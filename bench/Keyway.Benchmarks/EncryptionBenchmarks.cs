using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Keyway.Secrets;

namespace Keyway.Benchmarks;

/// <summary><see cref="KeyRing"/> envelope encryption (AES-256-GCM, pooled per data key) of a 64-byte secret.</summary>
[MemoryDiagnoser]
public class EncryptionBenchmarks
{
    private const string AssociatedData = "variable:production:API_TOKEN:3";

    private readonly byte[] _plaintext = RandomNumberGenerator.GetBytes(64);
    private KeyRing _ring = null!;
    private byte[] _envelope = null!;

    [GlobalSetup]
    public void Setup()
    {
        var master = MasterKeyRing.FromKeys(RandomNumberGenerator.GetBytes(MasterKeyRing.KeySize));
        _ring = KeyRing.OpenAsync(master, new InMemoryDataKeyStore(), TimeProvider.System, CancellationToken.None).GetAwaiter().GetResult();
        _envelope = _ring.Encrypt(_plaintext, AssociatedData);
        if (!_ring.Decrypt(_envelope, AssociatedData).AsSpan().SequenceEqual(_plaintext))
        {
            throw new InvalidOperationException("The round trip failed.");
        }
    }

    [GlobalCleanup]
    public void Cleanup() => _ring.Dispose();

    [Benchmark]
    public byte[] Encrypt_64_bytes() => _ring.Encrypt(_plaintext, AssociatedData);

    [Benchmark]
    public byte[] Decrypt_64_bytes() => _ring.Decrypt(_envelope, AssociatedData);
}

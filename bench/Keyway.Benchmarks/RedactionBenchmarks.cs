using BenchmarkDotNet.Attributes;
using Keyway.Secrets;

namespace Keyway.Benchmarks;

/// <summary>
/// <see cref="Redactor.Redact"/> of a buffered 4 KB body (runs, error texts) with the
/// environment's secrets plus the credential derived from one (<c>Bearer …</c>), as
/// <c>ResourceResolver</c> builds it.
/// </summary>
[MemoryDiagnoser]
public class RedactorBenchmarks
{
    private const string Token = "sk_live_4f9a1c2b7d8e4a6f9b0c1d2e3f4a5b6c";

    private Redactor _redactor = null!;
    private string _clean = null!;
    private string _withSecret = null!;

    [GlobalSetup]
    public void Setup()
    {
        _redactor = Redactor.For([new Secret(Token), new Secret("cs_0123456789abcdef0123456789abcdef")], ["Bearer " + Token]);
        _clean = Bodies.Json(4096);
        _withSecret = Bodies.Json(4096, Token);
        if (!ReferenceEquals(_redactor.Redact(_clean), _clean) || _redactor.Redact(_withSecret).Contains(Token, StringComparison.Ordinal))
        {
            throw new InvalidOperationException("The redactor does not behave as the benchmark assumes.");
        }
    }

    [Benchmark(Baseline = true)]
    public string Redact_4KB_no_secret() => _redactor.Redact(_clean);

    [Benchmark]
    public string Redact_4KB_one_secret() => _redactor.Redact(_withSecret);

    /// <summary>
    /// Building a redactor (three values; <c>SearchValues</c> and UTF-8 copies): done once per
    /// environment change for a shared resolution, but on every request for a resource that reads
    /// <c>current_user</c>, twice (the environment's and the combined one).
    /// </summary>
    [Benchmark]
    public object Construct_3_values() =>
        Redactor.For([new Secret(Token), new Secret("cs_0123456789abcdef0123456789abcdef")], ["Bearer " + Token]);
}

/// <summary>
/// <see cref="RedactingStream"/> as the proxy uses it: a 64 KB streamed body written in 8 KB
/// chunks (no secret in it, the common case), then completed. One stream per request.
/// </summary>
[MemoryDiagnoser]
public class RedactingStreamBenchmarks
{
    private const int ChunkSize = 8 * 1024;

    private Redactor _redactor = null!;
    private byte[] _body = null!;

    [Params(1, 5)]
    public int Secrets { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var secrets = Enumerable.Range(0, Secrets).Select(i => new Secret($"sk_live_{i}_4f9a1c2b7d8e4a6f9b0c1d2e3f4a5b6c"));
        _redactor = Redactor.For(secrets);
        _body = Bodies.JsonUtf8(64 * 1024);
    }

    [Benchmark]
    public async Task<int> Write_64KB_in_8KB_chunks()
    {
        var stream = new RedactingStream(Stream.Null, _redactor);
        for (var offset = 0; offset < _body.Length; offset += ChunkSize)
        {
            await stream.WriteAsync(_body.AsMemory(offset, ChunkSize));
        }

        await stream.CompleteAsync(CancellationToken.None);
        return stream.Redactions;
    }
}

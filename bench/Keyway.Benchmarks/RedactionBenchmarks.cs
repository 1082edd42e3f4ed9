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
    private string _escaped = null!;

    [GlobalSetup]
    public void Setup()
    {
        _redactor = Redactor.For([new Secret(Token), new Secret("cs_0123456789abcdef0123456789abcdef")], ["Bearer " + Token]);
        _clean = Bodies.Json(4096);
        _withSecret = Bodies.Json(4096, Token);
        _escaped = Bodies.Json(4096, string.Concat(Token.Select(c => "\\u" + ((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture))));
        if (!ReferenceEquals(_redactor.Redact(_clean), _clean) || _redactor.Redact(_withSecret).Contains(Token, StringComparison.Ordinal) ||
            !_redactor.Redact(_escaped).Contains(Secret.Redacted, StringComparison.Ordinal))
        {
            throw new InvalidOperationException("The redactor does not behave as the benchmark assumes.");
        }
    }

    [Benchmark(Baseline = true)]
    public string Redact_4KB_no_secret() => _redactor.Redact(_clean);

    [Benchmark]
    public string Redact_4KB_one_secret() => _redactor.Redact(_withSecret);

    /// <summary>The secret in the middle written as JSON <c>\uXXXX</c> escapes, every character: found encoded.</summary>
    [Benchmark]
    public string Redact_4KB_json_escaped_secret() => _redactor.Redact(_escaped);

    /// <summary>
    /// Making a redactor of three values: cheap, its forms are compiled on first use, once per set of
    /// values (shared). Done per request for a resource that reads <c>current_user</c>.
    /// </summary>
    [Benchmark]
    public object Construct_3_values() =>
        Redactor.For([new Secret(Token), new Secret("cs_0123456789abcdef0123456789abcdef")], ["Bearer " + Token]);

    /// <summary>Compiling the forms of three values (base64 at three alignments, UTF-16, the literal search): once per set.</summary>
    [Benchmark]
    public object Compile_3_values() =>
        new RedactionForms([Token, "cs_0123456789abcdef0123456789abcdef", "Bearer " + Token]);
}

/// <summary>
/// <see cref="RedactingStream"/> as the proxy uses it: a 64 KB streamed body written in 8 KB
/// chunks (no secret in it, the common case), then completed. One stream per request. Secrets: how
/// many values are known (every version in every environment); Escaped: a body whose strings hold a
/// JSON escape every 100 bytes or so, where encoded forms must be tried.
/// </summary>
[MemoryDiagnoser]
public class RedactingStreamBenchmarks
{
    private const int ChunkSize = 8 * 1024;

    private Redactor _redactor = null!;
    private byte[] _body = null!;

    [Params(1, 5, 50)]
    public int Secrets { get; set; }

    [Params(false, true)]
    public bool Escaped { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var secrets = Enumerable.Range(0, Secrets).Select(i => new Secret($"sk_live_{i}_4f9a1c2b7d8e4a6f9b0c1d2e3f4a5b6c"));
        _redactor = Redactor.For(secrets);
        _body = Bodies.JsonUtf8(64 * 1024);
        if (Escaped)
        {
            // "status":"active" → "status":"act\nve": a JSON escape in every item (about every 90 bytes).
            _body = System.Text.Encoding.UTF8.GetBytes(System.Text.Encoding.UTF8.GetString(_body).Replace("active", "act\\nve", StringComparison.Ordinal))[..(64 * 1024)];
        }
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

/// <summary>
/// A 10 MB streamed answer as the proxy redacts it: each 64 KB chunk read into one reused buffer (YARP's
/// copy buffer) and written from it into a sink that copies each write, as Kestrel copies a response
/// write into its pipe; the redactor holds the
/// harness's stream resource's values (a token, <c>Bearer &lt;token&gt;</c>, a client secret). The baseline
/// writes the same chunks to the same sink without redaction, so the difference is what redaction adds
/// per byte (divide by 10,485,760). Planted: the token raw, JSON-escaped, in <c>Bearer</c> and in base64
/// (<c>user:token</c>), some across a chunk boundary.
/// </summary>
[MemoryDiagnoser]
public class RedactingStream10MBBenchmarks
{
    private const int ChunkSize = 64 * 1024;
    private const int Size = 10 * 1024 * 1024;
    private const string Token = "bench-upstream-token-0123456789";

    private readonly CopySink _sink = new();
    private readonly byte[] _read = new byte[ChunkSize];
    private Redactor _redactor = null!;
    private byte[] _clean = null!;
    private byte[] _planted = null!;

    [GlobalSetup]
    public void Setup()
    {
        _redactor = Redactor.For([new Secret(Token), new Secret("bench-client-secret-0123456789")], ["Bearer " + Token]);
        _clean = Bodies.JsonUtf8(Size);
        _planted = (byte[])_clean.Clone();
        string[] forms =
        [
            Token,
            "Bearer " + Token,
            string.Concat(Token.Select(c => "\\u" + ((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture))),
            Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("user:" + Token)),
        ];
        var planted = 0;
        foreach (var at in new[] { 1000, ChunkSize - 7, (3 * ChunkSize) + 1, (40 * ChunkSize) - 20, Size / 2, Size - 4000, (100 * ChunkSize) - 1, Size - 200 })
        {
            var form = System.Text.Encoding.UTF8.GetBytes(forms[planted++ % forms.Length]);
            form.CopyTo(_planted, at);
        }

        if (Redact(_clean).Result != 0 || Redact(_planted).Result != planted)
        {
            throw new InvalidOperationException("The redactor does not behave as the benchmark assumes.");
        }
    }

    /// <summary>The same chunks to the same sink, not redacted.</summary>
    [Benchmark(Baseline = true)]
    public async Task<int> Plain_copy_10MB_in_64KB_chunks()
    {
        for (var offset = 0; offset < _clean.Length; offset += ChunkSize)
        {
            await _sink.WriteAsync(Read(_clean, offset));
        }

        return 0;
    }

    [Benchmark]
    public Task<int> Redact_10MB_in_64KB_chunks_no_secret() => Redact(_clean);

    [Benchmark]
    public Task<int> Redact_10MB_in_64KB_chunks_8_planted() => Redact(_planted);

    private async Task<int> Redact(byte[] body)
    {
        var stream = new RedactingStream(_sink, _redactor);
        for (var offset = 0; offset < body.Length; offset += ChunkSize)
        {
            await stream.WriteAsync(Read(body, offset));
        }

        await stream.CompleteAsync(CancellationToken.None);
        return stream.Redactions;
    }

    /// <summary>The chunk at <paramref name="offset"/>, as a read from the upstream puts it in the copy buffer.</summary>
    private ReadOnlyMemory<byte> Read(byte[] body, int offset)
    {
        var length = Math.Min(ChunkSize, body.Length - offset);
        body.AsSpan(offset, length).CopyTo(_read);
        return _read.AsMemory(0, length);
    }

    /// <summary>Copies every write into a buffer of its own, as a response pipe does.</summary>
    private sealed class CopySink : Stream
    {
        private readonly byte[] _buffer = new byte[ChunkSize];

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            for (var span = buffer.Span; !span.IsEmpty; span = span[Math.Min(span.Length, _buffer.Length)..])
            {
                span[..Math.Min(span.Length, _buffer.Length)].CopyTo(_buffer);
            }

            return ValueTask.CompletedTask;
        }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

using System.Buffers;
using System.IO.Pipelines;
using Keyway.Secrets;
using Microsoft.AspNetCore.Http.Features;

namespace Keyway.Proxy;

/// <summary>
/// The proxied response body of a resource with secrets: known secret values are replaced on the
/// way to the caller. Redaction may change the length, so a streamed body goes out chunked; but a
/// body that declares a <c>Content-Length</c> up to <see cref="MaxBufferedLength"/> is gathered in
/// one pooled buffer, redacted, and sent with its exact (possibly new) length in one write.
/// </summary>
/// <remarks>
/// It is the response body feature itself while it is in place (<see cref="Install"/>): setting
/// <c>HttpResponse.Body</c> instead would wrap it in a feature object of its own on every request.
/// </remarks>
internal sealed class RedactedResponseBody : Stream, IHttpResponseBodyFeature
{
    /// <summary>The largest declared length that is buffered rather than streamed.</summary>
    public const int MaxBufferedLength = 64 * 1024;

    private readonly HttpResponse _response;
    private readonly Redactor _redactor;
    private readonly IFeatureCollection _features;

    // The server's body feature, its stream and its own pipe, taken before this one replaces it: a
    // streamed write's pieces are copied into the pipe and flushed once.
    private readonly IHttpResponseBodyFeature _prior;
    private readonly Stream _inner;
    private readonly PipeWriter _pipe;
    private RedactingStream? _streaming;
    private PipeWriter? _writer;
    private byte[]? _buffer;
    private int _length;

    private RedactedResponseBody(HttpResponse response, Redactor redactor)
    {
        _response = response;
        _redactor = redactor;
        _features = response.HttpContext.Features;
        _prior = _features.GetRequiredFeature<IHttpResponseBodyFeature>();
        _inner = _prior.Stream;
        _pipe = _prior.Writer;
    }

    /// <summary>Puts a redacting body in place of <paramref name="response"/>'s until <see cref="Release"/>.</summary>
    public static RedactedResponseBody Install(HttpResponse response, Redactor redactor)
    {
        var body = new RedactedResponseBody(response, redactor);
        body._features.Set<IHttpResponseBodyFeature>(body);
        return body;
    }

    /// <summary>
    /// Called once the upstream's headers are known: buffers the body when its length is declared
    /// and small. Otherwise (or never called) it is streamed.
    /// </summary>
    public void Expect(long? declaredLength)
    {
        if (declaredLength is { } length and >= 0 and <= MaxBufferedLength && _streaming is null && _buffer is null)
        {
            _buffer = length == 0 ? [] : ArrayPool<byte>.Shared.Rent((int)length);
        }
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_buffer is not null)
        {
            if (_length + buffer.Length <= _buffer.Length)
            {
                buffer.Span.CopyTo(_buffer.AsSpan(_length));
                _length += buffer.Length;
                return;
            }

            // More than the upstream declared: stream from here on (the length is no longer known).
            var held = _buffer;
            var heldLength = _length;
            _buffer = null;
            _length = 0;
            try
            {
                await Streaming().WriteAsync(held.AsMemory(0, heldLength), cancellationToken);
            }
            finally
            {
                Return(held);
            }
        }

        await Streaming().WriteAsync(buffer, cancellationToken);
    }

    /// <summary>Sends what is buffered or held back. Call once the body is complete.</summary>
    public async Task FinishAsync(CancellationToken cancellationToken)
    {
        if (_buffer is null)
        {
            if (_streaming is not null)
            {
                await _streaming.CompleteAsync(cancellationToken);
            }

            return;
        }

        var body = _buffer.AsMemory(0, _length);
        var redactedLength = _redactor.RedactedLength(body.Span);
        if (redactedLength == _length)
        {
            // No secret in it (the common case): the upstream's bytes, with their length.
            _response.ContentLength = _length;
            await _inner.WriteAsync(body, cancellationToken);
            return;
        }

        var redacted = ArrayPool<byte>.Shared.Rent(redactedLength);
        try
        {
            _redactor.Redact(body.Span, redacted);
            _response.ContentLength = redactedLength;
            await _inner.WriteAsync(redacted.AsMemory(0, redactedLength), cancellationToken);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(redacted);
        }
    }

    private RedactingStream Streaming() => _streaming ??= new RedactingStream(_inner, _redactor, _pipe);

    /// <summary>Puts the server's body feature back and returns the pooled buffer; this is not used afterwards.</summary>
    public void Release()
    {
        _features.Set(_prior);
        if (_buffer is { } buffer)
        {
            _buffer = null;
            Return(buffer);
        }
    }

    private static void Return(byte[] buffer)
    {
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    Stream IHttpResponseBodyFeature.Stream => this;

    PipeWriter IHttpResponseBodyFeature.Writer => _writer ??= PipeWriter.Create(this, new StreamPipeWriterOptions(leaveOpen: true));

    void IHttpResponseBodyFeature.DisableBuffering() => _prior.DisableBuffering();

    // Starting the answer sends its headers: not while a body is buffered for its exact length.
    Task IHttpResponseBodyFeature.StartAsync(CancellationToken cancellationToken) =>
        _buffer is null ? _prior.StartAsync(cancellationToken) : Task.CompletedTask;

    Task IHttpResponseBodyFeature.SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken) =>
        SendFileFallback.SendFileAsync(this, path, offset, count, cancellationToken);

    // The answer is completed by FinishAsync, then by the server once the feature is the server's again.
    Task IHttpResponseBodyFeature.CompleteAsync() => _writer?.FlushAsync().AsTask() ?? Task.CompletedTask;

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) =>
        throw new NotSupportedException("The redacted body is written asynchronously.");

    // A buffered body has nothing to flush yet: flushing would send the headers without the length.
    public override Task FlushAsync(CancellationToken cancellationToken) =>
        _buffer is null ? _inner.FlushAsync(cancellationToken) : Task.CompletedTask;

    public override void Flush()
    {
        if (_buffer is null)
        {
            _inner.Flush();
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}

using System.Buffers;
using System.Text;

namespace Keyway.Secrets;

/// <summary>
/// A write-only stream that replaces known secret values with <c>[REDACTED]</c> on their way to
/// <paramref name="inner"/>, even when a value is split across writes: the last
/// (longest value − 1) bytes are held back until the next write or <see cref="CompleteAsync"/>.
/// </summary>
internal sealed class RedactingStream(Stream inner, Redactor redactor) : Stream
{
    private static readonly byte[] Replacement = Encoding.UTF8.GetBytes(Secret.Redacted);

    private readonly int _keep = Math.Max(0, redactor.LongestUtf8 - 1);
    private byte[] _pending = [];
    private int _pendingLength;

    /// <summary>How many values were replaced, for the log.</summary>
    public int Redactions { get; private set; }

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        byte[]? rented = null;
        ReadOnlyMemory<byte> work;
        if (_pendingLength == 0)
        {
            work = buffer;
        }
        else
        {
            rented = ArrayPool<byte>.Shared.Rent(_pendingLength + buffer.Length);
            _pending.AsSpan(0, _pendingLength).CopyTo(rented);
            buffer.Span.CopyTo(rented.AsSpan(_pendingLength));
            work = rented.AsMemory(0, _pendingLength + buffer.Length);
            _pendingLength = 0;
        }

        try
        {
            var start = 0;
            while (Find(redactor, work.Span[start..], out var at, out var length))
            {
                if (at > 0)
                {
                    await inner.WriteAsync(work.Slice(start, at), cancellationToken);
                }

                await inner.WriteAsync(Replacement, cancellationToken);
                Redactions++;
                start += at + length;
            }

            // Every complete value is replaced; hold back a tail that may begin one.
            var safe = Math.Max(start, work.Length - _keep);
            if (safe > start)
            {
                await inner.WriteAsync(work[start..safe], cancellationToken);
            }

            var tail = work[safe..];
            if (_pending.Length < tail.Length)
            {
                _pending = new byte[Math.Max(tail.Length, _keep)];
            }

            tail.Span.CopyTo(_pending);
            _pendingLength = tail.Length;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Writes what was held back. Call once the body is complete.</summary>
    public async Task CompleteAsync(CancellationToken cancellationToken)
    {
        if (_pendingLength > 0)
        {
            await inner.WriteAsync(_pending.AsMemory(0, _pendingLength), cancellationToken);
            _pendingLength = 0;
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) =>
        throw new NotSupportedException("The redacting stream is written asynchronously.");

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override void Flush() => inner.Flush();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    /// <summary>The length of <paramref name="body"/> once every complete value in it is replaced.</summary>
    internal static int RedactedLength(Redactor redactor, ReadOnlySpan<byte> body)
    {
        var length = body.Length;
        var start = 0;
        while (Find(redactor, body[start..], out var at, out var found))
        {
            length += Replacement.Length - found;
            start += at + found;
        }

        return length;
    }

    /// <summary>
    /// Writes <paramref name="body"/> with every complete value replaced into <paramref name="destination"/>,
    /// which holds at least <see cref="RedactedLength"/> bytes.
    /// </summary>
    internal static void Redact(Redactor redactor, ReadOnlySpan<byte> body, Span<byte> destination)
    {
        var start = 0;
        var written = 0;
        while (Find(redactor, body[start..], out var at, out var found))
        {
            body.Slice(start, at).CopyTo(destination[written..]);
            written += at;
            Replacement.CopyTo(destination[written..]);
            written += Replacement.Length;
            start += at + found;
        }

        body[start..].CopyTo(destination[written..]);
    }

    /// <summary>The earliest complete value in <paramref name="span"/> (the longest one where two start together).</summary>
    private static bool Find(Redactor redactor, ReadOnlySpan<byte> span, out int at, out int length)
    {
        at = -1;
        length = 0;
        foreach (var value in redactor.Utf8Values)
        {
            // Only a match that starts before the best so far can beat it.
            var limit = at < 0 ? span.Length : Math.Min(span.Length, at + value.Length - 1);
            var index = span[..limit].IndexOf(value);
            if (index >= 0 && (at < 0 || index < at))
            {
                at = index;
                length = value.Length;
            }
        }

        return at >= 0;
    }
}

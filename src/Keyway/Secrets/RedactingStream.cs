using System.Buffers;
using System.Text;

namespace Keyway.Secrets;

/// <summary>
/// A write-only stream that replaces every form of a known secret value with <c>[REDACTED]</c> on its
/// way to <paramref name="inner"/>, even when a form is split across writes: a sliding window of the
/// longest form a value may take (<see cref="RedactionForms.MaxEncodedLength"/> − 1 bytes) is held back
/// until the next write or <see cref="CompleteAsync"/>; everything before it goes out at once.
/// </summary>
internal sealed class RedactingStream(Stream inner, Redactor redactor) : Stream
{
    private static readonly byte[] Replacement = Encoding.UTF8.GetBytes(Secret.Redacted);

    private readonly RedactionForms _forms = redactor.Forms;
    private readonly int _keep = Math.Max(0, redactor.Forms.MaxEncodedLength - 1);
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

        // The matcher reads one byte per char: the bytes widened (vectorized), so any byte sequence is searchable.
        var wide = ArrayPool<char>.Shared.Rent(work.Length);
        try
        {
            Encoding.Latin1.GetChars(work.Span, wide);
            var start = 0;
            foreach (var (at, length) in _forms.FindAll(wide.AsSpan(0, work.Length)) ?? [])
            {
                if (at > start)
                {
                    await inner.WriteAsync(work[start..at], cancellationToken);
                }

                await inner.WriteAsync(Replacement, cancellationToken);
                Redactions++;
                start = at + length;
            }

            // Every complete form is replaced; hold back a tail that may begin one.
            var safe = Math.Max(start, work.Length - _keep);
            if (safe > start)
            {
                await inner.WriteAsync(work[start..safe], cancellationToken);
            }

            var tail = work[safe..];
            if (_pending.Length < tail.Length)
            {
                _pending = new byte[Math.Max(tail.Length, Math.Min(_keep, 64 * 1024))];
            }

            tail.Span.CopyTo(_pending);
            _pendingLength = tail.Length;
        }
        finally
        {
            ArrayPool<char>.Shared.Return(wide);
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
}

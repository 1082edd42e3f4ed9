using System.Buffers;
using System.IO.Pipelines;
using System.Text;

namespace Keyway.Secrets;

/// <summary>
/// A write-only stream that replaces every form of a known secret value with <c>[REDACTED]</c> on its
/// way to <paramref name="inner"/>, even when a form is split across writes: a sliding window of the
/// longest form a value may take (<see cref="RedactionForms.MaxEncodedLength"/> − 1 bytes) is held back
/// until the next write or <see cref="CompleteAsync"/>; everything before it goes out at once.
/// </summary>
/// <remarks>
/// A write is searched where it lies, not copied: what was held back is settled first, in a seam of
/// its own bytes and the write's first window (every form that starts in it ends there), then the write
/// from where that left off. Only a small write, or a held-back window with an escape introducer (an
/// escape may run across the two, and the write read alone could decode differently), is joined to
/// the window and searched as one.
/// <para>Given the pipe behind <paramref name="inner"/> (<paramref name="pipe"/>, a response's
/// <c>BodyWriter</c>), the pieces of one write (the window, the text between replacements) are copied
/// into it and flushed once, so each write still goes out as one: no extra send for the window.</para>
/// </remarks>
internal sealed class RedactingStream(Stream inner, Redactor redactor, PipeWriter? pipe = null) : Stream
{
    private static readonly byte[] Replacement = Encoding.UTF8.GetBytes(Secret.Redacted);

    private readonly RedactionForms _forms = redactor.Forms;
    private readonly int _keep = Math.Max(0, redactor.Forms.MaxEncodedLength - 1);

    // The held-back window, and room after it for the next write's first window (the seam).
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
        if (buffer.IsEmpty)
        {
            return;
        }

        if (_pendingLength > 0 && buffer.Length > 4 * (_keep + 1) && !_forms.HasEscapeIntroducer(_pending.AsSpan(0, _pendingLength)))
        {
            buffer = buffer[await SettleSeamAsync(buffer, cancellationToken)..];
        }

        if (_pendingLength == 0)
        {
            await RedactAsync(buffer, last: false, cancellationToken);
            await FlushPipeAsync(cancellationToken);
            return;
        }

        var joined = ArrayPool<byte>.Shared.Rent(_pendingLength + buffer.Length);
        try
        {
            _pending.AsSpan(0, _pendingLength).CopyTo(joined);
            buffer.Span.CopyTo(joined.AsSpan(_pendingLength));
            var length = _pendingLength + buffer.Length;
            _pendingLength = 0;
            await RedactAsync(joined.AsMemory(0, length), last: false, cancellationToken);
            await FlushPipeAsync(cancellationToken);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(joined);
        }
    }

    /// <summary>
    /// Sends the held-back window with the forms that start in it replaced; returns where in
    /// <paramref name="buffer"/> the last of them ended (0 when none reaches into it).
    /// </summary>
    private async ValueTask<int> SettleSeamAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        // A form is at most _keep + 1 bytes: one that starts in the window ends within the write's first _keep + 1.
        var held = _pendingLength;
        var head = Math.Min(buffer.Length, _keep + 1);
        if (_pending.Length < held + head)
        {
            var larger = new byte[held + head];
            _pending.AsSpan(0, held).CopyTo(larger);
            _pending = larger;
        }

        buffer.Span[..head].CopyTo(_pending.AsSpan(held));
        var seam = _pending.AsMemory(0, held + head);
        var start = 0;
        foreach (var (at, length) in _forms.FindAll(seam.Span) ?? RedactionForms.NoMatches)
        {
            if (at >= held)
            {
                // Starts in the write: found again there, where the search sees all of it.
                break;
            }

            if (at > start)
            {
                await SendAsync(seam[start..at], cancellationToken);
            }

            await SendAsync(Replacement, cancellationToken);
            Redactions++;
            start = at + length;
        }

        if (start < held)
        {
            await SendAsync(seam[start..held], cancellationToken);
        }

        _pendingLength = 0;
        return Math.Max(0, start - held);
    }

    /// <summary>
    /// Sends <paramref name="work"/> (nothing held back before it) redacted, but for the window at its end,
    /// which is held back unless <paramref name="last"/>.
    /// </summary>
    private async ValueTask RedactAsync(ReadOnlyMemory<byte> work, bool last, CancellationToken cancellationToken)
    {
        var start = 0;
        var window = last ? work.Length : work.Length - _keep;
        foreach (var (at, length) in _forms.FindAll(work.Span) ?? RedactionForms.NoMatches)
        {
            if (at >= window)
            {
                // A longer form may start here and end in the next write: decided with it.
                break;
            }

            if (at > start)
            {
                await SendAsync(work[start..at], cancellationToken);
            }

            await SendAsync(Replacement, cancellationToken);
            Redactions++;
            start = at + length;
        }

        // Every form that starts before the window is replaced; hold back the window, which may begin one.
        var safe = Math.Max(start, window);
        if (safe > start)
        {
            await SendAsync(work[start..safe], cancellationToken);
        }

        var tail = work[safe..];
        if (_pending.Length < tail.Length)
        {
            // Room for the seam too (the window and the next write's first window).
            _pending = new byte[Math.Max(tail.Length, Math.Min(2 * (_keep + 1), 128 * 1024))];
        }

        tail.Span.CopyTo(_pending);
        _pendingLength = tail.Length;
    }

    /// <summary>Writes what was held back. Call once the body is complete.</summary>
    public async Task CompleteAsync(CancellationToken cancellationToken)
    {
        if (_pendingLength > 0)
        {
            var length = _pendingLength;
            _pendingLength = 0;
            await RedactAsync(_pending.AsMemory(0, length), last: true, cancellationToken);
            await FlushPipeAsync(cancellationToken);
        }
    }

    /// <summary>One piece of a write: copied into the pipe (flushed once the write is done), or written to the stream.</summary>
    private ValueTask SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        if (pipe is null)
        {
            return inner.WriteAsync(bytes, cancellationToken);
        }

        pipe.Write(bytes.Span);
        return ValueTask.CompletedTask;
    }

    private async ValueTask FlushPipeAsync(CancellationToken cancellationToken)
    {
        if (pipe is not null)
        {
            await pipe.FlushAsync(cancellationToken);
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) =>
        throw new NotSupportedException("The redacting stream is written asynchronously.");

    public override Task FlushAsync(CancellationToken cancellationToken) =>
        pipe is null ? inner.FlushAsync(cancellationToken) : pipe.FlushAsync(cancellationToken).AsTask();

    public override void Flush() => inner.Flush();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}

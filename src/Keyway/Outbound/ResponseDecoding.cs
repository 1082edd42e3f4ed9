using System.IO.Compression;
using Keyway.Api;

namespace Keyway.Outbound;

/// <summary>
/// Undoes an upstream's <c>Content-Encoding</c> so that redaction reads the body it would show.
/// Keyway asks every upstream for <c>Accept-Encoding: identity</c>; one that compresses anyway with
/// gzip, deflate (zlib) or br is decoded here, and any other encoding is refused
/// (<see cref="Unsupported"/>). The decoded bytes count against the resource's response limit, so a
/// small compressed answer cannot expand without bound (a decompression bomb).
/// </summary>
internal static class ResponseDecoding
{
    /// <summary>The header value Keyway sends upstream.</summary>
    public const string Identity = "identity";

    /// <summary>Whether the answer is encoded at all (anything but identity).</summary>
    public static bool IsEncoded(ICollection<string> contentEncoding)
    {
        foreach (var encoding in contentEncoding)
        {
            if (!encoding.Equals(Identity, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The first encoding Keyway cannot decode, or null when it can decode all.</summary>
    public static string? FindUnsupported(ICollection<string> contentEncoding)
    {
        foreach (var encoding in contentEncoding)
        {
            if (!IsKnown(encoding))
            {
                return encoding;
            }
        }

        return null;
    }

    private static bool IsKnown(string encoding) =>
        encoding.ToLowerInvariant() is Identity or "gzip" or "x-gzip" or "deflate" or "br";

    /// <summary>
    /// <paramref name="body"/> decoded (encodings are undone last applied first), reading at most
    /// <paramref name="limit"/> decoded bytes before it throws <see cref="DecodedTooLargeException"/>.
    /// </summary>
    public static Stream Decode(Stream body, ICollection<string> contentEncoding, long limit)
    {
        var stream = body;
        foreach (var encoding in contentEncoding.Reverse())
        {
            stream = encoding.ToLowerInvariant() switch
            {
                "gzip" or "x-gzip" => new GZipStream(stream, CompressionMode.Decompress),
                // HTTP's "deflate" is the zlib format (RFC 9110 8.4.1.2).
                "deflate" => new ZLibStream(stream, CompressionMode.Decompress),
                "br" => new BrotliStream(stream, CompressionMode.Decompress),
                Identity => stream,
                _ => throw Unsupported(encoding, "the resource"),
            };
        }

        return new LimitedStream(stream, limit);
    }

    public static KeywayException Unsupported(string encoding, string resource) =>
        new(StatusCodes.Status502BadGateway, "upstream_encoding_unsupported",
            $"The answer of {resource} is encoded as '{encoding}', which Keyway cannot decode to redact it, so it was not passed on. " +
            "Keyway asks for 'Accept-Encoding: identity'; configure the upstream to honour it, or to use gzip, deflate or br.");

    /// <summary>Reads a decoded body, failing once it exceeds the limit.</summary>
    private sealed class LimitedStream(Stream inner, long limit) : Stream
    {
        private long _read;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Count(await inner.ReadAsync(buffer, cancellationToken));

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));

        private int Count(int read)
        {
            _read += read;
            if (_read > limit)
            {
                throw new DecodedTooLargeException(limit);
            }

            return read;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}

/// <summary>A decoded answer grew past the resource's response limit.</summary>
internal sealed class DecodedTooLargeException(long limit)
    : IOException($"The decoded answer is larger than the response limit of {limit} bytes (maxResponseBytes).")
{
    public long Limit { get; } = limit;
}

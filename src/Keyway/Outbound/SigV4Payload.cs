using System.Security.Cryptography;
using Keyway.Api;
using Keyway.Resources;

namespace Keyway.Outbound;

/// <summary>
/// The payload hash a request signed with AWS Signature Version 4 carries: that of an empty body, of the body
/// itself (read whole, up to <see cref="MaxHashedBytes"/>), or <c>UNSIGNED-PAYLOAD</c> where the resource says so.
/// </summary>
internal static class SigV4Payload
{
    /// <summary>The largest body hashed; a larger one is refused unless the resource signs bodies as unsigned.</summary>
    public const int MaxHashedBytes = 8 * 1024 * 1024;

    /// <summary>
    /// For <c>/proxy</c>: the hash of the caller's body, which is read whole and put back as a buffered stream
    /// for the forwarder to send (a streamed body cannot be hashed before it is sent).
    /// </summary>
    public static async ValueTask<string> PrepareAsync(HttpRequest request, CompiledSigV4 sigV4, string resource, CancellationToken cancellationToken)
    {
        var chunked = request.Headers.ContainsKey("Transfer-Encoding");
        if (request.ContentLength is 0 || (request.ContentLength is null && !chunked))
        {
            return AwsSigV4Signer.EmptyPayloadHash;
        }

        if (sigV4.UnsignedPayload)
        {
            return AwsSigV4Signer.UnsignedPayload;
        }

        if (request.ContentLength is not { } length || length > MaxHashedBytes)
        {
            throw TooLarge(resource);
        }

        // Held as it arrives rather than allocated at the declared length: a body that trickles in costs
        // only what has come.
        var body = new MemoryStream((int)Math.Min(length, ReadSize));
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[(int)Math.Min(length, ReadSize)];
        for (var read = 0L; read < length;)
        {
            var count = await request.Body.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, length - read)), cancellationToken);
            if (count == 0)
            {
                throw new KeywayException(StatusCodes.Status400BadRequest, "body_incomplete",
                    $"The request body ended after {read} of the {length} bytes its Content-Length declares.");
            }

            hash.AppendData(buffer, 0, count);
            body.Write(buffer, 0, count);
            read += count;
        }

        body.Position = 0;
        request.Body = body;
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private const int ReadSize = 16 * 1024;

    /// <summary>For <c>/run</c> and saved queries: the hash of the body about to be sent (held whole), or of none.</summary>
    public static string Of(byte[]? body, bool hasBody, CompiledSigV4 sigV4, string resource)
    {
        if (!hasBody)
        {
            return AwsSigV4Signer.EmptyPayloadHash;
        }

        if (sigV4.UnsignedPayload)
        {
            return AwsSigV4Signer.UnsignedPayload;
        }

        return body is null || body.Length > MaxHashedBytes ? throw TooLarge(resource) : Hash(body);
    }

    private static string Hash(ReadOnlySpan<byte> body)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(body, hash);
        return Convert.ToHexStringLower(hash);
    }

    private static KeywayException TooLarge(string resource) =>
        new(StatusCodes.Status413PayloadTooLarge, "payload_not_signable",
            $"The resource '{resource}' signs its requests with AWS Signature Version 4, which hashes the body before it is sent: Keyway hashes " +
            $"bodies of up to {MaxHashedBytes / (1024 * 1024)} MB sent with a Content-Length. Send a smaller body with its length, or set " +
            "auth.unsignedPayload: true on the resource if the service accepts unsigned payloads (S3 does).");
}

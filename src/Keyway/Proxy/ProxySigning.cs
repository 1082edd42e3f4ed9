using Keyway.Api;
using Keyway.Outbound;
using Keyway.Resources;

namespace Keyway.Proxy;

/// <summary>
/// What the proxy does before it forwards a request of a resource whose auth method works on each request as it
/// is sent: OAuth 1.0a signs a form-encoded body's parameters, and Digest may have to answer a challenge the
/// server has not given yet, or one whose nonce goes stale while the request is under way.
/// </summary>
/// <remarks>
/// <para>A streamed body cannot be sent twice, and a Digest server answers the first request (and one with a
/// stale nonce) with a 401. So for a <c>digest</c> resource: a request without a body is simply sent again with
/// the new challenge's answer; a body of known length up to <see cref="MaxHeldDigestBody"/> is held in memory as
/// it arrives, so it can be sent again too; and when no challenge is kept yet and the body cannot be held, a
/// bodiless <c>HEAD</c> to the same URL obtains one before the caller's request is sent. A larger body whose nonce
/// goes stale under way is answered <c>502 upstream_unauthorized</c> ("send it again"), with the new challenge
/// kept for the next request.</para>
/// </remarks>
internal static class ProxySigning
{
    /// <summary>The largest body a Digest request holds so that it can be sent again after a stale nonce.</summary>
    public const int MaxHeldDigestBody = 64 * 1024;

    /// <summary>The largest form-encoded body OAuth 1.0a reads to sign its parameters.</summary>
    public const int MaxSignedForm = 1024 * 1024;

    /// <summary>For OAuth 1.0a: a form-encoded body, read whole and put back for the forwarder; null for any other body.</summary>
    public static async ValueTask<byte[]?> FormBodyAsync(HttpRequest request, string resource, CancellationToken cancellationToken)
    {
        if (!HasBody(request) || request.ContentType is not { } type ||
            !type.Split(';')[0].Trim().Equals(OAuth1Signer.FormType, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        if (request.ContentLength is not { } length || length > MaxSignedForm)
        {
            throw new KeywayException(StatusCodes.Status413PayloadTooLarge, "payload_not_signable",
                $"The resource '{resource}' signs its requests with OAuth 1.0a, which signs the parameters of a form-encoded body: Keyway reads such bodies " +
                $"of up to {MaxSignedForm / 1024} KB sent with a Content-Length. Send a smaller form with its length, or another content type.");
        }

        return (await HoldAsync(request, length, cancellationToken)).ToArray();
    }

    /// <summary>For Digest: holds a small body of known length so the request can be sent again; whether the request can be.</summary>
    public static async ValueTask<bool> MakeReplayableAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        if (!HasBody(request) || request.Body is MemoryStream)
        {
            return true;
        }

        if (request.ContentLength is not { } length || length > MaxHeldDigestBody)
        {
            return false;
        }

        await HoldAsync(request, length, cancellationToken);
        return true;
    }

    /// <summary>Rewinds a held body before the request is sent again.</summary>
    public static void Rewind(HttpRequest request)
    {
        if (request.Body is MemoryStream held)
        {
            held.Position = 0;
        }
    }

    /// <summary>
    /// For Digest, when no challenge is kept and the caller's body cannot be sent twice: a <c>HEAD</c> to the same
    /// URL, without credentials, whose 401 gives the challenge to answer.
    /// </summary>
    public static async Task ProbeAsync(OutboundClient outbound, ResolvedResource resolved, Uri target, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(resolved.Resource.Timeout);
        using var probe = new HttpRequestMessage(HttpMethod.Head, target) { Version = System.Net.HttpVersion.Version11 };
        foreach (var (name, value) in resolved.Headers)
        {
            HeaderRules.Set(probe, name, value);
        }

        try
        {
            // Through the resource's own pool when it has TLS settings: the same CA and client certificate as the request itself.
            using var response = await outbound.For(resolved.Tls).Client.SendAsync(probe, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            if (response.StatusCode == System.Net.HttpStatusCode.Unauthorized)
            {
                resolved.Digest!.Challenged(response, null);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new KeywayException(StatusCodes.Status504GatewayTimeout, "upstream_timeout",
                $"The resource '{resolved.Resource.Name}' did not answer within {resolved.Resource.Timeout.TotalMilliseconds:0} ms (timeouts.requestMs).");
        }
        catch (HttpRequestException e)
        {
            throw Runs.RunExecutor.Translate(e, resolved);
        }
    }

    private static bool HasBody(HttpRequest request) =>
        request.ContentLength is > 0 || (request.ContentLength is null && request.Headers.ContainsKey("Transfer-Encoding"));

    /// <summary>Reads the body whole as it arrives (not allocated at its declared length) and puts it back as a memory stream.</summary>
    private static async ValueTask<MemoryStream> HoldAsync(HttpRequest request, long length, CancellationToken cancellationToken)
    {
        var body = new MemoryStream((int)Math.Min(length, 16 * 1024));
        var buffer = new byte[(int)Math.Min(length, 16 * 1024)];
        for (var read = 0L; read < length;)
        {
            var count = await request.Body.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, length - read)), cancellationToken);
            if (count == 0)
            {
                throw new KeywayException(StatusCodes.Status400BadRequest, "body_incomplete",
                    $"The request body ended after {read} of the {length} bytes its Content-Length declares.");
            }

            body.Write(buffer, 0, count);
            read += count;
        }

        body.Position = 0;
        request.Body = body;
        return body;
    }
}

using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Keyway.Access;
using Keyway.Api;
using Keyway.Credentials;
using Keyway.Outbound;
using Keyway.Resources;

namespace Keyway.Runs;

/// <summary>
/// Sends one outbound call through a resolved resource and reads the answer within the resource's
/// limits. The caller's own credentials never leave; the resource's are attached here.
/// </summary>
internal sealed partial class RunExecutor(OutboundClient outbound, CredentialEngine engine, TimeProvider time, ILogger<RunExecutor> logger)
{
    private const int MaxRedirects = 5;

    public async Task<RunResult> ExecuteAsync(ResolvedResource resolved, OutboundCall call, Caller? caller, CancellationToken cancellationToken)
    {
        var resource = resolved.Resource;
        var url = BuildUrl(resolved, call.Path, call.Query);
        var started = time.GetTimestamp();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(resource.Timeout);
        var binding = resolved.Credential;
        CredentialKey? key = null;
        Credential? credential = null;
        if (binding is not null)
        {
            try
            {
                // Bounded by the call's own timeout: waiting on another replica's refresh never outlasts it.
                (var k, credential) = await binding.GetAsync(engine, caller, timeout.Token);
                key = k;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw CredentialTimedOut(resolved);
            }
        }

        var refreshed = false;
        var replayable = call.Content is null || call.ReplayableBody is not null;
        var sent = new OutboundCapture();
        HttpResponseMessage? response = null;
        try
        {
            // A DPoP-bound credential's key, loaded once per process: every request carries a proof signed with it.
            var proofKey = binding?.DPoP is { } dpop && key is { } owner ? await dpop.KeyAsync(owner, timeout.Token) : null;
            response = await SendAsync(resolved, call, url, credential, proofKey, sent, timeout.Token);
            if (credential is not null && resource.AuthFailureStatuses.Contains((int)response.StatusCode) && replayable)
            {
                // The upstream rejected this very token: refresh it (once, however many callers saw it) and retry once.
                response.Dispose();
                response = null;
                credential = await RenewAsync(key!.Value, binding!, credential, resolved, timeout.Token, cancellationToken);
                refreshed = true;
                response = await SendAsync(resolved, call, url, credential, proofKey, sent, timeout.Token);
            }

            var (body, encoding, headers) = await ReadAsync(response, resource, credential is null ? resolved.Redactor : binding!.RedactorFor(resolved.Redactor, credential), timeout.Token);
            if (credential is not null && !refreshed && replayable && resource.AuthFailureCondition is { } condition &&
                Matches(condition, resource, (int)response.StatusCode, headers, body))
            {
                // The answer says the session is gone although its status does not (auth.refresh.bodyCondition): same as a 401.
                response.Dispose();
                response = null;
                credential = await RenewAsync(key!.Value, binding!, credential, resolved, timeout.Token, cancellationToken);
                refreshed = true;
                response = await SendAsync(resolved, call, url, credential, proofKey, sent, timeout.Token);
                (body, encoding, headers) = await ReadAsync(response, resource, binding!.RedactorFor(resolved.Redactor, credential), timeout.Token);
            }

            return new RunResult
            {
                Status = (int)response.StatusCode,
                Headers = headers,
                Body = body,
                BodyEncoding = encoding,
                DurationMs = (long)time.GetElapsedTime(started).TotalMilliseconds,
                Refreshed = refreshed,
                Outbound = sent.Render(credential is null ? resolved.Redactor : binding!.RedactorFor(resolved.Redactor, credential), resolved.Shown, call),
            };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new KeywayException(StatusCodes.Status504GatewayTimeout, "upstream_timeout",
                $"The resource '{resource.Name}' did not answer within {resource.Timeout.TotalMilliseconds:0} ms (timeouts.requestMs).");
        }
        catch (HttpRequestException e)
        {
            throw Translate(e, resolved);
        }
        finally
        {
            response?.Dispose();
        }
    }

    /// <summary>The upstream rejected <paramref name="credential"/>: a fresh one, within the call's timeout.</summary>
    private async Task<Credential> RenewAsync(
        CredentialKey key, CredentialBinding binding, Credential credential, ResolvedResource resolved, CancellationToken timeout, CancellationToken aborted)
    {
        try
        {
            return await engine.RejectAsync(key, binding.Provider, credential.Tokens.AccessToken, timeout);
        }
        catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
        {
            throw CredentialTimedOut(resolved);
        }
    }

    internal static CredentialException CredentialTimedOut(ResolvedResource resolved) =>
        CredentialException.RefreshPending(resolved.Resource.Name, resolved.Values.Environment,
            $"it is being refreshed, and the refresh did not finish within the resource's timeout ({resolved.Resource.Timeout.TotalMilliseconds:0} ms, timeouts.requestMs).",
            TimeSpan.FromSeconds(1));

    private async Task<(JsonElement? Body, string? Encoding, Dictionary<string, string> Headers)> ReadAsync(
        HttpResponseMessage response, CompiledResource resource, Secrets.Redactor redactor, CancellationToken cancellationToken)
    {
        var (body, encoding) = await ReadBodyAsync(response, resource, redactor, cancellationToken);
        // A compressed answer was decoded: its encoding and length no longer describe the body returned.
        var decoded = ResponseDecoding.IsEncoded(response.Content.Headers.ContentEncoding);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
        {
            if (!HeaderRules.IsHopByHop(name) && !(decoded && name is "Content-Encoding" or "Content-Length"))
            {
                headers[redactor.Redact(name)] = redactor.Redact(string.Join(", ", values));
            }
        }

        return (body, encoding, headers);
    }

    /// <summary>
    /// Evaluates the resource's auth-failure condition over the (already redacted) answer, as
    /// <c>response.status</c>, <c>response.headers['lower-case-name']</c> and <c>response.body</c>.
    /// A condition that fails to evaluate is taken as false: the answer goes back as it is.
    /// </summary>
    private bool Matches(Templates.Template condition, CompiledResource resource, int status, Dictionary<string, string> headers, JsonElement? body)
    {
        var lower = new Dictionary<string, object?>(headers.Count, StringComparer.Ordinal);
        foreach (var (name, value) in headers)
        {
            lower[name.ToLowerInvariant()] = value;
        }

        var scope = new Templates.TemplateScope().With("response", new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["status"] = (long)status,
            ["headers"] = lower,
            ["body"] = body is { } element ? element : null,
        });
        try
        {
            return condition.Evaluate(scope) switch
            {
                null => false,
                bool b => b,
                string s => s.Length > 0 && s != "false",
                long l => l != 0,
                double d => d != 0 && !double.IsNaN(d),
                _ => true,
            };
        }
        catch (Templates.TemplateException e)
        {
            Log.AuthFailureConditionFailed(logger, resource.Name, e.Code);
            return false;
        }
    }

    /// <summary>
    /// Sends the call, following same-origin redirects when the resource allows them. A resource server that answers
    /// a DPoP proof with <c>use_dpop_nonce</c> gets the request once more, with its nonce, when the body can be sent again.
    /// </summary>
    private async Task<HttpResponseMessage> SendAsync(
        ResolvedResource resolved, OutboundCall call, Uri url, Credential? credential, DPoPKey? proofKey, OutboundCapture sent, CancellationToken cancellationToken)
    {
        var resource = resolved.Resource;
        var method = call.Method;
        var withBody = true;
        var rechallenged = false;
        var askedForNonce = false;
        // The shared pool, or the resource's own when it presents a client certificate (created once per certificate version).
        var client = outbound.For(resolved.Tls).Client;
        for (var hop = 0; ; hop++)
        {
            // On every hop: a bound secret goes only to its origins, whatever the resource now says.
            resolved.DemandOrigin(url);
            using var request = BuildRequest(resolved, method, url, call.Headers, withBody ? FreshContent(call) : null);
            if (credential is not null)
            {
                resolved.Credential!.Apply(request, credential);
                if (proofKey is not null)
                {
                    // Last, like a signature: the proof names the method and URL of this very request, on every hop.
                    resolved.Credential.DPoP!.Sign(request, proofKey, credential);
                }
            }

            if ((resolved.Signer ?? (credential is null ? null : resolved.Credential!.SignerFor(credential))) is { } signer)
            {
                // Last: the signature covers the request as it is sent, on every hop.
                signer.Sign(request, SigV4Payload.Of(call.ReplayableBody, request.Content is not null, resource.SigV4!, resource.Name), time.GetUtcNow());
            }

            // Signed as it is sent, each hop and retry with its own nonce and timestamp.
            resolved.OAuth1?.Sign(request, OAuth1Signer.IsForm(request.Content) && withBody ? call.ReplayableBody : null, time.GetUtcNow());
            var answered = resolved.Digest?.Authorize(request);
            sent.Capture(request, withBody ? call.ReplayableBody : null);
            var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (resolved.Digest is { } digest && response.StatusCode == HttpStatusCode.Unauthorized &&
                digest.Challenged(response, answered) == DigestVerdict.Retry && !rechallenged && (!withBody || call.Content is null || call.ReplayableBody is not null))
            {
                // The first request (no challenge kept yet) or a stale nonce: answer the new challenge, once.
                rechallenged = true;
                response.Dispose();
                hop--;
                continue;
            }

            if (proofKey is not null && resolved.Credential!.DPoP!.AsksForNonce(url, response) && !askedForNonce &&
                (!withBody || call.Content is null || call.ReplayableBody is not null))
            {
                // RFC 9449, section 9: the nonce is remembered for this origin; the same request goes again with it, once.
                askedForNonce = true;
                response.Dispose();
                hop--;
                continue;
            }

            if (!resource.FollowSameOriginRedirects || hop == MaxRedirects || !IsRedirect(response.StatusCode) ||
                response.Headers.Location is not { } location)
            {
                return response;
            }

            var next = location.IsAbsoluteUri ? location : new Uri(url, location);
            var keepsMethod = response.StatusCode is HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;
            if (!SameOrigin(next, resolved.BaseUrl) || (keepsMethod && call.Content is not null && call.ReplayableBody is null))
            {
                // Never follow a redirect to another origin: the credential would go with it.
                return response;
            }

            response.Dispose();
            url = next;
            if (!keepsMethod)
            {
                method = method == HttpMethod.Head ? HttpMethod.Head : HttpMethod.Get;
                withBody = false;
            }
        }
    }

    /// <summary>The call's body for one attempt: a new content each time, so a retry or redirect can send it again.</summary>
    private static HttpContent? FreshContent(OutboundCall call)
    {
        if (call.ReplayableBody is null)
        {
            return call.Content;
        }

        var content = new ByteArrayContent(call.ReplayableBody);
        if (call.Content?.Headers.ContentType is { } type)
        {
            content.Headers.ContentType = type;
        }

        return content;
    }

    internal static Uri BuildUrl(ResolvedResource resolved, string? path, IReadOnlyList<KeyValuePair<string, string?>> query)
    {
        try
        {
            return resolved.Query.Count == 0 && query.Count == 0
                ? BuiltUrls.Get(resolved.BaseUrl, path)
                : OutboundUrl.Build(resolved.BaseUrl, path, resolved.Query.Count == 0 ? query : resolved.Query.Concat(query));
        }
        catch (OutboundRequestException e)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, e.Code, e.Message);
        }
    }

    internal static KeywayException Translate(HttpRequestException e, ResolvedResource resolved)
    {
        if (e.InnerException is OutboundRequestException denied)
        {
            return new KeywayException(StatusCodes.Status403Forbidden, denied.Code, resolved.Redactor.Redact(denied.Message));
        }

        if (TlsFailures.Describe(e, resolved.Resource.Name, resolved.BaseUrl, resolved.Tls?.Tls) is { } tls)
        {
            return new KeywayException(StatusCodes.Status502BadGateway, TlsFailures.Code, resolved.Redactor.Redact(tls));
        }

        return new KeywayException(StatusCodes.Status502BadGateway, "upstream_unreachable",
            $"The resource '{resolved.Resource.Name}' could not be reached: {resolved.Redactor.Redact(e.Message)}");
    }

    private static HttpRequestMessage BuildRequest(
        ResolvedResource resolved, HttpMethod method, Uri url, IReadOnlyList<KeyValuePair<string, string>> callerHeaders, HttpContent? content)
    {
        var request = new HttpRequestMessage(method, url) { Content = content, Version = HttpVersion.Version11 };
        foreach (var (name, value) in callerHeaders)
        {
            HeaderRules.Set(request, name, value);
        }

        foreach (var (name, value) in resolved.Headers)
        {
            HeaderRules.Set(request, name, value);
        }

        if (resolved.Cookie is not null)
        {
            request.Headers.TryAddWithoutValidation("Cookie", resolved.Cookie);
        }

        // The answer is redacted: ask for it uncompressed, whatever the caller or the resource asked for.
        request.Headers.Remove("Accept-Encoding");
        request.Headers.TryAddWithoutValidation("Accept-Encoding", ResponseDecoding.Identity);
        return request;
    }

    private static bool IsRedirect(HttpStatusCode status) => status is HttpStatusCode.MovedPermanently or HttpStatusCode.Found
        or HttpStatusCode.SeeOther or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;

    private static bool SameOrigin(Uri a, Uri b) =>
        a.Scheme == b.Scheme && string.Equals(a.IdnHost, b.IdnHost, StringComparison.OrdinalIgnoreCase) && a.Port == b.Port;

    private async Task<(JsonElement? Body, string? Encoding)> ReadBodyAsync(
        HttpResponseMessage response, CompiledResource resource, Secrets.Redactor redactor, CancellationToken cancellationToken)
    {
        var limit = resource.MaxResponseBytes;
        if (response.Content.Headers.ContentLength is { } declared && declared > limit)
        {
            throw TooLarge(resource);
        }

        var contentEncoding = response.Content.Headers.ContentEncoding;
        if (ResponseDecoding.FindUnsupported(contentEncoding) is { } unsupported)
        {
            throw ResponseDecoding.Unsupported(unsupported, $"resource '{resource.Name}'");
        }

        await using var raw = await response.Content.ReadAsStreamAsync(cancellationToken);
        // Decoded bytes count against the limit as they are read: a small compressed answer cannot grow without bound.
        await using var stream = ResponseDecoding.IsEncoded(contentEncoding) ? ResponseDecoding.Decode(raw, contentEncoding, limit) : raw;
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        try
        {
            while ((read = await stream.ReadAsync(chunk, cancellationToken)) > 0)
            {
                if (buffer.Length + read > limit)
                {
                    throw TooLarge(resource);
                }

                buffer.Write(chunk, 0, read);
            }
        }
        catch (DecodedTooLargeException)
        {
            throw TooLarge(resource);
        }
        catch (InvalidDataException)
        {
            throw new KeywayException(StatusCodes.Status502BadGateway, "upstream_encoding_invalid",
                $"The answer of resource '{resource.Name}' is not valid {string.Join(", ", contentEncoding)} data, so it could not be decoded and redacted.");
        }

        if (buffer.Length == 0)
        {
            return (null, null);
        }

        var bytes = buffer.GetBuffer().AsSpan(0, (int)buffer.Length);
        var mediaType = response.Content.Headers.ContentType?.MediaType;
        if (!IsText(mediaType, bytes, out var text))
        {
            if (redactor.ContainsUtf8(bytes))
            {
                Log.BinaryBodyHeldSecret(logger, resource.Name);
                return (JsonSerializer.SerializeToElement(Secrets.Secret.Redacted), null);
            }

            return (JsonSerializer.SerializeToElement(Convert.ToBase64String(bytes)), "base64");
        }

        if (IsJson(mediaType))
        {
            try
            {
                // Redacted once decoded: an escaped form (\u0063…, \/) is the value again once parsed.
                using var document = JsonDocument.Parse(text);
                return (Secrets.JsonRedaction.Redact(document.RootElement, redactor).Clone(), null);
            }
            catch (JsonException)
            {
                // Declared JSON but is not: hand it back as text.
            }
        }

        return (JsonSerializer.SerializeToElement(redactor.Redact(text)), null);
    }

    private static KeywayException TooLarge(CompiledResource resource) =>
        new(StatusCodes.Status502BadGateway, "payload_too_large",
            $"The response of resource '{resource.Name}' is larger than its limit of {resource.MaxResponseBytes} bytes (maxResponseBytes). Raise the limit or use the proxy, which streams.");

    private static bool IsJson(string? mediaType) =>
        mediaType is not null && (mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) ||
                                  mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase));

    private static bool IsText(string? mediaType, ReadOnlySpan<byte> bytes, out string text)
    {
        var declaredText = mediaType is null || IsJson(mediaType) || mediaType.StartsWith("text/", StringComparison.OrdinalIgnoreCase) ||
                           mediaType.EndsWith("xml", StringComparison.OrdinalIgnoreCase) ||
                           mediaType.Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase) ||
                           mediaType.Equals("application/javascript", StringComparison.OrdinalIgnoreCase) ||
                           mediaType.Equals("application/graphql-response+json", StringComparison.OrdinalIgnoreCase);
        text = "";
        if (!declaredText || bytes.Contains((byte)0))
        {
            return false;
        }

        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }

    internal static HttpContent? ContentFor(JsonElement? body, IReadOnlyList<KeyValuePair<string, string>> headers, out byte[]? replayable)
    {
        replayable = null;
        if (body is not { } element || element.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
        {
            return null;
        }

        var contentType = headers.FirstOrDefault(h => h.Key.Equals("Content-Type", StringComparison.OrdinalIgnoreCase)).Value;
        if (element.ValueKind == JsonValueKind.String)
        {
            replayable = Encoding.UTF8.GetBytes(element.GetString()!);
            var text = new ByteArrayContent(replayable);
            text.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType ?? "text/plain; charset=utf-8");
            return text;
        }

        replayable = JsonSerializer.SerializeToUtf8Bytes(element);
        var json = new ByteArrayContent(replayable);
        json.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType ?? "application/json; charset=utf-8");
        return json;
    }

    private static partial class Log
    {
        [LoggerMessage(100, LogLevel.Warning, "A binary response of resource {Resource} held a secret value; its body was withheld")]
        public static partial void BinaryBodyHeldSecret(ILogger logger, string resource);

        [LoggerMessage(101, LogLevel.Warning, "The auth failure condition (auth.refresh.bodyCondition) of resource {Resource} could not be evaluated ({Code}); taken as false")]
        public static partial void AuthFailureConditionFailed(ILogger logger, string resource, string code);
    }
}

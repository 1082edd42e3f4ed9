using System.Net;
using Keyway.Credentials;
using Keyway.Outbound;
using Keyway.Resources;
using Keyway.Secrets;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;

namespace Keyway.Proxy;

internal static partial class ProxyEndpoints
{
    /// <summary>
    /// Copies the caller's request minus everything that must not reach the upstream (its
    /// Authorization, Cookie, X-Keyway-* and hop-by-hop headers), then attaches the resource's.
    /// </summary>
    internal sealed class CredentialTransformer(
        ResolvedResource resolved, Uri target, Credential? credential, Redactor redactor, IReadOnlySet<int>? rejectionStatuses,
        string? payloadHash, TimeProvider time) : HttpTransformer
    {
        /// <summary>The upstream answered with a status that means the credential was rejected; nothing was sent to the caller.</summary>
        public bool Rejected { get; private set; }

        /// <summary>The upstream's answer is compressed in an encoding Keyway cannot decode; nothing was sent to the caller.</summary>
        public string? UnsupportedEncoding { get; private set; }

        /// <summary>A form-encoded body whose parameters OAuth 1.0a signs, or null.</summary>
        public byte[]? FormBody { get; init; }

        /// <summary>Whether a Digest 401 that asks for a new challenge's answer may be sent again (not on the retry itself).</summary>
        public bool MayRechallenge { get; init; }

        /// <summary>The upstream asked for a Digest challenge to be answered (the first request, or a stale nonce); nothing was sent to the caller.</summary>
        public bool Rechallenged { get; private set; }

        /// <summary>The DPoP key that signs a proof for this request, or null.</summary>
        public DPoPKey? ProofKey { get; init; }

        /// <summary>A nonce challenge may be answered by sending the request again (it has no body, and none was answered yet).</summary>
        public bool RetriesNonce { get; init; }

        /// <summary>The resource server asked for a DPoP nonce (remembered now) and the request can go again; nothing was sent to the caller.</summary>
        public bool AskedForNonce { get; private set; }

        private DigestChallenge? _answered;

        public override async ValueTask TransformRequestAsync(
            HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            var headers = proxyRequest.Headers;
            headers.Authorization = null;
            headers.Remove("Cookie");
            // Every X-Keyway-* (the API key's X-Keyway-Token, X-Keyway-Environment, any other) is Keyway's
            // and goes no further. The non-validated view names the copied headers without parsing a value
            // or boxing an enumerator; the names are collected first, as a collection is not changed while
            // it is enumerated.
            List<string>? keyway = null;
            foreach (var header in headers.NonValidated)
            {
                if (header.Key.StartsWith(HeaderRules.KeywayPrefix, StringComparison.OrdinalIgnoreCase))
                {
                    (keyway ??= []).Add(header.Key);
                }
            }

            if (keyway is not null)
            {
                foreach (var name in keyway)
                {
                    headers.Remove(name);
                }
            }

            // Indexed: a foreach over the interface would box its enumerator on every request.
            var resourceHeaders = resolved.Headers;
            for (var i = 0; i < resourceHeaders.Count; i++)
            {
                HeaderRules.Set(proxyRequest, resourceHeaders[i].Key, resourceHeaders[i].Value);
            }

            if (resolved.Cookie is not null)
            {
                headers.TryAddWithoutValidation("Cookie", resolved.Cookie);
            }

            if (!redactor.IsEmpty)
            {
                // Redaction reads the body: ask for it uncompressed (an answer compressed anyway is decoded below).
                headers.Remove("Accept-Encoding");
                headers.TryAddWithoutValidation("Accept-Encoding", ResponseDecoding.Identity);
            }

            proxyRequest.RequestUri = target;
            proxyRequest.Headers.Host = null;
            if (credential is not null)
            {
                resolved.Credential!.Apply(proxyRequest, credential, body: false);
                if (ProofKey is not null)
                {
                    // Last, like a signature: the proof names the method and URL sent (the caller's own DPoP header is replaced).
                    resolved.Credential.DPoP!.Sign(proxyRequest, ProofKey, credential);
                }
            }

            // Last: the signature covers the request as it is sent.
            (resolved.Signer ?? (credential is null ? null : resolved.Credential!.SignerFor(credential)))?
                .Sign(proxyRequest, payloadHash ?? AwsSigV4Signer.EmptyPayloadHash, time.GetUtcNow());
            resolved.OAuth1?.Sign(proxyRequest, FormBody, time.GetUtcNow());
            if (resolved.Digest is { } digest)
            {
                _answered = digest.Authorize(proxyRequest);
            }
        }

        public override async ValueTask<bool> TransformResponseAsync(
            HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
        {
            if (proxyResponse is not null && ProofKey is not null && resolved.Credential!.DPoP!.AsksForNonce(target, proxyResponse))
            {
                // A nonce challenge is not a rejected token. A request with a body is not sent again (its body was streamed):
                // the 401 goes to the caller, and the caller's next request carries the nonce remembered here.
                if (RetriesNonce)
                {
                    AskedForNonce = true;
                    return false;
                }
            }
            else if (proxyResponse is not null && rejectionStatuses is not null && rejectionStatuses.Contains((int)proxyResponse.StatusCode))
            {
                Rejected = true;
                return false;
            }

            if (proxyResponse is { StatusCode: HttpStatusCode.Unauthorized } && resolved.Digest is { } digest &&
                digest.Challenged(proxyResponse, _answered) == DigestVerdict.Retry && MayRechallenge)
            {
                Rechallenged = true;
                return false;
            }

            var proceed = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
            // The upstream's headers are copied now, with any CSP, Set-Cookie or Clear-Site-Data of its own.
            ProxyIsolation.Apply(httpContext.Response.Headers);
            if (redactor.IsEmpty)
            {
                return proceed;
            }

            // Redaction may change the body's length: a small body of known length is buffered and
            // sent with its exact length (RedactedResponseBody); any other goes out chunked.
            var headers = httpContext.Response.Headers;
            headers.ContentLength = null;
            if (proxyResponse is not null)
            {
                // Before a compressed content is replaced by its decoded stream, which has none of its headers.
                RedactHeaders(headers, proxyResponse.Headers);
                RedactHeaders(headers, proxyResponse.Content.Headers);
            }

            var decoded = false;
            // The typed ContentEncoding collection is built only when the upstream sent the header.
            if (proxyResponse is not null && proxyResponse.Content.Headers.NonValidated.Contains("Content-Encoding")
                && ResponseDecoding.IsEncoded(proxyResponse.Content.Headers.ContentEncoding))
            {
                var contentEncoding = proxyResponse.Content.Headers.ContentEncoding;
                if (ResponseDecoding.FindUnsupported(contentEncoding) is { } unsupported)
                {
                    UnsupportedEncoding = unsupported;
                    return false;
                }

                // Compressed although identity was asked for: decoded here (the forwarder copies this content),
                // redacted like any body, and sent uncompressed; the decoded size counts against maxResponseBytes.
                var content = new StreamContent(ResponseDecoding.Decode(
                    await proxyResponse.Content.ReadAsStreamAsync(cancellationToken), contentEncoding, resolved.Resource.MaxResponseBytes));
                proxyResponse.Content = content;
                headers.ContentEncoding = default;
                decoded = true;
            }

            // (Not a HEAD, 204 or 304: their Content-Length describes a body that is not sent.)
            if (!decoded && httpContext.Response.Body is RedactedResponseBody body && proxyResponse is not null
                && proxyResponse.StatusCode is not (HttpStatusCode.NoContent or HttpStatusCode.NotModified)
                && !HttpMethods.IsHead(httpContext.Request.Method))
            {
                body.Expect(proxyResponse.Content.Headers.ContentLength);
            }

            // A non-default reason phrase is the upstream's free text: it goes no further.
            if (httpContext.Features.Get<IHttpResponseFeature>() is { } feature)
            {
                feature.ReasonPhrase = null;
            }

            return proceed;
        }

        /// <summary>
        /// Drops or redacts, in the answer, each header of the upstream's that carries a known secret: its name
        /// (dropped: it cannot be renamed into something meaningful) or a value (redacted). The upstream's
        /// collection is read through its non-validated view, which parses no value and boxes no enumerator;
        /// the answer's copy is changed only where it has the header.
        /// </summary>
        private void RedactHeaders(IHeaderDictionary answer, System.Net.Http.Headers.HttpHeaders upstream)
        {
            List<string>? found = null;
            foreach (var (name, values) in upstream.NonValidated)
            {
                if (redactor.Contains(name))
                {
                    (found ??= []).Add(name);
                    continue;
                }

                foreach (var value in values)
                {
                    if (redactor.Contains(value))
                    {
                        (found ??= []).Add(name);
                        break;
                    }
                }
            }

            if (found is null)
            {
                return;
            }

            foreach (var name in found)
            {
                if (redactor.Contains(name))
                {
                    answer.Remove(name);
                }
                else if (answer.TryGetValue(name, out var copied))
                {
                    answer[name] = copied.Select(v => v is null ? null : redactor.Redact(v)).ToArray();
                }
            }
        }
    }
}

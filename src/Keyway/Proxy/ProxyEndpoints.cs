using System.Net;
using Keyway.Access;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Credentials;
using Keyway.Environments;
using Keyway.Outbound;
using Keyway.Resources;
using Keyway.Secrets;
using Keyway.Storage;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;

namespace Keyway.Proxy;

/// <summary>
/// <c>ANY /proxy/{resource}/{**path}</c>: a transparent, streamed pass-through with the resource's
/// credentials attached server-side. The environment comes from <c>X-Keyway-Environment</c>.
/// </summary>
internal static partial class ProxyEndpoints
{
    public const string EnvironmentHeader = "X-Keyway-Environment";

    public static IEndpointRouteBuilder MapProxy(this IEndpointRouteBuilder routes)
    {
        // Reached only by requests UseProxy passes on (none, on a default setup); mapped so that the route
        // listing and the access matrix know the proxy. A plain RequestDelegate over services resolved once.
        var handler = ActivatorUtilities.CreateInstance<Handler>(routes.ServiceProvider);
        routes.Map("/proxy/{resource}/{**path}", (RequestDelegate)handler.ForwardRoutedAsync)
            .WithName("Proxy")
            .WithTags("Proxy")
            .WithSummary("Pass a request through to a resource with its credential attached.")
            // Declared for the route listing; enforced in the handler once X-Keyway-Environment is read (no filter on the hot path).
            .Requires(Permission.Use, "resource", EnvironmentSource.Header)
            .ExcludeFromDescription();
        return routes;
    }

    /// <summary>
    /// The proxy as the first middleware: <c>/proxy/{resource}/{**path}</c> is answered here, ahead of routing,
    /// the exception-handler middleware and the session, antiforgery and authentication middlewares. None of
    /// them has anything to do for it: the proxy takes API keys only (read here, as the authentication fast
    /// path reads them), checks its own permission, and its errors go to the same exception handler the rest of
    /// Keyway uses. A request on a listener that does not serve the proxy (<c>--proxy-urls</c>) goes on, to the
    /// middleware that refuses it.
    /// </summary>
    public static IApplicationBuilder UseProxy(this IApplicationBuilder app, HashSet<int>? proxyPorts)
    {
        var services = app.ApplicationServices;
        var handler = ActivatorUtilities.CreateInstance<Handler>(services);
        var keys = services.GetRequiredService<ApiKeyService>();
        return app.Use(next => context =>
            (proxyPorts is null || proxyPorts.Contains(context.Connection.LocalPort)) && TryMatch(context.Request.Path, out var resource, out var path)
                ? ServeAsync(context, resource, path, handler, keys)
                : next(context));
    }

    /// <summary>
    /// <c>/proxy/{resource}/{**path}</c> as routing matches it: the prefix in any case, a resource segment that is
    /// not empty, and the rest of the (decoded) path, null when there is none. False sends the request on to
    /// routing, so a form this does not claim is answered exactly as before.
    /// </summary>
    internal static bool TryMatch(PathString requestPath, out string resource, out string? path)
    {
        resource = "";
        path = null;
        if (!requestPath.StartsWithSegments("/proxy", StringComparison.OrdinalIgnoreCase, out var rest) || !rest.HasValue)
        {
            return false;
        }

        var value = rest.Value!;
        var slash = value.IndexOf('/', 1);
        resource = slash < 0 ? value[1..] : value[1..slash];
        if (resource.Length == 0)
        {
            return false;
        }

        path = slash < 0 || slash == value.Length - 1 ? null : value[(slash + 1)..];
        // An empty segment after the resource (//) is left to routing, which decides it as it always has.
        return path is null || path[0] != '/';
    }

    private static Task ServeAsync(HttpContext context, string resource, string? path, Handler handler, ApiKeyService keys)
    {
        var headers = context.Request.Headers;
        if (SignIn.Sessions.HasApiKey(headers) && ApiKeyAuthenticationHandler.TryReadToken(headers, out var header, out var token))
        {
            // The caller goes to the handler as is: nothing on the proxy's way reads HttpContext.User, and
            // setting it costs a feature object on every request.
            return keys.TryCached(context, header, token) is { } cached
                ? handler.ForwardAsync(context, resource, path, cached)
                : AuthenticateThenServeAsync(context, resource, path, handler, keys, token.ToString());
        }

        return handler.ForwardAsync(context, resource, path, null);
    }

    private static async Task AuthenticateThenServeAsync(HttpContext context, string resource, string? path, Handler handler, ApiKeyService keys, string token)
    {
        Caller? caller;
        try
        {
            caller = await keys.AuthenticateAsync(token, context.RequestAborted);
        }
        catch (Exception e)
        {
            await HandleAsync(context, e, handler.Errors);
            return;
        }

        await handler.ForwardAsync(context, resource, path, caller);
    }

    /// <summary>What the exception-handler middleware does for the rest of Keyway: problem+json, or an aborted answer once it has started.</summary>
    private static async Task HandleAsync(HttpContext context, Exception exception, Microsoft.AspNetCore.Diagnostics.IExceptionHandler[] errors)
    {
        if (context.Response.HasStarted)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(exception);
        }

        if (exception is OperationCanceledException && context.RequestAborted.IsCancellationRequested)
        {
            // The caller went away: nobody to answer.
            context.Response.StatusCode = StatusCodes.Status499ClientClosedRequest;
            return;
        }

        ClearKeepingIsolation(context.Response);
        context.Response.StatusCode = StatusCodes.Status500InternalServerError;
        foreach (var handler in errors)
        {
            if (await handler.TryHandleAsync(context, exception, context.RequestAborted))
            {
                return;
            }
        }

        System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(exception);
    }

    private sealed class Handler(
        IHttpForwarder forwarder, OutboundClient outbound, ResourceService resources, ResourceResolver resolver,
        AccessPolicy access, CredentialEngine engine, IAuditLog audit, TrafficAudit traffic, TimeProvider time, KnownSecrets known,
        IEnumerable<Microsoft.AspNetCore.Diagnostics.IExceptionHandler> exceptionHandlers)
    {
        /// <summary>The exception handlers the rest of Keyway answers errors with.</summary>
        public Microsoft.AspNetCore.Diagnostics.IExceptionHandler[] Errors { get; } = exceptionHandlers.ToArray();

        public Task ForwardRoutedAsync(HttpContext context)
        {
            var values = context.Request.RouteValues;
            return ForwardAsync(context, (string)values["resource"]!, values["path"] as string, null);
        }

        // An instance method: its state machine holds the handler, not each of its ten services.
        // authenticated: the API key's caller when the proxy middleware has read it; else HttpContext.User's.
        public async Task ForwardAsync(HttpContext context, string resource, string? path, Caller? authenticated)
        {
            try
            {
                var started = time.GetTimestamp();
                Caller? caller = null;
                TrafficMode? mode = null;
                string? environment = null;
                string? errorCode = null;
                var refreshed = false;
                ProxyIsolation.Apply(context.Response.Headers);
                try
                {
                    caller = authenticated ?? Caller.From(context.User) ?? throw new KeywayException(StatusCodes.Status401Unauthorized, "unauthorized",
                        "The proxy takes API keys only, never the console's session cookie: send 'Authorization: Bearer kw_…' or 'X-Keyway-Token: kw_…'.");
                    var environmentHeader = context.Request.Headers[EnvironmentHeader];
                    environment = environmentHeader.Count > 0 && environmentHeader[0] is { } named ? named : Environments.VariableService.Production;
                    access.Demand(caller, Permission.Use, resource, environment);
                    if (audit.IsStalled)
                    {
                        // Every proxied request is recorded, and the record could not be queued until the store is back.
                        caller = null;
                        throw StoreFailure.Unavailable();
                    }

                    var compiled = await resources.GetCompiledAsync(resource, context.RequestAborted);
                    var resolved = await resolver.ResolveAsync(compiled, environment, caller, context.RequestAborted);
                    mode = resolved.TrafficMode;

                    path = RawPath(context, resource, path);
                    var target = Runs.RunExecutor.BuildUrl(resolved, path, context.Request.QueryString.HasValue ? QueryOf(context.Request.Query) : NoQuery);
                    resolved.DemandOrigin(target);
                    var binding = resolved.Credential;
                    CredentialKey? key = null;
                    Credential? credential = null;
                    if (binding is not null)
                    {
                        (var k, credential) = await CredentialWithinAsync(compiled.Timeout, resolved, (binding, engine, caller),
                            static (state, ct) => state.binding.GetAsync(state.engine, state.caller, ct).AsTask(), context.RequestAborted);
                        key = k;
                    }

                    // A signed request carries its body's hash: the body is read (and kept for the forwarder) first.
                    var payloadHash = compiled.SigV4 is { } sigV4
                        ? await SigV4Payload.PrepareAsync(context.Request, sigV4, resource, context.RequestAborted)
                        : null;
                    var config = ConfigFor(compiled.Timeout);
                    // Only a request without a body can be sent twice: its body was streamed the first time.
                    var replayable = context.Request.ContentLength is null or 0 && !context.Request.Headers.ContainsKey("Transfer-Encoding");
                    for (var attempt = 0; ; attempt++)
                    {
                        var redactor = credential is null ? resolved.Redactor : binding!.RedactorFor(resolved.Redactor, credential);
                        if (!redactor.IsEmpty && IsUpgrade(context))
                        {
                            // An upgraded connection (WebSocket) is a raw stream both ways, past any redaction: refused.
                            throw new KeywayException(StatusCodes.Status501NotImplemented, "upgrade_not_redactable",
                                $"The resource '{resource}' sends secrets, so Keyway cannot pass an upgraded connection (WebSocket) through: " +
                                "its messages would not be redacted. Use plain HTTP requests through the proxy or /run.");
                        }

                        var transformer = new CredentialTransformer(resolved, target, credential, redactor,
                            attempt == 0 && credential is not null ? compiled.AuthFailureStatuses : null, payloadHash, time);
                        // Known secret values are redacted from the answer, even when the upstream echoes one. Inline rather than a
                        // method of its own: one async layer fewer around the forwarder on every request.
                        var redacted = redactor.IsEmpty ? null : RedactedResponseBody.Install(context.Response, redactor);

                        ForwarderError error;
                        try
                        {
                            error = await forwarder.SendAsync(context, resolved.BaseUrl.OriginalString, outbound.For(resolved.Tls).Invoker, config, transformer);
                            if (redacted is not null && error == ForwarderError.None && !transformer.Rejected && transformer.UnsupportedEncoding is null)
                            {
                                await redacted.FinishAsync(context.RequestAborted);
                            }
                        }
                        finally
                        {
                            redacted?.Release();
                        }

                        if (transformer.Rejected)
                        {
                            // The upstream rejected this very token: refresh it once, then replay the request if it can be.
                            ClearKeepingIsolation(context.Response);
                            var rejected = credential!.Tokens.AccessToken;
                            (_, credential) = await CredentialWithinAsync(compiled.Timeout, resolved, (engine, key!.Value, binding!.Provider, rejected),
                                static async (state, ct) => (state.Value, await state.engine.RejectAsync(state.Value, state.Provider, state.rejected, ct)),
                                context.RequestAborted);
                            refreshed = true;
                            if (replayable)
                            {
                                continue;
                            }

                            errorCode = "upstream_unauthorized";
                            await Problems.Create(StatusCodes.Status502BadGateway, "upstream_unauthorized",
                                $"The resource '{resource}' rejected its credential. Keyway has refreshed it; send the request again (its body could not be replayed).").ExecuteAsync(context);
                            return;
                        }

                        if (transformer.UnsupportedEncoding is { } encoding)
                        {
                            // Compressed in a way Keyway cannot decode, so it cannot be redacted: nothing of it is sent.
                            ClearKeepingIsolation(context.Response);
                            var refused = ResponseDecoding.Unsupported(encoding, $"resource '{resource}'");
                            errorCode = refused.Code;
                            await Problems.From(refused).ExecuteAsync(context);
                            return;
                        }

                        if (error != ForwarderError.None && !context.Response.HasStarted)
                        {
                            errorCode = await ReportAsync(context, error, resource, compiled.Timeout, redactor, resolved);
                        }
                        else if (error != ForwarderError.None)
                        {
                            errorCode = "upstream_aborted";
                        }

                        return;
                    }
                }
                catch (KeywayException e) when (!context.Response.HasStarted)
                {
                    errorCode = e.Code;
                    if (caller is not null && e is { Status: StatusCodes.Status403Forbidden, Code: "forbidden" })
                    {
                        if (audit.IsStalled)
                        {
                            // Every refusal is recorded, and this one could not be until the store is back: try again then.
                            e = StoreFailure.Unavailable();
                            errorCode = e.Code;
                        }
                        else
                        {
                            await audit.RecordDurableOrQueuedAsync(AuditEntries.Denied(caller, context, e), CancellationToken.None);
                        }

                        caller = null;
                    }

                    Problems.SetRetryAfter(context.Response, e);
                    await Problems.From(e, await known.GetAsync(CancellationToken.None)).ExecuteAsync(context);
                }
                catch (Exception e)
                {
                    // Still recorded below, as a failure.
                    errorCode ??= (e as KeywayException)?.Code
                        ?? (e is OperationCanceledException ? "canceled" : StoreFailure.IsUnavailable(e) ? "store_unavailable" : "internal_error");
                    throw;
                }
                finally
                {
                    if (caller is not null)
                    {
                        // Every proxied request is a run: an access line, and in the audit log one event or a count in the
                        // open rollup interval (TrafficAudit); the actor carries the API key's id (key use).
                        await traffic.RecordRunAsync(mode, "proxy", caller, resource, environment!, context.Request.Method,
                            "/" + path + context.Request.QueryString.Value, context.Response.StatusCode,
                            (long)time.GetElapsedTime(started).TotalMilliseconds, refreshed, errorCode,
                            bytesOut: context.Response.ContentLength, bytesIn: context.Request.ContentLength);
                    }
                }
            }
            catch (Exception e)
            {
                // What the exception-handler middleware does for the rest of Keyway, here rather than in an
                // async layer of its own around every request.
                await HandleAsync(context, e, Errors);
            }
        }
    }

    private static readonly KeyValuePair<string, string?>[] NoQuery = [];

    /// <summary>Clears an answer that has not started, keeping the isolation rules every answer of the proxy carries.</summary>
    private static void ClearKeepingIsolation(HttpResponse response)
    {
        response.Clear();
        ProxyIsolation.Apply(response.Headers);
    }

    /// <summary>The relative path as the caller encoded it (see <see cref="ProxyIsolation.RawRelativePath"/>).</summary>
    private static string? RawPath(HttpContext context, string resource, string? routed)
    {
        try
        {
            return ProxyIsolation.RawRelativePath(context, resource, routed);
        }
        catch (OutboundRequestException e)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, e.Code, e.Message);
        }
    }

    private static List<KeyValuePair<string, string?>> QueryOf(IQueryCollection parameters)
    {
        var query = new List<KeyValuePair<string, string?>>();
        foreach (var (name, values) in parameters)
        {
            foreach (var value in values)
            {
                query.Add(new(name, value));
            }
        }

        return query;
    }

    private static bool IsUpgrade(HttpContext context) =>
        context.Features.Get<IHttpUpgradeFeature>()?.IsUpgradableRequest == true ||
        context.Features.Get<IHttpExtendedConnectFeature>()?.IsExtendedConnect == true;

    // One config per timeout value (resources share a handful), rather than one per request.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<TimeSpan, ForwarderRequestConfig> Configs = new();

    private static ForwarderRequestConfig ConfigFor(TimeSpan timeout) => Configs.Count < 64
        ? Configs.GetOrAdd(timeout, static t => NewConfig(t))
        : Configs.TryGetValue(timeout, out var config) ? config : NewConfig(timeout);

    private static ForwarderRequestConfig NewConfig(TimeSpan timeout) =>
        new() { ActivityTimeout = timeout, Version = HttpVersion.Version11, VersionPolicy = HttpVersionPolicy.RequestVersionOrLower };

    /// <summary>Reports a forwarding failure as problem+json; returns its code (or "canceled" when the caller left).</summary>
    private static async Task<string> ReportAsync(HttpContext context, ForwarderError error, string resource, TimeSpan timeout, Redactor redactor, ResolvedResource resolved)
    {
        var exception = context.GetForwarderErrorFeature()?.Exception;
        var problem = error switch
        {
            ForwarderError.RequestTimedOut => Problems.Create(StatusCodes.Status504GatewayTimeout, "upstream_timeout",
                $"The resource '{resource}' did not answer within {timeout.TotalMilliseconds:0} ms (timeouts.requestMs)."),
            ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled => null,
            _ when Find<DecodedTooLargeException>(exception) is not null => Problems.Create(StatusCodes.Status502BadGateway, "payload_too_large",
                $"The decoded answer of resource '{resource}' is larger than its limit (maxResponseBytes)."),
            _ when Find<OutboundRequestException>(exception) is { } denied =>
                Problems.Create(StatusCodes.Status403Forbidden, denied.Code, redactor.Redact(denied.Message)),
            _ when TlsFailures.Describe(exception, resource, resolved.BaseUrl, resolved.Tls?.Tls) is { } failed =>
                Problems.Create(StatusCodes.Status502BadGateway, TlsFailures.Code, redactor.Redact(failed)),
            _ => Problems.Create(StatusCodes.Status502BadGateway, "upstream_unreachable",
                $"The resource '{resource}' could not be reached ({error})."),
        };
        if (problem is null)
        {
            return "canceled";
        }

        ClearKeepingIsolation(context.Response);
        await problem.ExecuteAsync(context);
        return problem.ProblemDetails.Extensions.TryGetValue("code", out var code) ? code as string ?? "upstream_error" : "upstream_error";
    }

    private static T? Find<T>(Exception? exception) where T : Exception
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is T match)
            {
                return match;
            }
        }

        return null;
    }

    /// <summary>
    /// Copies the caller's request minus everything that must not reach the upstream (its
    /// Authorization, Cookie, X-Keyway-* and hop-by-hop headers), then attaches the resource's.
    /// </summary>
    /// <summary>Waits for a credential no longer than the resource's timeout: another replica's refresh never holds a request past it.</summary>
    private static async Task<(CredentialKey Key, Credential Credential)> CredentialWithinAsync<TState>(
        TimeSpan timeout, ResolvedResource resolved, TState state, Func<TState, CancellationToken, Task<(CredentialKey, Credential)>> get, CancellationToken aborted)
    {
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(aborted);
        bounded.CancelAfter(timeout);
        try
        {
            return await get(state, bounded.Token);
        }
        catch (OperationCanceledException) when (!aborted.IsCancellationRequested)
        {
            throw Runs.RunExecutor.CredentialTimedOut(resolved);
        }
    }

    internal sealed class CredentialTransformer(
        ResolvedResource resolved, Uri target, Credential? credential, Redactor redactor, IReadOnlySet<int>? rejectionStatuses,
        string? payloadHash, TimeProvider time) : HttpTransformer
    {
        /// <summary>The upstream answered with a status that means the credential was rejected; nothing was sent to the caller.</summary>
        public bool Rejected { get; private set; }

        /// <summary>The upstream's answer is compressed in an encoding Keyway cannot decode; nothing was sent to the caller.</summary>
        public string? UnsupportedEncoding { get; private set; }

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
                resolved.Credential!.Apply(proxyRequest, credential);
            }

            // Last: the signature covers the request as it is sent.
            resolved.Signer?.Sign(proxyRequest, payloadHash ?? AwsSigV4Signer.EmptyPayloadHash, time.GetUtcNow());
        }

        public override async ValueTask<bool> TransformResponseAsync(
            HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
        {
            if (proxyResponse is not null && rejectionStatuses is not null && rejectionStatuses.Contains((int)proxyResponse.StatusCode))
            {
                Rejected = true;
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

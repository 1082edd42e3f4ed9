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
                    if (binding is { PlacesInBody: true })
                    {
                        // The credential goes into the body (auth.apply.body): read whole, placed once, sent with its new length.
                        var placed = binding.PlaceInBody(context.Request.Method, await BodyFields.ReadAsync(context.Request, resource, context.RequestAborted),
                            context.Request.ContentType, credential!);
                        context.Request.Headers.Remove("Transfer-Encoding");
                        context.Request.Body = new MemoryStream(placed, writable: false);
                        context.Request.ContentLength = placed.Length;
                        context.Request.ContentType ??= "application/json";
                        // Kestrel said a request sent without a body can have none; YARP asks before it forwards one.
                        context.Features.Set<IHttpRequestBodyDetectionFeature>(PlacedBody.Instance);
                    }

                    // OAuth 1.0a signs a form-encoded body's parameters: such a body is read (and kept for the forwarder) first.
                    var formBody = compiled.OAuth1 is not null ? await ProxySigning.FormBodyAsync(context.Request, resource, context.RequestAborted) : null;
                    var config = ConfigFor(compiled.Timeout);
                    // Only a request without a body can be sent twice: its body was streamed the first time.
                    var replayable = context.Request.ContentLength is null or 0 && !context.Request.Headers.ContainsKey("Transfer-Encoding");
                    if (resolved.Digest is { } digest && !replayable)
                    {
                        // A Digest server may answer 401 with a challenge (the first request, a stale nonce): a small body is held to
                        // be sent again; for a larger one, a challenge is obtained first with a bodiless request (see ProxySigning).
                        replayable = await ProxySigning.MakeReplayableAsync(context.Request, context.RequestAborted);
                        if (!replayable && digest.Slot.Current is null)
                        {
                            await ProxySigning.ProbeAsync(outbound, resolved, target, context.RequestAborted);
                        }
                    }

                    // A DPoP-bound credential's key (loaded once per process); a resource server's nonce challenge is answered once.
                    var proofKey = binding?.DPoP is { } dpop && key is { } owner ? await dpop.KeyAsync(owner, context.RequestAborted) : null;
                    var askedForNonce = false;
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
                            !refreshed && credential is not null ? compiled.AuthFailureStatuses : null, payloadHash, time)
                        {
                            FormBody = formBody,
                            MayRechallenge = attempt == 0,
                            ProofKey = proofKey,
                            RetriesNonce = replayable && !askedForNonce,
                        };
                        if (attempt > 0)
                        {
                            ProxySigning.Rewind(context.Request);
                        }

                        // Known secret values are redacted from the answer, even when the upstream echoes one. Inline rather than a
                        // method of its own: one async layer fewer around the forwarder on every request.
                        var redacted = redactor.IsEmpty ? null : RedactedResponseBody.Install(context.Response, redactor);

                        ForwarderError error;
                        try
                        {
                            error = await forwarder.SendAsync(context, resolved.BaseUrl.OriginalString, outbound.For(resolved.Tls).Invoker, config, transformer);
                            if (redacted is not null && error == ForwarderError.None && !transformer.Rejected && !transformer.Rechallenged && !transformer.AskedForNonce &&
                                transformer.UnsupportedEncoding is null)
                            {
                                await redacted.FinishAsync(context.RequestAborted);
                            }
                        }
                        finally
                        {
                            redacted?.Release();
                        }

                        if (transformer.AskedForNonce)
                        {
                            // Nothing of the 401 was sent: the same request (it has no body) goes again with the nonce, once.
                            ClearKeepingIsolation(context.Response);
                            askedForNonce = true;
                            continue;
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

                        if (transformer.Rechallenged)
                        {
                            // A Digest challenge to answer (the first request, or a stale nonce): sent again with its answer, once.
                            ClearKeepingIsolation(context.Response);
                            if (replayable)
                            {
                                continue;
                            }

                            errorCode = "upstream_unauthorized";
                            await Problems.Create(StatusCodes.Status502BadGateway, "upstream_unauthorized",
                                $"The resource '{resource}' asked for a new Digest challenge to be answered (its nonce had expired). Keyway has it; " +
                                "send the request again (its body could not be replayed).").ExecuteAsync(context);
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
}

/// <summary>A request body Keyway made (a credential placed in it): present whatever the caller sent.</summary>
internal sealed class PlacedBody : IHttpRequestBodyDetectionFeature
{
    public static readonly PlacedBody Instance = new();

    public bool CanHaveBody => true;
}

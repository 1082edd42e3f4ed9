using System.Net;
using Keyway.Access;
using Keyway.Api;
using Keyway.Outbound;
using Keyway.Resources;
using Keyway.Secrets;
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
        routes.Map("/proxy/{resource}/{**path}", ForwardAsync)
            .WithName("Proxy")
            .WithTags("Proxy")
            .WithSummary("Pass a request through to a resource with its credential attached.")
            .ExcludeFromDescription();
        return routes;
    }

    private static async Task ForwardAsync(
        HttpContext context, string resource, string? path,
        IHttpForwarder forwarder, OutboundClient outbound, ResourceService resources, ResourceResolver resolver,
        AccessPolicy access, ILoggerFactory loggers)
    {
        try
        {
            var caller = Caller.From(context.User) ?? throw new KeywayException(StatusCodes.Status401Unauthorized, "unauthorized",
                "Send an API key as 'Authorization: Bearer <key>' or 'X-Keyway-Token: <key>'.");
            var environment = context.Request.Headers[EnvironmentHeader].FirstOrDefault() ?? Environments.VariableService.Production;
            access.Demand(caller, Permission.Use, resource, environment);
            var compiled = await resources.GetCompiledAsync(resource, context.RequestAborted);
            var resolved = await resolver.ResolveAsync(compiled, environment, caller, context.RequestAborted);

            var query = new List<KeyValuePair<string, string?>>();
            foreach (var (name, values) in context.Request.Query)
            {
                foreach (var value in values)
                {
                    query.Add(new(name, value));
                }
            }

            var target = Runs.RunExecutor.BuildUrl(resolved, path, query);
            var transformer = new CredentialTransformer(resolved, target);
            var config = new ForwarderRequestConfig { ActivityTimeout = compiled.Timeout, Version = HttpVersion.Version11, VersionPolicy = HttpVersionPolicy.RequestVersionOrLower };
            // Known secret values are redacted from the answer, even when the upstream echoes one.
            var redacting = resolved.Redactor.IsEmpty ? null : new RedactingStream(context.Response.Body, resolved.Redactor);
            var original = context.Response.Body;
            if (redacting is not null)
            {
                context.Response.Body = redacting;
            }

            ForwarderError error;
            try
            {
                error = await forwarder.SendAsync(context, resolved.BaseUrl.OriginalString, outbound.Invoker, config, transformer);
                if (redacting is not null && error == ForwarderError.None)
                {
                    await redacting.CompleteAsync(context.RequestAborted);
                }
            }
            finally
            {
                context.Response.Body = original;
            }

            if (error != ForwarderError.None && !context.Response.HasStarted)
            {
                var exception = context.GetForwarderErrorFeature()?.Exception;
                var problem = error switch
                {
                    ForwarderError.RequestTimedOut => Problems.Create(StatusCodes.Status504GatewayTimeout, "upstream_timeout",
                        $"The resource '{resource}' did not answer within {compiled.Timeout.TotalMilliseconds:0} ms (timeouts.requestMs)."),
                    ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled => null,
                    _ when Find<OutboundRequestException>(exception) is { } denied =>
                        Problems.Create(StatusCodes.Status403Forbidden, denied.Code, resolved.Redactor.Redact(denied.Message)),
                    _ => Problems.Create(StatusCodes.Status502BadGateway, "upstream_unreachable",
                        $"The resource '{resource}' could not be reached ({error})."),
                };
                if (problem is not null)
                {
                    context.Response.Clear();
                    await problem.ExecuteAsync(context);
                }
            }
        }
        catch (KeywayException e) when (!context.Response.HasStarted)
        {
            await Problems.From(e).ExecuteAsync(context);
        }
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
    private sealed class CredentialTransformer(ResolvedResource resolved, Uri target) : HttpTransformer
    {
        public override async ValueTask TransformRequestAsync(
            HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
            var headers = proxyRequest.Headers;
            headers.Authorization = null;
            headers.Remove("Cookie");
            headers.Remove(ApiKeyAuthenticationHandler.TokenHeader);
            headers.Remove(EnvironmentHeader);
            foreach (var header in headers.Where(h => h.Key.StartsWith("X-Keyway-", StringComparison.OrdinalIgnoreCase)).Select(h => h.Key).ToList())
            {
                headers.Remove(header);
            }

            foreach (var (name, value) in resolved.Headers)
            {
                HeaderRules.Set(proxyRequest, name, value);
            }

            if (resolved.Cookie is not null)
            {
                headers.TryAddWithoutValidation("Cookie", resolved.Cookie);
            }

            if (!resolved.Redactor.IsEmpty)
            {
                // Redaction reads the body: ask for it uncompressed.
                headers.Remove("Accept-Encoding");
            }

            proxyRequest.RequestUri = target;
            proxyRequest.Headers.Host = null;
        }

        public override async ValueTask<bool> TransformResponseAsync(
            HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
        {
            var proceed = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
            var redactor = resolved.Redactor;
            if (redactor.IsEmpty)
            {
                return proceed;
            }

            // Redaction may change the body's length.
            var headers = httpContext.Response.Headers;
            headers.ContentLength = null;
            List<KeyValuePair<string, string?[]>>? changes = null;
            foreach (var (name, values) in headers)
            {
                if (values.Any(v => v is not null && redactor.Contains(v)))
                {
                    (changes ??= []).Add(new(name, values.Select(v => v is null ? null : redactor.Redact(v)).ToArray()));
                }
            }

            foreach (var (name, values) in changes ?? [])
            {
                headers[name] = values;
            }

            return proceed;
        }
    }
}

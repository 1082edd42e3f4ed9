using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// A real Kestrel server on 127.0.0.1 standing in for the API behind a Keyway resource. By
/// default it answers every request with a JSON echo of it (an <see cref="UpstreamRequest"/>),
/// and records every request it receives so tests can assert what reached the upstream.
/// Routes:
/// <list type="bullet">
/// <item><c>/status/{code}</c>: that status code, empty body.</item>
/// <item><c>/redirect?to=URL</c>: 302 with <c>Location: URL</c>.</item>
/// <item><c>/big/{bytes}</c>: that many bytes of <c>x</c>.</item>
/// <item><c>/slow</c>: answers only when the request is aborted or the test calls <see cref="ReleaseSlowRequests"/>.</item>
/// <item><c>/echo-header/{name}</c>: the value of that request header as a text body.</item>
/// <item>anything else: the JSON echo.</item>
/// </list>
/// </summary>
public sealed class UpstreamServer : IAsyncDisposable
{
    private static readonly JsonSerializerOptions _json = new(JsonSerializerDefaults.Web);

    private readonly WebApplication _app;
    private readonly Lock _lock = new();
    private readonly List<UpstreamRequest> _requests = [];
    private TaskCompletionSource _slowGate = NewGate();
    private int _slowAborted;

    private UpstreamServer(WebApplication app, string baseUrl)
    {
        _app = app;
        BaseUrl = baseUrl;
    }

    /// <summary>The server's address, e.g. <c>http://127.0.0.1:41234</c> (no trailing slash).</summary>
    public string BaseUrl { get; }

    /// <summary>Every request received so far, oldest first (a snapshot).</summary>
    public IReadOnlyList<UpstreamRequest> Requests
    {
        get
        {
            lock (_lock)
                return [.. _requests];
        }
    }

    /// <summary>How many <c>/slow</c> requests ended because the caller went away.</summary>
    public int SlowRequestsAborted => Volatile.Read(ref _slowAborted);

    /// <summary>
    /// Starts a server. <paramref name="configure"/> may map extra routes (e.g. a fake OAuth
    /// token endpoint); they take precedence over the echo.
    /// </summary>
    public static async Task<UpstreamServer> StartAsync(Action<WebApplication>? configure = null, CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();

        UpstreamServer? server = null;
        // Record first, so every request counts, whichever route answers it.
        app.Use(async (context, next) =>
        {
            server!.Record(await UpstreamRequest.ReadAsync(context.Request));
            await next(context);
        });
        configure?.Invoke(app);
        app.Map("/status/{code:int}", (HttpContext context) =>
        {
            context.Response.StatusCode = int.Parse((string)context.Request.RouteValues["code"]!, System.Globalization.CultureInfo.InvariantCulture);
            return Task.CompletedTask;
        });
        app.Map("/redirect", (HttpContext context) =>
        {
            context.Response.StatusCode = StatusCodes.Status302Found;
            context.Response.Headers.Location = context.Request.Query["to"].ToString();
            return Task.CompletedTask;
        });
        app.Map("/big/{bytes:long}", (HttpContext context) => WriteBigAsync(context, long.Parse((string)context.Request.RouteValues["bytes"]!, System.Globalization.CultureInfo.InvariantCulture)));
        app.Map("/slow", (HttpContext context) => server!.SlowAsync(context));
        app.Map("/echo-header/{name}", (HttpContext context) =>
        {
            context.Response.ContentType = "text/plain; charset=utf-8";
            return context.Response.WriteAsync(context.Request.Headers[(string)context.Request.RouteValues["name"]!].ToString(), context.RequestAborted);
        });
        // The header's value after ?pad= bytes of 'x', with a Content-Length (the echo above is chunked).
        app.Map("/sized-echo/{name}", (HttpContext context) =>
        {
            var pad = int.Parse(context.Request.Query["pad"].FirstOrDefault() ?? "0", System.Globalization.CultureInfo.InvariantCulture);
            var body = new byte[pad].AsSpan();
            body.Fill((byte)'x');
            byte[] bytes = [.. body, .. System.Text.Encoding.UTF8.GetBytes(context.Request.Headers[(string)context.Request.RouteValues["name"]!].ToString())];
            context.Response.ContentType = "text/plain; charset=utf-8";
            context.Response.ContentLength = bytes.Length;
            return context.Response.Body.WriteAsync(bytes, context.RequestAborted).AsTask();
        });
        // A fallback, not app.Run: endpoints run at the end of the pipeline, after any terminal middleware.
        app.MapFallback("{**path}", EchoAsync);

        await app.StartAsync(cancellationToken);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        server = new UpstreamServer(app, address.TrimEnd('/'));
        return server;
    }

    /// <summary>An absolute URL on this server, e.g. <c>Url("/status/418")</c>.</summary>
    public Uri Url(string pathAndQuery) => new(BaseUrl + pathAndQuery);

    /// <summary>Lets every waiting and future <c>/slow</c> request answer 200.</summary>
    public void ReleaseSlowRequests()
    {
        lock (_lock)
            _slowGate.TrySetResult();
    }

    /// <summary>Makes <c>/slow</c> wait again after <see cref="ReleaseSlowRequests"/>.</summary>
    public void ResetSlowRequests()
    {
        lock (_lock)
        {
            if (_slowGate.Task.IsCompleted)
                _slowGate = NewGate();
        }
    }

    /// <summary>Forgets the requests recorded so far.</summary>
    public void ClearRequests()
    {
        lock (_lock)
            _requests.Clear();
    }

    /// <summary>Waits (with a deadline) until a request matching <paramref name="predicate"/> has arrived, and returns it.</summary>
    public async Task<UpstreamRequest> WaitForRequestAsync(Func<UpstreamRequest, bool> predicate, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        UpstreamRequest? found = null;
        await Poll.UntilAsync(() => (found = Requests.FirstOrDefault(predicate)) is not null,
            timeout ?? TimeSpan.FromSeconds(10), "a matching request to reach the upstream", cancellationToken);
        return found!;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        ReleaseSlowRequests();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private void Record(UpstreamRequest request)
    {
        lock (_lock)
            _requests.Add(request);
    }

    private async Task SlowAsync(HttpContext context)
    {
        Task gate;
        lock (_lock)
            gate = _slowGate.Task;
        try
        {
            await gate.WaitAsync(context.RequestAborted);
        }
        catch (OperationCanceledException)
        {
            Interlocked.Increment(ref _slowAborted);
            return;
        }
        await context.Response.WriteAsync("slow done", context.RequestAborted);
    }

    private static async Task EchoAsync(HttpContext context)
    {
        var request = await UpstreamRequest.ReadAsync(context.Request);
        context.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(context.Response.Body, request, _json, context.RequestAborted);
    }

    private static async Task WriteBigAsync(HttpContext context, long bytes)
    {
        context.Response.ContentType = "application/octet-stream";
        context.Response.ContentLength = bytes;
        var chunk = new byte[64 * 1024];
        Array.Fill(chunk, (byte)'x');
        for (var left = bytes; left > 0; left -= chunk.Length)
            await context.Response.Body.WriteAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, left)), context.RequestAborted);
    }

    private static TaskCompletionSource NewGate() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>A request as the upstream saw it; also the shape of the echo body.</summary>
public sealed record UpstreamRequest
{
    private static readonly JsonSerializerOptions _json = new(JsonSerializerDefaults.Web);

    /// <summary>GET, POST, …</summary>
    public required string Method { get; init; }

    /// <summary>The path, without the query string.</summary>
    public required string Path { get; init; }

    /// <summary>Query parameters; repeated ones are joined with commas.</summary>
    public required IReadOnlyDictionary<string, string> Query { get; init; }

    /// <summary>Request headers (names compared without case); repeated ones are joined with commas.</summary>
    public required IReadOnlyDictionary<string, string> Headers { get; init; }

    /// <summary>The body as UTF-8 text; empty when there was none.</summary>
    public required string Body { get; init; }

    /// <summary>The request target as it was sent (path and query, still encoded).</summary>
    public string RawTarget { get; init; } = "";

    /// <summary>The cookies of the Cookie header.</summary>
    public required IReadOnlyDictionary<string, string> Cookies { get; init; }

    /// <summary>Reads an echo body returned by <see cref="UpstreamServer"/> (e.g. relayed by Keyway).</summary>
    public static UpstreamRequest Parse(string json)
    {
        var echo = JsonSerializer.Deserialize<UpstreamRequest>(json, _json)
            ?? throw new FormatException("The upstream echo is null.");
        // Header names are case-insensitive; JSON object keys are not.
        return echo with { Headers = new Dictionary<string, string>(echo.Headers, StringComparer.OrdinalIgnoreCase) };
    }

    internal static async Task<UpstreamRequest> ReadAsync(HttpRequest request)
    {
        if (request.HttpContext.Items.TryGetValue(typeof(UpstreamRequest), out var read))
            return (UpstreamRequest)read!;

        // Buffered so both the recorder and the route can read the body.
        request.EnableBuffering();
        using var reader = new StreamReader(request.Body, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, leaveOpen: true);
        var body = await reader.ReadToEndAsync(request.HttpContext.RequestAborted);
        request.Body.Position = 0;

        var result = new UpstreamRequest
        {
            Method = request.Method,
            Path = request.Path.Value ?? "/",
            Query = request.Query.ToDictionary(q => q.Key, q => q.Value.ToString(), StringComparer.Ordinal),
            Headers = request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
            Body = body,
            RawTarget = request.HttpContext.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()?.RawTarget ?? "",
            Cookies = request.Cookies.ToDictionary(c => c.Key, c => c.Value, StringComparer.Ordinal),
        };
        request.HttpContext.Items[typeof(UpstreamRequest)] = result;
        return result;
    }
}

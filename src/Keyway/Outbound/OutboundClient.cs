namespace Keyway.Outbound;

/// <summary>
/// The one outbound connection pool, shared by runs and the proxy: no redirects, no cookies, no
/// system proxy, and the destination policy checked on the address actually connected.
/// </summary>
internal sealed class OutboundClient : IDisposable
{
    public OutboundClient(DestinationPolicy policy, OutboundHandlerOptions options)
    {
        Handler = OutboundHandler.Create(policy, options);
        Invoker = new HttpMessageInvoker(Handler, disposeHandler: false);
        Client = new HttpClient(Handler, disposeHandler: false) { Timeout = Timeout.InfiniteTimeSpan };
        // Answers are redacted (runs, login steps, token endpoints' errors): ask for them uncompressed.
        Client.DefaultRequestHeaders.TryAddWithoutValidation("Accept-Encoding", ResponseDecoding.Identity);
    }

    public SocketsHttpHandler Handler { get; }

    /// <summary>For the proxy (YARP's forwarder takes an invoker).</summary>
    public HttpMessageInvoker Invoker { get; }

    /// <summary>For runs.</summary>
    public HttpClient Client { get; }

    public void Dispose()
    {
        Client.Dispose();
        Invoker.Dispose();
        Handler.Dispose();
    }
}

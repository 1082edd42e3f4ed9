using System.Collections.Concurrent;

namespace Keyway.Outbound;

/// <summary>
/// The outbound connection pools: one shared by runs and the proxy, and one per resource × environment whose TLS
/// settings present a client certificate or trust a CA of their own (<see cref="For"/>). Every pool has the same
/// policy: no redirects, no cookies, no system proxy, and the destination policy checked on the address actually
/// connected.
/// </summary>
internal sealed class OutboundClient : IDisposable
{
    /// <summary>
    /// How long a replaced pool lives on: requests already sent through it finish (the longest request
    /// timeout is 10 minutes), then it is disposed with its connections.
    /// </summary>
    internal static readonly TimeSpan RetireAfter = TimeSpan.FromMinutes(11);

    private readonly DestinationPolicy _policy;
    private readonly OutboundHandlerOptions _options;
    private readonly TimeProvider _time;
    private readonly OutboundPool _shared;
    private readonly ConcurrentDictionary<(string Resource, string Environment), OutboundPool> _tls = new();
    private readonly Lock _gate = new();

    public OutboundClient(DestinationPolicy policy, OutboundHandlerOptions options, TimeProvider? time = null)
    {
        _policy = policy;
        _options = options;
        _time = time ?? TimeProvider.System;
        _shared = new OutboundPool(OutboundHandler.Create(policy, options), "");
    }

    public SocketsHttpHandler Handler => _shared.Handler;

    /// <summary>For the proxy (YARP's forwarder takes an invoker).</summary>
    public HttpMessageInvoker Invoker => _shared.Invoker;

    /// <summary>For runs.</summary>
    public HttpClient Client => _shared.Client;

    /// <summary>
    /// The pool a resource's requests go through in one environment: the shared one, or, when its TLS settings
    /// are set, its own (created once per version of those settings; the one it replaces is retired).
    /// </summary>
    public OutboundPool For(TlsBinding? tls)
    {
        if (tls is null)
        {
            return _shared;
        }

        var key = (tls.Resource, tls.Environment);
        if (_tls.TryGetValue(key, out var pool) && pool.Id == tls.Tls.Id)
        {
            return pool;
        }

        lock (_gate)
        {
            if (_tls.TryGetValue(key, out pool) && pool.Id == tls.Tls.Id)
            {
                return pool;
            }

            var created = new OutboundPool(OutboundHandler.Create(_policy, _options, tls.Tls), tls.Tls.Id);
            _tls[key] = created;
            if (pool is not null)
            {
                Retire(pool);
            }

            return created;
        }
    }

    /// <summary>How many pools of their own resources have (tests).</summary>
    internal int TlsPoolCount => _tls.Count;

    /// <summary>A resource changed or was deleted: its pools are retired (the next request makes a new one if it still needs it).</summary>
    public void Drop(string? resource)
    {
        lock (_gate)
        {
            foreach (var (key, pool) in _tls)
            {
                if ((resource is null || key.Resource == resource) && _tls.TryRemove(new KeyValuePair<(string, string), OutboundPool>(key, pool)))
                {
                    Retire(pool);
                }
            }
        }
    }

    /// <summary>Drops the pools of a resource when the change feed says it changed (all of them when every cache is dropped).</summary>
    public void Subscribe(Environments.ChangeFeed changes) => changes.Changed += change =>
    {
        if (change.IsAll)
        {
            Drop(null);
        }
        else if (change.Kind == "resources")
        {
            Drop(change.Name);
        }
    };

    private void Retire(OutboundPool pool) => _ = RetireAsync(pool);

    private async Task RetireAsync(OutboundPool pool)
    {
        try
        {
            await Task.Delay(RetireAfter, _time);
        }
        finally
        {
            pool.Dispose();
        }
    }

    public void Dispose()
    {
        _shared.Dispose();
        foreach (var pool in _tls.Values)
        {
            pool.Dispose();
        }
    }
}

/// <summary>One connection pool: the handler, and the client and invoker over it.</summary>
internal sealed class OutboundPool : IDisposable
{
    public OutboundPool(SocketsHttpHandler handler, string id)
    {
        Id = id;
        Handler = handler;
        Invoker = new HttpMessageInvoker(Handler, disposeHandler: false);
        Client = new HttpClient(Handler, disposeHandler: false) { Timeout = Timeout.InfiniteTimeSpan };
        // Answers are redacted (runs, login steps, token endpoints' errors): ask for them uncompressed.
        Client.DefaultRequestHeaders.TryAddWithoutValidation("Accept-Encoding", ResponseDecoding.Identity);
    }

    /// <summary>The version of the TLS settings the pool was made for ("" for the shared pool).</summary>
    public string Id { get; }

    public SocketsHttpHandler Handler { get; }

    /// <summary>For the proxy (YARP's forwarder takes an invoker).</summary>
    public HttpMessageInvoker Invoker { get; }

    /// <summary>For runs and token requests.</summary>
    public HttpClient Client { get; }

    public void Dispose()
    {
        Client.Dispose();
        Invoker.Dispose();
        Handler.Dispose();
    }
}

using System.Net;
using System.Net.Sockets;
using System.Text;
using Keyway.Outbound;

namespace Keyway.Tests.Outbound;

// Every connection here goes to 127.0.0.1, which Keyway denies by default: the tests that connect
// allow loopback explicitly, the way KEYWAY_OUTBOUND_ALLOW does in development.
public sealed class OutboundHandlerTests : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private static readonly DestinationPolicy Loopback = new(new DestinationPolicyOptions { Allow = ["127.0.0.0/8", "::1/128"] });
    private readonly CannedHttpServer _server = new();

    [Fact]
    public async Task A_request_reaches_an_allowed_loopback_upstream()
    {
        var served = _server.ServeOnceAsync("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
        using var client = CreateClient(Loopback);

        using var response = await client.GetAsync(new Uri($"http://127.0.0.1:{_server.Port}/ping"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("hello", await response.Content.ReadAsStringAsync());
        var request = await served.WaitAsync(Timeout);
        Assert.StartsWith("GET /ping HTTP/1.1\r\n", request, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_denied_destination_fails_with_destination_denied_and_no_connection_is_made()
    {
        using var client = CreateClient(DestinationPolicy.Default);

        var ex = await Assert.ThrowsAsync<HttpRequestException>(
            () => client.GetAsync(new Uri($"http://127.0.0.1:{_server.Port}/secret?token=abc"))).WaitAsync(Timeout);

        var denied = OutboundRequestException.FindIn(ex);
        Assert.NotNull(denied);
        Assert.Equal(OutboundRequestException.DestinationDenied, denied.Code);
        Assert.Contains("'127.0.0.1'", denied.Message, StringComparison.Ordinal);
        Assert.Contains("127.0.0.0/8", denied.Message, StringComparison.Ordinal);
        Assert.Contains("denies by default", denied.Message, StringComparison.Ordinal);
        Assert.Contains("KEYWAY_OUTBOUND_ALLOW", denied.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("token", denied.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", denied.Message, StringComparison.Ordinal);

        // A connection attempt would sit in the listener's backlog: there is none.
        Assert.False(_server.HasPendingConnection);
    }

    [Fact]
    public async Task A_host_name_that_resolves_to_loopback_is_denied_on_every_address_by_default()
    {
        using var client = CreateClient(DestinationPolicy.Default);

        var ex = await Assert.ThrowsAsync<HttpRequestException>(
            () => client.GetAsync(new Uri($"http://localhost:{_server.Port}/"))).WaitAsync(Timeout);

        var denied = OutboundRequestException.FindIn(ex);
        Assert.NotNull(denied);
        Assert.Equal(OutboundRequestException.DestinationDenied, denied.Code);
        Assert.Contains("'localhost'", denied.Message, StringComparison.Ordinal);
        Assert.False(_server.HasPendingConnection);
    }

    [Fact]
    public async Task A_denied_address_is_skipped_and_an_allowed_one_is_used()
    {
        // localhost may resolve to ::1 too; allowing 127.0.0.0/8 leaves ::1 denied, so 127.0.0.1 is the one connected to.
        var served = _server.ServeOnceAsync("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        var policy = new DestinationPolicy(new DestinationPolicyOptions { Allow = ["127.0.0.0/8"] });
        using var client = CreateClient(policy);

        using var response = await client.GetAsync(new Uri($"http://localhost:{_server.Port}/"));

        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        await served.WaitAsync(Timeout);
    }

    [Fact]
    public async Task Allowing_127_0_0_1_alone_leaves_the_rest_of_loopback_denied()
    {
        var policy = new DestinationPolicy(new DestinationPolicyOptions { Allow = ["127.0.0.1/32"] });
        using var client = CreateClient(policy);

        var ex = await Assert.ThrowsAsync<HttpRequestException>(
            () => client.GetAsync(new Uri($"http://127.0.0.2:{_server.Port}/"))).WaitAsync(Timeout);
        Assert.Equal(OutboundRequestException.DestinationDenied, OutboundRequestException.FindIn(ex)?.Code);

        var served = _server.ServeOnceAsync("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        using var response = await client.GetAsync(new Uri($"http://127.0.0.1:{_server.Port}/"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await served.WaitAsync(Timeout);
    }

    [Fact]
    public async Task A_redirect_is_returned_as_it_is_and_not_followed()
    {
        var served = _server.ServeOnceAsync(
            $"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{_server.Port}/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        using var client = CreateClient(Loopback);

        using var response = await client.GetAsync(new Uri($"http://127.0.0.1:{_server.Port}/start"));

        Assert.Equal(HttpStatusCode.Found, response.StatusCode);
        Assert.Equal($"http://127.0.0.1:{_server.Port}/elsewhere", response.Headers.Location?.OriginalString);
        await served.WaitAsync(Timeout);
        Assert.False(_server.HasPendingConnection);
    }

    [Fact]
    public async Task A_url_built_by_OutboundUrl_is_sent_with_its_path_and_query()
    {
        var served = _server.ServeOnceAsync("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        using var client = CreateClient(Loopback);
        var url = OutboundUrl.Build(new Uri($"http://127.0.0.1:{_server.Port}/v2/?key=k"), "/files/caf\u00e9 1", [new("q", "a b&c")]);

        using var response = await client.GetAsync(url);

        var request = await served.WaitAsync(Timeout);
        Assert.StartsWith("GET /v2/files/caf%C3%A9%201?key=k&q=a%20b%26c HTTP/1.1\r\n", request, StringComparison.Ordinal);
    }

    [Fact]
    public void The_handler_follows_no_redirects_sends_no_cookies_and_uses_no_proxy()
    {
        using var handler = OutboundHandler.Create(DestinationPolicy.Default, new OutboundHandlerOptions());

        Assert.False(handler.AllowAutoRedirect);
        Assert.False(handler.UseCookies);
        Assert.False(handler.UseProxy);
        Assert.Equal(DecompressionMethods.None, handler.AutomaticDecompression);
        Assert.Equal(TimeSpan.FromSeconds(10), handler.ConnectTimeout);
        Assert.Equal(TimeSpan.FromMinutes(2), handler.PooledConnectionLifetime);
        Assert.True(handler.EnableMultipleHttp2Connections);
        Assert.NotNull(handler.ConnectCallback);
    }

    [Fact]
    public async Task The_connect_callback_sets_no_delay_on_the_socket()
    {
        var accepted = _server.AcceptAsync();
        await using var stream = await OutboundHandler.ConnectAsync(
            Loopback, new DnsEndPoint("127.0.0.1", _server.Port), CancellationToken.None);
        using var peer = await accepted.WaitAsync(Timeout);

        var socket = Assert.IsType<NetworkStream>(stream).Socket;
        Assert.True(socket.NoDelay);
        Assert.Equal(IPAddress.Loopback, ((IPEndPoint)socket.RemoteEndPoint!).Address);
    }

    [Fact]
    public async Task Keyways_own_listener_is_denied_even_with_loopback_allowed()
    {
        var policy = new DestinationPolicy(new DestinationPolicyOptions { Allow = ["127.0.0.0/8", "::1/128"] });
        policy.SetOwnListeners([$"http://127.0.0.1:{_server.Port}"]);
        using var client = CreateClient(policy);

        var ex = await Assert.ThrowsAsync<HttpRequestException>(
            () => client.GetAsync(new Uri($"http://127.0.0.1:{_server.Port}/api/v1/keys"))).WaitAsync(Timeout);

        var denied = OutboundRequestException.FindIn(ex);
        Assert.NotNull(denied);
        Assert.Equal(OutboundRequestException.DestinationDenied, denied.Code);
        Assert.Contains("own listeners", denied.Message, StringComparison.Ordinal);
        Assert.False(_server.HasPendingConnection);
    }

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    private static HttpClient CreateClient(DestinationPolicy policy) =>
        new(OutboundHandler.Create(policy, new OutboundHandlerOptions())) { Timeout = Timeout };

    /// <summary>A loopback listener that answers one request with a canned response.</summary>
    private sealed class CannedHttpServer : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);

        public CannedHttpServer() => _listener.Start();

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public bool HasPendingConnection => _listener.Pending();

        public async Task<Socket> AcceptAsync() => await _listener.AcceptSocketAsync();

        /// <summary>Accepts one connection, reads the request head, answers, closes; returns the head.</summary>
        public async Task<string> ServeOnceAsync(string response)
        {
            using var client = await _listener.AcceptTcpClientAsync();
            var stream = client.GetStream();
            var head = new StringBuilder();
            var buffer = new byte[4096];
            while (!head.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
            {
                var read = await stream.ReadAsync(buffer);
                if (read == 0)
                    break;
                head.Append(Encoding.ASCII.GetString(buffer, 0, read));
            }

            await stream.WriteAsync(Encoding.ASCII.GetBytes(response));
            return head.ToString();
        }

        public ValueTask DisposeAsync()
        {
            _listener.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}

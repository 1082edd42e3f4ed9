using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration.Adversarial;

/// <summary>
/// Finding 6 of the attack on Keyway: a resource could point at loopback (<c>127.0.0.0/8</c>,
/// <c>[::1]</c>, <c>0.0.0.0</c>) and at Keyway's own listener. Replayed here against a server
/// that runs on the defaults (no <c>KEYWAY_OUTBOUND_ALLOW</c>), with a real upstream listening on
/// <c>127.0.0.1</c> and a listener on <c>[::1]</c> at the same port: every spelling is refused with
/// <c>destination_denied</c>, and nothing reaches either listener. A second server allows loopback
/// (as every other test server does) and still refuses its own listener.
/// </summary>
[Trait("Category", "Integration")]
public sealed class OutboundDefaultTests(OutboundDefaultTests.Servers servers) : IClassFixture<OutboundDefaultTests.Servers>
{
    public sealed class Servers : IAsyncLifetime
    {
        /// <summary>Loopback denied: the defaults.</summary>
        public KeywayProcess Closed { get; private set; } = null!;

        /// <summary>Loopback allowed (<see cref="KeywayProcessOptions.LoopbackAllow"/>).</summary>
        public KeywayProcess Open { get; private set; } = null!;

        public UpstreamServer Upstream { get; private set; } = null!;

        /// <summary>A bare listener on [::1] at the upstream's port: a connection would wait in its backlog.</summary>
        public TcpListener Ipv6 { get; private set; } = null!;

        public int Port => new Uri(Upstream.BaseUrl).Port;

        public async Task InitializeAsync()
        {
            Upstream = await UpstreamServer.StartAsync();
            Ipv6 = new TcpListener(IPAddress.IPv6Loopback, Port);
            Ipv6.Start();
            Closed = await KeywayProcess.StartAsync(new KeywayProcessOptions
            {
                Environment = new Dictionary<string, string>
                {
                    ["KEYWAY_ADMIN_TOKEN"] = "kw_closed_" + Guid.NewGuid().ToString("N"),
                    ["KEYWAY_OUTBOUND_ALLOW"] = "",
                },
            });
            Open = await KeywayProcess.StartAsync(new KeywayProcessOptions
            {
                Environment = new Dictionary<string, string> { ["KEYWAY_ADMIN_TOKEN"] = "kw_open_" + Guid.NewGuid().ToString("N") },
            });
        }

        public async Task DisposeAsync()
        {
            await Closed.DisposeAsync();
            await Open.DisposeAsync();
            Ipv6.Dispose();
            await Upstream.DisposeAsync();
        }
    }

    [Theory]
    [InlineData("127.0.0.1", "127.0.0.0/8")]
    [InlineData("127.1", "127.0.0.0/8")]
    [InlineData("127.0.0.2", "127.0.0.0/8")]
    [InlineData("0.0.0.0", "0.0.0.0/8")]
    [InlineData("[::1]", "::1/128")]
    [InlineData("[::ffff:127.0.0.1]", "127.0.0.0/8")]
    [InlineData("[::ffff:7f00:1]", "127.0.0.0/8")]
    [InlineData("[::]", "::/128")]
    [InlineData("localhost", "127.0.0.0/8|::1/128")]
    public async Task A_resource_on_loopback_is_refused_by_run_and_proxy_and_the_upstream_receives_nothing(string host, string range)
    {
        using var admin = servers.Closed.CreateAdminClient();
        var resource = KeywayFixture.Unique("loop");
        var marker = "/m-" + Guid.NewGuid().ToString("N");
        await Expect.SuccessAsync(await admin.PutAsJsonAsync($"/api/v1/resources/{resource}", new { baseUrl = $"http://{host}:{servers.Port}" }));

        var run = await Expect.ProblemAsync(await admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = marker }), 403, "destination_denied");
        var proxy = await Expect.ProblemAsync(await admin.GetAsync($"/proxy/{resource}{marker}"), 403, "destination_denied");

        foreach (var detail in new[] { (string?)run["detail"], (string?)proxy["detail"] })
        {
            // The refusal says which range matched (localhost: whichever address it resolved to first) and which setting would open it.
            Assert.Contains(range.Split('|'), r => detail!.Contains(r, StringComparison.Ordinal));
            Assert.Contains("KEYWAY_OUTBOUND_ALLOW", detail, StringComparison.Ordinal);
        }

        Assert.DoesNotContain(servers.Upstream.Requests, r => r.Path.Contains(marker, StringComparison.Ordinal));
        Assert.False(servers.Ipv6.Pending(), "Something connected to [::1].");
    }

    [Fact]
    public async Task The_same_upstream_is_reached_once_loopback_is_allowed()
    {
        // The control: what the refusals above stop is the policy, not an unreachable upstream.
        using var admin = servers.Open.CreateAdminClient();
        var resource = KeywayFixture.Unique("loop");
        var marker = "/m-" + Guid.NewGuid().ToString("N");
        await Expect.SuccessAsync(await admin.PutAsJsonAsync($"/api/v1/resources/{resource}", new { baseUrl = $"http://127.0.0.1:{servers.Port}" }));

        await Expect.StatusAsync(await admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = marker }), 200);

        await servers.Upstream.WaitForRequestAsync(r => r.Path.Contains(marker, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("localhost")]
    [InlineData("[::ffff:127.0.0.1]")]
    [InlineData("0.0.0.0")]
    public async Task Keyways_own_listener_is_refused_even_with_loopback_allowed(string host)
    {
        using var admin = servers.Open.CreateAdminClient();
        var resource = KeywayFixture.Unique("self");
        var port = new Uri(servers.Open.BaseUrl).Port;
        // A resource that would call Keyway's API as Keyway's own admin, if Keyway ever called itself.
        await Expect.SuccessAsync(await admin.PutAsJsonAsync($"/api/v1/resources/{resource}", new
        {
            baseUrl = $"http://{host}:{port}/api/v1",
            headers = new Dictionary<string, string> { ["Authorization"] = $"Bearer {servers.Open.AdminToken}" },
        }));
        var keysBefore = await Expect.StatusAsync(await admin.GetAsync("/api/v1/keys"), 200);

        var run = await Expect.ProblemAsync(await admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { method = "POST", path = "/keys", body = new { name = "minted" } }), 403, "destination_denied");
        var proxy = await Expect.ProblemAsync(await admin.GetAsync($"/proxy/{resource}/keys"), 403, "destination_denied");

        Assert.Contains("own listeners", (string?)run["detail"], StringComparison.Ordinal);
        Assert.Contains("own listeners", (string?)proxy["detail"], StringComparison.Ordinal);
        var keysAfter = await Expect.StatusAsync(await admin.GetAsync("/api/v1/keys"), 200);
        Assert.Equal(keysBefore["keys"]!.AsArray().Count, keysAfter["keys"]!.AsArray().Count);
    }

    [Fact]
    public async Task The_link_local_metadata_address_stays_refused_with_loopback_allowed()
    {
        using var admin = servers.Open.CreateAdminClient();
        var resource = KeywayFixture.Unique("meta");
        await Expect.SuccessAsync(await admin.PutAsJsonAsync($"/api/v1/resources/{resource}", new { baseUrl = "http://169.254.169.254" }));

        var run = await Expect.ProblemAsync(await admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/latest/meta-data/" }), 403, "destination_denied");
        Assert.Contains("169.254.0.0/16", (string?)run["detail"], StringComparison.Ordinal);
    }
}

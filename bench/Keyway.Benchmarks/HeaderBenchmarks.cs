using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Keyway.Access;
using Keyway.Environments;
using Keyway.Proxy;
using Keyway.Resources;
using Keyway.Secrets;
using Keyway.Storage;
using Microsoft.AspNetCore.Http;

namespace Keyway.Benchmarks;

/// <summary>
/// The proxy's header building: <see cref="ProxyEndpoints.CredentialTransformer"/> copies a caller's
/// request (YARP's base transform), strips its Authorization, Cookie and X-Keyway-* headers,
/// attaches the resource's headers and bearer token, and sets the target URL. The baseline row is
/// YARP's own copy of the same request, which the plain forwarder does too.
/// </summary>
[MemoryDiagnoser]
public class HeaderBenchmarks
{
    private BenchStore _store = null!;
    private KeyRing _ring = null!;
    private ResolvedResource _resolved = null!;
    private Uri _target = null!;
    private DefaultHttpContext _context = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        var ct = CancellationToken.None;
        var time = new FrozenTime();
        var changes = new ChangeFeed();
        _store = await BenchStore.CreateAsync();
        var master = MasterKeyRing.FromKeys(RandomNumberGenerator.GetBytes(MasterKeyRing.KeySize));
        _ring = await KeyRing.OpenAsync(master, new DataKeyStore(_store.Database), time, ct);
        var variables = new VariableService(_store.Database, _ring, time, changes);
        var resources = new ResourceService(_store.Database, time, changes);
        var outbound = new Keyway.Outbound.OutboundClient(Keyway.Outbound.DestinationPolicy.Default, new Keyway.Outbound.OutboundHandlerOptions());
        var resolver = new ResourceResolver(variables, new Keyway.Credentials.OAuth2Client(outbound, time), new Keyway.Credentials.CustomFlowClient(outbound.Client, time), new Keyway.Credentials.GitHubAppClient(outbound.Client, time), new Keyway.Credentials.AwsStsClient(outbound.Client, time), time);
        await variables.EnsureProductionAsync(ct);
        await variables.SetAsync(VariableService.Production, "API_TOKEN", "sk_live_4f9a1c2b7d8e4a6f9b0c1d2e3f4a5b6c", secret: true, null, ct);
        await resources.PutAsync("billing", new ResourceDefinition
        {
            BaseUrl = "https://api.example.com/v1",
            Headers = new() { ["Accept"] = "application/json", ["X-Client"] = "keyway" },
            Auth = new AuthDefinition { Type = "bearer", Token = "{{ environment.variables.API_TOKEN }}" },
        }, ct);
        _resolved = await resolver.ResolveAsync(await resources.GetCompiledAsync("billing", ct), VariableService.Production, null, ct);
        _target = new Uri("https://api.example.com/v1/users/42");

        _context = new DefaultHttpContext();
        var request = _context.Request;
        request.Method = "GET";
        request.Scheme = "http";
        request.Host = new HostString("keyway.internal");
        request.Path = "/proxy/billing/users/42";
        request.Headers.Accept = "application/json";
        request.Headers.UserAgent = "bench/1.0";
        request.Headers.Authorization = "Bearer kw_0123456789abcdef0123456789abcdef";
        request.Headers[ProxyEndpoints.EnvironmentHeader] = "production";
        request.Headers["X-Request-Id"] = "4bf92f3577b34da6";
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        _ring.Dispose();
        await _store.DisposeAsync();
    }

    [Benchmark(Baseline = true)]
    public async Task<HttpRequestMessage> Yarp_copy_only()
    {
        using var message = new HttpRequestMessage(HttpMethod.Get, (Uri?)null);
        await Yarp.ReverseProxy.Forwarder.HttpTransformer.Default.TransformRequestAsync(_context, message, "https://api.example.com/v1", CancellationToken.None);
        return message;
    }

    [Benchmark]
    public async Task<HttpRequestMessage> Keyway_transform()
    {
        using var message = new HttpRequestMessage(HttpMethod.Get, (Uri?)null);
        var transformer = new ProxyEndpoints.CredentialTransformer(_resolved, _target, null, _resolved.Redactor, null, null, TimeProvider.System);
        await transformer.TransformRequestAsync(_context, message, "https://api.example.com/v1", CancellationToken.None);
        return message;
    }
}

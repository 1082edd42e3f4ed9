using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Keyway.Access;
using Keyway.Environments;
using Keyway.Resources;
using Keyway.Secrets;
using Keyway.Storage;

namespace Keyway.Benchmarks;

/// <summary>
/// What the proxy does per request before it forwards: the compiled resource
/// (<see cref="ResourceService.GetCompiledAsync"/>) and its resolution for the environment
/// (<see cref="ResourceResolver.ResolveAsync"/>), with the real services over SQLite. Both are
/// cached; a resource whose templates read <c>current_user</c> is resolved on every request.
/// </summary>
[MemoryDiagnoser]
public class ResourceResolutionBenchmarks
{
    private const string Environment = VariableService.Production;

    private BenchStore _store = null!;
    private KeyRing _ring = null!;
    private ResourceService _resources = null!;
    private ResourceResolver _resolver = null!;
    private Caller _caller = null!;
    private CompiledResource _shared = null!;
    private CompiledResource _perCaller = null!;

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
        variables.Subscribe();
        _resources = new ResourceService(_store.Database, time, changes);
        _resources.Subscribe();
        var outbound = new Keyway.Outbound.OutboundClient(Keyway.Outbound.DestinationPolicy.Default, new Keyway.Outbound.OutboundHandlerOptions());
        _resolver = new ResourceResolver(variables, new Keyway.Credentials.OAuth2Client(outbound, time), new Keyway.Credentials.CustomFlowClient(outbound.Client, time), new Keyway.Credentials.GitHubAppClient(outbound.Client, time), new Keyway.Credentials.AwsStsClient(outbound.Client, time), time);
        _caller = new Caller("usr_1", "alice", Caller.MemberRole, "key_1", "alice@example.com");

        await variables.EnsureProductionAsync(ct);
        await variables.SetAsync(Environment, "HOST", "api.example.com", secret: false, null, ct);
        await variables.SetAsync(Environment, "API_TOKEN", "sk_live_4f9a1c2b7d8e4a6f9b0c1d2e3f4a5b6c", secret: true, null, ct);
        await variables.SetAsync(Environment, "CLIENT_SECRET", "cs_0123456789abcdef0123456789abcdef", secret: true, null, ct);

        await _resources.PutAsync("billing", new ResourceDefinition
        {
            BaseUrl = "https://{{ environment.variables.HOST }}/v1",
            Headers = new() { ["Accept"] = "application/json", ["X-Client"] = "keyway" },
            Query = new() { ["region"] = "eu" },
            Auth = new AuthDefinition { Type = "bearer", Token = "{{ environment.variables.API_TOKEN }}" },
        }, ct);
        await _resources.PutAsync("billing-per-user", new ResourceDefinition
        {
            BaseUrl = "https://{{ environment.variables.HOST }}/v1",
            Headers = new() { ["Accept"] = "application/json", ["X-On-Behalf-Of"] = "{{ current_user.email }}" },
            Auth = new AuthDefinition { Type = "bearer", Token = "{{ environment.variables.API_TOKEN }}" },
        }, ct);

        _shared = await _resources.GetCompiledAsync("billing", ct);
        _perCaller = await _resources.GetCompiledAsync("billing-per-user", ct);
        if (_perCaller.UsesCurrentUser is false || _shared.UsesCurrentUser)
        {
            throw new InvalidOperationException("The resources are not what the benchmark assumes.");
        }

        // Fill the caches: decrypted values, shared resolution.
        var first = await _resolver.ResolveAsync(_shared, Environment, _caller, ct);
        if (!ReferenceEquals(first, await _resolver.ResolveAsync(_shared, Environment, _caller, ct)))
        {
            throw new InvalidOperationException("The resolved resource is not cached.");
        }
    }

    [GlobalCleanup]
    public async Task Cleanup()
    {
        _ring.Dispose();
        await _store.DisposeAsync();
    }

    [Benchmark(Baseline = true)]
    public async ValueTask<object> Resolve_cache_hit() =>
        await _resolver.ResolveAsync(_shared, Environment, _caller, CancellationToken.None);

    /// <summary>Both lookups the proxy makes per request, by resource name.</summary>
    [Benchmark]
    public async ValueTask<object> Compiled_then_resolve_cache_hit()
    {
        var compiled = await _resources.GetCompiledAsync("billing", CancellationToken.None);
        return await _resolver.ResolveAsync(compiled, Environment, _caller, CancellationToken.None);
    }

    /// <summary>A resource that reads <c>current_user</c> is never shared: rendered on every request.</summary>
    [Benchmark]
    public async ValueTask<object> Resolve_reading_current_user() =>
        await _resolver.ResolveAsync(_perCaller, Environment, _caller, CancellationToken.None);
}

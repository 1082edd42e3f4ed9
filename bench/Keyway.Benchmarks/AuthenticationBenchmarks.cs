using BenchmarkDotNet.Attributes;
using Keyway.Access;
using Keyway.SignIn;
using Keyway.Storage;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Keyway.Benchmarks;

/// <summary>
/// Authenticating one proxied request that carries a cached API key: through ASP.NET Core's
/// <c>AuthenticationMiddleware</c> and the "Keyway" policy scheme (what every request did before
/// <see cref="ApiKeyMiddleware"/>), and through the fast path. Each operation is a fresh
/// <see cref="DefaultHttpContext"/> with a lazily created request scope, as Kestrel gives one.
/// </summary>
[MemoryDiagnoser]
public class AuthenticationBenchmarks
{
    private BenchStore _store = null!;
    private ServiceProvider _services = null!;
    private IServiceScopeFactory _scopes = null!;
    private RequestDelegate _standard = null!;
    private RequestDelegate _fast = null!;
    private string _authorization = null!;

    [GlobalSetup]
    public async Task Setup()
    {
        _store = await BenchStore.CreateAsync();
        var time = new FrozenTime();
        var collection = new ServiceCollection();
        collection.AddLogging();
        collection.AddSingleton<TimeProvider>(time);
        collection.AddSingleton(_store.Database);
        collection.AddSingleton(new Keyway.Environments.ChangeFeed());
        collection.AddSingleton<ApiKeyService>();
        collection.AddDataProtection();
        collection.AddAuthentication(Sessions.DefaultScheme)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null)
            .AddPolicyScheme(Sessions.DefaultScheme, "API key or console session", o =>
                o.ForwardDefaultSelector = http => Sessions.HasApiKey(http.Request.Headers) ? ApiKeyAuthenticationHandler.SchemeName : Sessions.SchemeName)
            .AddCookie(Sessions.SchemeName);
        _services = collection.BuildServiceProvider();
        _scopes = _services.GetRequiredService<IServiceScopeFactory>();

        var keys = _services.GetRequiredService<ApiKeyService>();
        await using (var connection = await _store.Database.OpenAsync(CancellationToken.None))
        {
            await connection.ExecuteAsync(
                "INSERT INTO users (id, name, role, created_at) VALUES ('usr_bench', 'bench', @role, @now)",
                new { role = Caller.MemberRole, now = time.GetUtcNow().ToUnixTimeMilliseconds() });
        }

        var (_, token) = await keys.CreateAsync("usr_bench", "bench", null, null, CancellationToken.None);
        _authorization = "Bearer " + token;
        if (await keys.AuthenticateAsync(token, CancellationToken.None) is null)
        {
            throw new InvalidOperationException("The key does not authenticate.");
        }

        _standard = new ApplicationBuilder(_services).UseAuthentication().Use(Check).Build();
        _fast = new ApplicationBuilder(_services).UseKeywayAuthentication().Use(Check).Build();
    }

    // The end of the pipeline: the request must arrive authenticated.
    private static RequestDelegate Check(RequestDelegate next) => context =>
        Caller.From(context.User) is null ? throw new InvalidOperationException("Not authenticated.") : Task.CompletedTask;

    [GlobalCleanup]
    public async Task Cleanup()
    {
        await _services.DisposeAsync();
        await _store.DisposeAsync();
    }

    [Benchmark(Baseline = true)]
    public Task Authentication_middleware() => InvokeAsync(_standard);

    [Benchmark]
    public Task Api_key_middleware() => InvokeAsync(_fast);

    /// <summary>The request context alone, what the other two rows include besides authentication.</summary>
    [Benchmark]
    public Task Context_only() => InvokeAsync(static _ => Task.CompletedTask);

    private async Task InvokeAsync(RequestDelegate pipeline)
    {
        var context = new DefaultHttpContext();
        var services = new RequestServicesFeature(context, _scopes);
        context.Features.Set<IServiceProvidersFeature>(services);
        context.Request.Method = "GET";
        context.Request.Path = "/proxy/bench/hello";
        context.Request.Headers.Authorization = _authorization;
        await pipeline(context);
        await services.DisposeAsync();
    }
}

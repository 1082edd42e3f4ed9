using Keyway.Api;
using Keyway.Storage;

namespace Keyway.Hosting;

/// <summary>
/// <c>/readyz</c>: whether the store answers. Cheap under any probe rate and bounded in time: one
/// <c>SELECT 1</c> at a time, given <see cref="ProbeTimeout"/> (not the driver's 30 s command timeout),
/// its answer reused for <see cref="CacheFor"/>. Not ready is <c>503 store_unavailable</c> with
/// <c>Retry-After</c>; ready again on its own once the store answers. <c>/healthz</c> (liveness) never
/// asks the store: a replica that serves from memory through an outage must not be restarted for it.
/// </summary>
internal sealed class Readiness(Database database, StoreOutage outage, TimeProvider time)
{
    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan CacheFor = TimeSpan.FromSeconds(1);

    private readonly Lock _lock = new();
    private Task<bool>? _probe;
    private long _probedAt;

    /// <summary>Whether the store answered a probe at most <see cref="CacheFor"/> ago (or answers one now).</summary>
    public Task<bool> IsReadyAsync()
    {
        lock (_lock)
        {
            var now = time.GetTimestamp();
            if (_probe is null || (_probe.IsCompleted && time.GetElapsedTime(_probedAt, now) >= CacheFor))
            {
                _probedAt = now;
                _probe = ProbeAsync();
            }

            return _probe;
        }
    }

    public async Task<IResult> AnswerAsync(HttpContext context)
    {
        if (await IsReadyAsync())
        {
            return Results.Text("ready");
        }

        var unavailable = StoreFailure.Unavailable();
        Problems.SetRetryAfter(context.Response, unavailable);
        return Problems.Create(unavailable.Status, unavailable.Code,
            "Keyway cannot reach its store. It keeps serving what it holds in memory for a while; this probe answers 200 again once the store answers.",
            unavailable.Extensions);
    }

    private async Task<bool> ProbeAsync()
    {
        using var timeout = new CancellationTokenSource(ProbeTimeout, time);
        try
        {
            await using var connection = await database.OpenAsync(timeout.Token);
            await using var command = connection.CreateCommand();
            command.CommandText = "SELECT 1";
            command.CommandTimeout = (int)Math.Ceiling(ProbeTimeout.TotalSeconds);
            await command.ExecuteScalarAsync(timeout.Token);
            outage.Reached();
            return true;
        }
        catch (Exception e)
        {
            // Any failure is "not ready"; only one that says the store is unreachable starts an outage.
            outage.Observe(e);
            return false;
        }
    }
}

using Keyway.Api;
using Keyway.Resources;

namespace Keyway.Credentials;

/// <summary>
/// Proactive refresh of shared credentials: every few seconds, the ones whose schedule
/// (expiry − margin − jitter) has come are refreshed. On several replicas each may pick the same
/// credential; the engine's cluster lock and re-read make that one refresh.
/// </summary>
internal sealed partial class CredentialRefresher(
    CredentialStore store, CredentialEngine engine, ResourceService resources, ResourceResolver resolver, CredentialMetrics metrics,
    TimeProvider time, ILogger<CredentialRefresher> logger)
    : BackgroundService
{
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(2);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await SweepAsync(stoppingToken);
                }
                catch (Exception e) when (Storage.StoreFailure.IsUnavailable(e))
                {
                    // An outage, not a bug: the credentials in memory keep being served, and the sweep runs again.
                    Log.SweepWaitsForStore(logger, e.GetType().Name);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    Log.SweepFailed(logger, e.GetType().Name);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping. Also when the server never started (its port was taken): the host then
            // disposes the service without stopping it first, and would report a cancelled loop
            // as a crashed one, next to the one error that matters.
        }
    }

    internal async Task SweepAsync(CancellationToken cancellationToken)
    {
        metrics.SetCounts(await store.CountByStateAsync(cancellationToken));
        foreach (var (key, keepAlive) in await store.DueAsync(time.GetUtcNow(), 100, cancellationToken))
        {
            try
            {
                var compiled = await resources.GetCompiledAsync(key.Resource, cancellationToken);
                var resolved = await resolver.ResolveAsync(compiled, key.Environment, null, cancellationToken);
                if (resolved.Credential is { } binding && keepAlive)
                {
                    // Fresh but idle for the keep-alive interval: spend the refresh token so the provider keeps the grant.
                    await engine.RefreshAsync(key, binding.Provider, cancellationToken);
                }
                else if (resolved.Credential is { Shared: true } shared)
                {
                    await engine.RefreshIfDueAsync(key, shared.Provider, cancellationToken);
                }
            }
            catch (KeywayException e)
            {
                // The state and error are in the store and the event stream; the sweep moves on.
                Log.RefreshFailed(logger, key.ToString(), e.Code);
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(330, LogLevel.Warning, "Proactive refresh of {Credential} failed ({Code})")]
        public static partial void RefreshFailed(ILogger logger, string credential, string code);

        [LoggerMessage(331, LogLevel.Error, "The proactive refresh sweep failed ({Error}); it runs again shortly")]
        public static partial void SweepFailed(ILogger logger, string error);

        [LoggerMessage(332, LogLevel.Warning, "The proactive refresh sweep could not reach the store ({Error}); it runs again shortly")]
        public static partial void SweepWaitsForStore(ILogger logger, string error);
    }
}

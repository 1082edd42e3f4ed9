namespace Keyway.Rotations;

/// <summary>How often the rotation service looks for due revokes and abandoned rotations (<c>KEYWAY_ROTATION_SWEEP</c>; docs/configuration.md).</summary>
internal sealed record RotationOptions
{
    public TimeSpan SweepInterval { get; init; } = TimeSpan.FromSeconds(10);

    public static RotationOptions FromEnvironment(Func<string, string?>? variable = null)
    {
        variable ??= Environment.GetEnvironmentVariable;
        return SignIn.SignInSettings.ParseDuration(variable("KEYWAY_ROTATION_SWEEP"), "KEYWAY_ROTATION_SWEEP") is { } sweep
            ? new RotationOptions { SweepInterval = sweep }
            : new RotationOptions();
    }
}

/// <summary>
/// The background side of rotations, on every replica: at start it takes over the rotations this
/// replica left unfinished when it stopped (<see cref="RotationEngine.RecoverAsync"/>), then every
/// <see cref="RotationOptions.SweepInterval"/> (and at once when a commit makes a revoke due) it runs
/// due revokes and takes over rotations whose replica's lease ran out. Each is claimed first (compare
/// and swap on its owner and lease), so two replicas never work on one.
/// </summary>
internal sealed partial class RotationService(
    RotationEngine engine, RotationStore store, RotationOptions options, TimeProvider time, ILogger<RotationService> logger) : BackgroundService
{
    private readonly SemaphoreSlim _wake = new(0, 1);

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        engine.RevokeDue = Wake;
        return base.StartAsync(cancellationToken);
    }

    private void Wake()
    {
        try
        {
            if (_wake.CurrentCount == 0)
            {
                _wake.Release();
            }
        }
        catch (SemaphoreFullException)
        {
            // Already woken.
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.SweepInterval, time);
        Task<bool>? tick = null;
        Task? woken = null;
        var atStart = true;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                try
                {
                    await SweepAsync(atStart, stoppingToken);
                    atStart = false;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // The store may be unreachable; the next tick tries again. The type only: a message could quote SQL.
                    Log.SweepFailed(logger, e.GetType().Name);
                }

                tick ??= timer.WaitForNextTickAsync(stoppingToken).AsTask();
                // Each wait is kept until it completes: a second one on the same timer or semaphore would lose a wake.
                woken ??= _wake.WaitAsync(stoppingToken);
                if (await Task.WhenAny(tick, woken) == tick)
                {
                    tick = null;
                }
                else
                {
                    woken = null;
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: a rotation under way keeps its lease and state; the next start takes it over.
        }
    }

    /// <summary>One pass: every rotation this replica should take over now, oldest first.</summary>
    public async Task SweepAsync(bool atStart, CancellationToken cancellationToken)
    {
        foreach (var rotation in await store.ListRecoverableAsync(atStart, cancellationToken))
        {
            try
            {
                await engine.RecoverAsync(rotation, cancellationToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                Log.RecoveryFailed(logger, rotation.Environment, rotation.Name, rotation.Id, e.GetType().Name);
            }
        }
    }

    public override void Dispose()
    {
        _wake.Dispose();
        base.Dispose();
    }

    private static partial class Log
    {
        [LoggerMessage(970, LogLevel.Warning, "The rotation sweep failed ({Error}); it tries again at the next tick")]
        public static partial void SweepFailed(ILogger logger, string error);

        [LoggerMessage(971, LogLevel.Error, "Rotation {Id} of {Environment}/{Name} could not be taken over ({Error}); tried again later")]
        public static partial void RecoveryFailed(ILogger logger, string environment, string name, string id, string error);
    }
}

using System.Diagnostics;

namespace Keyway.Tests.Infrastructure;

/// <summary>Waits on a condition with a deadline, the only way tests wait (never a fixed sleep).</summary>
public static class Poll
{
    private static readonly TimeSpan _interval = TimeSpan.FromMilliseconds(50);

    /// <summary>Returns once <paramref name="condition"/> holds; throws <see cref="TimeoutException"/> at the deadline.</summary>
    public static Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what, CancellationToken cancellationToken = default) =>
        UntilAsync(() => Task.FromResult(condition()), timeout, what, cancellationToken);

    /// <summary>Returns once <paramref name="condition"/> holds; throws <see cref="TimeoutException"/> at the deadline.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > timeout)
                throw new TimeoutException($"Gave up after {timeout.TotalSeconds:0.#} s waiting for {what}.");
            await Task.Delay(_interval, cancellationToken);
        }
    }
}

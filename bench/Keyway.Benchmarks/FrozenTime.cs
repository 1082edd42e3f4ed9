namespace Keyway.Benchmarks;

/// <summary>
/// A clock that never moves, so a 30-second cache never expires in the middle of a measurement
/// (FakeTimeProvider would do too, but it takes a lock on every read, which the system clock does not).
/// </summary>
internal sealed class FrozenTime : TimeProvider
{
    private readonly DateTimeOffset _now = DateTimeOffset.UtcNow;

    public override DateTimeOffset GetUtcNow() => _now;
}

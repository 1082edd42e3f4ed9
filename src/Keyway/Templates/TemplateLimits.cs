namespace Keyway.Templates;

/// <summary>
/// What one script expression may consume. The defaults suit a template, which computes one
/// outbound value; a configuration needing more is probably doing something else.
/// </summary>
internal sealed record TemplateLimits
{
    public static TemplateLimits Default { get; } = new();

    /// <summary>Wall-clock time per evaluation (Jint keeps its own deadline; it cannot take a TimeProvider).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMilliseconds(100);

    public int MaxStatements { get; init; } = 10_000;

    /// <summary>Bytes allocated by the evaluating thread while the script runs.</summary>
    public long MaxMemoryBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>How deep a function may call itself (Jint counts calls of the same function).</summary>
    public int MaxRecursionDepth { get; init; } = 64;

    public uint MaxArrayLength { get; init; } = 100_000;

    internal void Validate()
    {
        if (Timeout <= TimeSpan.Zero || Timeout > TimeSpan.FromMinutes(1))
        {
            throw new ArgumentOutOfRangeException(nameof(Timeout), Timeout, "A template time limit must be positive and at most a minute.");
        }

        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxStatements);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxMemoryBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(MaxRecursionDepth);
        ArgumentOutOfRangeException.ThrowIfZero(MaxArrayLength);
    }
}

namespace Keyway.Environments;

/// <summary>
/// Tells every cache in this process (and, on PostgreSQL, in every replica) that configuration
/// changed. Caches subscribe; writers publish after their transaction commits.
/// </summary>
internal sealed class ChangeFeed
{
    public event Action<Change>? Changed;

    public void Publish(Change change) => Changed?.Invoke(change);
}

/// <summary>What changed: <c>Kind</c> is <c>variables</c>, <c>resources</c>, <c>queries</c> or <c>keys</c>; <c>Name</c> the environment or item.</summary>
internal readonly record struct Change(string Kind, string Name);

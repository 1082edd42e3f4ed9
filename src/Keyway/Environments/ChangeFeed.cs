using System.Threading.Channels;

namespace Keyway.Environments;

/// <summary>
/// Tells every cache in this process (and, on PostgreSQL, in every replica) that configuration
/// changed. Caches subscribe; writers publish after their transaction commits.
/// </summary>
/// <remarks>
/// <see cref="Publish"/> stays synchronous and never touches the database: it invalidates this
/// process's caches at once (a writer reads its own write on the next request) and, when the
/// feed is replicated, only enqueues the change. <see cref="ChangeRelay"/> drains that outbox
/// into <c>pg_notify</c> in the background and raises the other replicas' changes here. So a
/// write never fails, nor waits, because a notification could not be sent after its commit;
/// the relay retries instead, and a replica that lost its listener drops every cache when it
/// reconnects. The one gap is a replica killed between a commit and the drain (milliseconds);
/// the alternative, NOTIFY inside each writer's transaction, would thread connections through
/// every writer for that window alone.
/// </remarks>
internal sealed class ChangeFeed
{
    /// <summary>The kind of <see cref="All"/>.</summary>
    public const string AllKind = "all";

    /// <summary>Drop everything: raised when changes from other replicas may have been missed.</summary>
    public static readonly Change All = new(AllKind, "*");

    private readonly Channel<Change>? _outbox;

    /// <summary>A feed for this process only (SQLite: one process owns the store).</summary>
    public ChangeFeed()
    {
    }

    /// <summary>A feed whose changes are also relayed to other replicas when <paramref name="replicated"/>.</summary>
    public ChangeFeed(bool replicated)
    {
        if (replicated)
        {
            _outbox = Channel.CreateUnbounded<Change>(new UnboundedChannelOptions { SingleReader = true });
        }
    }

    public event Action<Change>? Changed;

    /// <summary>This replica's id, so the relay can skip notifications it sent itself.</summary>
    public string Origin { get; } = Guid.NewGuid().ToString("N");

    /// <summary>The changes waiting to be sent to other replicas; null when the feed is not replicated.</summary>
    internal ChannelReader<Change>? Outbox => _outbox?.Reader;

    /// <summary>Invalidates this process's caches now and, if replicated, queues the change for the others.</summary>
    public void Publish(Change change)
    {
        Raise(change);
        _outbox?.Writer.TryWrite(change);
    }

    /// <summary>Raises a change in this process only: one that came from another replica, or <see cref="All"/>.</summary>
    internal void Raise(Change change) => Changed?.Invoke(change);
}

/// <summary>
/// What changed: <c>Kind</c> is <c>variables</c>, <c>resources</c>, <c>queries</c>, <c>keys</c> or
/// <c>all</c> (<see cref="ChangeFeed.All"/>, every cache); <c>Name</c> the environment or item.
/// </summary>
internal readonly record struct Change(string Kind, string Name)
{
    public bool IsAll => Kind == ChangeFeed.AllKind;
}

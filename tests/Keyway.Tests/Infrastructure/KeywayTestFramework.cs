using Xunit.Abstractions;
using Xunit.Sdk;

[assembly: TestFramework("Keyway.Tests.Infrastructure.KeywayTestFramework", "Keyway.Tests")]

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// xunit's own test framework plus one thing: when the run ends it stops what was shared by
/// the whole run (the PostgreSQL cluster), so no postgres process outlives the tests. xunit 2
/// has no assembly fixtures; a framework's Dispose is where a run's end is seen.
/// </summary>
public sealed class KeywayTestFramework : XunitTestFramework
{
    /// <summary>Called by the xunit runner.</summary>
    public KeywayTestFramework(IMessageSink messageSink)
        : base(messageSink) => DisposalTracker.Add(new RunEnd());

    private sealed class RunEnd : IDisposable
    {
        public void Dispose() => PostgresCluster.StopShared();
    }
}

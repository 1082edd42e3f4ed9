using Keyway.Audit;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;

namespace Keyway.Tests.Audit;

/// <summary>Two writers on one PostgreSQL database, as two replicas are: the chain stays one line.</summary>
[Trait("Category", "Integration")]
public sealed class AuditReplicaTests
{
    [Fact]
    public async Task Two_replicas_appending_at_once_form_one_linear_chain()
    {
        var cluster = await PostgresCluster.GetSharedAsync();
        var database = await cluster.CreateDatabaseAsync();
        try
        {
            await using var storeA = Database.Postgres(database.Url);
            await using var storeB = Database.Postgres(database.Url);
            await new Migrator(storeA, TimeProvider.System, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
            var options = new AuditOptions { BatchSize = 7 };
            using var a = new AuditLog(storeA, TestSeal.Shared, TimeProvider.System, _ => Task.FromResult(Redactor.None), options, NullLogger<AuditLog>.Instance);
            using var b = new AuditLog(storeB, TestSeal.Shared, TimeProvider.System, _ => Task.FromResult(Redactor.None), options, NullLogger<AuditLog>.Instance);
            await a.StartAsync(CancellationToken.None);
            await b.StartAsync(CancellationToken.None);

            async Task RecordAsync(AuditLog log, string replica)
            {
                for (var i = 0; i < 150; i++)
                {
                    await log.RecordAsync(new AuditEntry("run") { Target = replica, Detail = new Dictionary<string, object?> { ["i"] = i } });
                    if (i % 10 == 0)
                    {
                        await Task.Yield();
                    }
                }
            }

            await Task.WhenAll(Task.Run(() => RecordAsync(a, "a")), Task.Run(() => RecordAsync(b, "b")));
            await a.StopAsync(CancellationToken.None);
            await b.StopAsync(CancellationToken.None);

            var result = await new AuditVerifier(new AuditStore(storeA), TestSeal.Shared).VerifyAsync(CancellationToken.None, pageSize: 50);
            Assert.True(result.Ok, result.FirstBroken?.Problem);
            Assert.Equal(300, result.Checked);
            Assert.Equal(300, result.Head.Seq);
        }
        finally
        {
            await cluster.DropDatabaseAsync(database.Name);
        }
    }
}

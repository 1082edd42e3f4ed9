using Keyway.Api;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Time.Testing;
using Npgsql;

namespace Keyway.Tests.Storage;

/// <summary>
/// <see cref="StoreFailure.IsUnavailable"/> tells an unreachable store from one that answered with an
/// error, and <see cref="StoreOutage"/> bounds how long what is in memory may be served without it.
/// </summary>
public sealed class StoreOutageTrackingTests
{
    [Fact]
    public async Task A_PostgreSQL_port_where_nothing_listens_is_an_unreachable_store()
    {
        await using var connection = new NpgsqlConnection($"Host=127.0.0.1;Port={FreePort.Next()};Username=keyway;Timeout=5;Pooling=false");
        var refused = await Assert.ThrowsAnyAsync<Exception>(() => connection.OpenAsync());

        Assert.True(StoreFailure.IsUnavailable(refused), refused.GetType().FullName);
    }

    [Fact]
    public async Task A_statement_the_store_refuses_is_not_an_outage()
    {
        await using var connection = new SqliteConnection("Data Source=:memory:");
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = "SELECT * FROM no_such_table";
        var refused = await Assert.ThrowsAsync<SqliteException>(() => command.ExecuteScalarAsync());

        Assert.False(StoreFailure.IsUnavailable(refused));
    }

    [Fact]
    public void A_busy_SQLite_store_and_a_wrapped_timeout_are_unreachable_and_a_bug_is_not()
    {
        Assert.True(StoreFailure.IsUnavailable(new SqliteException("database is locked", 5)));
        Assert.True(StoreFailure.IsUnavailable(new InvalidOperationException("wrapped", new TimeoutException())));
        Assert.False(StoreFailure.IsUnavailable(new InvalidOperationException("a bug")));
        Assert.False(StoreFailure.IsUnavailable(new KeywayException(404, "not_found", "gone")));
    }

    [Fact]
    public void The_problem_for_an_unreachable_store_is_503_store_unavailable_and_says_when_to_retry()
    {
        var problem = StoreFailure.Unavailable();

        Assert.Equal(503, problem.Status);
        Assert.Equal("store_unavailable", problem.Code);
        Assert.Equal((int)StoreFailure.RetryAfter.TotalSeconds, problem.Extensions!["retryAfterSeconds"]);
    }

    [Fact]
    public void Stale_entries_may_be_served_from_the_first_failure_until_the_bound_and_again_once_the_store_answers()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var outage = new StoreOutage(time, TimeSpan.FromMinutes(5));

        Assert.False(outage.Observe(new InvalidOperationException("a bug")));
        Assert.Null(outage.Since);

        Assert.True(outage.Observe(new TimeoutException()));
        var started = time.GetUtcNow();
        time.Advance(TimeSpan.FromMinutes(1));
        Assert.True(outage.Observe(new TimeoutException()));
        Assert.Equal(started, outage.Since);

        time.Advance(TimeSpan.FromMinutes(4));
        Assert.True(outage.MayServeStale());
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(outage.MayServeStale());

        var recovered = outage.Recovered;
        Assert.False(recovered.IsCompleted);
        outage.Reached();
        Assert.True(recovered.IsCompleted);
        Assert.Null(outage.Since);
        Assert.True(outage.MayServeStale());
    }

    [Fact]
    public async Task A_backoff_ends_early_when_the_store_is_reached_again_but_not_before_its_floor()
    {
        var time = new FakeTimeProvider();
        var outage = new StoreOutage(time, TimeSpan.FromMinutes(5));
        outage.Observe(new TimeoutException());

        var waiting = outage.DelayAsync(TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(250), CancellationToken.None);
        outage.Reached();
        Assert.False(waiting.IsCompleted);

        time.Advance(TimeSpan.FromMilliseconds(250));
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
    }
}

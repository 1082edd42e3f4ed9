using System.Diagnostics;
using Keyway.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Keyway.Tests.Integration;

/// <summary>
/// The credential engine survives its store: with three replicas on one PostgreSQL and a provider
/// that rotates refresh tokens and revokes the grant on reuse, PostgreSQL failing while a refresh
/// is at the provider costs no one a reconnect, no replica answers 500, waits are bounded by the
/// request's timeout, and with 3-second tokens a proactive refresh, not a 401, renews them.
/// Faults are injected at named points: the provider's answer is held
/// (<see cref="AuthServer.HoldTokenAnswers"/>) until PostgreSQL is down, a replica is killed once
/// its journal entry exists.
/// </summary>
[Trait("Category", "Integration")]
public sealed class CredentialOutageTests(CredentialOutageCluster cluster, ITestOutputHelper output) : IClassFixture<CredentialOutageCluster>, IAsyncLifetime
{
    private const string RefreshGrant = "refresh_token";
    private static readonly TimeSpan ArrivalTimeout = TimeSpan.FromSeconds(15);
    private static readonly TimeSpan RecoveryTimeout = TimeSpan.FromSeconds(30);

    private readonly List<OutageResource> _resources = [];

    private IReadOnlyList<KeywayProcess> Replicas => cluster.Replicas;

    private AuthServer Provider => cluster.Provider;

    public Task InitializeAsync() => cluster.EnsureRunningAsync();

    public async Task DisposeAsync()
    {
        output.WriteLine($"at the end: {cluster.ProviderSummary()}");
        await cluster.EnsureRunningAsync();
        foreach (var resource in _resources)
            await cluster.RemoveAsync(resource);
    }

    [Fact]
    public async Task With_the_store_up_runs_succeed_on_every_replica_refreshes_happen_and_no_refresh_token_is_reused()
    {
        var resource = await ConnectAsync("base");
        await cluster.WaitUntilEveryReplicaServesAsync(resource.Name, TimeSpan.FromSeconds(10), "after the import");
        var refreshesBefore = SuccessfulRefreshes();

        var outcomes = await LoadAsync(resource.Name, TimeSpan.FromSeconds(8), callersPerReplica: 1);

        output.WriteLine($"{outcomes.Count} runs; {cluster.ProviderSummary()}");
        Assert.All(outcomes, o => Assert.True(o.Succeeded, o.ToString()));
        Assert.True(SuccessfulRefreshes() > refreshesBefore, "no refresh over 8 s of 3-second tokens");
        Assert.Empty(Provider.RefreshTokenReuses);
        Assert.Equal(0, await Provider.CountRevokedGrantsAsync());
        await WaitForStateAsync(resource.Name, "valid");
    }

    [Fact]
    public async Task With_the_store_up_a_journal_entry_is_removed_once_its_answer_is_stored()
    {
        var started = DateTime.UtcNow;
        var resource = await ConnectAsync("drain");
        await cluster.WaitUntilEveryReplicaServesAsync(resource.Name, TimeSpan.FromSeconds(10), "after the import");
        var refreshesBefore = SuccessfulRefreshes();
        for (var i = 0; i < Replicas.Count; i++)
        {
            var forced = await CredentialOutageCluster.ForceRefreshAsync(Replicas[i], i, resource.Name);
            Assert.True(forced.Status == 200, forced.ToString());
        }
        Assert.True(SuccessfulRefreshes() > refreshesBefore);

        string[] left = [];
        try
        {
            await Poll.UntilAsync(() => (left = [.. Replicas.SelectMany(r => CredentialOutageCluster.JournalEntriesWrittenSince(r, started))]).Length == 0,
                TimeSpan.FromSeconds(10), "the journal entries of stored answers to be removed");
        }
        catch (TimeoutException e)
        {
            Assert.Fail($"{e.Message} {left.Length} left: {string.Join(", ", left.Select(Path.GetFileName))}");
        }
    }

    [Fact]
    public async Task A_refresh_held_at_the_provider_with_the_store_up_completes_once_released()
    {
        var resource = await ConnectAsync("held");
        await cluster.WaitUntilEveryReplicaServesAsync(resource.Name, TimeSpan.FromSeconds(10), "after the import");
        using var hold = Provider.HoldTokenAnswers(RefreshGrant, resource.ClientId);

        var refresh = CredentialOutageCluster.ForceRefreshAsync(Replicas[0], 0, resource.Name);
        await hold.Arrived.WaitAsync(ArrivalTimeout);
        var answeredWhileHeld = refresh.IsCompleted;
        var heldRefreshToken = Assert.Single(hold.RefreshTokens);
        var heldStatus = await Provider.GetRefreshTokenStatusAsync(heldRefreshToken);
        hold.Release();
        var refreshed = await refresh;
        // Replica 2 refreshes with the refresh token replica 1 stored: the one that was held. (Its
        // first forced refresh may only adopt what replica 1 stored, newer than its own copy.)
        var before = SuccessfulRefreshes();
        RunOutcome? next = null;
        await Poll.UntilAsync(async () =>
        {
            next = await CredentialOutageCluster.ForceRefreshAsync(Replicas[1], 1, resource.Name);
            return next.Status != 200 || SuccessfulRefreshes() > before;
        }, TimeSpan.FromSeconds(10), "replica 2 to refresh at the provider");

        Assert.False(answeredWhileHeld);
        Assert.Equal("valid", heldStatus);
        Assert.True(refreshed.Status == 200, refreshed.ToString());
        Assert.True(next!.Status == 200, next.ToString());
        Assert.Equal("redeemed", await Provider.GetRefreshTokenStatusAsync(heldRefreshToken));
        await cluster.WaitUntilEveryReplicaServesAsync(resource.Name, TimeSpan.FromSeconds(10), "after the held refresh");
        Assert.Empty(Provider.RefreshTokenReuses);
    }

    /// <summary>
    /// Issue 19, 1 and 2: the provider has rotated the refresh token (the old one is spent) and
    /// PostgreSQL is down when its answer arrives. PostgreSQL stays down until the access token
    /// valid at the crash has expired and every replica has answered runs since (they all need the
    /// new tokens then). The new tokens must be kept and stored once the store is back; no replica
    /// may spend the old refresh token meanwhile; nothing answers 500.
    /// </summary>
    [Fact]
    public async Task PostgreSQL_crashing_while_a_refresh_is_at_the_provider_loses_no_token_and_no_replica_answers_500()
    {
        var resource = await ConnectAsync("crash");
        await cluster.WaitUntilEveryReplicaServesAsync(resource.Name, TimeSpan.FromSeconds(10), "before the outage");
        using var hold = Provider.HoldTokenAnswers(RefreshGrant, resource.ClientId);
        await using var traffic = new OutageTraffic(Replicas, resource.Name, output.WriteLine);

        var refresh = CredentialOutageCluster.ForceRefreshAsync(Replicas[0], 0, resource.Name);
        await hold.Arrived.WaitAsync(ArrivalTimeout);
        var heldRefreshToken = Assert.Single(hold.RefreshTokens);
        var oldExpiry = await CredentialOutageCluster.StoredExpiryAsync(Replicas[1], resource.Name);
        var crashedAt = DateTime.UtcNow;
        await cluster.Postgres.CrashAsync();
        var crashed = Stopwatch.StartNew();
        hold.Release();
        await hold.Delivered.WaitAsync(ArrivalTimeout);
        // Replica 1 has the answer in hand (it answered the refresh, or journalled the tokens), and
        // every replica has needed the new tokens.
        await Poll.UntilAsync(
            () => (refresh.IsCompleted || Replicas.Any(r => CredentialOutageCluster.JournalEntriesWrittenSince(r, crashedAt).Length > 0))
                && traffic.Answered([0, 1, 2], oldExpiry, count: 2),
            RecoveryTimeout, "replica 1 to answer the refresh or journal the provider's answer, and every replica to answer runs after the old token expired, while PostgreSQL is down");
        await cluster.Postgres.StartAgainAsync();
        var downFor = crashed.Elapsed;

        await cluster.WaitUntilEveryReplicaServesAsync(resource.Name, RecoveryTimeout, "after PostgreSQL started again");
        // The kept refresh token is spent once: at the next refresh, which succeeds.
        var refreshesAfter = SuccessfulRefreshes();
        await Poll.UntilAsync(() => SuccessfulRefreshes() > refreshesAfter || Provider.RefreshTokenReuses.Count > 0,
            RecoveryTimeout, "a refresh after the outage");
        await cluster.WaitUntilEveryReplicaServesAsync(resource.Name, RecoveryTimeout, "after the first refresh following the outage");
        await traffic.StopAsync();
        var refreshAnswer = await refresh;
        output.WriteLine($"PostgreSQL down for {downFor.TotalSeconds:0.0} s; refresh on replica 1: {refreshAnswer}");

        Assert.Empty(Provider.RefreshTokenReuses);
        Assert.Equal(0, await Provider.CountRevokedGrantsAsync());
        Assert.Equal("redeemed", await Provider.GetRefreshTokenStatusAsync(heldRefreshToken));
        Assert.True(refreshAnswer.Status != 500, $"{refreshAnswer}\n{cluster.LogFor(refreshAnswer)}");
        AssertNoViolations(traffic);
        await WaitForStateAsync(resource.Name, "valid");
        await Poll.UntilAsync(() => Replicas.All(r => CredentialOutageCluster.JournalEntriesWrittenSince(r, crashedAt).Length == 0),
            TimeSpan.FromSeconds(10), "the journal entries written during the outage to be removed once stored");
    }

    /// <summary>
    /// As above, and the replica holding the pending tokens is SIGKILLed once they are in its
    /// journal, before the store is back: its restart replays the journal.
    /// </summary>
    [Fact]
    public async Task The_replica_holding_pending_tokens_killed_after_its_journal_write_replays_them_on_restart()
    {
        var resource = await ConnectAsync("journal");
        await cluster.WaitUntilEveryReplicaServesAsync(resource.Name, TimeSpan.FromSeconds(10), "before the outage");
        using var hold = Provider.HoldTokenAnswers(RefreshGrant, resource.ClientId);
        await using var traffic = new OutageTraffic(Replicas, resource.Name, output.WriteLine);

        var refresh = CredentialOutageCluster.ForceRefreshAsync(Replicas[0], 0, resource.Name);
        await hold.Arrived.WaitAsync(ArrivalTimeout);
        var heldRefreshToken = Assert.Single(hold.RefreshTokens);
        var oldExpiry = await CredentialOutageCluster.StoredExpiryAsync(Replicas[1], resource.Name);
        var crashedAt = DateTime.UtcNow;
        await cluster.Postgres.CrashAsync();
        hold.Release();
        var pending = -1;
        await Poll.UntilAsync(
            () => (pending = Replicas.ToList().FindIndex(r => CredentialOutageCluster.JournalEntriesWrittenSince(r, crashedAt).Length > 0)) >= 0,
            ArrivalTimeout, $"a journal entry (*.entry in <data dir>/{CredentialOutageCluster.JournalDirectoryName}/) for the provider's answer while PostgreSQL is down");
        var journaled = CredentialOutageCluster.JournalEntriesWrittenSince(Replicas[pending], crashedAt);
        // The journal is encrypted: the tokens it keeps are not in it as text.
        var journalText = string.Concat(journaled.Select(f => System.Text.Encoding.Latin1.GetString(File.ReadAllBytes(f))));
        Assert.Equal(137, await Replicas[pending].KillAsync());
        // The others need the new tokens while the one replica that had them is dead and the store down.
        int[] others = [.. Enumerable.Range(0, Replicas.Count).Where(i => i != pending)];
        await Poll.UntilAsync(() => traffic.Answered(others, oldExpiry, count: 2), RecoveryTimeout,
            "the other replicas to answer runs after the old token expired, while PostgreSQL is down");
        await cluster.Postgres.StartAgainAsync();
        await Replicas[pending].RestartAsync();

        await cluster.WaitUntilEveryReplicaServesAsync(resource.Name, RecoveryTimeout, "after the journal was replayed");
        var refreshesAfter = SuccessfulRefreshes();
        await Poll.UntilAsync(() => SuccessfulRefreshes() > refreshesAfter || Provider.RefreshTokenReuses.Count > 0,
            RecoveryTimeout, "a refresh after the replay");
        await cluster.WaitUntilEveryReplicaServesAsync(resource.Name, RecoveryTimeout, "after the first refresh following the replay");
        await traffic.StopAsync();

        output.WriteLine($"journal of replica {pending + 1}: {journaled.Length} entries; {cluster.ProviderSummary()}");
        Assert.Single(journaled);
        Assert.DoesNotContain(heldRefreshToken, journalText, StringComparison.Ordinal);
        Assert.Empty(Provider.RefreshTokenReuses);
        Assert.Equal(0, await Provider.CountRevokedGrantsAsync());
        Assert.Equal("redeemed", await Provider.GetRefreshTokenStatusAsync(heldRefreshToken));
        AssertNoViolations(traffic);
        await WaitForStateAsync(resource.Name, "valid");
        await Poll.UntilAsync(() => Replicas.All(r => CredentialOutageCluster.JournalEntriesWrittenSince(r, crashedAt).Length == 0),
            TimeSpan.FromSeconds(10), "the journal entries written during the outage to be removed once stored");
        Assert.All(Replicas, r => Assert.DoesNotContain(heldRefreshToken, r.AllOutput));
    }

    /// <summary>
    /// Issue 19, 3: replica 1 holds the cluster lock while its refresh is at the provider; a run
    /// through replica 2 that needs a refresh answers within the resource's
    /// <c>timeouts.requestMs</c> (503 <c>credential_refresh_pending</c>), not at the driver's 30 s.
    /// </summary>
    [Fact]
    public async Task A_replica_waiting_on_another_replicas_refresh_answers_within_its_request_timeout()
    {
        var resource = await ConnectAsync("wait");
        await cluster.WaitUntilEveryReplicaServesAsync(resource.Name, TimeSpan.FromSeconds(10), "before the hold");
        using var hold = Provider.HoldTokenAnswers(RefreshGrant, resource.ClientId);
        var refresh = CredentialOutageCluster.ForceRefreshAsync(Replicas[0], 0, resource.Name);
        await hold.Arrived.WaitAsync(ArrivalTimeout);
        // The stored access token runs out while the refresh is held: replica 2 needs a new one.
        var expiresAt = await CredentialOutageCluster.StoredExpiryAsync(Replicas[1], resource.Name);
        await Poll.UntilAsync(() => DateTimeOffset.UtcNow > expiresAt, CredentialOutageCluster.AccessTokenLifetime + TimeSpan.FromSeconds(2), "the stored access token to expire");

        var waiting = await CredentialOutageCluster.RunAsync(Replicas[1], 1, resource.Name, TimeSpan.FromMilliseconds(CredentialOutageCluster.RequestTimeoutMs + 5000));
        var answeredWhileHeld = !refresh.IsCompleted;
        hold.Release();
        var refreshed = await refresh;

        output.WriteLine($"replica 2 while replica 1 refreshed: {waiting}; replica 1's refresh: {refreshed}");
        Assert.True(answeredWhileHeld, "replica 1's refresh finished before replica 2 answered: the test did not exercise the wait");
        Assert.True(waiting.Elapsed <= TimeSpan.FromMilliseconds(CredentialOutageCluster.RequestTimeoutMs + 1000),
            $"Replica 2 answered after {waiting.Elapsed.TotalMilliseconds:0} ms, beyond timeouts.requestMs = {CredentialOutageCluster.RequestTimeoutMs}: {waiting}");
        Assert.True(waiting.Succeeded || (waiting.Status == 503 && waiting.Code == "credential_refresh_pending"), waiting.ToString());
        Assert.True(refreshed.Status == 200, refreshed.ToString());
        await cluster.WaitUntilEveryReplicaServesAsync(resource.Name, TimeSpan.FromSeconds(10), "after the refresh was released");
        Assert.Empty(Provider.RefreshTokenReuses);
    }

    /// <summary>
    /// Issue 19, 4: the provider states <c>expires_in</c> in whole seconds and the JWT <c>exp</c> is a
    /// whole second, so a token may die up to a second before "now + expires_in". With 3-second
    /// tokens under steady load for a minute, proactive refreshes must renew every token before the
    /// upstream sees it expired.
    /// </summary>
    [Fact]
    public async Task With_3_second_tokens_no_request_meets_a_401_over_a_minute_of_steady_load()
    {
        var resource = await ConnectAsync("steady");
        await cluster.WaitUntilEveryReplicaServesAsync(resource.Name, TimeSpan.FromSeconds(10), "before the load");
        Provider.ClearRecords();

        // Steady, not saturating: two callers per replica, each at most 20 runs a second (about 120 a
        // second in all, hundreds per token lifetime), so every token is in use up to its last moment.
        var outcomes = await LoadAsync(resource.Name, TimeSpan.FromSeconds(60), callersPerReplica: 2, pace: TimeSpan.FromMilliseconds(50));

        var rejected = Provider.ApiRejectionCount;
        var slowest = outcomes.Max(o => o.Elapsed);
        output.WriteLine($"{outcomes.Count} runs over 60 s (slowest {slowest.TotalMilliseconds:0} ms); {outcomes.Count(o => !o.Succeeded)} failed; {cluster.ProviderSummary()}");
        Assert.True(rejected == 0, $"{rejected} of {Provider.ApiStatusCodes.Count} upstream requests met a 401: " +
            $"{string.Join(", ", Provider.ApiRejections.Take(10))}; {cluster.ProviderSummary()}");
        Assert.True(outcomes.All(o => o.Succeeded), "Failed runs:\n" + string.Join('\n', outcomes.Where(o => !o.Succeeded).Take(10)));
        Assert.True(SuccessfulRefreshes() >= 10, $"only {SuccessfulRefreshes()} refreshes in a minute of 3-second tokens");
        Assert.Empty(Provider.RefreshTokenReuses);
    }

    private void AssertNoViolations(OutageTraffic traffic)
    {
        var violations = traffic.Violations;
        Assert.True(violations.Count == 0,
            $"{violations.Count} answers were 500 or none in time:\n{string.Join('\n', violations.Take(5))}\n" +
            (violations.Count > 0 ? cluster.LogFor(violations[0]) : ""));
    }

    private async Task<OutageResource> ConnectAsync(string prefix)
    {
        var resource = await cluster.ConnectAsync(prefix);
        _resources.Add(resource);
        return resource;
    }

    private int SuccessfulRefreshes() => Provider.TokenRequests.Count(r => r.GrantType == RefreshGrant && r.StatusCode == 200);

    /// <summary>
    /// Runs from <paramref name="callersPerReplica"/> sequential callers on every replica for a while,
    /// each as fast as it is answered, or at most one run per <paramref name="pace"/>; returns every outcome.
    /// </summary>
    private async Task<List<RunOutcome>> LoadAsync(string resource, TimeSpan duration, int callersPerReplica, TimeSpan? pace = null)
    {
        var outcomes = new List<RunOutcome>();
        var clock = Stopwatch.StartNew();
        var callers = Enumerable.Range(0, Replicas.Count * callersPerReplica).Select(c => Task.Run(async () =>
        {
            var index = c % Replicas.Count;
            using var timer = pace is { } p ? new PeriodicTimer(p) : null;
            while (clock.Elapsed < duration)
            {
                var outcome = await CredentialOutageCluster.RunAsync(Replicas[index], index, resource);
                lock (outcomes)
                    outcomes.Add(outcome);
                if (timer is not null)
                    await timer.WaitForNextTickAsync();
            }
        }));
        await Task.WhenAll(callers);
        return outcomes;
    }

    /// <summary>Waits until every replica reports the credential in that state (a run first, so the state is current).</summary>
    private async Task WaitForStateAsync(string resource, string state)
    {
        var states = new string?[Replicas.Count];
        try
        {
            await Poll.UntilAsync(async () =>
            {
                for (var i = 0; i < Replicas.Count; i++)
                {
                    await CredentialOutageCluster.RunAsync(Replicas[i], i, resource);
                    var status = await CredentialOutageCluster.CredentialAsync(Replicas[i], resource);
                    states[i] = $"{(string?)status["state"]} ({(string?)status["lastError"] ?? "no error"})";
                }
                return states.All(s => s!.StartsWith(state + " ", StringComparison.Ordinal));
            }, TimeSpan.FromSeconds(15), $"every replica to report the credential '{state}'");
        }
        catch (TimeoutException e)
        {
            Assert.Fail($"{e.Message}\nLast states: {string.Join("; ", states)}");
        }
    }
}

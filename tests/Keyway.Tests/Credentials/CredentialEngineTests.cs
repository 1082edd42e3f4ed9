using Keyway.Credentials;
using Keyway.Secrets;

namespace Keyway.Tests.Credentials;

/// <summary>Every rule of DESIGN 4, on a fake clock.</summary>
public sealed class CredentialEngineTests
{
    private static readonly CredentialKey Key = EngineFixture.Key;

    [Fact]
    public async Task A_cached_credential_is_served_without_asking_the_provider_again()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time);

        var first = await f.Engine.GetAsync(Key, provider, default);
        var second = await f.Engine.GetAsync(Key, provider, default);

        Assert.Same(first, second);
        Assert.Equal(1, provider.Calls);
    }

    [Fact]
    public async Task Refresh_runs_once_when_a_thousand_requests_see_the_token_expire()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = 60 };
        var before = await f.Engine.GetAsync(Key, provider, default);
        f.Time.Advance(TimeSpan.FromSeconds(61));
        provider.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var callers = Enumerable.Range(0, 1000).Select(_ => Task.Run(async () => await f.Engine.GetAsync(Key, provider, default))).ToList();
        await Infrastructure.Poll.UntilAsync(() => provider.Calls == 2, TimeSpan.FromSeconds(10), "the refresh to start");
        provider.Gate.SetResult();
        var results = await Task.WhenAll(callers);

        Assert.Equal(2, provider.Calls);
        Assert.All(results, r => Assert.Equal("access-2", r.Tokens.AccessToken.Reveal()));
        Assert.NotEqual(before.Tokens.AccessToken.Reveal(), results[0].Tokens.AccessToken.Reveal());
        Assert.Equal(0, provider.Reuses);
    }

    [Fact]
    public async Task Concurrent_rejections_of_one_token_cause_one_refresh()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time);
        var rejected = await f.Engine.GetAsync(Key, provider, default);
        provider.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var retries = Enumerable.Range(0, 200).Select(_ => Task.Run(() => f.Engine.RejectAsync(Key, provider, rejected.Tokens.AccessToken, default))).ToList();
        await Infrastructure.Poll.UntilAsync(() => provider.Calls == 2, TimeSpan.FromSeconds(10), "the refresh to start");
        provider.Gate.SetResult();
        var results = await Task.WhenAll(retries);
        var late = await f.Engine.RejectAsync(Key, provider, rejected.Tokens.AccessToken, default);

        Assert.Equal(2, provider.Calls);
        Assert.All(results, r => Assert.Equal("access-2", r.Tokens.AccessToken.Reveal()));
        Assert.Equal("access-2", late.Tokens.AccessToken.Reveal());
    }

    [Fact]
    public async Task A_provider_that_rotates_refresh_tokens_and_revokes_on_reuse_never_sees_a_reuse()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = 30 };
        var replicaB = f.NewEngine();
        await f.Engine.GetAsync(Key, provider, default);

        for (var expiry = 0; expiry < 25; expiry++)
        {
            f.Time.Advance(TimeSpan.FromSeconds(31));
            var storm = Enumerable.Range(0, 50).Select(i => Task.Run(async () =>
                await (i % 2 == 0 ? f.Engine : replicaB).GetAsync(Key, provider, default)));
            var tokens = (await Task.WhenAll(storm)).Select(c => c.Tokens.AccessToken.Reveal()).Distinct().ToList();
            Assert.Single(tokens);
        }

        Assert.Equal(0, provider.Reuses);
        Assert.False(provider.GrantRevoked);
        var stored = await f.Store.ReadAsync(Key, default);
        Assert.Equal(provider.LatestRefreshToken, stored!.Tokens!.RefreshToken!.Reveal());
    }

    [Fact]
    public async Task A_rotated_refresh_token_is_stored_before_any_caller_gets_the_new_access_token()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = 60 };
        await f.Engine.GetAsync(Key, provider, default);
        f.Time.Advance(TimeSpan.FromSeconds(61));

        var fresh = await f.Engine.GetAsync(Key, provider, default);
        var stored = await f.Store.ReadAsync(Key, default);

        Assert.Equal(fresh.Tokens.AccessToken.Reveal(), stored!.Tokens!.AccessToken.Reveal());
        Assert.Equal("refresh-2", stored.Tokens.RefreshToken!.Reveal());
        Assert.Equal(fresh.Version, stored.Version);
        Assert.Null(stored.RefreshStartedAt);
        Assert.Equal(1, stored.RefreshCount);
    }

    [Fact]
    public async Task Without_expires_in_the_jwt_exp_says_when_the_token_expires()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = null, JwtAccessTokens = true };

        var credential = await f.Engine.GetAsync(Key, provider, default);

        Assert.Equal(f.Time.GetUtcNow().AddHours(1).ToUnixTimeSeconds(), credential.Tokens.ExpiresAt!.Value.ToUnixTimeSeconds());
    }

    [Fact]
    public async Task Without_expires_in_or_a_jwt_the_configured_lifetime_applies_and_else_the_token_lives_until_rejected()
    {
        await using var f = await EngineFixture.CreateAsync();
        var configured = new FakeTokenProvider(f.Time) { ExpiresIn = null, DefaultLifetime = TimeSpan.FromMinutes(15) };
        var unknown = new FakeTokenProvider(f.Time) { ExpiresIn = null };

        var a = await f.Engine.GetAsync(Key, configured, default);
        var b = await f.Engine.GetAsync(Key with { Resource = "other" }, unknown, default);

        Assert.Equal(f.Time.GetUtcNow().AddMinutes(15), a.Tokens.ExpiresAt);
        Assert.Null(b.Tokens.ExpiresAt);
        Assert.Null(b.RefreshAt);
    }

    [Fact]
    public async Task A_token_is_refreshed_ahead_of_expiry_while_callers_keep_getting_the_valid_one()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = 100 };
        var first = await f.Engine.GetAsync(Key, provider, default);
        // 100 s − 10 s margin − 1 s for a whole-second expires_in − 1 s of clock skew.
        Assert.Equal(f.Time.GetUtcNow().AddSeconds(88), first.RefreshAt);

        f.Time.Advance(TimeSpan.FromSeconds(87));
        Assert.Same(first, await f.Engine.GetAsync(Key, provider, default));
        f.Time.Advance(TimeSpan.FromSeconds(2));
        provider.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var during = await f.Engine.GetAsync(Key, provider, default);
        provider.Gate.SetResult();
        await Infrastructure.Poll.UntilAsync(async () => (await f.Engine.GetAsync(Key, provider, default)).Tokens.AccessToken.Reveal() == "access-2",
            TimeSpan.FromSeconds(10), "the background refresh");

        Assert.Same(first, during);
        Assert.Equal(2, provider.Calls);
    }

    [Fact]
    public async Task A_transient_failure_while_the_token_is_valid_does_not_touch_callers_and_is_retried_after_backoff()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = 100 };
        var first = await f.Engine.GetAsync(Key, provider, default);
        f.Time.Advance(TimeSpan.FromSeconds(91));
        provider.FailNext(TokenResult.Fail(FailureKind.Transient, "HTTP 503 from the token endpoint"));

        var forced = await f.Engine.RefreshAsync(Key, provider, default);
        var stored = await f.Store.ReadAsync(Key, default);
        var during = await f.Engine.GetAsync(Key, provider, default);

        Assert.Equal(first.Tokens.AccessToken.Reveal(), forced.Tokens.AccessToken.Reveal());
        Assert.Equal(first.Tokens.AccessToken.Reveal(), during.Tokens.AccessToken.Reveal());
        Assert.Equal(1, stored!.FailureCount);
        Assert.Contains("503", stored.LastError);
        Assert.True(stored.NextRefreshAt > f.Time.GetUtcNow());
        Assert.Equal(2, provider.Calls);

        f.Time.Advance(TimeSpan.FromSeconds(5));
        var recovered = await f.Engine.RefreshAsync(Key, provider, default);
        Assert.Equal("access-2", recovered.Tokens.AccessToken.Reveal());
        Assert.Equal(0, (await f.Store.ReadAsync(Key, default))!.FailureCount);
    }

    [Fact]
    public async Task A_transient_failure_after_expiry_is_a_clear_error_with_a_retry_time_and_the_provider_is_not_hammered()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = 60 };
        await f.Engine.GetAsync(Key, provider, default);
        f.Time.Advance(TimeSpan.FromSeconds(61));
        provider.FailNext(TokenResult.Fail(FailureKind.Transient, "timeout", TimeSpan.FromSeconds(30)));

        var first = await Assert.ThrowsAsync<CredentialException>(async () => await f.Engine.GetAsync(Key, provider, default));
        var second = await Assert.ThrowsAsync<CredentialException>(async () => await f.Engine.GetAsync(Key, provider, default));

        Assert.Equal("credential_refresh_failed", first.Code);
        Assert.Equal("credential_refresh_failed", second.Code);
        Assert.Equal(30, first.Extensions!["retryAfterSeconds"]);
        Assert.Equal(2, provider.Calls);
    }

    [Fact]
    public async Task Invalid_grant_means_reconnect_required_and_the_provider_is_not_called_again()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = 60 };
        await f.Engine.GetAsync(Key, provider, default);
        f.Time.Advance(TimeSpan.FromSeconds(61));
        provider.FailNext(TokenResult.Fail(FailureKind.GrantRevoked, "invalid_grant: token revoked"));

        var error = await Assert.ThrowsAsync<CredentialException>(async () => await f.Engine.GetAsync(Key, provider, default));
        var again = await Assert.ThrowsAsync<CredentialException>(async () => await f.NewEngine().GetAsync(Key, provider, default));
        var stored = await f.Store.ReadAsync(Key, default);

        Assert.Equal("reconnect_required", error.Code);
        Assert.Equal("reconnect_required", again.Code);
        Assert.Equal(CredentialState.ReconnectRequired, stored!.State);
        Assert.Null(stored.Tokens!.RefreshToken);
        Assert.Equal(2, provider.Calls);
    }

    [Fact]
    public async Task Each_transition_stages_its_event_in_the_transaction_that_stores_it_and_is_told_after_the_commit()
    {
        await using var f = await EngineFixture.CreateAsync();
        // What another connection sees while each event is staged: the state before the transition, so the
        // event is inside the transaction that writes the transition, not after it.
        var staged = new List<(CredentialEventKind Kind, string? Visible)>();
        var told = new List<CredentialEventKind>();
        f.Events.Stage = async (e, transaction) => staged.Add((e.Kind, await CommittedStateAsync(f)));
        f.Events.Raised += e => told.Add(e.Kind);
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = 60 };

        await f.Engine.GetAsync(Key, provider, default);
        f.Time.Advance(TimeSpan.FromSeconds(61));
        provider.FailNext(TokenResult.Fail(FailureKind.Transient, "temporarily_unavailable"));
        await Assert.ThrowsAsync<CredentialException>(async () => await f.Engine.GetAsync(Key, provider, default));
        f.Time.Advance(TimeSpan.FromMinutes(10));
        await f.Engine.GetAsync(Key, provider, default);
        await f.Engine.ForgetAsync(Key, default);

        Assert.Equal(
            [(CredentialEventKind.Refreshed, null), (CredentialEventKind.RefreshFailed, "valid"), (CredentialEventKind.Recovered, "expired"), (CredentialEventKind.Disconnected, "valid")],
            staged);
        Assert.Equal([CredentialEventKind.Refreshed, CredentialEventKind.RefreshFailed, CredentialEventKind.Recovered, CredentialEventKind.Disconnected], told);
    }

    private static async Task<string?> CommittedStateAsync(EngineFixture f)
    {
        await using var connection = await f.Database.OpenAsync(default);
        return await Keyway.Storage.Sql.ExecuteScalarAsync<string?>(connection, "SELECT state FROM credentials");
    }

    [Fact]
    public async Task A_misconfigured_client_fails_once_and_stays_failed_until_the_configuration_changes()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time);
        provider.FailNext(TokenResult.Fail(FailureKind.Misconfigured, "invalid_client"));

        var first = await Assert.ThrowsAsync<CredentialException>(async () => await f.Engine.GetAsync(Key, provider, default));
        var second = await Assert.ThrowsAsync<CredentialException>(async () => await f.Engine.GetAsync(Key, provider, default));
        provider.ParametersHash = "params-2";
        var fixedConfig = await f.Engine.GetAsync(Key, provider, default);

        Assert.Equal("credential_failed", first.Code);
        Assert.Equal("credential_failed", second.Code);
        Assert.Equal("access-1", fixedConfig.Tokens.AccessToken.Reveal());
        Assert.Equal(2, provider.Calls);
    }

    [Fact]
    public async Task A_crash_between_the_providers_answer_and_the_store_write_is_reported_not_hidden()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = 60 };
        await f.Engine.GetAsync(Key, provider, default);
        var stored = await f.Store.ReadAsync(Key, default);
        // A process marks the refresh, the provider rotates the token for it, and the process dies.
        await f.Store.MarkRefreshStartedAsync(Key, stored!.Version, "crashed-replica", default);
        provider.Spend(stored.Tokens!.RefreshToken!.Reveal());
        f.Time.Advance(TimeSpan.FromSeconds(61));

        var error = await Assert.ThrowsAsync<CredentialException>(async () => await f.NewEngine().GetAsync(Key, provider, default));
        var after = await f.Store.ReadAsync(Key, default);

        Assert.Equal("reconnect_required", error.Code);
        Assert.Contains("interrupted", error.Message);
        Assert.Equal(CredentialState.ReconnectRequired, after!.State);
        Assert.Contains("interrupted", after.LastError);
    }

    [Fact]
    public async Task Stored_tokens_minted_under_other_parameters_are_not_used()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time);
        await f.Engine.GetAsync(Key, provider, default);
        provider.ParametersHash = "scope-changed";

        var credential = await f.NewEngine().GetAsync(Key, provider, default);

        Assert.Equal("access-2", credential.Tokens.AccessToken.Reveal());
        Assert.Equal(2, provider.Calls);
    }

    [Fact]
    public async Task A_credential_that_needs_a_person_reports_not_connected()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time) { CanAcquire = false };

        var error = await Assert.ThrowsAsync<CredentialException>(async () => await f.Engine.GetAsync(Key with { Owner = "user-1" }, provider, default));

        Assert.Equal("not_connected", error.Code);
        Assert.Equal(0, provider.Calls);
    }

    [Fact]
    public async Task An_imported_token_set_is_used_and_then_refreshed_with_its_refresh_token()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time) { CanAcquire = false, ExpiresIn = 60 };
        var imported = (await provider.AcquireAsync(Key, default)).Tokens!;

        await f.Engine.StoreAsync(Key, provider, imported, default);
        var used = await f.Engine.GetAsync(Key, provider, default);
        f.Time.Advance(TimeSpan.FromSeconds(61));
        var refreshed = await f.Engine.GetAsync(Key, provider, default);

        Assert.Equal("access-1", used.Tokens.AccessToken.Reveal());
        Assert.Equal("access-2", refreshed.Tokens.AccessToken.Reveal());
        Assert.Equal(0, provider.Reuses);
    }

    [Fact]
    public async Task Every_transition_is_published_as_an_event()
    {
        await using var f = await EngineFixture.CreateAsync();
        var events = new List<CredentialEventKind>();
        f.Events.Raised += e => { lock (events) events.Add(e.Kind); };
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = 60 };

        await f.Engine.GetAsync(Key, provider, default);
        f.Time.Advance(TimeSpan.FromSeconds(55));
        provider.FailNext(TokenResult.Fail(FailureKind.Transient, "503"));
        await f.Engine.RefreshAsync(Key, provider, default);
        f.Time.Advance(TimeSpan.FromSeconds(3));
        await f.Engine.RefreshAsync(Key, provider, default);
        f.Time.Advance(TimeSpan.FromSeconds(61));
        provider.FailNext(TokenResult.Fail(FailureKind.GrantRevoked, "invalid_grant"));
        await Assert.ThrowsAsync<CredentialException>(async () => await f.Engine.GetAsync(Key, provider, default));

        Assert.Equal([CredentialEventKind.Refreshed, CredentialEventKind.RefreshFailed, CredentialEventKind.Recovered, CredentialEventKind.ReconnectRequired], events);
    }

    [Fact]
    public async Task An_idle_refresh_token_is_kept_alive_for_shared_and_per_user_credentials_alike()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = null, KeepAlive = TimeSpan.FromDays(7) };
        var user = Key with { Owner = "user-1" };
        await f.Engine.GetAsync(Key, provider, default);
        await f.Engine.StoreAsync(user, provider, (await provider.AcquireAsync(user, default)).Tokens!, default);

        var early = await f.Store.DueAsync(f.Time.GetUtcNow().AddDays(6), 10, default);
        var due = await f.Store.DueAsync(f.Time.GetUtcNow().AddDays(7).AddSeconds(1), 10, default);
        f.Time.Advance(TimeSpan.FromDays(7).Add(TimeSpan.FromSeconds(1)));
        await f.Engine.RefreshAsync(user, provider, default);
        var after = await f.Store.DueAsync(f.Time.GetUtcNow(), 10, default);

        Assert.Empty(early);
        Assert.Equal(new[] { (Key, true), (user, true) }.ToHashSet(), due.ToHashSet());
        Assert.DoesNotContain(after, d => d.Key == user);
        Assert.Equal(0, provider.Reuses);
    }

    [Fact]
    public async Task A_refresh_schedule_makes_the_sweep_refresh_at_the_scheduled_time_whatever_the_expiry()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = 7 * 24 * 3600, Schedule = Cronos.CronExpression.Parse("0 3 * * *") };
        await f.Engine.GetAsync(Key, provider, default);
        var threeAm = new DateTimeOffset(2026, 11, 29, 3, 0, 0, TimeSpan.Zero);

        var before = await f.Store.DueAsync(threeAm.AddSeconds(-1), 10, default);
        var at = await f.Store.DueAsync(threeAm, 10, default);
        f.Time.SetUtcNow(threeAm);
        await f.Engine.RefreshAsync(Key, provider, default);
        var next = await f.Store.DueAsync(threeAm.AddDays(1).AddSeconds(-1), 10, default);

        Assert.Empty(before);
        Assert.Equal([(Key, true)], at);
        Assert.Empty(next);
        Assert.Equal(2, provider.Calls);
    }

    [Fact]
    public void Margin_is_the_smaller_of_a_minute_and_a_tenth_of_the_lifetime_plus_a_whole_second_and_the_clock_skew_and_jitter_spreads_a_fleet()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        var engine = new CredentialEngine(null!, null!, time, Microsoft.Extensions.Logging.Abstractions.NullLogger<CredentialEngine>.Instance, new CredentialEvents()) { Random = () => 0 };
        var skewed = new CredentialEngine(null!, null!, time, Microsoft.Extensions.Logging.Abstractions.NullLogger<CredentialEngine>.Instance, new CredentialEvents(),
            options: new CredentialOptions { ClockSkew = TimeSpan.FromSeconds(5) })
        { Random = () => 0 };
        var now = time.GetUtcNow();
        TokenSet Lifetime(TimeSpan t) => new() { AccessToken = new Secret("x"), ObtainedAt = now, ExpiresAt = now + t };

        Assert.Equal(now + TimeSpan.FromSeconds(88), engine.RefreshAt(Lifetime(TimeSpan.FromSeconds(100))));
        Assert.Equal(now + TimeSpan.FromMinutes(59) - TimeSpan.FromSeconds(2), engine.RefreshAt(Lifetime(TimeSpan.FromHours(1))));
        Assert.Equal(now + TimeSpan.FromSeconds(84), skewed.RefreshAt(Lifetime(TimeSpan.FromSeconds(100))));
        // A 3-second token (expires_in: 3) stays usable for 2 s at worst: refreshed 0.75 s in, never later than 1.7 s.
        Assert.Equal(now + TimeSpan.FromSeconds(0.75), engine.RefreshAt(Lifetime(TimeSpan.FromSeconds(3))));
        Assert.Equal(now + TimeSpan.FromSeconds(7), engine.RefreshAt(Lifetime(TimeSpan.FromSeconds(10))));
        engine.Random = () => 0.999;
        Assert.True(engine.RefreshAt(Lifetime(TimeSpan.FromHours(1))) < now + TimeSpan.FromMinutes(59) - TimeSpan.FromSeconds(31));
        Assert.True(engine.Backoff(30) <= TimeSpan.FromMinutes(5));
    }

    [Fact]
    public async Task A_token_in_its_last_seconds_is_not_handed_out_callers_wait_for_its_refresh_instead()
    {
        await using var f = await EngineFixture.CreateAsync();
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = 100 };
        var first = await f.Engine.GetAsync(Key, provider, default);
        var now = f.Time.GetUtcNow();

        // expires_in 100 may mean 99 s and change, and the provider's clock may run a second ahead.
        Assert.Equal(now.AddSeconds(98), f.Engine.UsableUntil(first.Tokens));
        Assert.Equal(now.AddSeconds(1.5), f.Engine.UsableUntil(first.Tokens with { ExpiresAt = now.AddSeconds(3) }));
        f.Time.Advance(TimeSpan.FromSeconds(98));
        provider.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var waiting = f.Engine.GetAsync(Key, provider, default).AsTask();
        await Infrastructure.Poll.UntilAsync(() => provider.Calls == 2, TimeSpan.FromSeconds(10), "the refresh to start");

        Assert.False(waiting.IsCompleted);
        provider.Gate.SetResult();
        Assert.Equal("access-2", (await waiting).Tokens.AccessToken.Reveal());
    }

    [Fact]
    public void The_clock_skew_allowance_is_at_least_a_second_and_says_so()
    {
        Assert.Equal(TimeSpan.FromSeconds(1), CredentialOptions.FromEnvironment(_ => null).ClockSkew);
        Assert.Equal(TimeSpan.FromSeconds(3), CredentialOptions.FromEnvironment(n => n == "KEYWAY_CREDENTIAL_CLOCK_SKEW" ? "3s" : null).ClockSkew);
        var refused = Assert.Throws<Keyway.Hosting.StartupException>(() => CredentialOptions.FromEnvironment(n => n == "KEYWAY_CREDENTIAL_CLOCK_SKEW" ? "0.5s" : null));
        Assert.Contains("KEYWAY_CREDENTIAL_CLOCK_SKEW must be from 1s to 5m", refused.Message);
    }
}

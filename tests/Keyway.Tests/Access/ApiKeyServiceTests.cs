using Keyway.Access;
using Keyway.Audit;
using Keyway.Environments;
using Keyway.Storage;
using Keyway.Tests.Audit;
using Keyway.Tests.Credentials;

namespace Keyway.Tests.Access;

/// <summary>The API key cache: one store lookup per cold key, and a full cache that is trimmed, never emptied.</summary>
public sealed class ApiKeyServiceTests
{
    [Fact]
    public async Task A_thousand_concurrent_first_requests_with_one_key_make_one_lookup_and_one_last_used_update()
    {
        await using var f = await EngineFixture.CreateAsync();
        var keys = new ApiKeyService(f.Database, f.Time, new ChangeFeed());
        var token = await NewKeyAsync(f, keys, "storm");
        await using var blocker = await f.Database.OpenAsync(default);
        await blocker.ExecuteAsync(
            """
            CREATE TABLE last_used_updates (n INTEGER NOT NULL);
            INSERT INTO last_used_updates VALUES (0);
            CREATE TRIGGER count_last_used AFTER UPDATE OF last_used_at ON api_keys
            BEGIN UPDATE last_used_updates SET n = n + 1; END;
            """);

        // Hold the store's write lock: the lookup reads the key, then waits at its last_used_at
        // UPDATE, so every one of the thousand requests arrives while it is still running.
        await blocker.ExecuteAsync("BEGIN IMMEDIATE");
        var requests = new Task<Caller?>[1000];
        for (var i = 0; i < requests.Length; i++)
        {
            requests[i] = keys.AuthenticateAsync(token, default).AsTask();
        }

        Assert.DoesNotContain(requests, r => r.IsCompleted);
        await blocker.ExecuteAsync("COMMIT");
        var callers = await Task.WhenAll(requests);

        // One lookup builds one Caller: every request got that very instance.
        var first = Assert.IsType<Caller>(callers[0]);
        Assert.All(callers, c => Assert.Same(first, c));
        Assert.Equal(1, await blocker.ExecuteScalarAsync<long>("SELECT n FROM last_used_updates"));
        Assert.Same(first, await keys.AuthenticateAsync(token, default));
    }

    [Fact]
    public async Task A_full_cache_drops_the_expired_entries_and_keeps_the_valid_ones()
    {
        await using var f = await EngineFixture.CreateAsync();
        var keys = new ApiKeyService(f.Database, f.Time, new ChangeFeed()) { CacheCapacity = 3 };
        var old1 = await NewKeyAsync(f, keys, "old1");
        var old2 = await NewKeyAsync(f, keys, "old2");
        var recent = await NewKeyAsync(f, keys, "recent");
        var late = await NewKeyAsync(f, keys, "late");
        await keys.AuthenticateAsync(old1, default);
        await keys.AuthenticateAsync(old2, default);
        f.Time.Advance(TimeSpan.FromSeconds(20));
        var recentCaller = await keys.AuthenticateAsync(recent, default);
        f.Time.Advance(TimeSpan.FromSeconds(15)); // the first two are past their 30 s, the third is not

        var lateCaller = await keys.AuthenticateAsync(late, default);

        Assert.Same(recentCaller, keys.TryCached(recent));
        Assert.Same(lateCaller, keys.TryCached(late));
    }

    [Fact]
    public async Task A_full_cache_of_valid_entries_drops_a_tenth_of_them_not_all()
    {
        await using var f = await EngineFixture.CreateAsync();
        var keys = new ApiKeyService(f.Database, f.Time, new ChangeFeed()) { CacheCapacity = 10 };
        var cached = new List<(string Token, Caller Caller)>();
        for (var i = 0; i < 10; i++)
        {
            var token = await NewKeyAsync(f, keys, "k" + i);
            cached.Add((token, (await keys.AuthenticateAsync(token, default))!));
        }

        var extra = await NewKeyAsync(f, keys, "extra");
        var extraCaller = await keys.AuthenticateAsync(extra, default);

        Assert.Equal(9, cached.Count(c => ReferenceEquals(keys.TryCached(c.Token), c.Caller)));
        Assert.Same(extraCaller, keys.TryCached(extra));
    }

    [Fact]
    public async Task A_keys_use_is_audited_once_a_minute_and_a_refused_keys_use_as_denied_once_a_minute()
    {
        await using var f = await EngineFixture.CreateAsync();
        var audit = new RecordingAuditLog();
        var keys = new ApiKeyService(f.Database, f.Time, new ChangeFeed(), audit);
        keys.Subscribe();
        var token = await NewKeyAsync(f, keys, "kate");

        await keys.AuthenticateAsync(token, default);
        f.Time.Advance(TimeSpan.FromSeconds(31)); // the cached caller has expired; the last use is under a minute old
        await keys.AuthenticateAsync(token, default);
        f.Time.Advance(TimeSpan.FromSeconds(31));
        await keys.AuthenticateAsync(token, default);

        var uses = audit.Entries.Where(e => e.Action == "key.use").ToList();
        Assert.Equal(2, uses.Count);
        Assert.All(uses, e => Assert.Equal((AuditOutcome.Success, "kate"), (e.Outcome, e.Actor!.UserName)));
        Assert.Equal([true, false], uses.Select(e => e.Detail!["firstUse"]));
        var keyId = uses[0].Target!;
        Assert.Equal(keyId, uses[0].Actor!.ApiKeyId);

        // Revoked: every try is refused; the first of each minute is recorded, with the reason.
        Assert.True(await keys.RevokeAsync(keyId, default));
        for (var i = 0; i < 5; i++)
        {
            Assert.Null(await keys.AuthenticateAsync(token, default));
        }

        f.Time.Advance(TimeSpan.FromSeconds(61));
        Assert.Null(await keys.AuthenticateAsync(token, default));
        var refusals = audit.Entries.Where(e => e.Outcome == AuditOutcome.Denied).ToList();
        Assert.Equal(2, refusals.Count);
        Assert.All(refusals, e => Assert.Equal(("key.use", keyId, "revoked"), (e.Action, e.Target, (string?)e.Detail!["reason"])));
        Assert.Equal(2, audit.Entries.Count(e => e.Outcome == AuditOutcome.Success));
    }

    private static async Task<string> NewKeyAsync(EngineFixture f, ApiKeyService keys, string user)
    {
        await using (var connection = await f.Database.OpenAsync(default))
        {
            await connection.ExecuteAsync("INSERT INTO users (id, name, role, created_at) VALUES (@user, @user, 'member', 0)", new { user });
        }

        var (_, token) = await keys.CreateAsync(user, user, null, null, default);
        return token;
    }
}

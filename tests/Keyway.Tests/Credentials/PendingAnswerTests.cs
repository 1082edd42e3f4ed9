using Keyway.Api;
using Keyway.Credentials;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Keyway.Tests.Credentials;

/// <summary>
/// A PostgreSQL cluster of these tests' own, which they crash and start again, under credential
/// engines on a fake clock: the engines retry storing a held answer only when the test moves the
/// clock, so every step happens when the test says.
/// </summary>
public sealed class CrashablePostgres : IAsyncLifetime
{
    internal PostgresCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync() => Cluster = await PostgresCluster.StartOwnAsync();

    public Task DisposeAsync()
    {
        Cluster?.Dispose();
        return Task.CompletedTask;
    }
}

/// <summary>
/// Issue: a provider that rotates refresh tokens answered while the store was down, and the answer was
/// dropped; the next refresh spent the old token and the provider revoked the grant. An answer is now
/// journalled before use, served from memory, stored when the store is back, and honoured by other replicas meanwhile.
/// </summary>
[Trait("Category", "Integration")]
public sealed class PendingAnswerTests(CrashablePostgres postgres) : IClassFixture<CrashablePostgres>, IAsyncLifetime
{
    private static readonly CredentialKey Key = new("api", "production", CredentialKey.Shared);
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 12, 7, 9, 0, 0, TimeSpan.Zero));
    private readonly string _directory = TestDirectories.Create("pending");
    private Database _database = null!;
    private string _url = null!;
    private KeyRing _keys = null!;
    private CredentialStore _store = null!;

    public async Task InitializeAsync()
    {
        if (postgres.Cluster.IsDown)
            await postgres.Cluster.StartAgainAsync();
        var created = await postgres.Cluster.CreateDatabaseAsync();
        _url = created.Url;
        // Unpooled: with the store down every write fails to connect, before anything is sent (see the pooled test below).
        _database = Database.Postgres(created.Url + "?Pooling=false");
        await new Migrator(_database, _time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
        _keys = await KeyRing.OpenAsync(MasterKeyRing.FromKeys(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)), new DataKeyStore(_database), _time, CancellationToken.None);
        _store = new CredentialStore(_database, _keys, _time);
    }

    public async Task DisposeAsync()
    {
        if (postgres.Cluster.IsDown)
            await postgres.Cluster.StartAgainAsync();
        await _database.DisposeAsync();
        TestDirectories.DeleteQuietly(_directory);
    }

    private CredentialEngine Replica(string dataDirectory, bool othersMayStillWrite = false) =>
        new(_store, new ClusterLock(_database), _time, NullLogger<CredentialEngine>.Instance, new CredentialEvents(),
            journal: new CredentialJournal(dataDirectory, _keys, NullLogger<CredentialJournal>.Instance))
        {
            Random = () => 0,
            OwnerMayStillWrite = (_, _, _) => Task.FromResult(othersMayStillWrite),
        };

    private string DataDirectory(string name)
    {
        var path = Path.Combine(_directory, name);
        Directory.CreateDirectory(path);
        return path;
    }

    private static string[] Entries(string dataDirectory) =>
        Directory.Exists(Path.Combine(dataDirectory, CredentialJournal.DirectoryName))
            ? Directory.GetFiles(Path.Combine(dataDirectory, CredentialJournal.DirectoryName), "*.entry")
            : [];

    /// <summary>Moves the fake clock a little at a time until <paramref name="condition"/> holds: the engines' retries run on it.</summary>
    private async Task AdvanceUntilAsync(Func<Task<bool>> condition, string what)
    {
        await Poll.UntilAsync(async () =>
        {
            if (await condition())
                return true;
            _time.Advance(TimeSpan.FromMilliseconds(250));
            return false;
        }, TimeSpan.FromSeconds(30), what);
    }

    /// <summary>
    /// Lets the token expire, then has the provider answer <paramref name="replica"/>'s refresh only once the store
    /// is down (the old refresh token is spent by then): the moment issue 19 is about. Returns what the replica served.
    /// </summary>
    private async Task<Credential> RefreshAcrossACrashAsync(CredentialEngine replica, FakeTokenProvider provider)
    {
        _time.Advance(TimeSpan.FromSeconds(61));
        provider.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var calls = provider.Calls;
        var refreshing = replica.GetAsync(Key, provider, default).AsTask();
        await Poll.UntilAsync(() => provider.Calls > calls || refreshing.IsFaulted, TimeSpan.FromSeconds(10), "the refresh to reach the provider");
        if (refreshing.IsFaulted)
            await refreshing;
        await postgres.Cluster.CrashAsync();
        provider.Gate.SetResult();
        return await refreshing;
    }

    [Fact]
    public async Task An_answer_the_store_cannot_take_is_journalled_served_and_stored_when_the_store_is_back_and_no_refresh_token_is_spent_twice()
    {
        var provider = new FakeTokenProvider(_time) { ExpiresIn = 60 };
        var home = DataDirectory("a");
        var replica = Replica(home);
        await replica.GetAsync(Key, provider, default);
        var served = await RefreshAcrossACrashAsync(replica, provider);

        Assert.Equal("access-2", served.Tokens.AccessToken.Reveal());
        Assert.Equal(1, replica.PendingWrites);
        var entry = Assert.Single(Entries(home));
        var onDisk = await File.ReadAllTextAsync(entry);
        Assert.DoesNotContain("access-2", onDisk, StringComparison.Ordinal);
        Assert.DoesNotContain("refresh-2", onDisk, StringComparison.Ordinal);
        // Callers keep getting it from memory while the store is down.
        Assert.Same(served, await replica.GetAsync(Key, provider, default));

        await postgres.Cluster.StartAgainAsync();
        await AdvanceUntilAsync(async () => replica.PendingWrites == 0, "the held answer to be stored");

        var stored = await _store.ReadAsync(Key, default);
        Assert.Equal("access-2", stored!.Tokens!.AccessToken.Reveal());
        Assert.Equal("refresh-2", stored.Tokens.RefreshToken!.Reveal());
        Assert.Null(stored.RefreshStartedAt);
        Assert.Empty(Entries(home));
        _time.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal("access-3", (await replica.GetAsync(Key, provider, default)).Tokens.AccessToken.Reveal());
        Assert.Equal(0, provider.Reuses);
        Assert.False(provider.GrantRevoked);
    }

    [Fact]
    public async Task While_the_store_is_down_the_holder_refreshes_again_with_the_token_it_holds_and_stores_only_the_newest()
    {
        var provider = new FakeTokenProvider(_time) { ExpiresIn = 60 };
        var home = DataDirectory("a");
        var replica = Replica(home);
        await replica.GetAsync(Key, provider, default);
        await RefreshAcrossACrashAsync(replica, provider);

        // The outage outlasts the new token: the holder refreshes with the refresh token only it has.
        _time.Advance(TimeSpan.FromSeconds(61));
        var again = await replica.GetAsync(Key, provider, default);

        Assert.Equal("access-3", again.Tokens.AccessToken.Reveal());
        await postgres.Cluster.StartAgainAsync();
        await AdvanceUntilAsync(async () => replica.PendingWrites == 0, "the held answer to be stored");
        var stored = await _store.ReadAsync(Key, default);
        Assert.Equal("refresh-3", stored!.Tokens!.RefreshToken!.Reveal());
        Assert.Equal(0, provider.Reuses);
    }

    [Fact]
    public async Task Another_replica_never_spends_the_refresh_token_a_held_answer_replaced_and_takes_the_answer_once_it_is_stored()
    {
        var provider = new FakeTokenProvider(_time) { ExpiresIn = 60 };
        var holder = Replica(DataDirectory("a"));
        var other = Replica(DataDirectory("b"), othersMayStillWrite: true);
        await holder.GetAsync(Key, provider, default);
        await RefreshAcrossACrashAsync(holder, provider);
        await postgres.Cluster.StartAgainAsync();

        // The other replica reads the store before the holder's answer lands: expired tokens and the holder's mark.
        var waiting = other.GetAsync(Key, provider, default).AsTask();
        await AdvanceUntilAsync(() => Task.FromResult(waiting.IsCompleted), "the other replica to get a credential");

        Assert.Equal("access-2", (await waiting).Tokens.AccessToken.Reveal());
        Assert.Equal(2, provider.Calls);
        Assert.Equal(0, provider.Reuses);
    }

    [Fact]
    public async Task A_replica_killed_after_its_journal_write_stores_the_answer_when_it_starts_again()
    {
        var provider = new FakeTokenProvider(_time) { ExpiresIn = 60 };
        var home = DataDirectory("a");
        var killed = Replica(home);
        await killed.GetAsync(Key, provider, default);
        await RefreshAcrossACrashAsync(killed, provider);
        Assert.Single(Entries(home));

        // The process is gone (its memory with it; the clock is never moved, so it never retries): a new one starts on the same data directory.
        await postgres.Cluster.StartAgainAsync();
        var restarted = Replica(home);
        Assert.Equal(1, await restarted.ReplayJournalAsync(default));

        var stored = await _store.ReadAsync(Key, default);
        Assert.Equal("refresh-2", stored!.Tokens!.RefreshToken!.Reveal());
        Assert.Null(stored.RefreshStartedAt);
        Assert.Empty(Entries(home));
        _time.Advance(TimeSpan.FromSeconds(61));
        Assert.Equal("access-3", (await restarted.GetAsync(Key, provider, default)).Tokens.AccessToken.Reveal());
        Assert.Equal(0, provider.Reuses);
    }

    [Fact]
    public async Task A_journal_entry_that_does_not_open_is_set_aside_and_said_and_a_superseded_one_is_dropped()
    {
        var home = DataDirectory("a");
        var journal = new CredentialJournal(home, _keys, NullLogger<CredentialJournal>.Instance);
        var tokens = new TokenSet { AccessToken = new Secret("old-access"), RefreshToken = new Secret("old-refresh"), ObtainedAt = _time.GetUtcNow(), ExpiresAt = _time.GetUtcNow().AddMinutes(1) };
        var version = await _store.SaveTokensAsync(Key, null, "params-1", tokens, null, countRefresh: false, default);
        // An entry expecting a version the store has moved past: something newer is stored.
        journal.Write(new JournalEntry(Key, version!.Value - 1, "params-1", tokens with { AccessToken = new Secret("stale") }, null, null, true));
        var other = Key with { Resource = "other" };
        journal.Write(new JournalEntry(other, 1, "params-1", tokens, null, null, false));
        var tampered = Directory.GetFiles(Path.Combine(home, CredentialJournal.DirectoryName), "*.entry").Single(f => File.ReadAllText(f).Contains("\"other\"", StringComparison.Ordinal));
        await File.WriteAllTextAsync(tampered, File.ReadAllText(tampered).Replace("\"other\"", "\"api2\"", StringComparison.Ordinal));

        var replayed = await Replica(home).ReplayJournalAsync(default);

        Assert.Equal(1, replayed);
        Assert.Equal("old-access", (await _store.ReadAsync(Key, default))!.Tokens!.AccessToken.Reveal());
        Assert.Empty(Entries(home));
        Assert.Single(Directory.GetFiles(Path.Combine(home, CredentialJournal.DirectoryName), "*.unreadable"));
    }

    [Fact]
    public async Task A_refresh_the_store_took_leaves_no_journal_entry_and_an_answer_that_spent_no_refresh_token_is_never_journalled()
    {
        // A clock with sub-millisecond ticks, as the real one has: the journal must not depend on the time's precision.
        _time.Advance(TimeSpan.FromTicks(1234));
        var provider = new FakeTokenProvider(_time) { ExpiresIn = 60 };
        var home = DataDirectory("a");
        var replica = Replica(home);

        await replica.GetAsync(Key, provider, default);
        Assert.Empty(Entries(home));
        _time.Advance(TimeSpan.FromSeconds(61.0001));
        Assert.Equal("access-2", (await replica.GetAsync(Key, provider, default)).Tokens.AccessToken.Reveal());

        Assert.Empty(Entries(home));
        Assert.Equal(0, replica.PendingWrites);
    }

    [Fact]
    public async Task A_credential_disconnected_or_imported_while_an_answer_is_held_is_not_brought_back_by_it()
    {
        var provider = new FakeTokenProvider(_time) { ExpiresIn = 60 };
        var home = DataDirectory("a");
        var replica = Replica(home);
        await replica.GetAsync(Key, provider, default);
        await RefreshAcrossACrashAsync(replica, provider);
        await postgres.Cluster.StartAgainAsync();

        // Someone disconnects the credential before the held answer is stored (the clock has not moved: no retry yet).
        await replica.ForgetAsync(Key, default);
        _time.Advance(TimeSpan.FromSeconds(5));
        var restarted = Replica(home);
        await restarted.ReplayJournalAsync(default);

        Assert.Equal(0, replica.PendingWrites);
        Assert.Empty(Entries(home));
        Assert.Null(await _store.ReadAsync(Key, default));
    }

    [Fact]
    public async Task An_answer_whose_write_may_have_committed_is_served_but_never_refreshed_from_memory_and_is_stored_once_the_store_says()
    {
        // Pooled connections: the one the write gets was opened before the crash, so the write fails after it was sent.
        await using var pooled = Database.Postgres(_url);
        var store = new CredentialStore(pooled, _keys, _time);
        var provider = new FakeTokenProvider(_time) { ExpiresIn = 60 };
        var home = DataDirectory("a");
        var replica = new CredentialEngine(store, new ClusterLock(pooled), _time, NullLogger<CredentialEngine>.Instance, new CredentialEvents(),
            journal: new CredentialJournal(home, _keys, NullLogger<CredentialJournal>.Instance))
        { Random = () => 0 };
        await replica.GetAsync(Key, provider, default);
        Assert.Equal("access-2", (await RefreshAcrossACrashAsync(replica, provider)).Tokens.AccessToken.Reveal());

        _time.Advance(TimeSpan.FromSeconds(61));
        var expired = await Assert.ThrowsAsync<KeywayException>(() => replica.GetAsync(Key, provider, default).AsTask());

        Assert.Equal("store_unavailable", expired.Code);
        Assert.Equal(2, provider.Calls);
        await postgres.Cluster.StartAgainAsync();
        await AdvanceUntilAsync(async () => replica.PendingWrites == 0, "the held answer to be stored");
        Assert.Equal("refresh-2", (await _store.ReadAsync(Key, default))!.Tokens!.RefreshToken!.Reveal());
        Assert.Equal(0, provider.Reuses);
    }
}

using Keyway.Access;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Environments;
using Keyway.SignIn;
using Keyway.Storage;
using Keyway.Tests.Audit;
using Keyway.Tests.Infrastructure;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Keyway.Tests.SignIn;

/// <summary>Password sign-in on a real SQLite store and a fake clock: lockout, its expiry, failure reasons, rehashing.</summary>
public sealed class PasswordSignInTests : IAsyncLifetime
{
    private const string Password = "correct horse battery";
    private readonly string _directory = TestDirectories.Create("signin");
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 11, 28, 12, 0, 0, TimeSpan.Zero));
    private readonly RecordingAuditLog _audit = new();
    private readonly ChangeFeed _changes = new();
    private Database _database = null!;
    private UserStore _users = null!;
    private PasswordSignIn _signIn = null!;

    public async Task InitializeAsync()
    {
        _database = Database.Sqlite(Path.Combine(_directory, "keyway.db"));
        await new Migrator(_database, _time, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
        _users = new UserStore(_database, _time, _changes);
        _signIn = NewSignIn(new SignInLimits { PerClientPerMinute = 1000, PerUserPerMinute = 1000 });
    }

    public async Task DisposeAsync()
    {
        await _database.DisposeAsync();
        TestDirectories.DeleteQuietly(_directory);
    }

    private PasswordSignIn NewSignIn(SignInLimits limits) =>
        new(_users, new SignInThrottle(limits, _time), _audit, _time, NullLogger<PasswordSignIn>.Instance);

    private Task<UserRecord> CreateAsync(string name, string source = UserSources.Local, string? hash = null) =>
        _users.CreateAsync(new NewUser(name, Caller.MemberRole, source) { PasswordHash = hash ?? PasswordSignIn.Hash(name, Password) }, CancellationToken.None);

    private async Task<KeywayException> FailsAsync(string name, string password) =>
        await Assert.ThrowsAsync<KeywayException>(() => _signIn.SignInAsync(name, password, "10.0.0.1", CancellationToken.None));

    [Fact]
    public async Task Five_wrong_passwords_lock_the_account_until_the_lock_expires()
    {
        await CreateAsync("erin");
        for (var i = 0; i < PasswordSignIn.FailuresBeforeLock; i++)
        {
            Assert.Equal("invalid_credentials", (await FailsAsync("erin", "wrong password " + i)).Code);
        }

        var locked = await FailsAsync("erin", Password);
        _time.Advance(TimeSpan.FromSeconds(59));
        var stillLocked = await FailsAsync("erin", Password);
        _time.Advance(TimeSpan.FromSeconds(2));
        var user = await _signIn.SignInAsync("erin", Password, "10.0.0.1", CancellationToken.None);

        Assert.Equal(401, locked.Status);
        Assert.Equal("invalid_credentials", stillLocked.Code);
        Assert.Equal("erin", user.Name);
        Assert.Equal(0, (await _users.FindByNameAsync("erin", CancellationToken.None))!.FailedSignIns);
        Assert.Equal(
            [.. Enumerable.Repeat(SignInFailures.WrongPassword, 5), SignInFailures.Locked, SignInFailures.Locked],
            _audit.Entries.Where(e => e.Outcome == AuditOutcome.Failure).Select(e => (string?)e.Detail!["reason"]));
    }

    [Fact]
    public async Task Each_failure_after_a_lock_locks_for_twice_as_long_up_to_an_hour()
    {
        await CreateAsync("frank");
        for (var i = 0; i < 5; i++)
        {
            await FailsAsync("frank", "nope nope nope");
        }

        _time.Advance(TimeSpan.FromMinutes(1));
        await FailsAsync("frank", "still wrong!!");
        _time.Advance(TimeSpan.FromSeconds(90));
        var lockedAfterSixth = await FailsAsync("frank", Password);
        _time.Advance(TimeSpan.FromSeconds(31));

        Assert.Equal("invalid_credentials", lockedAfterSixth.Code);
        Assert.Equal("frank", (await _signIn.SignInAsync("frank", Password, "10.0.0.1", CancellationToken.None)).Name);
        Assert.Null(PasswordSignIn.LockFor(4));
        Assert.Equal(TimeSpan.FromMinutes(1), PasswordSignIn.LockFor(5));
        Assert.Equal(TimeSpan.FromMinutes(2), PasswordSignIn.LockFor(6));
        Assert.Equal(TimeSpan.FromHours(1), PasswordSignIn.LockFor(50));
    }

    [Fact]
    public async Task Unknown_users_disabled_users_and_service_identities_fail_alike_and_the_audit_says_why()
    {
        var disabled = await CreateAsync("gina");
        await using (var connection = await _database.OpenAsync(CancellationToken.None))
        {
            await connection.ExecuteAsync("UPDATE users SET disabled_at = 1 WHERE id = @id", new { id = disabled.Id });
        }

        await CreateAsync("svc-backup", UserSources.Service);
        await CreateAsync("hank");

        var failures = new[]
        {
            await FailsAsync("nobody", Password),
            await FailsAsync("gina", Password),
            await FailsAsync("svc-backup", Password),
            await FailsAsync("hank", "not the password"),
        };

        Assert.All(failures, f => Assert.Equal((401, "invalid_credentials", failures[0].Message), (f.Status, f.Code, f.Message)));
        Assert.Equal(
            [SignInFailures.UnknownUser, SignInFailures.Disabled, SignInFailures.NotLocal, SignInFailures.WrongPassword],
            _audit.Entries.Select(e => (string?)e.Detail!["reason"]));
        Assert.All(_audit.Entries, e => Assert.Equal("signin.password", e.Action));
        Assert.DoesNotContain(Password, string.Join("\n", _audit.Entries.Select(e => e + string.Join(",", e.Detail!.Values))));
    }

    [Fact]
    public async Task Too_many_attempts_for_one_name_are_refused_until_the_bucket_refills()
    {
        await CreateAsync("ivan");
        var signIn = NewSignIn(new SignInLimits { PerClientPerMinute = 100, PerUserPerMinute = 3 });
        for (var i = 0; i < 3; i++)
        {
            await Assert.ThrowsAsync<KeywayException>(() => signIn.SignInAsync("ivan", "wrong wrong wrong", "10.0.0." + i, CancellationToken.None));
        }

        var limited = await Assert.ThrowsAsync<KeywayException>(() => signIn.SignInAsync("ivan", Password, "10.0.0.9", CancellationToken.None));
        _time.Advance(TimeSpan.FromSeconds(20));
        var user = await signIn.SignInAsync("ivan", Password, "10.0.0.9", CancellationToken.None);

        Assert.Equal((429, "rate_limited"), (limited.Status, limited.Code));
        Assert.Equal(20, limited.Extensions!["retryAfter"]);
        Assert.Equal("ivan", user.Name);
        Assert.Equal(SignInFailures.RateLimited, _audit.Entries.Last(e => e.Outcome == AuditOutcome.Failure).Detail!["reason"]);
    }

    [Fact]
    public void One_client_address_is_limited_across_user_names()
    {
        var throttle = new SignInThrottle(new SignInLimits { PerClientPerMinute = 2, PerUserPerMinute = 100 }, _time);

        Assert.Null(throttle.TryAcquire("10.1.1.1", "a"));
        Assert.Null(throttle.TryAcquire("10.1.1.1", "b"));
        Assert.Equal(TimeSpan.FromSeconds(30), throttle.TryAcquire("10.1.1.1", "c"));
        Assert.Null(throttle.TryAcquire("10.1.1.2", "c"));
    }

    [Fact]
    public async Task A_hash_from_an_older_scheme_is_replaced_at_sign_in()
    {
        var old = new PasswordHasher<string>(Options.Create(new PasswordHasherOptions { CompatibilityMode = PasswordHasherCompatibilityMode.IdentityV2 }))
            .HashPassword("judy", Password);
        await CreateAsync("judy", hash: old);

        await _signIn.SignInAsync("judy", Password, "10.0.0.1", CancellationToken.None);
        var stored = (await _users.FindByNameAsync("judy", CancellationToken.None))!;

        Assert.NotEqual(old, stored.PasswordHash);
        Assert.Equal("judy", (await _signIn.SignInAsync("judy", Password, "10.0.0.1", CancellationToken.None)).Name);
    }

    [Fact]
    public async Task A_password_change_checks_the_policy_and_the_current_password_and_ends_other_sessions()
    {
        var user = await CreateAsync("kate");
        var caller = new Caller(user.Id, user.Name, user.Role, null, null);

        var tooShort = await Assert.ThrowsAsync<KeywayException>(() => _signIn.ChangePasswordAsync(caller, Password, "short", CancellationToken.None));
        var isName = await Assert.ThrowsAsync<KeywayException>(() => _signIn.ChangePasswordAsync(caller, Password, "KATE", CancellationToken.None));
        var nameLong = await Assert.ThrowsAsync<KeywayException>(() => _signIn.ChangePasswordAsync(caller, Password, "kate".PadRight(12, ' '), CancellationToken.None));
        var wrongCurrent = await Assert.ThrowsAsync<KeywayException>(() => _signIn.ChangePasswordAsync(caller, "not it at all", "a brand new passphrase", CancellationToken.None));
        var version = await _signIn.ChangePasswordAsync(caller, Password, "a brand new passphrase", CancellationToken.None);

        Assert.Equal("weak_password", tooShort.Code);
        Assert.Equal("weak_password", isName.Code);
        Assert.Equal("weak_password", nameLong.Code);
        Assert.Equal((403, "invalid_credentials"), (wrongCurrent.Status, wrongCurrent.Code));
        Assert.Equal(user.SessionVersion + 1, version);
        await FailsAsync("kate", Password);
        Assert.Equal("kate", (await _signIn.SignInAsync("kate", "a brand new passphrase", "10.0.0.1", CancellationToken.None)).Name);
        Assert.Contains(_audit.Entries, e => e is { Action: "password.change", Outcome: AuditOutcome.Success });
    }

    [Fact]
    public async Task A_session_stands_while_its_version_is_current_and_a_password_change_ends_it_at_once()
    {
        var user = await CreateAsync("liam");
        var sessions = new SessionValidator(_users, _changes, _time);
        sessions.Subscribe();

        var before = await sessions.ValidateAsync(user.Id, user.SessionVersion, CancellationToken.None);
        var caller = new Caller(user.Id, user.Name, user.Role, null, null);
        var version = await _signIn.ChangePasswordAsync(caller, Password, "a brand new passphrase", CancellationToken.None);
        var oldSession = await sessions.ValidateAsync(user.Id, user.SessionVersion, CancellationToken.None);
        var newSession = await sessions.ValidateAsync(user.Id, version, CancellationToken.None);
        var unknown = await sessions.ValidateAsync("usr_nobody", 1, CancellationToken.None);

        Assert.Equal("liam", before?.UserName);
        Assert.Null(before!.ApiKeyId);
        Assert.Null(oldSession);
        Assert.Equal("liam", newSession?.UserName);
        Assert.Null(unknown);
    }
}

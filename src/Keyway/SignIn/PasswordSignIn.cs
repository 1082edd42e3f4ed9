using System.Security.Cryptography;
using Keyway.Access;
using Keyway.Api;
using Keyway.Audit;
using Microsoft.AspNetCore.Identity;

namespace Keyway.SignIn;

/// <summary>Why a sign-in failed, as the audit log records it (the caller is told none of this).</summary>
internal static class SignInFailures
{
    public const string UnknownUser = "unknown_user";
    public const string WrongPassword = "wrong_password";
    public const string Locked = "locked";
    public const string Disabled = "disabled";
    public const string NotLocal = "not_local";
    public const string RateLimited = "rate_limited";
}

/// <summary>
/// Local accounts: password sign-in with lockout, rate limits and rehashing, and password changes.
/// Every failure looks the same from outside (same problem, same work: an unknown user is checked
/// against a dummy hash), and the audit log records the real reason. No password ever leaves here.
/// </summary>
internal sealed partial class PasswordSignIn(UserStore users, SignInThrottle throttle, IAuditLog audit, TimeProvider time, ILogger<PasswordSignIn> logger)
{
    /// <summary>Consecutive failures that lock an account.</summary>
    public const int FailuresBeforeLock = 5;

    public const int MinimumPasswordLength = 12;
    public const int MaximumPasswordLength = 1024;

    private static readonly TimeSpan FirstLock = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan LongestLock = TimeSpan.FromHours(1);

    private static readonly PasswordHasher<string> Hasher = new();

    // Verified when the user is unknown (or has no password), so that case costs what a wrong password costs.
    private static readonly Lazy<string> DummyHash = new(() => Hasher.HashPassword("", Convert.ToBase64String(RandomNumberGenerator.GetBytes(18))));

    public static string Hash(string userName, string password) => Hasher.HashPassword(userName, password);

    /// <summary>
    /// How long the <paramref name="failures"/>-th consecutive failure locks the account: nothing
    /// below <see cref="FailuresBeforeLock"/>, then 1 minute, doubling with each further failure, at most an hour.
    /// </summary>
    public static TimeSpan? LockFor(long failures)
    {
        if (failures < FailuresBeforeLock)
        {
            return null;
        }

        var doublings = Math.Min(failures - FailuresBeforeLock, 10);
        var period = FirstLock * Math.Pow(2, doublings);
        return period > LongestLock ? LongestLock : period;
    }

    /// <summary>The problem every failed sign-in gets, whatever the reason.</summary>
    public static KeywayException Failed() => new(StatusCodes.Status401Unauthorized, "invalid_credentials",
        "The user name or password is wrong, or the account is locked for a while after repeated failures.");

    /// <summary>Checks a password; returns the user, or throws the one sign-in problem (429 when rate limited).</summary>
    public async Task<UserRecord> SignInAsync(string name, string password, string client, CancellationToken cancellationToken)
    {
        if (await throttle.TryAcquireAsync(client, name, cancellationToken) is { } wait)
        {
            Log.SignInFailed(logger, name, SignInFailures.RateLimited, client);
            await audit.RecordDurableAsync(FailureEntry(name, client, SignInFailures.RateLimited, null), CancellationToken.None);
            var seconds = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds));
            throw new KeywayException(StatusCodes.Status429TooManyRequests, "rate_limited",
                $"Too many sign-in attempts. Try again in {seconds} s.",
                new Dictionary<string, object?> { ["retryAfter"] = seconds });
        }

        var user = name.Length == 0 ? null : await users.FindByNameAsync(name, cancellationToken);
        var verdict = Hasher.VerifyHashedPassword(name, user?.PasswordHash ?? DummyHash.Value, password);
        var now = time.GetUtcNow();
        string? reason = user switch
        {
            null => SignInFailures.UnknownUser,
            { Source: not UserSources.Local } or { PasswordHash: null } => SignInFailures.NotLocal,
            { DisabledAt: not null } => SignInFailures.Disabled,
            { LockedUntil: { } until } when until > now.ToUnixTimeMilliseconds() => SignInFailures.Locked,
            _ when verdict == PasswordVerificationResult.Failed => SignInFailures.WrongPassword,
            _ => null,
        };

        if (reason is not null)
        {
            Log.SignInFailed(logger, name, reason, client);
            if (reason == SignInFailures.WrongPassword)
            {
                // The failure count (and any lock) commits with its event.
                await users.RecordFailedSignInAsync(user!.Id, LockFor, CancellationToken.None,
                    (failures, transaction) => audit.StageAsync(transaction, FailureEntry(name, client, reason, failures), CancellationToken.None));
                audit.NotifyStaged();
            }
            else
            {
                await audit.RecordDurableAsync(FailureEntry(name, client, reason, null), CancellationToken.None);
            }

            throw Failed();
        }

        await users.ResetFailuresAsync(user!.Id, cancellationToken);
        if (verdict == PasswordVerificationResult.SuccessRehashNeeded)
        {
            await users.SetPasswordAsync(user.Id, Hash(user.Name, password), endSessions: false, cancellationToken);
        }

        Log.SignedIn(logger, user.Name);
        return user;
    }

    /// <summary>
    /// Changes a local user's password after checking the current one; every other session of the
    /// user ends. Returns the session version now in force (for the caller's own, reissued session).
    /// </summary>
    public async Task<long> ChangePasswordAsync(Caller caller, string current, string next, CancellationToken cancellationToken)
    {
        var user = await users.FindByIdAsync(caller.UserId, cancellationToken);
        if (user is null || user.Source != UserSources.Local || user.PasswordHash is null)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request",
                "This account signs in through single sign-on or is a service identity: it has no Keyway password to change.");
        }

        if (CheckPolicy(user.Name, next) is { } problem)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "weak_password", problem);
        }

        var locked = user.LockedUntil is { } until && until > time.GetUtcNow().ToUnixTimeMilliseconds();
        if (locked || Hasher.VerifyHashedPassword(user.Name, user.PasswordHash, current) == PasswordVerificationResult.Failed)
        {
            var failure = new AuditEntry("password.change", AuditOutcome.Failure)
            {
                Actor = caller,
                Target = user.Name,
                Detail = new Dictionary<string, object?> { ["reason"] = locked ? SignInFailures.Locked : SignInFailures.WrongPassword },
            };
            if (locked)
            {
                await audit.RecordDurableAsync(failure, CancellationToken.None);
            }
            else
            {
                // The failure count (and any lock) commits with its event.
                await users.RecordFailedSignInAsync(user.Id, LockFor, CancellationToken.None,
                    (_, transaction) => audit.StageAsync(transaction, failure, CancellationToken.None));
                audit.NotifyStaged();
            }
            throw new KeywayException(StatusCodes.Status403Forbidden, "invalid_credentials",
                "The current password is wrong, or the account is locked for a while after repeated failures.");
        }

        var version = await users.SetPasswordAsync(user.Id, Hash(user.Name, next), endSessions: true, cancellationToken,
            transaction => audit.StageAsync(transaction, new AuditEntry("password.change") { Actor = caller, Target = user.Name }, cancellationToken));
        audit.NotifyStaged();
        await users.ResetFailuresAsync(user.Id, cancellationToken);
        Log.PasswordChanged(logger, user.Name);
        return version;
    }

    /// <summary>Why a new password is refused, or null: at least 12 characters, at most 1024, not the user name.</summary>
    public static string? CheckPolicy(string userName, string password)
    {
        if (password.Length < MinimumPasswordLength)
        {
            return $"The new password must be at least {MinimumPasswordLength} characters long.";
        }

        if (password.Length > MaximumPasswordLength)
        {
            return $"The new password must be at most {MaximumPasswordLength} characters long.";
        }

        if (string.Equals(password.Trim(), userName, StringComparison.OrdinalIgnoreCase))
        {
            return "The new password must not be the user name.";
        }

        return null;
    }

    private static AuditEntry FailureEntry(string name, string client, string reason, long? failures)
    {
        var detail = new Dictionary<string, object?> { ["reason"] = reason, ["client"] = client };
        if (failures is { } count)
        {
            detail["failures"] = count;
            if (LockFor(count) is { } period)
            {
                detail["lockedForSeconds"] = (long)period.TotalSeconds;
            }
        }

        return new AuditEntry("signin.password", AuditOutcome.Failure) { Target = name, Detail = detail };
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "User {User} signed in with a password")]
        public static partial void SignedIn(ILogger logger, string user);

        [LoggerMessage(2, LogLevel.Warning, "Password sign-in for {User} failed: {Reason} (client {Client})")]
        public static partial void SignInFailed(ILogger logger, string user, string reason, string client);

        [LoggerMessage(3, LogLevel.Information, "User {User} changed their password; their other sessions ended")]
        public static partial void PasswordChanged(ILogger logger, string user);
    }
}

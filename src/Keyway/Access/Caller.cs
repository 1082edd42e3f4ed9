using System.Security.Claims;

namespace Keyway.Access;

/// <summary>
/// Who is calling: a user (through a console session) or an API key (owned by a user or a service
/// identity). Carries what authorization and <c>current_user</c> templates need, so neither reads
/// the store per request.
/// </summary>
internal sealed record Caller(string UserId, string UserName, string Role, string? ApiKeyId, string? Email)
{
    public const string AdminRole = "admin";
    public const string MemberRole = "member";

    /// <summary>The groups the user belongs to (manual and single-sign-on mapped).</summary>
    public IReadOnlyList<string> Groups { get; init; } = [];

    /// <summary>A person's display name (from single sign-on, or set by an admin).</summary>
    public string? DisplayName { get; init; }

    /// <summary>An API key's scope; null when the key may do everything its owner may (and for sessions).</summary>
    public KeyScope? Scope { get; init; }

    /// <summary>The identity provider's claims from the last single sign-on (never a token).</summary>
    public IReadOnlyDictionary<string, string>? Claims { get; init; }

    public bool IsAdmin => Role == AdminRole;

    public ClaimsPrincipal ToPrincipal(string scheme) => new CallerPrincipal(this, scheme);

    public static Caller? From(ClaimsPrincipal principal)
    {
        if (principal is CallerPrincipal known)
        {
            return known.Caller;
        }

        if (principal.Identity?.IsAuthenticated != true)
        {
            return null;
        }

        return new Caller(
            principal.FindFirstValue(ClaimTypes.NameIdentifier)!,
            principal.FindFirstValue(ClaimTypes.Name)!,
            principal.FindFirstValue(ClaimTypes.Role) ?? MemberRole,
            principal.FindFirstValue(KeyIdClaim),
            principal.FindFirstValue(ClaimTypes.Email))
        {
            Groups = principal.FindAll(GroupClaim).Select(c => c.Value).ToArray(),
        };
    }

    internal static IEnumerable<Claim> ClaimsOf(Caller caller)
    {
        yield return new Claim(ClaimTypes.NameIdentifier, caller.UserId);
        yield return new Claim(ClaimTypes.Name, caller.UserName);
        yield return new Claim(ClaimTypes.Role, caller.Role);
        if (caller.ApiKeyId is not null)
        {
            yield return new Claim(KeyIdClaim, caller.ApiKeyId);
        }

        if (caller.Email is not null)
        {
            yield return new Claim(ClaimTypes.Email, caller.Email);
        }

        foreach (var group in caller.Groups)
        {
            yield return new Claim(GroupClaim, group);
        }
    }

    internal const string KeyIdClaim = "keyway:key_id";
    internal const string GroupClaim = "keyway:group";
}

/// <summary>A principal that carries its <see cref="Caller"/>, so the hot path reads it back without parsing claims.</summary>
internal sealed class CallerPrincipal(Caller caller, string scheme)
    : ClaimsPrincipal(new ClaimsIdentity(Caller.ClaimsOf(caller), scheme))
{
    public Caller Caller { get; } = caller;
}

/// <summary>
/// What an API key is limited to. A null list means no limit on that axis. Actions are permission
/// names (<c>read</c>, <c>use</c>, <c>edit</c>, <c>own</c>, <c>admin</c>). A scope only narrows: a key
/// never does more than its owner may.
/// </summary>
internal sealed record KeyScope(IReadOnlyList<string>? Resources, IReadOnlyList<string>? Environments, IReadOnlyList<string>? Actions);

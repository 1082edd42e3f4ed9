using System.Security.Claims;

namespace Keyway.Access;

/// <summary>Who is calling: a user, through an API key or (later) a console session.</summary>
internal sealed record Caller(string UserId, string UserName, string Role, string? ApiKeyId, string? Email)
{
    public const string AdminRole = "admin";
    public const string MemberRole = "member";

    public bool IsAdmin => Role == AdminRole;

    public ClaimsPrincipal ToPrincipal(string scheme)
    {
        var claims = new List<Claim>
        {
            new(ClaimTypes.NameIdentifier, UserId),
            new(ClaimTypes.Name, UserName),
            new(ClaimTypes.Role, Role),
        };
        if (ApiKeyId is not null)
        {
            claims.Add(new Claim(KeyIdClaim, ApiKeyId));
        }

        if (Email is not null)
        {
            claims.Add(new Claim(ClaimTypes.Email, Email));
        }

        return new ClaimsPrincipal(new ClaimsIdentity(claims, scheme));
    }

    public static Caller? From(ClaimsPrincipal principal)
    {
        if (principal.Identity?.IsAuthenticated != true)
        {
            return null;
        }

        return new Caller(
            principal.FindFirstValue(ClaimTypes.NameIdentifier)!,
            principal.FindFirstValue(ClaimTypes.Name)!,
            principal.FindFirstValue(ClaimTypes.Role) ?? MemberRole,
            principal.FindFirstValue(KeyIdClaim),
            principal.FindFirstValue(ClaimTypes.Email));
    }

    private const string KeyIdClaim = "keyway:key_id";
}

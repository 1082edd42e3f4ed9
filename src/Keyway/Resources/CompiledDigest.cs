using System.Collections.Concurrent;
using Keyway.Api;
using Keyway.Outbound;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>
/// <c>auth.type: digest</c>: HTTP Digest access authentication (RFC 7616) with a user name and a password from a
/// secret variable (<see cref="DigestAuthenticator"/>). The last challenge is kept per environment for as long as
/// this definition version lives, so requests after the first answer it without a 401 round trip.
/// </summary>
internal sealed class CompiledDigest
{
    public const string Type = "digest";

    public required Template Username { get; init; }

    public required Template Password { get; init; }

    /// <summary>The challenge each environment's requests answer (a new definition version starts without).</summary>
    private readonly ConcurrentDictionary<string, DigestSlot> _slots = new(StringComparer.Ordinal);

    public static CompiledDigest? Compile(
        AuthDefinition auth, List<FieldError> errors, Func<string, string?, bool, Template?> parse, Func<string, string?, Template?> secret)
    {
        var username = parse("auth.username", auth.Username, true);
        var password = secret("auth.password", auth.Password);
        return username is null || password is null ? null : new CompiledDigest { Username = username, Password = password };
    }

    /// <summary>The authenticator for one resolution: the password read from the environment, never kept in the definition.</summary>
    public DigestAuthenticator Render(TemplateScope scope, string environment, List<string> derived)
    {
        var username = Username.Render(scope);
        var password = Password.Render(scope);
        derived.Add(password);
        if (username.Length == 0 || password.Length == 0)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                "The Digest user name or password of this resource is empty in this environment: set the variables they read.");
        }

        if (username.Any(char.IsControl))
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                "The Digest user name of this resource holds a line break or control character in this environment.");
        }

        return new DigestAuthenticator(username, new Secret(password), _slots.GetOrAdd(environment, static _ => new DigestSlot()));
    }
}

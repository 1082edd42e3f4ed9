using Keyway.Api;
using Keyway.Credentials;
using Keyway.Outbound;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>
/// <c>auth.type: oauth1</c>: every request to the resource is signed with OAuth 1.0a (RFC 5849) as it is sent,
/// with a consumer key and secret and an access token and its secret from the environment's variables
/// (<see cref="OAuth1Signer"/>).
/// </summary>
internal sealed class CompiledOAuth1
{
    public const string Type = "oauth1";

    public required Template ConsumerKey { get; init; }

    public Template? ConsumerSecret { get; init; }

    public Template? Token { get; init; }

    public Template? TokenSecret { get; init; }

    public Template? PrivateKey { get; init; }

    public required string SignatureMethod { get; init; }

    public string? Realm { get; init; }

    public bool InQuery { get; init; }

    /// <summary>The RSA keys this definition version has read: each parsed once.</summary>
    public SigningKeyCache Keys { get; } = new();

    public static CompiledOAuth1? Compile(
        AuthDefinition auth, List<FieldError> errors, Func<string, string?, bool, Template?> parse, Func<string, string?, Template?> secret)
    {
        var method = auth.SignatureMethod ?? OAuth1Signer.HmacSha1;
        if (!OAuth1Signer.Methods.Contains(method))
        {
            errors.Add(new FieldError("auth.signatureMethod", $"'{method}' is not an OAuth 1.0a signature method Keyway signs with; use HMAC-SHA1, HMAC-SHA256 or RSA-SHA1."));
        }

        var rsa = method == OAuth1Signer.RsaSha1;
        var consumerKey = parse("auth.consumerKey", auth.ConsumerKey, true);
        Template? consumerSecret = null;
        Template? privateKey = null;
        if (rsa)
        {
            privateKey = auth.PrivateKey is null ? Missing("auth.privateKey", "RSA-SHA1 signs with an RSA private key: give it as a secret variable holding the PEM, {{ environment.variables.OAUTH1_PRIVATE_KEY }}.")
                : secret("auth.privateKey", auth.PrivateKey);
            if (auth.ConsumerSecret is not null || auth.TokenSecret is not null)
            {
                errors.Add(new FieldError(auth.ConsumerSecret is not null ? "auth.consumerSecret" : "auth.tokenSecret",
                    "RSA-SHA1 signs with the private key alone: remove consumerSecret and tokenSecret, or use HMAC-SHA1."));
            }
        }
        else
        {
            consumerSecret = auth.ConsumerSecret is null ? Missing("auth.consumerSecret", $"{method} signs with the consumer secret: give it as a secret variable, {{{{ environment.variables.OAUTH1_CONSUMER_SECRET }}}}.")
                : secret("auth.consumerSecret", auth.ConsumerSecret);
            if (auth.PrivateKey is not null)
            {
                errors.Add(new FieldError("auth.privateKey", $"A private key signs only with signatureMethod RSA-SHA1, not {method}."));
            }
        }

        var token = parse("auth.token", auth.Token, false);
        var tokenSecret = auth.TokenSecret is null || rsa ? null : secret("auth.tokenSecret", auth.TokenSecret);
        if (token is not null && tokenSecret is null && !rsa)
        {
            errors.Add(new FieldError("auth.tokenSecret", "A token is signed for with its secret: give tokenSecret as a secret variable, or remove token (two-legged OAuth)."));
        }
        else if (token is null && auth.TokenSecret is not null && !rsa)
        {
            errors.Add(new FieldError("auth.token", "Give the access token that tokenSecret belongs to."));
        }

        var inQuery = false;
        switch (auth.In)
        {
            case null or "header":
                break;
            case "query":
                inQuery = true;
                break;
            default:
                errors.Add(new FieldError("auth.in", $"'{auth.In}' is not where OAuth 1.0a parameters go; use 'header' (the Authorization header, default) or 'query'."));
                break;
        }

        if (auth.Realm is { } realm && (realm.Contains("{{", StringComparison.Ordinal) || realm.Any(char.IsControl)))
        {
            errors.Add(new FieldError("auth.realm", "The realm is plain text, sent as is: no templates or control characters."));
        }

        return consumerKey is null || (rsa ? privateKey is null : consumerSecret is null) || errors.Any(e => e.Field.StartsWith("auth.", StringComparison.Ordinal))
            ? null
            : new CompiledOAuth1
            {
                ConsumerKey = consumerKey,
                ConsumerSecret = consumerSecret,
                Token = token,
                TokenSecret = tokenSecret,
                PrivateKey = privateKey,
                SignatureMethod = method,
                Realm = auth.Realm,
                InQuery = inQuery,
            };

        Template? Missing(string field, string message)
        {
            errors.Add(new FieldError(field, message));
            return null;
        }
    }

    /// <summary>The signer for one resolution: the secrets read from the environment, never kept in the definition.</summary>
    public OAuth1Signer Render(TemplateScope scope, List<string> derived)
    {
        var consumerKey = ConsumerKey.Render(scope);
        var consumerSecret = ConsumerSecret?.Render(scope);
        var token = Token?.Render(scope);
        var tokenSecret = TokenSecret?.Render(scope);
        var pem = PrivateKey?.Render(scope);
        foreach (var value in new[] { consumerSecret, tokenSecret })
        {
            if (!string.IsNullOrEmpty(value))
            {
                derived.Add(value);
            }
        }

        if (string.IsNullOrWhiteSpace(consumerKey) || (PrivateKey is null ? string.IsNullOrEmpty(consumerSecret) : string.IsNullOrEmpty(pem)))
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                "The OAuth 1.0a consumer key, consumer secret or private key of this resource is empty in this environment: set the variables they read.");
        }

        if (consumerKey.Any(char.IsControl) || (token?.Any(char.IsControl) ?? false))
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                "The OAuth 1.0a consumer key or token of this resource holds a line break or control character in this environment.");
        }

        var key = pem is null ? null : Keys.Get(pem, "RS256", null, "auth.privateKey");
        return new OAuth1Signer(consumerKey, consumerSecret is null ? null : new Secret(consumerSecret), token,
            tokenSecret is null ? null : new Secret(tokenSecret), SignatureMethod, key, Realm, InQuery);
    }
}

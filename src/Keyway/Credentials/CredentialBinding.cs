using Keyway.Access;
using Keyway.Api;
using Keyway.Resources;
using Keyway.Secrets;

namespace Keyway.Credentials;

/// <summary>
/// How one resolved resource gets and attaches its dynamic credential: which provider, whose
/// credential (shared or the caller's), and where the access token goes.
/// </summary>
internal sealed class CredentialBinding(string resource, string environment, OAuth2TokenProvider provider, CompiledOAuth2 oauth, bool shared)
{
    private readonly Placement _in = oauth.TokenIn;
    private readonly string _name = oauth.TokenName;
    private readonly string _prefix = oauth.TokenPrefix;

    public OAuth2TokenProvider Provider { get; } = provider;

    public bool Shared { get; } = shared;

    public CredentialKey KeyFor(Caller? caller)
    {
        if (Shared)
        {
            return new CredentialKey(resource, environment, CredentialKey.Shared);
        }

        if (caller is null)
        {
            throw new KeywayException(StatusCodes.Status401Unauthorized, "unauthorized", $"Resource '{resource}' uses per-user credentials: sign in first.");
        }

        return new CredentialKey(resource, environment, caller.UserId);
    }

    /// <summary>
    /// The credential to attach for this caller. When a person must connect (again), the error
    /// carries <c>connectUrl</c>: where to do it. Never someone else's token.
    /// </summary>
    public async ValueTask<(CredentialKey Key, Credential Credential)> GetAsync(CredentialEngine engine, Caller? caller, CancellationToken cancellationToken)
    {
        var key = KeyFor(caller);
        try
        {
            return (key, await engine.GetAsync(key, Provider, cancellationToken));
        }
        catch (CredentialException e) when (e.Code is "not_connected" or "reconnect_required" && Provider.Settings.Grant == "authorization_code")
        {
            var extensions = new Dictionary<string, object?>(e.Extensions ?? new Dictionary<string, object?>())
            {
                ["connectUrl"] = $"/api/v1/resources/{Uri.EscapeDataString(resource)}/connect?environment={Uri.EscapeDataString(environment)}",
            };
            throw new CredentialException(e.Status, e.Code, e.Message, extensions);
        }
    }

    /// <summary>The access token as the upstream expects it (header value or query value).</summary>
    public string Value(Credential credential) => _prefix + credential.Tokens.AccessToken.Reveal();

    public void Apply(HttpRequestMessage request, Credential credential)
    {
        if (_in == Placement.Query)
        {
            var url = request.RequestUri!;
            var separator = string.IsNullOrEmpty(url.Query) ? "?" : "&";
            request.RequestUri = new Uri(url.AbsoluteUri + separator + Uri.EscapeDataString(_name) + "=" + Uri.EscapeDataString(Value(credential)));
            return;
        }

        Outbound.HeaderRules.Set(request, _name, Value(credential));
    }

    /// <summary>The resource's redactor plus this credential's tokens, built once per credential.</summary>
    public Redactor RedactorFor(Redactor resourceRedactor, Credential credential) =>
        credential.RedactorFor(resourceRedactor, () => resourceRedactor.Combine(Redactor.For(
            credential.Tokens.RefreshToken is { } r ? [credential.Tokens.AccessToken, r] : [credential.Tokens.AccessToken], [Value(credential)])));
}

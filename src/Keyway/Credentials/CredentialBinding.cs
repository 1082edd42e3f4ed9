using Keyway.Access;
using Keyway.Api;
using Keyway.Resources;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Credentials;

/// <summary>Where an access token goes on each request: a header or query parameter, after a prefix (<c>Bearer </c>).</summary>
internal sealed record TokenPlacement(Placement In, string Name, string Prefix);

/// <summary>
/// How one resolved resource gets and attaches its dynamic credential: which provider, whose
/// credential (shared or the caller's), and where it goes: an OAuth access token in one header or
/// query parameter, or a custom flow's <c>apply</c> templates rendered over its variables.
/// </summary>
internal sealed class CredentialBinding
{
    private readonly string _resource;
    private readonly string _environment;
    private readonly TokenPlacement? _token;
    private readonly CompiledApply? _apply;
    private readonly bool _custom;
    private readonly TemplateScope? _scope;
    private readonly AssumeRoleSettings? _role;

    /// <summary>
    /// A token binding (oauth2, githubApp): the access token goes where <paramref name="placement"/> says, or, when the
    /// resource has <c>auth.apply</c>, where its templates over <c>credential</c> (rendered over <paramref name="scope"/>) put it;
    /// with <paramref name="dpop"/>, as <c>Authorization: DPoP</c> with a proof on every request.
    /// </summary>
    public CredentialBinding(
        string resource, string environment, ITokenProvider provider, TokenPlacement placement, bool shared, CompiledApply? apply = null, TemplateScope? scope = null,
        DPoPSigner? dpop = null)
    {
        _resource = resource;
        _environment = environment;
        _token = placement;
        _apply = apply;
        _scope = apply is null ? null : scope ?? throw new ArgumentNullException(nameof(scope));
        Provider = provider;
        Shared = shared;
        DPoP = dpop;
    }

    /// <summary>A custom-flow binding: <paramref name="flow"/>'s apply templates, rendered over <paramref name="scope"/> plus the credential's variables.</summary>
    public CredentialBinding(string resource, string environment, CustomFlowProvider provider, CompiledCustomFlow flow, TemplateScope scope)
    {
        _resource = resource;
        _environment = environment;
        _apply = flow.Apply;
        _custom = true;
        _scope = scope;
        Provider = provider;
        Shared = true;
    }

    /// <summary>An assumed AWS role: nothing is placed; the temporary credentials sign each request (<see cref="SignerFor"/>).</summary>
    public CredentialBinding(string resource, string environment, AssumeRoleProvider provider)
    {
        _resource = resource;
        _environment = environment;
        _role = provider.Settings;
        Provider = provider;
        Shared = true;
    }

    private CredentialBinding(CredentialBinding binding, ITokenProvider provider)
    {
        _role = binding._role;
        _resource = binding._resource;
        _environment = binding._environment;
        _token = binding._token;
        _apply = binding._apply;
        _custom = binding._custom;
        _scope = binding._scope;
        Provider = provider;
        Shared = binding.Shared;
        DPoP = binding.DPoP;
    }

    /// <summary>
    /// For an assumed AWS role: the signer of the temporary credentials <paramref name="credential"/> holds, made once per
    /// credential; null for every other binding.
    /// </summary>
    public Outbound.AwsSigV4Signer? SignerFor(Credential credential) => _role is null
        ? null
        : credential.DerivedBy(this, () => new Outbound.AwsSigV4Signer(
            credential.Tokens.Extras[AwsStsClient.AccessKeyIdField].Reveal(), credential.Tokens.Extras[AwsStsClient.SecretAccessKeyField],
            credential.Tokens.AccessToken, _role.Region, _role.Service));

    /// <summary>Whether the credential goes into the request body (<c>auth.apply.body</c>): the body is read whole first.</summary>
    public bool PlacesInBody => _apply is { Body.Count: > 0 };

    public ITokenProvider Provider { get; }

    /// <summary>An oauth2 resource's DPoP (<c>auth.dpop</c>): a fresh proof on every request it sends, or null for bearer tokens.</summary>
    public DPoPSigner? DPoP { get; }

    /// <summary>This binding with a provider that reports to <paramref name="trace"/> (the resource test): same key, same placement.</summary>
    public CredentialBinding WithTrace(AuthTrace trace) => new(this, Provider.WithTrace(trace));

    /// <summary>The OAuth provider (connect, revocation), or null for a custom flow.</summary>
    public OAuth2TokenProvider? OAuth2 => Provider as OAuth2TokenProvider;

    public bool Shared { get; }

    public CredentialKey KeyFor(Caller? caller)
    {
        if (Shared)
        {
            return new CredentialKey(_resource, _environment, CredentialKey.Shared);
        }

        if (caller is null)
        {
            throw new KeywayException(StatusCodes.Status401Unauthorized, "unauthorized", $"Resource '{_resource}' uses per-user credentials: sign in first.");
        }

        return new CredentialKey(_resource, _environment, caller.UserId);
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
        catch (CredentialException e) when (e.Code is "not_connected" or "reconnect_required" && OAuth2?.Settings.Grant == "authorization_code")
        {
            var extensions = new Dictionary<string, object?>(e.Extensions ?? new Dictionary<string, object?>())
            {
                ["connectUrl"] = $"/api/v1/resources/{Uri.EscapeDataString(_resource)}/connect?environment={Uri.EscapeDataString(_environment)}",
            };
            throw new CredentialException(e.Status, e.Code, e.Message, extensions);
        }
    }

    /// <summary>
    /// Puts the credential on <paramref name="request"/>: its headers, query and cookies, and, with <paramref name="body"/>,
    /// the body fields (the proxy places those before forwarding, <see cref="PlaceInBody"/>).
    /// </summary>
    public void Apply(HttpRequestMessage request, Credential credential, bool body = true)
    {
        if (_role is not null)
        {
            // Signed last, by the signer this credential makes.
            return;
        }

        if (_apply is not null)
        {
            var rendered = Rendered(credential);
            ApplyRendered(request, rendered);
            if (body && rendered.Body.Count > 0)
            {
                PlaceInContent(request, rendered.Body);
            }

            return;
        }

        var value = _token!.Prefix + credential.Tokens.AccessToken.Reveal();
        if (_token.In == Placement.Query)
        {
            AppendQuery(request, [new(_token.Name, value)]);
            return;
        }

        Outbound.HeaderRules.Set(request, _token.Name, value);
    }

    /// <summary>The resource's redactor plus this credential's tokens, variables and placed values, built once per credential.</summary>
    public Redactor RedactorFor(Redactor resourceRedactor, Credential credential) =>
        // A static builder with its state passed in: the per-request call (a cache hit) allocates no closure.
        credential.RedactorFor(resourceRedactor, (Binding: this, ResourceRedactor: resourceRedactor, Credential: credential),
            static s => s.Binding.BuildRedactor(s.ResourceRedactor, s.Credential));

    private Redactor BuildRedactor(Redactor resourceRedactor, Credential credential)
    {
        var tokens = credential.Tokens;
        var secrets = new List<Secret> { tokens.AccessToken };
        if (tokens.RefreshToken is { } refresh)
        {
            secrets.Add(refresh);
        }

        secrets.AddRange(tokens.Extras.Values);
        IEnumerable<string> placed = _apply is not null ? Rendered(credential).All.Select(p => p.Value)
            : _token is not null ? [_token.Prefix + tokens.AccessToken.Reveal()]
            : [];
        return resourceRedactor.Combine(Redactor.For(secrets, placed));
    }

    /// <summary>Renders the apply templates for this credential once (it never changes), and checks them.</summary>
    private RenderedApply Rendered(Credential credential) => credential.DerivedBy(this, () =>
    {
        var scope = _scope!.Clone();
        if (_custom)
        {
            foreach (var (name, value) in credential.Tokens.Extras)
            {
                scope.With(name, value);
            }
        }
        else
        {
            scope.With(TokenFields.Root, TokenFields.Of(credential.Tokens));
        }

        List<KeyValuePair<string, string>> Render(string section, IReadOnlyList<KeyValuePair<string, Template>> templates)
        {
            var rendered = new List<KeyValuePair<string, string>>(templates.Count);
            foreach (var (name, template) in templates)
            {
                string value;
                try
                {
                    value = template.Render(scope);
                }
                catch (TemplateException e)
                {
                    // The message names the expression, never a value; redact anyway, as every step error is.
                    var redactor = Redactor.For(credential.Tokens.Extras.Values);
                    throw new KeywayException(StatusCodes.Status400BadRequest, "template_error",
                        $"auth.apply.{section}.{name} of resource '{_resource}' failed in '{_environment}': {redactor.Redact(e.Message)}");
                }

                if (section != "body" && !Outbound.HeaderRules.IsValidValue(value))
                {
                    throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                        $"auth.apply.{section}.{name} of resource '{_resource}' evaluates to a value with line breaks or control characters.");
                }

                rendered.Add(new(name, value));
            }

            return rendered;
        }

        return new RenderedApply(Render("headers", _apply!.Headers), Render("query", _apply.Query), Render("cookies", _apply.Cookies), Render("body", _apply.Body));
    });

    /// <summary>
    /// The proxy's body with this credential's <c>auth.apply.body</c> fields set (<see cref="Outbound.BodyFields"/>): the caller's
    /// body was read whole, and the result is forwarded instead.
    /// </summary>
    public byte[] PlaceInBody(string method, ReadOnlySpan<byte> body, string? contentType, Credential credential) =>
        Outbound.BodyFields.Place(method, body, contentType, Rendered(credential).Body, _resource);

    private void PlaceInContent(HttpRequestMessage request, IReadOnlyList<KeyValuePair<string, string>> fields)
    {
        var content = request.Content;
        byte[] body;
        if (content is null)
        {
            body = [];
        }
        else
        {
            using var stream = new MemoryStream();
            content.CopyTo(stream, null, CancellationToken.None);
            body = stream.ToArray();
        }

        var type = content?.Headers.ContentType;
        var placed = new ByteArrayContent(Outbound.BodyFields.Place(request.Method.Method, body, type?.ToString(), fields, _resource));
        placed.Headers.ContentType = type ?? new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        request.Content = placed;
    }

    private static void ApplyRendered(HttpRequestMessage request, RenderedApply apply)
    {
        foreach (var (name, value) in apply.Headers)
        {
            Outbound.HeaderRules.Set(request, name, value);
        }

        if (apply.Query.Count > 0)
        {
            AppendQuery(request, apply.Query);
        }

        if (apply.Cookies.Count > 0)
        {
            // Joins the resource's own cookies (an apiKey cookie), if any.
            var cookies = string.Join("; ", apply.Cookies.Select(c => c.Key + "=" + c.Value));
            if (request.Headers.TryGetValues("Cookie", out var existing))
            {
                cookies = string.Join("; ", existing) + "; " + cookies;
                request.Headers.Remove("Cookie");
            }

            request.Headers.TryAddWithoutValidation("Cookie", cookies);
        }
    }

    private static void AppendQuery(HttpRequestMessage request, IEnumerable<KeyValuePair<string, string>> parameters)
    {
        var url = request.RequestUri!;
        var query = new System.Text.StringBuilder(url.AbsoluteUri);
        var separator = string.IsNullOrEmpty(url.Query) ? '?' : '&';
        foreach (var (name, value) in parameters)
        {
            query.Append(separator).Append(Uri.EscapeDataString(name)).Append('=').Append(Uri.EscapeDataString(value));
            separator = '&';
        }

        request.RequestUri = new Uri(query.ToString());
    }

    private sealed record RenderedApply(
        IReadOnlyList<KeyValuePair<string, string>> Headers, IReadOnlyList<KeyValuePair<string, string>> Query, IReadOnlyList<KeyValuePair<string, string>> Cookies,
        IReadOnlyList<KeyValuePair<string, string>> Body)
    {
        public IEnumerable<KeyValuePair<string, string>> All => Headers.Concat(Query).Concat(Cookies).Concat(Body);
    }
}

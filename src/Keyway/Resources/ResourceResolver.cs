using System.Collections.Concurrent;
using Keyway.Access;
using Keyway.Api;
using Keyway.Credentials;
using Keyway.Environments;
using Keyway.Outbound;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>
/// A resource's configuration evaluated for one environment (and caller, where its templates read
/// <c>current_user</c>): the base URL, headers, query and credentials to put on an outbound request.
/// </summary>
internal sealed class ResolvedResource
{
    public required CompiledResource Resource { get; init; }

    public required EnvironmentValues Values { get; init; }

    public required Uri BaseUrl { get; init; }

    /// <summary>The resource's headers, then the credential's (which win).</summary>
    public required IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; }

    public required IReadOnlyList<KeyValuePair<string, string?>> Query { get; init; }

    /// <summary>A <c>Cookie</c> header value for cookie-placed credentials, or null.</summary>
    public required string? Cookie { get; init; }

    /// <summary>Redacts every secret value held (<see cref="KnownSecrets"/>) and the credential values derived from them.</summary>
    public required Redactor Redactor { get; init; }

    /// <summary>The known secrets this resolution was made with (a change of any secret resolves again).</summary>
    public Redactor? Known { get; init; }

    /// <summary>The dynamic credential to attach per request (oauth2, custom), or null.</summary>
    public CredentialBinding? Credential { get; init; }

    /// <summary>Signs each request as it is sent (<c>awsSigV4</c>), or null.</summary>
    public AwsSigV4Signer? Signer { get; init; }

    /// <summary>Answers the server's Digest challenge on each request (<c>digest</c>), or null.</summary>
    public DigestAuthenticator? Digest { get; init; }

    /// <summary>Signs each request as it is sent (<c>oauth1</c>), or null.</summary>
    public OAuth1Signer? OAuth1 { get; init; }

    /// <summary>Its TLS settings here (the client certificate its connections present), or null: the shared pool.</summary>
    public TlsBinding? Tls { get; init; }

    /// <summary>
    /// How its traffic is audited (null: the server's mode). A resource saved with <c>off</c> whose templates
    /// read a variable that is secret here (made secret after it was saved) is audited in the server's mode.
    /// </summary>
    public Audit.TrafficMode? TrafficMode { get; init; }

    /// <summary>The bound secrets the requests to the base URL carry: checked on every URL a request is sent to.</summary>
    public SecretBindings Bindings { get; init; } = SecretBindings.None;

    /// <summary>What the request as sent may show of the values this resolution put on it, and what it withholds.</summary>
    public ShownValues Shown { get; init; } = ShownValues.None;

    /// <summary>This resolution with another binding of its credential (the resource test's traced one).</summary>
    public ResolvedResource WithCredential(CredentialBinding? credential) => new()
    {
        Resource = Resource,
        Values = Values,
        BaseUrl = BaseUrl,
        Headers = Headers,
        Query = Query,
        Cookie = Cookie,
        Redactor = Redactor,
        Known = Known,
        Credential = credential,
        Signer = Signer,
        Digest = Digest,
        OAuth1 = OAuth1,
        Tls = Tls,
        TrafficMode = TrafficMode,
        Bindings = Bindings,
        Shown = Shown,
    };

    /// <summary>Refuses (<c>403 origin_not_allowed</c>) a request to <paramref name="url"/> that would carry a secret bound elsewhere.</summary>
    public void DemandOrigin(Uri url)
    {
        if (!Bindings.IsEmpty)
        {
            Bindings.Demand(url, $"a request of resource '{Resource.Name}'");
        }
    }
}

/// <summary>Resolves compiled resources, sharing the result per environment when no template reads the caller.</summary>
internal sealed class ResourceResolver(
    VariableService variables, OAuth2Client oauth, CustomFlowClient custom, GitHubAppClient gitHub, AwsStsClient sts, TimeProvider time,
    DPoPKeyStore? dpopKeys = null, DPoPNonces? dpopNonces = null)
{
    private readonly ConcurrentDictionary<(string Resource, string Environment), ResolvedResource> _shared = new();

    public async ValueTask<ResolvedResource> ResolveAsync(CompiledResource resource, string environment, Caller? caller, CancellationToken cancellationToken)
    {
        var values = await variables.GetValuesAsync(environment, cancellationToken);
        if (values.BlockedAfter.Count > 0)
        {
            // Checked on every request, cached resolution or not: expiry is a matter of time, not of a change.
            DemandNotExpired(resource, values);
        }

        // Answers are redacted of every secret value held (old versions, other environments), not only this environment's.
        var known = await variables.Known.GetAsync(cancellationToken);
        if (!resource.UsesCurrentUser &&
            _shared.TryGetValue((resource.Name, environment), out var cached) &&
            ReferenceEquals(cached.Resource, resource) && ReferenceEquals(cached.Values, values) && ReferenceEquals(cached.Known, known))
        {
            return cached;
        }

        var resolved = Resolve(resource, values, caller, known);
        if (!resource.UsesCurrentUser)
        {
            _shared[(resource.Name, environment)] = resolved;
        }

        return resolved;
    }

    /// <summary>
    /// Resolves <paramref name="resource"/> as if <paramref name="variable"/> held <paramref name="value"/> (version
    /// <paramref name="version"/>): how a rotation verifies a pending value before it is committed. Never cached or
    /// shared; the variable's origin bindings apply as they do to its current value. The expired <c>block</c> policy
    /// applies as on every other path to every other secret the resource reads; only the rotated variable is exempt,
    /// because the pending value replaces its current one in this resolution (rotating is how an expired secret is
    /// replaced), and the pending value's own expiry is not its policy's concern until it is committed.
    /// </summary>
    public async ValueTask<ResolvedResource> ResolveWithAsync(
        CompiledResource resource, string environment, string variable, Secret value, long version, CancellationToken cancellationToken)
    {
        var values = (await variables.GetValuesAsync(environment, cancellationToken)).With(variable, value, version);
        if (values.BlockedAfter.Count > 0)
        {
            // With() dropped the rotated variable's own entry: what is left are the other secrets the resource may read.
            DemandNotExpired(resource, values);
        }

        var known = await variables.Known.GetAsync(cancellationToken);
        return Resolve(resource, values, null, known);
    }

    /// <summary>
    /// Refuses (<c>409 secret_expired</c>) a request whose resolution reads a secret past its expiry whose
    /// policy is <c>block</c>. A <c>warn</c> secret is used; the expiry sweep alerts about it.
    /// </summary>
    private void DemandNotExpired(CompiledResource resource, EnvironmentValues values)
    {
        var now = time.GetUtcNow();
        foreach (var (name, expiredAt) in values.BlockedAfter)
        {
            if (now >= expiredAt && (resource.Variables.Contains(name) || (resource.ReadsAllVariables && Scopes.Visible(resource, values).ContainsKey(name))))
            {
                throw new KeywayException(StatusCodes.Status409Conflict, "secret_expired",
                    $"The secret '{name}' in '{values.Environment}' expired at {expiredAt:yyyy-MM-dd HH:mm:ss}Z and its expired policy is 'block', so resource " +
                    $"'{resource.Name}' is not used with it. An admin sets a new value (keyway var set {name} --env {values.Environment} --secret) " +
                    $"or rolls back to one that has not expired (keyway var versions {name} --env {values.Environment}).");
            }
        }
    }

    private ResolvedResource Resolve(CompiledResource resource, EnvironmentValues values, Caller? caller, Redactor known)
    {
        foreach (var name in resource.Variables)
        {
            if (!values.All.ContainsKey(name))
            {
                throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                    $"The resource '{resource.Name}' uses the variable '{name}', which is not set in the environment '{values.Environment}'. " +
                    $"Set it: keyway var set {name} --env {values.Environment} --secret");
            }
        }

        var visible = Scopes.Visible(resource, values);
        foreach (var name in resource.Variables)
        {
            if (!visible.ContainsKey(name))
            {
                throw new KeywayException(StatusCodes.Status403Forbidden, "secret_not_attached",
                    $"The resource '{resource.Name}' reads the variable '{name}', which is secret in '{values.Environment}' but was not attached " +
                    "when the resource was last saved (it was plain then, or its saver may not attach it). An owner who may attach it saves the resource again.");
            }
        }

        var scope = Scopes.ForResource(values, visible, caller);
        var redactor = known.Combine(values.Redactor);
        try
        {
            var baseUrlText = resource.BaseUrl.Render(scope);
            var baseUrlWithheld = TemplateProvenance.WithheldBecause(resource.BaseUrl, values.IsSecret);
            if (ResourceCompiler.CheckBaseUrl(baseUrlText) is { } error)
            {
                // A base URL rendered from a secret is not quoted: a piece of the secret matches no redactor.
                throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                    $"The resource '{resource.Name}' has an invalid base URL in '{values.Environment}': " +
                    (baseUrlWithheld is null ? redactor.Redact(error) : $"its template ({baseUrlWithheld}) does not give an absolute http:// or https:// URL without user info or fragment."));
            }

            // A value computed from a secret ({{ environment.variables.KEY.toUpperCase() }}) is redacted like the
            // secret; a short one ("true", "yes") would redact half of every answer and says little of the secret.
            var derived = new List<string>();
            string RenderTracked(Template template)
            {
                var value = template.Render(scope);
                if (value.Length >= 8 && (template.ReferencesAllVariables || template.VariableNames.Any(values.IsSecret)))
                {
                    derived.Add(value);
                }

                return value;
            }

            // What the request as sent may show: by what each template reads, not by what its value looks like.
            var shown = new ShownValues.Builder(values.IsSecret);
            var headers = new List<KeyValuePair<string, string>>(resource.Headers.Count + resource.Auth.Count);
            foreach (var (name, template) in resource.Headers)
            {
                var value = RenderTracked(template);
                headers.Add(new(name, value));
                shown.Header(name, template, value);
            }

            var query = new List<KeyValuePair<string, string?>>(resource.Query.Count);
            foreach (var (name, template) in resource.Query)
            {
                var value = RenderTracked(template);
                query.Add(new(name, value));
                shown.Query(name, template, value);
            }

            string? cookie = null;
            foreach (var placement in resource.Auth)
            {
                var value = placement.Value(scope);
                derived.Add(value);
                shown.Credential(placement.Location, placement.Name);
                switch (placement.Location)
                {
                    case Placement.Header:
                        headers.RemoveAll(h => h.Key.Equals(placement.Name, StringComparison.OrdinalIgnoreCase));
                        headers.Add(new(placement.Name, value));
                        break;
                    case Placement.Query:
                        query.RemoveAll(q => q.Key == placement.Name);
                        query.Add(new(placement.Name, value));
                        break;
                    case Placement.Cookie:
                        cookie = (cookie is null ? "" : cookie + "; ") + placement.Name + "=" + value;
                        break;
                }
            }

            // A role's temporary credentials sign through the credential binding; the key itself signs only when no role is assumed.
            var signer = resource.SigV4 is { AssumeRole: null } sigV4 ? sigV4.Render(scope, derived) : null;
            var digest = resource.Digest?.Render(scope, values.Environment, derived);
            var oauth1 = resource.OAuth1?.Render(scope, derived);
            // Read once per value (CompiledTls.Read); a value that does not read is refused naming the resource and the field.
            var tls = resource.Tls is { } compiledTls ? new TlsBinding(resource.Name, values.Environment, compiledTls.Render(scope, resource.Name)) : null;
            var credential = Bind(resource, values, visible, scope, caller, redactor, derived, baseUrlText, tls);
            foreach (var (name, value) in headers)
            {
                if (!Outbound.HeaderRules.IsValidValue(value))
                {
                    throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                        $"The header '{name}' of resource '{resource.Name}' evaluates to a value with line breaks or control characters.");
                }
            }

            return new ResolvedResource
            {
                Resource = resource,
                Values = values,
                BaseUrl = new Uri(baseUrlText),
                Headers = headers,
                Query = query,
                Cookie = cookie,
                Redactor = redactor.Combine(new Redactor(derived)),
                Known = known,
                Credential = credential,
                Signer = signer,
                Digest = digest,
                OAuth1 = oauth1,
                Tls = tls,
                Shown = shown.Build(baseUrlWithheld),
                Bindings = values.BindingsOf(resource.ReadsAllVariables ? visible.Keys : resource.RequestVariables),
                TrafficMode = resource.Traffic == Audit.TrafficMode.Off &&
                              (resource.ReadsAllVariables || resource.Auth.Count > 0 || resource.OAuth2 is not null || resource.Custom is not null || resource.SignsRequests || resource.GitHubApp is not null ||
                               resource.Variables.Any(values.IsSecret))
                    ? null
                    : resource.Traffic,
            };
        }
        catch (TemplateException e)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "template_error",
                $"A template of resource '{resource.Name}' failed in '{values.Environment}': {redactor.Redact(e.Message)}");
        }
    }

    private CredentialBinding? Bind(
        CompiledResource resource, EnvironmentValues values, IReadOnlyDictionary<string, object?> visible, TemplateScope scope, Caller? caller, Redactor redactor,
        List<string> derived, string baseUrl, TlsBinding? tls)
    {
        // A script that reads the variables as a whole may carry any visible one.
        IEnumerable<string> Read(IReadOnlySet<string> named) => resource.ReadsAllVariables ? visible.Keys : named;

        // A shared credential's token request is rendered without the caller, so however a template names current_user
        // (the compiler refuses the names it can see), no person's details shape the token everyone gets.
        var tokenScope = caller is null || !resource.UsesCurrentUser ? scope : Scopes.ForResource(values, visible, caller: null);
        if (resource.SigV4 is { AssumeRole: { } role } signed)
        {
            var read = Read(resource.OAuth2Variables).ToList();
            var settings = role.Render(tokenScope, signed.Render(tokenScope, derived), signed) with
            {
                Bindings = values.BindingsOf(read),
                SecretVersions = values.VersionsOf(read),
            };
            return new CredentialBinding(resource.Name, values.Environment, new AssumeRoleProvider(sts, settings));
        }

        if (resource.OAuth2 is { } compiled)
        {
            var read = Read(resource.OAuth2Variables).ToList();
            var settingsScope = resource.ShareCredentials ? tokenScope : scope;
            var settings = compiled.Render(settingsScope, derived) with
            {
                Bindings = values.BindingsOf(read),
                SecretVersions = values.VersionsOf(read),
                SecretDerived = compiled.SecretDerived(settingsScope, values.IsSecret),
                // The same certificate for the token requests as for the requests (RFC 8705): a bound token is presented with it.
                Tls = compiled.UsesClientCertificate ? tls : null,
            };
            var dpop = settings.DPoPAlgorithm is { } algorithm && dpopKeys is not null
                ? new DPoPSigner(dpopKeys, dpopNonces ?? new DPoPNonces(), algorithm, time)
                : null;
            return new CredentialBinding(
                resource.Name, values.Environment, new OAuth2TokenProvider(oauth, settings), compiled.Destination, resource.ShareCredentials, resource.TokenApply, tokenScope,
                dpop);
        }

        if (resource.GitHubApp is { } app)
        {
            var read = Read(resource.OAuth2Variables).ToList();
            var settings = app.Render(tokenScope) with { Bindings = values.BindingsOf(read), SecretVersions = values.VersionsOf(read) };
            // The installation token opens every repository of the installation: it goes to GitHub's API and nowhere else,
            // whatever the app key's origin binding says (the binding guards the key, not the token it buys).
            if (!SameOrigin(settings.ApiUrl, baseUrl))
            {
                throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                    $"The resource '{resource.Name}' sends a GitHub App's installation token, which goes only to the GitHub API it came from: " +
                    "its baseUrl must be on the origin of auth.apiUrl (https://api.github.com unless set).");
            }

            return new CredentialBinding(resource.Name, values.Environment, new GitHubAppProvider(gitHub, settings), app.Destination, shared: true, resource.TokenApply, tokenScope);
        }

        if (resource.Custom is { } flow)
        {
            var hash = CustomFlowProvider.HashParameters(flow, values.Environment, values.All, values.Versions);
            var provider = new CustomFlowProvider(custom, flow, scope, redactor, hash, values.BindingsOf(Read(resource.FlowVariables)));
            return new CredentialBinding(resource.Name, values.Environment, provider, flow, scope);
        }

        return null;
    }

    private static bool SameOrigin(string a, string b) =>
        Uri.TryCreate(a, UriKind.Absolute, out var x) && Uri.TryCreate(b, UriKind.Absolute, out var y) &&
        string.Equals(Outbound.OriginPattern.OriginOf(x), Outbound.OriginPattern.OriginOf(y), StringComparison.OrdinalIgnoreCase);
}

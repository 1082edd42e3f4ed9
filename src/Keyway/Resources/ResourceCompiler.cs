using System.Text;
using Keyway.Api;
using Keyway.Outbound;
using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>Where an auth method puts a credential on the outbound request.</summary>
internal enum Placement
{
    Header,
    Query,
    Cookie,
}

/// <summary>One credential placement: computed from the scope at resolve time, never stored in plain text.</summary>
internal sealed record AuthPlacement(Placement Location, string Name, Func<TemplateScope, string> Value);

/// <summary>
/// A resource ready to serve: validated, every template parsed once. Built when the configuration
/// is saved or first used, never per request.
/// </summary>
internal sealed class CompiledResource
{
    public required string Name { get; init; }

    public required long Version { get; init; }

    public required ResourceDefinition Definition { get; init; }

    public required Template BaseUrl { get; init; }

    public required IReadOnlyList<KeyValuePair<string, Template>> Headers { get; init; }

    public required IReadOnlyList<KeyValuePair<string, Template>> Query { get; init; }

    public required IReadOnlyList<AuthPlacement> Auth { get; init; }

    public required TimeSpan Timeout { get; init; }

    public required long MaxResponseBytes { get; init; }

    public required bool FollowSameOriginRedirects { get; init; }

    /// <summary>Whether any template reads <c>current_user</c>: if not, a resolved resource is shared per environment.</summary>
    public required bool UsesCurrentUser { get; init; }

    /// <summary>The variables the configuration references.</summary>
    public required IReadOnlySet<string> Variables { get; init; }

    /// <summary>
    /// The variables whose values (or values derived from them) go into the requests sent to the
    /// base URL: those of the base URL, headers, query and static auth, and every variable of a
    /// custom flow (whose results its <c>apply</c> places).
    /// </summary>
    public required IReadOnlySet<string> RequestVariables { get; init; }

    /// <summary>The variables of the oauth2 or githubApp settings (client secret, password, keys, parameters): they go to the token endpoint.</summary>
    public IReadOnlySet<string> OAuth2Variables { get; init; } = new HashSet<string>();

    /// <summary>The variables of a custom flow: every step may carry any of them.</summary>
    public IReadOnlySet<string> FlowVariables { get; init; } = new HashSet<string>();

    /// <summary>Whether some template reads <c>environment.variables</c> as a whole (or in a way no name can be read from).</summary>
    public required bool ReadsAllVariables { get; init; }

    /// <summary>
    /// The variables its saver was allowed to attach (<c>*</c>: all); null for a resource saved before
    /// attachment was checked. A variable that is secret in an environment but not attached is not
    /// given to its templates there (<see cref="ResourceResolver"/>).
    /// </summary>
    public IReadOnlySet<string>? Attached { get; init; }

    /// <summary>A dynamic credential (oauth2), or null for static auth.</summary>
    public CompiledOAuth2? OAuth2 { get; init; }

    /// <summary>A dynamic credential from a custom login flow, or null.</summary>
    public CompiledCustomFlow? Custom { get; init; }

    /// <summary>A GitHub App's installation token, or null.</summary>
    public CompiledGitHubApp? GitHubApp { get; init; }

    /// <summary>Where an oauth2 or githubApp token goes when <c>auth.apply</c> says (else its default header), or null.</summary>
    public CompiledApply? TokenApply { get; init; }

    /// <summary>AWS Signature Version 4: every request signed, or null.</summary>
    public CompiledSigV4? SigV4 { get; init; }

    /// <summary>HTTP Digest: every request answers the server's challenge, or null.</summary>
    public CompiledDigest? Digest { get; init; }

    /// <summary>OAuth 1.0a: every request signed, or null.</summary>
    public CompiledOAuth1? OAuth1 { get; init; }

    /// <summary>Whether the auth method works on each request as it is sent (a signature or a challenge's answer) rather than placing a value.</summary>
    public bool SignsRequests => SigV4 is not null || Digest is not null || OAuth1 is not null;

    /// <summary>The TLS of its connections (a client certificate, a CA of its own), or null: the shared pool.</summary>
    public CompiledTls? Tls { get; init; }

    /// <summary>
    /// A template over <c>response</c> (status, headers, body) that, when true, means the upstream
    /// rejected the credential although its status did not say so. Evaluated by runs and saved
    /// queries (which read the body), not by the streaming proxy.
    /// </summary>
    public Template? AuthFailureCondition { get; init; }

    /// <summary>One credential for everyone (true), or one per person.</summary>
    public bool ShareCredentials { get; init; } = true;

    /// <summary>Upstream statuses that mean the credential was rejected.</summary>
    public IReadOnlySet<int> AuthFailureStatuses { get; init; } = new HashSet<int> { 401 };

    public bool IsGraphQL => Definition.Kind == "graphql";

    /// <summary>How its traffic is audited; null: the server's default.</summary>
    public Audit.TrafficMode? Traffic { get; init; }
}

/// <summary>Validates a <see cref="ResourceDefinition"/> (every error, each with its field) and compiles it.</summary>
internal static class ResourceCompiler
{
    public const long DefaultMaxResponseBytes = 10 * 1024 * 1024;
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    public static CompiledResource Compile(string name, long version, ResourceDefinition definition, IReadOnlySet<string>? attached = null)
    {
        var errors = new List<FieldError>();
        if (Names.CheckName("resource", name) is { } nameError)
        {
            errors.Add(new FieldError("name", nameError));
        }

        if (definition.Kind is not ("rest" or "graphql"))
        {
            errors.Add(new FieldError("kind", $"'{definition.Kind}' is not a resource kind; use 'rest' or 'graphql'."));
        }

        var variables = new HashSet<string>(StringComparer.Ordinal);
        var requestVariables = new HashSet<string>(StringComparer.Ordinal);
        var authVariables = new HashSet<string>(StringComparer.Ordinal);
        var current = requestVariables;
        var usesCurrentUser = false;
        var parsingTls = false;
        var readsAll = false;
        // One token for everyone: a token request that read the caller would hand one person's token to the next.
        // (A custom flow says so itself, by step.)
        var sharedCredential = definition.Auth?.Type is CompiledGitHubApp.Type ||
                               (definition.Auth?.Type == CompiledSigV4.Type && definition.Auth.AssumeRole is not null) ||
                               (definition.Auth?.Type == "oauth2" && !(definition.ShareCredentials == false && definition.Auth.Grant == "authorization_code"));

        Template? Parse(string field, string? text, bool required = false)
        {
            if (string.IsNullOrEmpty(text))
            {
                if (required)
                {
                    errors.Add(new FieldError(field, "This field is required."));
                }

                return null;
            }

            try
            {
                var template = Template.Parse(text);
                variables.UnionWith(template.VariableNames);
                current.UnionWith(template.VariableNames);
                readsAll |= template.ReferencesAllVariables;
                // The roots too: a script may spell the name with escapes (\u0063urrent_user) that Jint decodes.
                usesCurrentUser |= text.Contains("current_user", StringComparison.Ordinal) || template.Roots.Contains("current_user");
                if (parsingTls && template.Roots.Contains("current_user"))
                {
                    errors.Add(new FieldError(field,
                        "A resource's TLS settings (its client certificate, its CA) are one connection pool per environment for every caller: they cannot read current_user."));
                }

                if (sharedCredential && current == authVariables && template.Roots.Contains("current_user"))
                {
                    errors.Add(new FieldError(field,
                        "This resource's credential is shared by everyone, so its token request cannot read current_user (one person's token would go to the next). " +
                        "Remove current_user here, or give each person their own credential: grant 'authorization_code' with shareCredentials: false."));
                }

                return template;
            }
            catch (TemplateException e)
            {
                errors.Add(new FieldError(field, e.Message));
                return null;
            }
        }

        var baseUrl = Parse("baseUrl", definition.BaseUrl, required: true);
        if (baseUrl is { IsConstant: true } && CheckBaseUrl(definition.BaseUrl!) is { } baseUrlError)
        {
            errors.Add(new FieldError("baseUrl", baseUrlError));
        }

        var headers = new List<KeyValuePair<string, Template>>();
        foreach (var (headerName, value) in definition.Headers ?? [])
        {
            var field = $"headers.{headerName}";
            if (!HeaderRules.IsValidName(headerName))
            {
                errors.Add(new FieldError(field, $"'{headerName}' is not a valid header name."));
            }
            else if (HeaderRules.IsHopByHop(headerName) || headerName.Equals("Host", StringComparison.OrdinalIgnoreCase) || headerName.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                errors.Add(new FieldError(field, $"Keyway sets '{headerName}' itself; remove it from the resource's headers."));
            }

            if (Parse(field, value ?? "") is { } template)
            {
                headers.Add(new(headerName, template));
            }
        }

        var query = new List<KeyValuePair<string, Template>>();
        foreach (var (queryName, value) in definition.Query ?? [])
        {
            if (string.IsNullOrEmpty(queryName))
            {
                errors.Add(new FieldError("query", "A query parameter name is empty."));
            }
            else if (Parse($"query.{queryName}", value ?? "") is { } template)
            {
                query.Add(new(queryName, template));
            }
        }

        // What the TLS settings read goes to the base URL's connections (and to the token endpoint's, below, when they present it).
        var tlsVariables = new HashSet<string>(StringComparer.Ordinal);
        current = tlsVariables;
        parsingTls = true;
        var tls = CompiledTls.Compile(definition.Tls, errors, Parse);
        parsingTls = false;
        requestVariables.UnionWith(tlsVariables);

        current = authVariables;
        var auth = CompileAuth(definition.Auth ?? new AuthDefinition(), errors, Parse, out var oauth2, out var custom, out var signers, out var gitHubApp);
        // A token's apply templates go to the base URL with the token: what they read is checked against its bindings, not the token endpoint's.
        current = requestVariables;
        var tokenApply = definition.Auth?.Type is "oauth2" or CompiledGitHubApp.Type ? CompileTokenApply(definition.Auth!, errors, Parse) : null;
        foreach (var step in custom is null ? [] : custom.Steps.Concat(custom.RefreshSteps ?? []))
        {
            if (step is JavascriptStep javascript)
            {
                var named = new HashSet<string>(StringComparer.Ordinal);
                readsAll |= Template.ScanScript(javascript.Code.Source, named);
                variables.UnionWith(named);
                authVariables.UnionWith(named);
            }
        }

        if (custom is not null)
        {
            // A flow's results reach the base URL through its apply templates, and a result can carry what a
            // variable or javascript step read; what only a request step reads goes to that step's URL alone.
            requestVariables.UnionWith(FlowResultVariables(definition.Auth!));
        }
        else if (oauth2 is null && gitHubApp is null)
        {
            // Static auth is placed on the request. A role's long-term key counts too: the credentials it buys sign
            // what goes to the base URL, so they go only where the key may (and to STS, checked on that request).
            requestVariables.UnionWith(authVariables);
        }

        CompiledTls.CheckCertificateUse(definition.Auth, oauth2, tls, errors);
        if (oauth2 is { UsesClientCertificate: true })
        {
            authVariables.UnionWith(tlsVariables);
        }

        StaticValues.Check(definition, errors);
        // A custom flow's refresh.statuses join the resource's list; given alone, they replace the default 401.
        var failureStatuses = new HashSet<int>(definition.AuthFailureStatuses ?? (custom?.RefreshStatuses is null ? [401] : []));
        failureStatuses.UnionWith(custom?.RefreshStatuses ?? []);
        if (failureStatuses.Any(status => status is < 400 or > 599))
        {
            errors.Add(new FieldError("authFailureStatuses", "Only 4xx and 5xx statuses can mean that a credential was rejected."));
        }

        if (definition.ShareCredentials == false && oauth2?.Grant is not "authorization_code")
        {
            errors.Add(new FieldError("shareCredentials", "Per-user credentials need auth.type 'oauth2' with grant 'authorization_code': each person connects their own account."));
        }

        var timeout = DefaultTimeout;
        if (definition.Timeouts?.RequestMs is { } ms)
        {
            if (ms is < 1 or > 600_000)
            {
                errors.Add(new FieldError("timeouts.requestMs", "Must be between 1 and 600000 milliseconds."));
            }
            else
            {
                timeout = TimeSpan.FromMilliseconds(ms);
            }
        }

        var maxBytes = definition.MaxResponseBytes ?? DefaultMaxResponseBytes;
        if (maxBytes is < 1 or > 1L << 30)
        {
            errors.Add(new FieldError("maxResponseBytes", "Must be between 1 byte and 1 GiB."));
        }

        if (definition.FollowRedirects is not (null or "none" or "sameOrigin"))
        {
            errors.Add(new FieldError("followRedirects", $"'{definition.FollowRedirects}' is not a redirect policy; use 'none' or 'sameOrigin'."));
        }

        var traffic = CheckTraffic(definition, readsAll, errors);
        if (errors.Count > 0)
        {
            throw new ResourceValidationException(name, errors);
        }

        return new CompiledResource
        {
            Name = name,
            Version = version,
            Definition = definition,
            BaseUrl = baseUrl!,
            Headers = headers,
            Query = query,
            Auth = auth,
            Timeout = timeout,
            MaxResponseBytes = maxBytes,
            FollowSameOriginRedirects = definition.FollowRedirects == "sameOrigin",
            UsesCurrentUser = usesCurrentUser,
            Variables = variables,
            RequestVariables = requestVariables,
            OAuth2Variables = oauth2 is null && gitHubApp is null && signers.SigV4?.AssumeRole is null ? new HashSet<string>() : authVariables,
            FlowVariables = custom is null ? new HashSet<string>() : authVariables,
            ReadsAllVariables = readsAll,
            Attached = attached,
            OAuth2 = oauth2,
            Custom = custom,
            SigV4 = signers.SigV4,
            Digest = signers.Digest,
            OAuth1 = signers.OAuth1,
            Tls = tls,
            GitHubApp = gitHubApp,
            TokenApply = tokenApply,
            AuthFailureCondition = custom?.BodyCondition,
            ShareCredentials = definition.ShareCredentials ?? true,
            AuthFailureStatuses = failureStatuses,
            Traffic = traffic,
        };
    }

    /// <summary>
    /// The resource's traffic mode. <c>off</c> is refused for a resource that holds secrets: one with
    /// credential-bearing auth, or whose templates may read every variable. (Its templates reading a
    /// secret variable by name is refused when it is saved, by <see cref="ResourceAuthoring"/>, which
    /// knows which variables are secret; a resource that sends a secret anyway is recorded in the
    /// server's mode.)
    /// </summary>
    private static Audit.TrafficMode? CheckTraffic(ResourceDefinition definition, bool readsAll, List<FieldError> errors)
    {
        if (definition.Audit?.Traffic is not { } text)
        {
            return null;
        }

        if (text is not ("rollup" or "each" or "off") || Audit.TrafficModes.Parse(text) is not { } mode)
        {
            errors.Add(new FieldError("audit.traffic", $"'{text}' is not a traffic mode; use 'rollup', 'each' or 'off'."));
            return null;
        }

        if (mode == Audit.TrafficMode.Off && (definition.Auth?.Type ?? "none") != "none")
        {
            errors.Add(new FieldError("audit.traffic",
                $"'off' is only for a resource that sends no secret, and this one authenticates with '{definition.Auth!.Type}'. Use 'rollup' (counts per interval) or 'each'."));
        }
        else if (mode == Audit.TrafficMode.Off && readsAll)
        {
            errors.Add(new FieldError("audit.traffic",
                "'off' is only for a resource that sends no secret, and this one's templates may read every variable. Use 'rollup' (counts per interval) or 'each'."));
        }

        return mode;
    }

    /// <summary>The variables a custom flow's results may carry: those its variable and javascript steps and its apply templates read.</summary>
    private static HashSet<string> FlowResultVariables(AuthDefinition auth)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        var templates = (auth.Steps ?? []).Concat(auth.RefreshSteps ?? [])
            .Where(step => step.Type == "variable").Select(step => step.Value)
            .Concat((auth.Apply?.Headers ?? []).Values).Concat((auth.Apply?.Query ?? []).Values).Concat((auth.Apply?.Cookies ?? []).Values)
            .Concat((auth.Apply?.Body ?? []).Values);
        foreach (var text in templates)
        {
            try
            {
                names.UnionWith(Template.Parse(text ?? "").VariableNames);
            }
            catch (TemplateException)
            {
                // Reported with its field by the flow's compilation.
            }
        }

        foreach (var step in (auth.Steps ?? []).Concat(auth.RefreshSteps ?? []).Where(step => step.Type == "javascript"))
        {
            Template.ScanScript(step.Code ?? "", names);
        }

        return names;
    }

    /// <summary>An absolute http(s) URL with no user info or fragment, or why not.</summary>
    public static string? CheckBaseUrl(string value)
    {
        if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            return $"'{value}' is not an absolute http:// or https:// URL.";
        }

        if (uri.UserInfo.Length > 0)
        {
            return "The base URL must not hold credentials (user:password@); use the auth settings with a secret variable.";
        }

        if (uri.Fragment.Length > 0)
        {
            return "The base URL must not have a fragment (#...).";
        }

        return null;
    }

    private static List<AuthPlacement> CompileAuth(
        AuthDefinition auth, List<FieldError> errors, Func<string, string?, bool, Template?> parse,
        out CompiledOAuth2? oauth2, out CompiledCustomFlow? custom, out (CompiledSigV4? SigV4, CompiledDigest? Digest, CompiledOAuth1? OAuth1) signers,
        out CompiledGitHubApp? gitHubApp)
    {
        var placements = new List<AuthPlacement>();
        oauth2 = null;
        custom = null;
        signers = default;
        gitHubApp = null;
        AuthFieldOwners.Check(auth, errors);

        if (auth.Type != "oauth2" && auth.Dpop is not null)
        {
            errors.Add(new FieldError("auth.dpop", $"'dpop' belongs to auth type 'oauth2', not '{auth.Type}'."));
        }

        if (auth.Type == "oauth2" && auth.Dpop is not null && auth.Apply is not null)
        {
            errors.Add(new FieldError("auth.apply", "A DPoP-bound token goes in Authorization: DPoP with its proof, nowhere else: remove auth.apply, or turn dpop off."));
        }

        if (auth.Apply is not null && auth.Type is not ("custom" or "oauth2" or CompiledGitHubApp.Type))
        {
            errors.Add(new FieldError("auth.apply", $"'apply' places a dynamic credential (auth types 'oauth2', '{CompiledGitHubApp.Type}' and 'custom'), not '{auth.Type}'."));
        }

        Template? Secret(string field, string? text)
        {
            var template = parse(field, text, true);
            if (template is { IsConstant: true })
            {
                errors.Add(new FieldError(field,
                    "A credential must not be written into the resource in plain text. Store it as a secret variable " +
                    "(keyway var set NAME --secret) and write {{ environment.variables.NAME }} here."));
            }

            return template;
        }

        void Reject(string field, string? value)
        {
            if (value is not null)
            {
                errors.Add(new FieldError($"auth.{field}", $"'{field}' does not apply to auth type '{auth.Type}'."));
            }
        }

        switch (auth.Type)
        {
            case "none":
                Reject("token", auth.Token);
                Reject("username", auth.Username);
                Reject("password", auth.Password);
                Reject("value", auth.Value);
                break;

            case "bearer":
                {
                    Reject("username", auth.Username);
                    Reject("password", auth.Password);
                    Reject("value", auth.Value);
                    var token = Secret("auth.token", auth.Token);
                    var prefix = auth.Prefix ?? "Bearer";
                    if (token is not null)
                    {
                        var head = prefix.Length == 0 ? "" : prefix + " ";
                        placements.Add(new AuthPlacement(Placement.Header, "Authorization", scope => head + token.Render(scope)));
                    }

                    break;
                }

            case "basic":
                {
                    Reject("token", auth.Token);
                    Reject("value", auth.Value);
                    var username = parse("auth.username", auth.Username, true);
                    var password = Secret("auth.password", auth.Password);
                    if (username is not null && password is not null)
                    {
                        placements.Add(new AuthPlacement(Placement.Header, "Authorization", scope =>
                            "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes(username.Render(scope) + ":" + password.Render(scope)))));
                    }

                    break;
                }

            case "apiKey":
                {
                    Reject("token", auth.Token);
                    Reject("username", auth.Username);
                    Reject("password", auth.Password);
                    var location = auth.In switch
                    {
                        "header" or null => Placement.Header,
                        "query" => Placement.Query,
                        "cookie" => Placement.Cookie,
                        _ => (Placement?)null,
                    };
                    if (location is null)
                    {
                        errors.Add(new FieldError("auth.in", $"'{auth.In}' is not a place for an API key; use 'header', 'query' or 'cookie'."));
                    }

                    if (string.IsNullOrEmpty(auth.Name))
                    {
                        errors.Add(new FieldError("auth.name", "Name the header, query parameter or cookie that carries the key."));
                    }
                    else if (location == Placement.Header && !HeaderRules.IsValidName(auth.Name))
                    {
                        errors.Add(new FieldError("auth.name", $"'{auth.Name}' is not a valid header name."));
                    }

                    var value = Secret("auth.value", auth.Value);
                    var prefix = auth.Prefix ?? "";
                    if (location is { } where && value is not null && !string.IsNullOrEmpty(auth.Name))
                    {
                        placements.Add(new AuthPlacement(where, auth.Name, scope => prefix + value.Render(scope)));
                    }

                    break;
                }

            case CompiledSigV4.Type:
                Reject("token", auth.Token);
                Reject("username", auth.Username);
                Reject("password", auth.Password);
                Reject("value", auth.Value);
                signers.SigV4 = CompiledSigV4.Compile(auth, errors, parse, Secret);
                break;

            case CompiledDigest.Type:
                Reject("token", auth.Token);
                Reject("value", auth.Value);
                Reject("prefix", auth.Prefix);
                signers.Digest = CompiledDigest.Compile(auth, errors, parse, Secret);
                break;

            case CompiledOAuth1.Type:
                Reject("username", auth.Username);
                Reject("password", auth.Password);
                Reject("value", auth.Value);
                Reject("prefix", auth.Prefix);
                signers.OAuth1 = CompiledOAuth1.Compile(auth, errors, parse, Secret);
                break;

            case "oauth2":
                oauth2 = CompiledOAuth2.Compile(auth, errors, parse, Secret);
                break;

            case CompiledGitHubApp.Type:
                Reject("token", auth.Token);
                Reject("username", auth.Username);
                Reject("password", auth.Password);
                Reject("value", auth.Value);
                Reject("clientId", auth.ClientId);
                Reject("clientSecret", auth.ClientSecret);
                Reject("tokenUrl", auth.TokenUrl);
                gitHubApp = CompiledGitHubApp.Compile(auth, errors, parse, Secret);
                break;

            case "custom":
                custom = CompiledCustomFlow.Compile(auth, errors, parse);
                break;

            default:
                errors.Add(new FieldError("auth.type", $"'{auth.Type}' is not an auth method; use none, bearer, basic, digest, apiKey, awsSigV4, oauth1, oauth2, githubApp or custom."));
                break;
        }

        return placements;
    }

    /// <summary>
    /// A token method's <c>auth.apply</c>: templates over <c>credential</c> (<c>accessToken</c>, <c>tokenType</c>,
    /// <c>expiresAt</c>) and plain configuration, instead of the default <c>Authorization: Bearer</c> header.
    /// </summary>
    private static CompiledApply? CompileTokenApply(AuthDefinition auth, List<FieldError> errors, Func<string, string?, bool, Template?> parse)
    {
        if (auth.Apply is not { } definition)
        {
            return null;
        }

        foreach (var (field, value) in new[] { ("in", auth.In), ("name", auth.Name), ("prefix", auth.Prefix) })
        {
            if (value is not null)
            {
                errors.Add(new FieldError($"auth.{field}", $"auth.{field} and auth.apply both say where the token goes: keep auth.apply, and write the prefix into its template (\"Bearer {{{{ credential.accessToken }}}}\")."));
            }
        }

        var placesToken = false;
        var apply = CompiledApply.Compile(definition, errors, parse, (field, template) =>
        {
            _ = field;
            placesToken |= template.Roots.Contains(TokenFields.Root);
        });
        if (apply.Count == 0)
        {
            errors.Add(new FieldError("auth.apply", "Give at least one header, query parameter, cookie or body field, e.g. { \"headers\": { \"X-Access-Token\": \"{{ credential.accessToken }}\" } }."));
        }
        else if (!placesToken)
        {
            errors.Add(new FieldError("auth.apply", "auth.apply must place the token somewhere: use {{ credential.accessToken }} in at least one entry."));
        }

        return apply;
    }
}

/// <summary>A resource definition with errors: every one, each with its field.</summary>
internal sealed class ResourceValidationException(string name, IReadOnlyList<FieldError> errors)
    : KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
        $"The resource '{name}' is not valid: " + string.Join(" ", errors.Select(e => $"{e.Field}: {e.Message}")),
        new Dictionary<string, object?> { ["errors"] = errors })
{
    public IReadOnlyList<FieldError> Errors { get; } = errors;
}

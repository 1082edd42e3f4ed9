using System.Text.Json;
using System.Text.Json.Nodes;
using Keyway.Access;
using Keyway.Api;
using Keyway.Environments;
using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>
/// Who may save which resource definition (docs/security.md, "Who can do what with a secret"):
/// <list type="bullet">
/// <item>creating one needs the <c>build</c> right (admins hold it);</item>
/// <item>changing where it sends things (base URL, auth with its token, authorize, revocation and
/// flow step URLs, redirects, whose credential) needs <c>own</c>; <c>edit</c> covers the rest;</item>
/// <item>every template that reads a secret variable needs the saver's <c>attach</c> right on that
/// variable, checked per template whenever the template changes, and for every template when the
/// destination changes (the same secret going somewhere new is a new attachment).</item>
/// </list>
/// What the saver may attach is stored with the resource; at run time its templates see those secrets
/// and no other (<see cref="Scopes.Visible"/>).
/// </summary>
internal sealed class ResourceAuthoring(RightStore rights, VariableService variables, AccessPolicy access)
{
    /// <summary>Fields whose change moves where the resource sends things, or whose credential it sends (tls: which server it trusts, which certificate it presents).</summary>
    private static readonly string[] DestinationFields = ["baseUrl", "auth", "followRedirects", "shareCredentials", "tls"];

    /// <summary>The URLs a credential is obtained from: named in errors and traces, so never built from a secret.</summary>
    private static readonly HashSet<string> SecretFreeFields = new(StringComparer.Ordinal)
    {
        "auth.tokenUrl", "auth.issuer", "auth.authorizeUrl", "auth.revocationUrl", "auth.apiUrl", "auth.assumeRole.stsUrl", "auth.assumeRole.roleArn",
    };

    /// <summary>
    /// Checks that <paramref name="caller"/> may save <paramref name="definition"/> over
    /// <paramref name="existing"/> (null: creating it) and returns the variables to record as attached.
    /// </summary>
    /// <exception cref="KeywayException">403 <c>forbidden</c> with per-field errors.</exception>
    public async Task<IReadOnlyList<string>> CheckAsync(
        Caller caller, string name, ResourceRecord? existing, ResourceDefinition definition, CancellationToken cancellationToken)
    {
        if (existing is null && !await rights.MayBuildAsync(caller, name, cancellationToken))
        {
            throw new KeywayException(StatusCodes.Status403Forbidden, "forbidden",
                $"'{caller.UserName}' may not create resources: creating one is a right an admin gives " +
                $"('keyway right grant build --user {caller.UserName}', or to a group with --group)." +
                (caller.Scope is null ? "" : " An API key needs a scope that allows 'own' to create one."));
        }

        var newFields = Flatten(definition);
        var oldFields = existing is null ? null : Flatten(existing.Definition);
        var destinationChanged = existing is not null && DestinationFields.Any(f => Changed(oldFields!, newFields, f));
        if (destinationChanged && !access.Allows(caller, Permission.Own, name, null))
        {
            var errors = DestinationFields.Where(f => Changed(oldFields!, newFields, f))
                .Select(f => new FieldError(f, $"Changing '{f}' changes where the resource sends its credentials: it needs 'own' on '{name}', not 'edit'."))
                .ToList();
            throw Forbidden($"'{caller.UserName}' may edit resource '{name}' but not change where it sends things; ask an owner.", errors);
        }

        var attachable = await rights.TargetsAsync(caller, Rights.Attach, name, cancellationToken);
        var mayAttachAll = attachable.Contains(Rights.Any);
        var previouslyAttached = existing?.Attached is { } list ? new HashSet<string>(list, StringComparer.Ordinal) : null;
        bool WasAttached(string variable) => previouslyAttached is null || previouslyAttached.Contains(Rights.Any) || previouslyAttached.Contains(variable);

        var secrets = await variables.SecretNamesAsync(cancellationToken);
        var attached = new SortedSet<string>(StringComparer.Ordinal);
        var refused = new List<FieldError>();
        foreach (var (field, text) in newFields)
        {
            if (!text.Contains("{{", StringComparison.Ordinal) && !field.EndsWith(".code", StringComparison.Ordinal))
            {
                continue;
            }

            var (names, readsAll) = References(field, text);
            var unchanged = !destinationChanged && oldFields is not null && oldFields.TryGetValue(field, out var before) && before == text;
            if (readsAll)
            {
                if (mayAttachAll || (unchanged && WasAttached(Rights.Any)))
                {
                    attached.Add(Rights.Any);
                }
                else
                {
                    refused.Add(new FieldError(field,
                        "This template reads environment.variables as a whole (or in a way Keyway cannot name), so it could read every secret: " +
                        "only someone who may attach every variable (an admin) can save it. Name the variables instead: {{ environment.variables.NAME }}."));
                }
            }

            foreach (var variable in names)
            {
                if (mayAttachAll || attachable.Contains(variable) || (unchanged && WasAttached(variable)))
                {
                    attached.Add(variable);
                }
                else if (secrets.Contains(variable))
                {
                    refused.Add(new FieldError(field,
                        $"This template reads the secret variable '{variable}', which '{caller.UserName}' may not attach to a resource. " +
                        $"An admin can allow it: keyway right grant attach --variable {variable} --user {caller.UserName}"));
                }
            }
        }

        // Where the credential is obtained is named in errors, logs and the resource test: it may not be built from a secret.
        var urlErrors = newFields.Where(f => SecretFreeFields.Contains(f.Key) && f.Value.Contains("{{", StringComparison.Ordinal))
            .Select(f => (f.Key, References(f.Key, f.Value)))
            .Where(f => f.Item2.ReadsAll || f.Item2.Names.Any(secrets.Contains))
            .Select(f => new FieldError(f.Key,
                "This field reads a secret variable (or the variables as a whole). Keyway names the URLs it obtains credentials from (and the role it assumes) in errors, " +
                "logs and the resource test, so they may read only plain variables; keep secrets in the fields made for them (clientSecret, privateKey, password)."))
            .ToList();
        if (urlErrors.Count > 0)
        {
            throw new ResourceValidationException(name, urlErrors);
        }

        if (refused.Count > 0)
        {
            throw Forbidden($"'{caller.UserName}' may not attach the secrets this definition of '{name}' reads.", refused);
        }

        if (Audit.TrafficModes.Parse(definition.Audit?.Traffic) == Audit.TrafficMode.Off &&
            ResourceCompiler.Compile(name, 0, definition).Variables.Where(secrets.Contains).Order(StringComparer.Ordinal).ToList() is [_, ..] secret)
        {
            // A resource that sends secrets has its traffic audited: off would leave their use unrecorded.
            throw new ResourceValidationException(name, [new FieldError("audit.traffic",
                $"'off' is only for a resource that sends no secret, and this one reads the secret variable(s) {string.Join(", ", secret.Select(v => "'" + v + "'"))}. " +
                "Use 'rollup' (counts per interval) or 'each'.")]);
        }

        return [.. attached];
    }

    /// <summary>
    /// The secrets a resource sends that are bound to no origin, per environment, with the origin they
    /// would be bound to (the base URL's, or the token endpoint's), for clients to offer binding them.
    /// </summary>
    public async Task<IReadOnlyList<UnboundSecret>> UnboundAsync(CompiledResource resource, CancellationToken cancellationToken)
    {
        static string? OriginOf(string? url) =>
            url is not null && !url.Contains("{{", StringComparison.Ordinal) && Uri.TryCreate(url, UriKind.Absolute, out var uri)
                ? Outbound.OriginPattern.OriginOf(uri)
                : null;

        var destinations = new List<(IReadOnlySet<string> Variables, string? Origin)>
        {
            (resource.RequestVariables, OriginOf(resource.Definition.BaseUrl)),
            (resource.OAuth2Variables, OriginOf(resource.Definition.Auth?.TokenUrl
                ?? resource.Definition.Auth?.ApiUrl
                ?? (resource.GitHubApp is not null ? CompiledGitHubApp.DefaultApiUrl : null)
                ?? (resource.Definition.Auth?.ServiceAccountKey is not null ? "https://oauth2.googleapis.com/token" : null))),
        };
        var unbound = new List<UnboundSecret>();
        foreach (var environment in await variables.ListEnvironmentsAsync(cancellationToken))
        {
            var values = await variables.GetValuesAsync(environment.Name, cancellationToken);
            foreach (var (names, origin) in destinations)
            {
                foreach (var name in names.Order(StringComparer.Ordinal))
                {
                    if (values.IsSecret(name) && !values.Origins.ContainsKey(name) &&
                        !unbound.Any(u => u.Variable == name && u.Environment == environment.Name))
                    {
                        unbound.Add(new UnboundSecret(name, environment.Name, origin));
                    }
                }
            }
        }

        return unbound;
    }

    private static KeywayException Forbidden(string message, IReadOnlyList<FieldError> errors) =>
        new(StatusCodes.Status403Forbidden, "forbidden",
            message + " " + string.Join(" ", errors.Select(e => $"{e.Field}: {e.Message}")),
            new Dictionary<string, object?> { ["errors"] = errors });

    /// <summary>The variables a template or a javascript step names, and whether it reads them all.</summary>
    private static (IReadOnlySet<string> Names, bool ReadsAll) References(string field, string text)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        if (field.EndsWith(".code", StringComparison.Ordinal))
        {
            return (names, Template.ScanScript(text, names));
        }

        try
        {
            var template = Template.Parse(text);
            return (template.VariableNames, template.ReferencesAllVariables);
        }
        catch (TemplateException)
        {
            // Compilation reports it with its field; an unparsable template reads nothing.
            return (names, false);
        }
    }

    /// <summary>Whether any field at or below <paramref name="prefix"/> differs.</summary>
    private static bool Changed(IReadOnlyDictionary<string, string> before, IReadOnlyDictionary<string, string> after, string prefix)
    {
        static IEnumerable<KeyValuePair<string, string>> Under(IReadOnlyDictionary<string, string> fields, string prefix) =>
            fields.Where(f => f.Key == prefix || f.Key.StartsWith(prefix + ".", StringComparison.Ordinal) || f.Key.StartsWith(prefix + "[", StringComparison.Ordinal));

        var a = Under(before, prefix).ToDictionary();
        var b = Under(after, prefix).ToDictionary();
        return a.Count != b.Count || a.Any(kv => !b.TryGetValue(kv.Key, out var v) || v != kv.Value);
    }

    /// <summary>Every value of the definition as text, by its path (<c>headers.Authorization</c>, <c>auth.steps[0].url</c>).</summary>
    internal static Dictionary<string, string> Flatten(ResourceDefinition definition)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        void Walk(JsonNode? node, string path)
        {
            switch (node)
            {
                case JsonObject obj:
                    foreach (var (key, child) in obj)
                    {
                        Walk(child, path.Length == 0 ? key : $"{path}.{key}");
                    }

                    break;
                case JsonArray array:
                    for (var i = 0; i < array.Count; i++)
                    {
                        Walk(array[i], $"{path}[{i}]");
                    }

                    break;
                case JsonValue value:
                    fields[path] = value.GetValueKind() == JsonValueKind.String ? value.GetValue<string>() : value.ToJsonString();
                    break;
            }
        }

        Walk(JsonSerializer.SerializeToNode(definition, ConfigJson.Options), "");
        return fields;
    }
}

/// <summary>A secret a resource sends that is bound to no origin, and the origin it would be bound to (null: not known until run time).</summary>
internal sealed record UnboundSecret(string Variable, string Environment, string? Origin);

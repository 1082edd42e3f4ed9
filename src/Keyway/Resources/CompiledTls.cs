using Keyway.Api;
using Keyway.Outbound;
using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>
/// A resource's <c>tls</c> settings, validated, its templates parsed once: the client certificate its connections
/// present (mutual TLS) and the CA its server's certificate chains to. The values are read once per definition
/// version and value (<see cref="Read"/>), never per request.
/// </summary>
internal sealed class CompiledTls
{
    private Template? _certificate;
    private Template? _key;
    private Template? _pkcs12;
    private Template? _pkcs12Password;
    private Template? _authorities;

    /// <summary>The settings this definition version has read: each parsed once.</summary>
    public ClientTlsCache Read { get; } = new();

    /// <summary>The variables its templates read, and whether one reads them all.</summary>
    public IReadOnlySet<string> Variables { get; private init; } = new HashSet<string>();

    private bool ReadsAllVariables { get; init; }

    /// <summary>Whether its connections present a client certificate.</summary>
    public bool HasClientCertificate => _certificate is not null || _pkcs12 is not null;

    public static CompiledTls? Compile(
        ResourceTlsDefinition? tls, List<FieldError> errors, Func<string, string?, bool, Template?> parse)
    {
        if (tls is null)
        {
            return null;
        }

        if (tls.Pkcs12 is not null && (tls.ClientCertificate is not null || tls.ClientKey is not null))
        {
            errors.Add(new FieldError("tls.pkcs12", "Give the client certificate as PEM (tls.clientCertificate, tls.clientKey) or as PKCS#12 (tls.pkcs12), not both."));
        }

        if (tls.Pkcs12Password is not null && tls.Pkcs12 is null)
        {
            errors.Add(new FieldError("tls.pkcs12Password", "A password goes with a PKCS#12 file (tls.pkcs12)."));
        }

        if (tls.ClientKey is not null && tls.ClientCertificate is null)
        {
            errors.Add(new FieldError("tls.clientCertificate", "tls.clientKey is the key of a certificate: give the certificate in tls.clientCertificate."));
        }

        if (tls is { ClientCertificate: null, Pkcs12: null, CaCertificate: null })
        {
            errors.Add(new FieldError("tls", "Set a client certificate (tls.clientCertificate with tls.clientKey, or tls.pkcs12), a CA (tls.caCertificate), or remove tls."));
        }

        Template? Secret(string field, string? text)
        {
            var template = parse(field, text, false);
            if (template is { IsConstant: true })
            {
                errors.Add(new FieldError(field,
                    "A private key or password must not be written into the resource in plain text. Store it as a secret variable " +
                    "(keyway var set NAME --secret) and write {{ environment.variables.NAME }} here."));
            }

            return template;
        }

        var certificate = parse("tls.clientCertificate", tls.ClientCertificate, false);
        var key = Secret("tls.clientKey", tls.ClientKey);
        var pkcs12 = Secret("tls.pkcs12", tls.Pkcs12);
        var pkcs12Password = Secret("tls.pkcs12Password", tls.Pkcs12Password);
        var authorities = parse("tls.caCertificate", tls.CaCertificate, false);
        var templates = new[] { certificate, key, pkcs12, pkcs12Password, authorities }.OfType<Template>().ToList();
        var compiled = new CompiledTls
        {
            _certificate = certificate,
            _key = key,
            _pkcs12 = pkcs12,
            _pkcs12Password = pkcs12Password,
            _authorities = authorities,
            Variables = templates.SelectMany(t => t.VariableNames).ToHashSet(StringComparer.Ordinal),
            ReadsAllVariables = templates.Any(t => t.ReferencesAllVariables),
        };

        // What is written into the definition is checked now, when it is saved; what a variable holds, when it is saved
        // (CheckValuesAsync, in each environment that has them) and when it is used.
        if (compiled._certificate is { IsConstant: true } && tls.ClientCertificate!.Contains("PRIVATE KEY", StringComparison.Ordinal))
        {
            errors.Add(new FieldError("tls.clientCertificate",
                "This PEM holds a private key, which must not be written into the resource in plain text. Keep the certificate here and the key " +
                "in a secret variable (tls.clientKey: {{ environment.variables.NAME }}), or the whole PEM in a secret variable."));
        }
        else if (compiled._certificate is { IsConstant: true } && !HoldsCertificate(tls.ClientCertificate!))
        {
            errors.Add(new FieldError("tls.clientCertificate", "This is not a PEM certificate (-----BEGIN CERTIFICATE-----), or one that cannot be read."));
        }

        if (compiled._authorities is { IsConstant: true } && !HoldsCertificate(tls.CaCertificate!))
        {
            errors.Add(new FieldError("tls.caCertificate", "This is not a PEM certificate (-----BEGIN CERTIFICATE-----), or one that cannot be read."));
        }

        return compiled;
    }

    /// <summary>
    /// The settings in one environment, read once per value. A value that cannot be read is refused with a
    /// message naming the resource and the field, never the value.
    /// </summary>
    public ClientTls Render(TemplateScope scope, string resource)
    {
        string? R(Template? t) => t?.Render(scope) is { Length: > 0 } v ? v : null;
        var certificate = R(_certificate);
        var pkcs12 = R(_pkcs12);
        if (HasClientCertificate && certificate is null && pkcs12 is null)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                $"The client certificate of resource '{resource}' is empty in this environment: set the variable " +
                $"{(_pkcs12 is null ? "tls.clientCertificate" : "tls.pkcs12")} reads.");
        }

        return Read.Get(certificate, R(_key), pkcs12, R(_pkcs12Password), R(_authorities), $"The resource '{resource}'");
    }

    /// <summary>
    /// RFC 8705: mutual TLS client authentication and certificate-bound tokens present the resource's client certificate to
    /// the token endpoint. Without one, a token bound to a certificate would go out on connections that present none.
    /// </summary>
    public static void CheckCertificateUse(AuthDefinition? auth, CompiledOAuth2? oauth2, CompiledTls? tls, List<FieldError> errors)
    {
        if (auth?.CertificateBoundTokens is not null && auth.Type != "oauth2")
        {
            errors.Add(new FieldError("auth.certificateBoundTokens", $"'certificateBoundTokens' belongs to auth type 'oauth2', not '{auth.Type}'."));
        }

        if (oauth2 is not { UsesClientCertificate: true } || tls is { HasClientCertificate: true })
        {
            return;
        }

        errors.Add(oauth2.ClientAuth is CompiledOAuth2.TlsClientAuth or CompiledOAuth2.SelfSignedTlsClientAuth
            ? new FieldError("auth.clientAuth",
                $"'{oauth2.ClientAuth}' authenticates the client with its TLS client certificate: give the resource one " +
                "(tls.clientCertificate with tls.clientKey, or tls.pkcs12), which its token requests and its requests both present.")
            : new FieldError("auth.certificateBoundTokens",
                "Tokens bound to a client certificate are refused without it: give the resource its certificate (tls.clientCertificate with " +
                "tls.clientKey, or tls.pkcs12), which its token requests and its requests both present."));
    }

    /// <summary>
    /// Reads the settings in every environment where the variables they read are set, when a definition is saved: a
    /// certificate that does not read or a key that is not its own is refused then, field by field, rather than at its
    /// first request. Where a variable is not set yet, it is checked when it is used.
    /// </summary>
    public static async Task CheckValuesAsync(
        Environments.VariableService variables, string name, ResourceDefinition definition, IReadOnlyList<string> attached, CancellationToken cancellationToken)
    {
        if (definition.Tls is null)
        {
            return;
        }

        var resource = ResourceCompiler.Compile(name, 0, definition, attached.ToHashSet(StringComparer.Ordinal));
        if (resource.Tls is not { ReadsAllVariables: false } tls)
        {
            return;
        }

        var errors = new List<FieldError>();
        foreach (var environment in await variables.ListEnvironmentsAsync(cancellationToken))
        {
            var values = await variables.GetValuesAsync(environment.Name, cancellationToken);
            var visible = Scopes.Visible(resource, values);
            if (!tls.Variables.All(visible.ContainsKey))
            {
                continue;
            }

            try
            {
                tls.Render(Scopes.ForResource(values, visible, null), name);
            }
            catch (KeywayException e) when (e.Code == "invalid_config")
            {
                // The message names the field and never the value.
                var field = System.Text.RegularExpressions.Regex.Match(e.Message, @"tls\.[A-Za-z0-9]+") is { Success: true } match ? match.Value : "tls";
                errors.Add(new FieldError(field, $"In '{environment.Name}': {e.Message}"));
            }
            catch (TemplateException)
            {
                // A template that fails here (one that reads the caller) fails with its own error when used.
            }
        }

        if (errors.Count > 0)
        {
            throw new ResourceValidationException(name, errors);
        }
    }

    private static bool HoldsCertificate(string pem)
    {
        var collection = new System.Security.Cryptography.X509Certificates.X509Certificate2Collection();
        try
        {
            collection.ImportFromPem(pem);
            return collection.Count > 0;
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return false;
        }
    }
}

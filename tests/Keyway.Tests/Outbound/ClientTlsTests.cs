using System.Security.Cryptography;
using System.Text;
using Keyway.Api;
using Keyway.Credentials;
using Keyway.Outbound;
using Keyway.Resources;
using Keyway.Secrets;
using Keyway.Templates;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Outbound;

/// <summary>
/// A resource's client certificate read from PEM or PKCS#12: what reads, and what is refused with a message that names
/// the resource and the field and never quotes the value.
/// </summary>
public sealed class ClientTlsTests
{
    private static readonly TestCertificates Authority = TestCertificates.Create("Unit");
    private static readonly System.Security.Cryptography.X509Certificates.X509Certificate2 Client = Authority.IssueClient("unit-client");
    private static readonly System.Security.Cryptography.X509Certificates.X509Certificate2 Other = Authority.IssueClient("unit-other", ec: true);
    private const string Where = "The resource 'api'";

    private static string Refusal(Action read)
    {
        var e = Assert.Throws<KeywayException>(read);
        Assert.Equal("invalid_config", e.Code);
        Assert.StartsWith(Where + ": ", e.Message);
        // Never a word of a key's body (DER in base64 starts MII…) or of a password.
        Assert.DoesNotContain("MII", e.Message);
        return e.Message;
    }

    [Fact]
    public void A_certificate_and_its_key_read_as_pem_separately_or_combined_with_the_chain_sent()
    {
        var certificate = TestCertificates.CertificatePem(Client);
        var key = TestCertificates.KeyPem(Client);
        var separate = ClientTls.Read(certificate + Authority.AuthorityPem, key, null, null, null, Where);
        Assert.True(separate.Certificate!.HasPrivateKey);
        Assert.Equal("CN=unit-client", separate.Certificate.Subject);
        Assert.Equal(TestCertificates.Thumbprint(Client), separate.Thumbprint);
        Assert.NotNull(separate.Context);
        // The key after the certificate in one PEM; the chain listed before the leaf.
        var combined = ClientTls.Read(Authority.AuthorityPem + certificate + key, null, null, null, null, Where);
        Assert.Equal("CN=unit-client", combined.Certificate!.Subject);
        Assert.Equal(Client.NotAfter.ToUniversalTime(), combined.NotAfter!.Value.UtcDateTime, TimeSpan.FromSeconds(1));
        Assert.DoesNotContain("PRIVATE", combined.ToString());
    }

    [Fact]
    public void Pkcs12_reads_with_its_password_and_is_refused_without_it_or_with_a_wrong_one()
    {
        var pkcs12 = TestCertificates.Pkcs12Base64(Other, "right-password");
        var read = ClientTls.Read(null, null, pkcs12, "right-password", null, Where);
        Assert.Equal("CN=unit-other", read.Certificate!.Subject);
        Assert.True(read.Certificate.HasPrivateKey);

        Assert.Contains("tls.pkcs12 cannot be opened without a password", Refusal(() => ClientTls.Read(null, null, pkcs12, null, null, Where)));
        var wrong = Refusal(() => ClientTls.Read(null, null, pkcs12, "wrong-password", null, Where));
        Assert.Contains("tls.pkcs12 cannot be opened with tls.pkcs12Password", wrong);
        Assert.DoesNotContain("wrong-password", wrong);
        Assert.Contains("tls.pkcs12 is not base64", Refusal(() => ClientTls.Read(null, null, "%%% not base64 %%%", "x", null, Where)));
    }

    [Fact]
    public void A_key_that_is_not_the_certificates_or_not_a_key_or_encrypted_is_refused_by_field()
    {
        var certificate = TestCertificates.CertificatePem(Client);
        Assert.Contains("tls.clientKey does not match the certificate of tls.clientCertificate",
            Refusal(() => ClientTls.Read(certificate, TestCertificates.KeyPem(Other), null, null, null, Where)));
        Assert.Contains("tls.clientKey is not a PEM private key",
            Refusal(() => ClientTls.Read(certificate, "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----", null, null, null, Where)));
        using var rsa = RSA.Create(2048);
        var encrypted = rsa.ExportEncryptedPkcs8PrivateKeyPem("pw".AsSpan(), new PbeParameters(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 1000));
        Assert.Contains("tls.clientKey is encrypted", Refusal(() => ClientTls.Read(certificate, encrypted, null, null, null, Where)));
        Assert.Contains("holds no private key", Refusal(() => ClientTls.Read(certificate, null, null, null, null, Where)));
        Assert.Contains("tls.clientCertificate holds no PEM certificate", Refusal(() => ClientTls.Read("garbage", TestCertificates.KeyPem(Client), null, null, null, Where)));
        Assert.Contains("tls.caCertificate holds no PEM certificate", Refusal(() => ClientTls.Read(null, null, null, null, "garbage", Where)));
    }

    [Fact]
    public void A_definition_version_reads_each_value_once()
    {
        var compiled = ResourceCompiler.Compile("api", 1, new ResourceDefinition
        {
            BaseUrl = "https://api.example.com",
            Tls = new ResourceTlsDefinition { ClientCertificate = "{{ environment.variables.CERT }}", ClientKey = "{{ environment.variables.KEY }}" },
        });
        var scope = new TemplateScope().With("environment", new Dictionary<string, object?>
        {
            ["variables"] = new Dictionary<string, object?>
            {
                ["CERT"] = TestCertificates.CertificatePem(Client),
                ["KEY"] = new Secret(TestCertificates.KeyPem(Client)),
            },
        });
        var first = compiled.Tls!.Render(scope, "api");
        Assert.Same(first, compiled.Tls.Render(scope, "api"));
        Assert.Equal(1, compiled.Tls.Read.Count);
        Assert.Contains("KEY", compiled.RequestVariables);
    }

    [Fact]
    public void Keys_and_passwords_written_in_plain_text_and_half_configured_certificates_are_refused_when_saved()
    {
        static IReadOnlyList<FieldError> Errors(ResourceTlsDefinition tls, AuthDefinition? auth = null) =>
            Assert.Throws<ResourceValidationException>(() => ResourceCompiler.Compile("api", 1, new ResourceDefinition
            {
                BaseUrl = "https://api.example.com",
                Tls = tls,
                Auth = auth,
            })).Errors;

        Assert.Contains(Errors(new ResourceTlsDefinition { ClientCertificate = "{{ environment.variables.C }}", ClientKey = TestCertificates.KeyPem(Client) }),
            e => e.Field == "tls.clientKey" && e.Message.Contains("secret variable", StringComparison.Ordinal));
        Assert.Contains(Errors(new ResourceTlsDefinition { Pkcs12 = "{{ environment.variables.P }}", Pkcs12Password = "hunter2" }), e => e.Field == "tls.pkcs12Password");
        Assert.Contains(Errors(new ResourceTlsDefinition { Pkcs12Password = "{{ environment.variables.P }}" }), e => e.Field == "tls.pkcs12Password");
        Assert.Contains(Errors(new ResourceTlsDefinition { ClientKey = "{{ environment.variables.K }}" }), e => e.Field == "tls.clientCertificate");
        Assert.Contains(Errors(new ResourceTlsDefinition()), e => e.Field == "tls");
        Assert.Contains(Errors(new ResourceTlsDefinition { CaCertificate = "not a certificate" }), e => e.Field == "tls.caCertificate");
        Assert.Contains(Errors(new ResourceTlsDefinition { CaCertificate = Authority.AuthorityPem },
                new AuthDefinition { Type = "oauth2", TokenUrl = "https://login.example.com/token", ClientId = "c", ClientAuth = "self_signed_tls_client_auth" }),
            e => e.Field == "auth.clientAuth" && e.Message.Contains("client certificate", StringComparison.Ordinal));
        Assert.Contains(Errors(new ResourceTlsDefinition { ClientCertificate = "{{ environment.variables.C }}", ClientKey = "{{ environment.variables.K }}" },
                new AuthDefinition { Type = "oauth2", TokenUrl = "https://login.example.com/token", ClientId = "c", ClientAuth = "tls_client_auth", ClientSecret = "{{ environment.variables.S }}" }),
            e => e.Field == "auth.clientSecret");
        Assert.Contains(Errors(new ResourceTlsDefinition { CaCertificate = Authority.AuthorityPem },
                new AuthDefinition { Type = "bearer", Token = "{{ environment.variables.T }}", CertificateBoundTokens = true }),
            e => e.Field == "auth.certificateBoundTokens");
    }

    [Fact]
    public void The_token_endpoint_is_sent_the_certificate_only_when_the_client_authenticates_with_it_or_tokens_are_bound()
    {
        static CompiledResource Compile(string? clientAuth, bool? bound) => ResourceCompiler.Compile("api", 1, new ResourceDefinition
        {
            BaseUrl = "https://api.example.com",
            Tls = new ResourceTlsDefinition { ClientCertificate = "{{ environment.variables.CERT }}", ClientKey = "{{ environment.variables.KEY }}" },
            Auth = new AuthDefinition
            {
                Type = "oauth2",
                TokenUrl = "https://login.example.com/token",
                ClientId = "c",
                ClientAuth = clientAuth,
                CertificateBoundTokens = bound,
                ClientSecret = clientAuth is null ? "{{ environment.variables.SECRET }}" : null,
            },
        });

        Assert.Contains("KEY", Compile("self_signed_tls_client_auth", null).OAuth2Variables);
        Assert.Contains("KEY", Compile(null, true).OAuth2Variables);
        Assert.DoesNotContain("KEY", Compile(null, null).OAuth2Variables);
        Assert.True(Compile("tls_client_auth", null).OAuth2!.UsesClientCertificate);
    }

    [Fact]
    public void A_token_bound_to_another_certificate_or_bound_while_none_is_presented_is_refused()
    {
        var tls = ClientTls.Read(TestCertificates.CertificatePem(Client), TestCertificates.KeyPem(Client), null, null, null, Where);
        static string Jwt(object payload) => "eyJhbGciOiJub25lIn0." +
            Convert.ToBase64String(Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(payload))).TrimEnd('=').Replace('+', '-').Replace('/', '_') + ".sig";

        var bound = Jwt(new Dictionary<string, object> { ["sub"] = "x", ["cnf"] = new Dictionary<string, string> { ["x5t#S256"] = TestCertificates.Thumbprint(Client) } });
        var boundElsewhere = Jwt(new Dictionary<string, object> { ["cnf"] = new Dictionary<string, string> { ["x5t#S256"] = TestCertificates.Thumbprint(Other) } });
        Assert.Null(CertificateBinding.Refusal(bound, tls));
        Assert.Null(CertificateBinding.Refusal(Jwt(new { sub = "unbound" }), null));
        Assert.Null(CertificateBinding.Refusal("an-opaque-token", null));
        Assert.Contains("other than the one the resource presents", CertificateBinding.Refusal(boundElsewhere, tls));
        Assert.Contains("would send it without one", CertificateBinding.Refusal(bound, null));
    }
}

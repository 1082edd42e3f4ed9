using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// A test certificate authority made in memory (<see cref="CertificateRequest"/>), and what it issues: a server
/// certificate for 127.0.0.1 and localhost, and client certificates (clientAuth). Nothing touches a certificate store.
/// </summary>
public sealed class TestCertificates
{
    private readonly RSA _caKey;

    private TestCertificates(string name)
    {
        _caKey = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name} Test CA", _caKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        Authority = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(1));
    }

    /// <summary>The CA certificate, with its key.</summary>
    public X509Certificate2 Authority { get; }

    /// <summary>The CA certificate as PEM (what <c>tls.caCertificate</c> holds).</summary>
    public string AuthorityPem => Authority.ExportCertificatePem();

    /// <summary>A new CA.</summary>
    public static TestCertificates Create(string name = "Keyway") => new(name);

    /// <summary>A server certificate for 127.0.0.1, ::1 and localhost, issued by this CA, with its key.</summary>
    public X509Certificate2 IssueServer()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddIpAddress(IPAddress.IPv6Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, critical: true));
        return Issue(request, key);
    }

    /// <summary>A client certificate (clientAuth) issued by this CA, with its key: RSA, or EC P-256 when <paramref name="ec"/>.</summary>
    public X509Certificate2 IssueClient(string subject, bool ec = false)
    {
        AsymmetricAlgorithm key = ec ? ECDsa.Create(ECCurve.NamedCurves.nistP256) : RSA.Create(2048);
        var request = ec
            ? new CertificateRequest($"CN={subject}", (ECDsa)key, HashAlgorithmName.SHA256)
            : new CertificateRequest($"CN={subject}", (RSA)key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        ClientExtensions(request);
        return Issue(request, key);
    }

    /// <summary>A self-signed client certificate (RFC 8705 <c>self_signed_tls_client_auth</c>), with its key.</summary>
    public static X509Certificate2 SelfSignedClient(string subject)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={subject}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        ClientExtensions(request);
        return Reload(request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30)));
    }

    /// <summary>The certificate as PEM, without its key.</summary>
    public static string CertificatePem(X509Certificate2 certificate) => certificate.ExportCertificatePem();

    /// <summary>The certificate's private key as unencrypted PKCS#8 PEM.</summary>
    public static string KeyPem(X509Certificate2 certificate) =>
        (certificate.GetRSAPrivateKey() as AsymmetricAlgorithm ?? certificate.GetECDsaPrivateKey()!).ExportPkcs8PrivateKeyPem();

    /// <summary>The certificate and its key as a PKCS#12 file, base64.</summary>
    public static string Pkcs12Base64(X509Certificate2 certificate, string? password) =>
        Convert.ToBase64String(certificate.Export(X509ContentType.Pkcs12, password));

    /// <summary>The SHA-256 thumbprint, base64url: the <c>x5t#S256</c> of RFC 8705.</summary>
    public static string Thumbprint(X509Certificate2 certificate) =>
        Convert.ToBase64String(SHA256.HashData(certificate.RawData)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static void ClientExtensions(CertificateRequest request)
    {
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.2")], critical: false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
    }

    private X509Certificate2 Issue(CertificateRequest request, AsymmetricAlgorithm key)
    {
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        // Signed with the CA's RSA key whatever the leaf's key is (an EC leaf's request names no RSA padding).
        using var issued = request.Create(Authority.SubjectName, X509SignatureGenerator.CreateForRSA(_caKey, RSASignaturePadding.Pkcs1),
            DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30), serial);
        var withKey = key switch
        {
            RSA rsa => issued.CopyWithPrivateKey(rsa),
            ECDsa ec => issued.CopyWithPrivateKey(ec),
            _ => throw new ArgumentOutOfRangeException(nameof(key)),
        };
        return Reload(withKey);
    }

    /// <summary>Through PKCS#12 and back: a certificate Kestrel can serve on every platform.</summary>
    private static X509Certificate2 Reload(X509Certificate2 certificate)
    {
        using (certificate)
            return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null, X509KeyStorageFlags.Exportable);
    }
}

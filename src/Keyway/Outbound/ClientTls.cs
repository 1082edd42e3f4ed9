using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Keyway.Api;

namespace Keyway.Outbound;

/// <summary>
/// A resource's TLS settings for its outbound connections, parsed once per value: the client certificate it
/// presents (with its private key and the intermediates to send) and the certificate authorities its upstream's
/// server certificate may chain to. The key never leaves this object: no property, <c>ToString</c> or debugger
/// view shows it, and a value that cannot be read is reported by its field, without a word of its text.
/// </summary>
[DebuggerDisplay("{ToString(),nq}")]
internal sealed class ClientTls
{
    private const string RsaOid = "1.2.840.113549.1.1.1";
    private const string EcOid = "1.2.840.10045.2.1";

    private ClientTls(string id, X509Certificate2? certificate, X509Certificate2Collection chain, X509Certificate2Collection? authorities)
    {
        Id = id;
        Certificate = certificate;
        Authorities = authorities;
        if (certificate is not null)
        {
            // Built once: the chain sent in every handshake (offline: the intermediates given, no fetching).
            Context = SslStreamCertificateContext.Create(certificate, chain, offline: true);
            Thumbprint = Base64Url(SHA256.HashData(certificate.RawData));
        }
    }

    /// <summary>A hash of the values the settings were read from: their version (a new value, a new pool).</summary>
    public string Id { get; }

    /// <summary>The client certificate, with its private key; null when only <see cref="Authorities"/> are set.</summary>
    public X509Certificate2? Certificate { get; }

    /// <summary>What the handshake presents: the certificate and its intermediates.</summary>
    public SslStreamCertificateContext? Context { get; }

    /// <summary>The certificate's SHA-256 thumbprint, base64url: RFC 8705's <c>x5t#S256</c> confirmation of a bound token.</summary>
    public string? Thumbprint { get; }

    /// <summary>The only roots the upstream's server certificate may chain to; null: the system's.</summary>
    public X509Certificate2Collection? Authorities { get; }

    /// <summary>When the client certificate expires.</summary>
    public DateTimeOffset? NotAfter => Certificate is null ? null : new DateTimeOffset(Certificate.NotAfter.ToUniversalTime(), TimeSpan.Zero);

    /// <summary>Never the key.</summary>
    public override string ToString() => Certificate is null ? "[tls: custom CA]" : $"[client certificate {Certificate.Subject}]";

    /// <summary>
    /// Reads the settings. The certificate comes from <paramref name="certificatePem"/> (the certificate, then its
    /// intermediates; with its key in the same PEM, or in <paramref name="keyPem"/>) or from <paramref name="pkcs12"/> (base64,
    /// with <paramref name="pkcs12Password"/>); <paramref name="authoritiesPem"/> holds the CA certificates to trust.
    /// </summary>
    /// <exception cref="KeywayException"><c>invalid_config</c>, naming the field and never quoting its value.</exception>
    public static ClientTls Read(string? certificatePem, string? keyPem, string? pkcs12, string? pkcs12Password, string? authoritiesPem, string where)
    {
        // PEM blocks joined without a line break (two variables in one template) read as they would with one.
        certificatePem = Separated(certificatePem);
        keyPem = Separated(keyPem);
        authoritiesPem = Separated(authoritiesPem);
        X509Certificate2? certificate = null;
        var chain = new X509Certificate2Collection();
        if (!string.IsNullOrWhiteSpace(pkcs12))
        {
            (certificate, chain) = ReadPkcs12(pkcs12, pkcs12Password, where);
        }
        else if (!string.IsNullOrWhiteSpace(certificatePem))
        {
            (certificate, chain) = ReadPem(certificatePem, keyPem, where);
        }
        else if (!string.IsNullOrWhiteSpace(keyPem))
        {
            throw Invalid($"{where}: tls.clientKey is set but tls.clientCertificate is empty in this environment: set the certificate's variable too.");
        }

        X509Certificate2Collection? authorities = null;
        if (!string.IsNullOrWhiteSpace(authoritiesPem))
        {
            authorities = ImportCertificates(authoritiesPem);
            if (authorities.Count == 0)
            {
                throw Invalid($"{where}: tls.caCertificate holds no PEM certificate (-----BEGIN CERTIFICATE-----).");
            }
        }

        var id = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
            string.Join('\n', certificatePem, keyPem, pkcs12, pkcs12Password, authoritiesPem))))[..32];
        return new ClientTls(id, certificate, chain, authorities);
    }

    private static (X509Certificate2, X509Certificate2Collection) ReadPem(string certificatePem, string? keyPem, string where)
    {
        var certificates = ImportCertificates(certificatePem);
        if (certificates.Count == 0)
        {
            throw Invalid($"{where}: tls.clientCertificate holds no PEM certificate (-----BEGIN CERTIFICATE-----), or one that cannot be read.");
        }

        var keyField = "tls.clientKey";
        if (string.IsNullOrWhiteSpace(keyPem))
        {
            if (!certificatePem.Contains("PRIVATE KEY-----", StringComparison.Ordinal))
            {
                throw Invalid($"{where}: tls.clientCertificate holds no private key: give it in tls.clientKey, or in the same PEM after the certificate.");
            }

            keyPem = certificatePem;
            keyField = "the private key in tls.clientCertificate";
        }

        if (keyPem.Contains("ENCRYPTED PRIVATE KEY", StringComparison.Ordinal) || keyPem.Contains("Proc-Type: 4,ENCRYPTED", StringComparison.Ordinal))
        {
            throw Invalid($"{where}: {keyField} is encrypted. Give the key unencrypted (openssl pkey -in key.pem -out key-plain.pem) in a secret variable, " +
                          "or the certificate and key as PKCS#12 (tls.pkcs12, with tls.pkcs12Password).");
        }

        // The leaf is the certificate whose public key is the key's: the PEM may list the chain in any order.
        foreach (var candidate in certificates)
        {
            if (TryPair(candidate, keyPem) is { } paired)
            {
                var chain = new X509Certificate2Collection();
                foreach (var other in certificates)
                {
                    if (!ReferenceEquals(other, candidate))
                    {
                        chain.Add(other);
                    }
                }

                return (paired, chain);
            }
        }

        throw Invalid(ReadsAsKey(keyPem)
            ? $"{where}: {keyField} does not match the certificate of tls.clientCertificate (their public keys differ): give the key the certificate was issued for."
            : $"{where}: {keyField} is not a PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY) of an RSA or EC key.");
    }

    private static (X509Certificate2, X509Certificate2Collection) ReadPkcs12(string pkcs12, string? password, string where)
    {
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(pkcs12.Trim());
        }
        catch (FormatException)
        {
            throw Invalid($"{where}: tls.pkcs12 is not base64. Store the .p12/.pfx file base64-encoded (base64 -w0 client.p12) in a secret variable.");
        }

        X509Certificate2Collection all;
        try
        {
            all = X509CertificateLoader.LoadPkcs12Collection(bytes, password, X509KeyStorageFlags.EphemeralKeySet);
        }
        catch (CryptographicException)
        {
            // What the exception says is about the file, never shown.
            throw Invalid(string.IsNullOrEmpty(password)
                ? $"{where}: tls.pkcs12 cannot be opened without a password, or is not a PKCS#12 file: set tls.pkcs12Password to its password's secret variable."
                : $"{where}: tls.pkcs12 cannot be opened with tls.pkcs12Password: the password is wrong, or the value is not a PKCS#12 file.");
        }

        X509Certificate2? leaf = null;
        var chain = new X509Certificate2Collection();
        foreach (var certificate in all)
        {
            if (leaf is null && certificate.HasPrivateKey)
            {
                leaf = certificate;
            }
            else
            {
                chain.Add(certificate);
            }
        }

        return leaf is null
            ? throw Invalid($"{where}: tls.pkcs12 holds no certificate with its private key.")
            : (leaf, chain);
    }

    /// <summary>The certificate with the key, or null when the key is not the certificate's (or not a key).</summary>
    private static X509Certificate2? TryPair(X509Certificate2 certificate, string keyPem)
    {
        AsymmetricAlgorithm? key = certificate.PublicKey.Oid.Value switch
        {
            RsaOid => RSA.Create(),
            EcOid => ECDsa.Create(),
            _ => null,
        };
        if (key is null)
        {
            return null;
        }

        try
        {
            key.ImportFromPem(keyPem);
            // The key stays with the certificate it is paired with (not disposed here).
            return key is RSA rsa ? certificate.CopyWithPrivateKey(rsa) : certificate.CopyWithPrivateKey((ECDsa)key);
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            // Dropped, not wrapped: what it says is about the key's text.
            key.Dispose();
            return null;
        }
    }

    /// <summary>Whether the text holds an RSA or EC private key at all (to tell "not a key" from "not this certificate's key").</summary>
    private static bool ReadsAsKey(string pem)
    {
        foreach (var algorithm in new AsymmetricAlgorithm[] { RSA.Create(), ECDsa.Create() })
        {
            using (algorithm)
            {
                try
                {
                    algorithm.ImportFromPem(pem);
                    return true;
                }
                catch (Exception e) when (e is ArgumentException or CryptographicException)
                {
                    // Not this algorithm's.
                }
            }
        }

        return false;
    }

    private static X509Certificate2Collection ImportCertificates(string pem)
    {
        var collection = new X509Certificate2Collection();
        try
        {
            collection.ImportFromPem(pem);
        }
        catch (CryptographicException)
        {
            // A CERTIFICATE block that does not decode: reported as no certificate.
            collection.Clear();
        }

        return collection;
    }

    private static string? Separated(string? pem) =>
        pem?.Contains("----------", StringComparison.Ordinal) == true ? pem.Replace("----------", "-----\n-----", StringComparison.Ordinal) : pem;

    private static string Base64Url(ReadOnlySpan<byte> bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static KeywayException Invalid(string message) => new(StatusCodes.Status400BadRequest, "invalid_config", message);
}

/// <summary>
/// The TLS settings a compiled definition has read, by a hash of their values: each parsed once per definition
/// version and value, not on every resolution. Dropped with the compiled definition.
/// </summary>
internal sealed class ClientTlsCache
{
    private const int Capacity = 16;
    private readonly ConcurrentDictionary<string, ClientTls> _read = new(StringComparer.Ordinal);

    public ClientTls Get(string? certificatePem, string? keyPem, string? pkcs12, string? pkcs12Password, string? authoritiesPem, string where)
    {
        var id = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(
            string.Join('\n', certificatePem, keyPem, pkcs12, pkcs12Password, authoritiesPem, where))));
        if (_read.TryGetValue(id, out var tls))
        {
            return tls;
        }

        tls = ClientTls.Read(certificatePem, keyPem, pkcs12, pkcs12Password, authoritiesPem, where);
        if (_read.Count >= Capacity)
        {
            // Old values of rotated certificates: drop them all rather than track their age.
            _read.Clear();
        }

        return _read.GetOrAdd(id, tls);
    }

    /// <summary>How many settings were read and kept (tests).</summary>
    public int Count => _read.Count;
}

/// <summary>A resource's TLS settings in one environment: what its connection pool is keyed by.</summary>
internal sealed record TlsBinding(string Resource, string Environment, ClientTls Tls);

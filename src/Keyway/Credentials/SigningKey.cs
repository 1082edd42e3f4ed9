using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Keyway.Api;

namespace Keyway.Credentials;

/// <summary>
/// A private key that signs JWTs (RS256 or ES256): the assertions of the RFC 7523 grant and of
/// <c>private_key_jwt</c> client authentication, and GitHub App JWTs. Parsed once from PEM and kept;
/// the key never leaves this object: no property, <c>ToString</c> or debugger view shows it, and a key
/// that cannot be read is reported without a word of its text.
/// </summary>
[DebuggerDisplay("{ToString(),nq}")]
internal sealed class SigningKey
{
    private readonly AsymmetricAlgorithm _key;
    private readonly string _header;

    private SigningKey(AsymmetricAlgorithm key, string algorithm, string? keyId)
    {
        _key = key;
        Algorithm = algorithm;
        KeyId = keyId;
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("alg", algorithm);
            writer.WriteString("typ", "JWT");
            if (keyId is not null)
            {
                writer.WriteString("kid", keyId);
            }

            writer.WriteEndObject();
        }

        _header = Base64Url(buffer.ToArray());
    }

    /// <summary><c>RS256</c> or <c>ES256</c>.</summary>
    public string Algorithm { get; }

    /// <summary>The <c>kid</c> header, if any.</summary>
    public string? KeyId { get; }

    public static readonly string[] Algorithms = ["RS256", "ES256"];

    /// <summary>
    /// Reads a PEM private key (PKCS#8 <c>PRIVATE KEY</c>, PKCS#1 <c>RSA PRIVATE KEY</c> or SEC 1 <c>EC PRIVATE KEY</c>).
    /// The algorithm is the key's (RSA: RS256, P-256: ES256) unless <paramref name="algorithm"/> names it.
    /// </summary>
    /// <exception cref="KeywayException"><c>invalid_config</c>, never quoting the key.</exception>
    public static SigningKey FromPem(string pem, string? algorithm, string? keyId, string field)
    {
        if (algorithm is not null && !Algorithms.Contains(algorithm))
        {
            throw Invalid($"'{algorithm}' is not a supported signing algorithm; use RS256 or ES256.");
        }

        // The PEM label says which algorithm the key is for; a PKCS#8 key says it inside, so both are tried.
        var label = pem.Contains("BEGIN RSA PRIVATE KEY", StringComparison.Ordinal) ? "RSA"
            : pem.Contains("BEGIN EC PRIVATE KEY", StringComparison.Ordinal) ? "EC"
            : null;
        if (label != "EC" && algorithm != "ES256")
        {
            var rsa = RSA.Create();
            if (TryImport(rsa, pem))
            {
                if (rsa.KeySize < 2048)
                {
                    rsa.Dispose();
                    throw Invalid($"{field} is an RSA key of {rsa.KeySize} bits: use one of at least 2048 bits.");
                }

                return new SigningKey(rsa, "RS256", keyId);
            }

            rsa.Dispose();
        }

        if (label != "RSA" && algorithm != "RS256")
        {
            var ec = ECDsa.Create();
            if (TryImport(ec, pem))
            {
                if (ec.KeySize != 256)
                {
                    ec.Dispose();
                    throw Invalid($"{field} is an EC key on a {ec.KeySize}-bit curve: ES256 needs a P-256 key.");
                }

                return new SigningKey(ec, "ES256", keyId);
            }

            ec.Dispose();
        }

        throw Invalid(algorithm is null
            ? $"{field} is not a PEM private key (-----BEGIN PRIVATE KEY-----, RSA PRIVATE KEY or EC PRIVATE KEY), or not an unencrypted one."
            : $"{field} is not an unencrypted PEM private key for {algorithm}.");

        static KeywayException Invalid(string message) => new(StatusCodes.Status400BadRequest, "invalid_config", message);
    }

    /// <summary>
    /// A signed JWT over the claims <paramref name="writeClaims"/> writes into the payload object.
    /// Called per token request, never per resource request.
    /// </summary>
    public string Sign(Action<Utf8JsonWriter> writeClaims)
    {
        var payload = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(payload))
        {
            writer.WriteStartObject();
            writeClaims(writer);
            writer.WriteEndObject();
        }

        var signingInput = _header + "." + Base64Url(payload.WrittenSpan);
        var data = Encoding.ASCII.GetBytes(signingInput);
        // JWS wants ECDSA signatures as r||s (IEEE P1363), which is what SignData gives by default.
        var signature = _key switch
        {
            RSA rsa => rsa.SignData(data, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1),
            ECDsa ec => ec.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation),
            _ => throw new UnreachableException(),
        };
        return signingInput + "." + Base64Url(signature);
    }

    /// <summary>
    /// An RSASSA-PKCS1-v1_5 signature of <paramref name="data"/> with <paramref name="hash"/> (OAuth 1.0a's RSA-SHA1):
    /// for a key read as RS256, called per request with the key parsed once.
    /// </summary>
    public byte[] SignRsa(ReadOnlySpan<byte> data, HashAlgorithmName hash) =>
        _key is RSA rsa ? rsa.SignData(data, hash, RSASignaturePadding.Pkcs1) : throw new InvalidOperationException("Not an RSA key.");

    /// <summary>A fingerprint of the public key (SHA-256 of its SubjectPublicKeyInfo): tells keys apart in a parameters hash.</summary>
    public string PublicKeyFingerprint => Convert.ToHexStringLower(SHA256.HashData(_key.ExportSubjectPublicKeyInfo()))[..16];

    /// <summary>Never the key.</summary>
    public override string ToString() => $"[signing key {Algorithm}{(KeyId is null ? "" : " " + KeyId)}]";

    public static string Base64Url(ReadOnlySpan<byte> bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private static bool TryImport(AsymmetricAlgorithm key, string pem)
    {
        try
        {
            key.ImportFromPem(pem);
            return true;
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            // The exception is dropped, not wrapped: what it says is about the key's text.
            return false;
        }
    }
}

/// <summary>
/// The keys a compiled definition has read, by a hash of their text (and algorithm and kid): a key is parsed
/// once per definition version and value, not on every resolution. One cache per compiled auth method, so a
/// new definition version (or a dropped one) drops its keys with it.
/// </summary>
internal sealed class SigningKeyCache
{
    private const int Capacity = 16;
    private readonly ConcurrentDictionary<string, SigningKey> _keys = new(StringComparer.Ordinal);

    public SigningKey Get(string pem, string? algorithm, string? keyId, string field)
    {
        var id = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(pem + "\n" + algorithm + "\n" + keyId)));
        if (_keys.TryGetValue(id, out var key))
        {
            return key;
        }

        key = SigningKey.FromPem(pem, algorithm, keyId, field);
        if (_keys.Count >= Capacity)
        {
            // Old values of rotated keys: drop them all rather than track their age.
            _keys.Clear();
        }

        return _keys.GetOrAdd(id, key);
    }

    /// <summary>How many keys were parsed and kept (tests).</summary>
    public int Count => _keys.Count;
}

using System.Text;
using System.Text.Json;
using Keyway.Outbound;

namespace Keyway.Credentials;

/// <summary>
/// RFC 8705 certificate-bound access tokens: a JWT access token whose <c>cnf</c> claim names a certificate
/// (<c>x5t#S256</c>) is only of use on connections that present that certificate. Keyway sends a resource's token
/// on its connections, which present the resource's <c>tls</c> client certificate; a token bound to another one
/// (or to one while the resource presents none) is refused where it is obtained, with a message that says why.
/// </summary>
internal static class CertificateBinding
{
    /// <summary>Why the token cannot be sent with <paramref name="tls"/>, or null (not a JWT, not bound, or bound to its certificate).</summary>
    public static string? Refusal(string accessToken, ClientTls? tls)
    {
        if (Confirmation(accessToken) is not { } thumbprint || thumbprint == tls?.Thumbprint)
        {
            return null;
        }

        return tls?.Thumbprint is null
            ? "The provider bound the access token to a client certificate (RFC 8705, cnf x5t#S256), and the resource would send it without one. " +
              "Give the resource its client certificate (tls.clientCertificate with tls.clientKey, or tls.pkcs12) and set auth.certificateBoundTokens: true, " +
              "so that its token requests and its requests present the same certificate."
            : "The provider bound the access token to a client certificate (RFC 8705, cnf x5t#S256) other than the one the resource presents (tls): " +
              "check that the provider is sent the resource's certificate (auth.certificateBoundTokens: true, or a mutual TLS clientAuth).";
    }

    /// <summary>The <c>cnf.x5t#S256</c> of a JWT access token, or null.</summary>
    internal static string? Confirmation(string token)
    {
        var first = token.IndexOf('.', StringComparison.Ordinal);
        var second = first < 0 ? -1 : token.IndexOf('.', first + 1);
        if (second < 0 || second - first > 64 * 1024)
        {
            return null;
        }

        try
        {
            var segment = token[(first + 1)..second].Replace('-', '+').Replace('_', '/');
            var payload = Convert.FromBase64String(segment.PadRight(segment.Length + ((4 - (segment.Length % 4)) % 4), '='));
            using var document = JsonDocument.Parse(payload);
            return document.RootElement.ValueKind == JsonValueKind.Object &&
                   document.RootElement.TryGetProperty("cnf", out var cnf) && cnf.ValueKind == JsonValueKind.Object &&
                   cnf.TryGetProperty("x5t#S256", out var x5t) && x5t.ValueKind == JsonValueKind.String
                ? x5t.GetString()
                : null;
        }
        catch (Exception e) when (e is FormatException or JsonException or DecoderFallbackException)
        {
            // Not a JWT Keyway can read: an opaque token says nothing of a binding.
            return null;
        }
    }
}

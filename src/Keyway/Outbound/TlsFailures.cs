using System.Security.Authentication;

namespace Keyway.Outbound;

/// <summary>
/// Tells a failed TLS connection from other failures to reach an upstream, and says what to do about it: a server
/// certificate Keyway does not trust (<c>tls.caCertificate</c>), a server that wants a client certificate the resource
/// does not present, or one that refused the certificate it presents.
/// </summary>
internal static class TlsFailures
{
    /// <summary>The problem code of a failed TLS connection.</summary>
    public const string Code = "upstream_tls_failed";

    /// <summary>What went wrong and what to do, or null when <paramref name="exception"/> is not about TLS.</summary>
    /// <remarks>
    /// A server that requires a client certificate refuses one it does not accept (or its absence) with a TLS alert in
    /// TLS 1.2, and in TLS 1.3 often by closing the connection once the handshake is done: on an https upstream, an
    /// answer that ended before it began is reported here too.
    /// </remarks>
    public static string? Describe(Exception? exception, string resource, Uri baseUrl, ClientTls? tls)
    {
        if (exception is null)
        {
            return null;
        }

        var handshake = false;
        var alert = false;
        var ended = false;
        var untrusted = false;
        var innermost = exception;
        for (var e = exception; e is not null; e = e.InnerException)
        {
            innermost = e;
            handshake |= e is AuthenticationException;
            alert |= e.Message.Contains(" alert ", StringComparison.OrdinalIgnoreCase);
            untrusted |= e.Message.Contains("remote certificate", StringComparison.OrdinalIgnoreCase);
            ended |= e is HttpIOException { HttpRequestError: HttpRequestError.ResponseEnded } ||
                     (e is IOException && e.Message.Contains("unexpected EOF", StringComparison.OrdinalIgnoreCase));
        }

        if (!handshake && !alert && !(ended && baseUrl.Scheme == Uri.UriSchemeHttps))
        {
            return null;
        }

        var hint = untrusted
            ? tls?.Authorities is null
                ? "Keyway does not trust the server's certificate: if a private CA issued it, give the CA's certificate in tls.caCertificate."
                : "the server's certificate does not chain to tls.caCertificate, or does not name the host of the base URL."
            : tls?.Certificate is null
                ? "the server may require a client certificate, and the resource presents none: give it one (tls.clientCertificate with tls.clientKey, or tls.pkcs12)."
                : $"the server may have refused the resource's client certificate ({tls.Certificate.Subject}, valid until {tls.NotAfter:yyyy-MM-dd}): " +
                  "check that it is one the server accepts.";
        // The innermost message is the library's (an OpenSSL reason, "The response ended prematurely"): it names no value.
        return $"The TLS connection to resource '{resource}' failed ({innermost.Message.TrimEnd('.')}): {hint}";
    }
}

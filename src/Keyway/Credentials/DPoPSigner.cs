namespace Keyway.Credentials;

/// <summary>
/// DPoP on the requests of one resolved oauth2 resource (RFC 9449, section 7): the last step before a request is
/// sent, as an AWS signature is, so the proof names the method and URL actually sent, on every hop and retry.
/// Each proof is new (its own <c>jti</c> and <c>iat</c>), carries the access token's hash (<c>ath</c>, computed once
/// per credential) and the latest nonce the server gave (<see cref="DPoPNonces"/>).
/// </summary>
internal sealed class DPoPSigner(DPoPKeyStore keys, DPoPNonces nonces, string algorithm, TimeProvider time)
{
    // The owner of the access token hash a credential keeps (Credential.DerivedBy).
    private static readonly object s_athOwner = new();

    public string Algorithm { get; } = algorithm;

    /// <summary>The key of <paramref name="key"/>'s credential: from memory after its first use.</summary>
    public ValueTask<DPoPKey> KeyAsync(CredentialKey key, CancellationToken cancellationToken) => keys.GetAsync(key, Algorithm, cancellationToken);

    /// <summary>Puts a fresh proof for <paramref name="request"/> as it is now (method, URL) in its <c>DPoP</c> header.</summary>
    public void Sign(HttpRequestMessage request, DPoPKey key, Credential credential)
    {
        var url = request.RequestUri!;
        var ath = credential.DerivedBy(s_athOwner, () => DPoPKey.AccessTokenHash(credential.Tokens.AccessToken.Reveal()));
        var proof = key.Proof(request.Method.Method, DPoPKey.TargetUri(url), time.GetUtcNow(), ath, nonces.For(url));
        request.Headers.Remove(DPoPHeaders.Proof);
        request.Headers.TryAddWithoutValidation(DPoPHeaders.Proof, proof);
    }

    /// <summary>
    /// Remembers a nonce the answer gives (a server may send a new one on any answer); true when the answer is a
    /// <c>401</c> that asks for one (<c>use_dpop_nonce</c>): the request may be sent again, once, with it.
    /// </summary>
    public bool AsksForNonce(Uri url, HttpResponseMessage response) =>
        nonces.Remember(url, response) && DPoPHeaders.AsksForNonce(response);

    /// <summary>Never a key.</summary>
    public override string ToString() => $"[DPoP {Algorithm}]";
}

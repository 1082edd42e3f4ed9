using System.Buffers.Text;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Keyway.Credentials;
using Keyway.Resources;
using Microsoft.Extensions.Time.Testing;

namespace Keyway.Tests.Credentials;

/// <summary>The DPoP proof Keyway signs (RFC 9449, section 4.2), read back and verified with its own jwk; the definition's checks.</summary>
public sealed class DPoPProofTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-03-01T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture);

    private static (JsonObject Header, JsonObject Claims) Verify(string proof)
    {
        var parts = proof.Split('.');
        Assert.Equal(3, parts.Length);
        var header = JsonNode.Parse(Base64Url.DecodeFromChars(parts[0]))!.AsObject();
        var claims = JsonNode.Parse(Base64Url.DecodeFromChars(parts[1]))!.AsObject();
        var jwk = header["jwk"]!.AsObject();
        var input = Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]);
        var signature = Base64Url.DecodeFromChars(parts[2]);
        byte[] B(string name) => Base64Url.DecodeFromChars((string)jwk[name]!);
        var valid = (string)header["alg"]! switch
        {
            "ES256" => ECDsa.Create(new ECParameters { Curve = ECCurve.NamedCurves.nistP256, Q = new ECPoint { X = B("x"), Y = B("y") } })
                .VerifyData(input, signature, HashAlgorithmName.SHA256),
            "RS256" => RSA.Create(new RSAParameters { Modulus = B("n"), Exponent = B("e") }).VerifyData(input, signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1),
            "PS256" => RSA.Create(new RSAParameters { Modulus = B("n"), Exponent = B("e") }).VerifyData(input, signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pss),
            var other => throw new InvalidOperationException(other),
        };
        Assert.True(valid, "The proof's signature does not verify with its jwk.");
        return (header, claims);
    }

    [Theory]
    [InlineData("ES256", "EC")]
    [InlineData("RS256", "RSA")]
    [InlineData("PS256", "RSA")]
    public void A_proof_names_the_request_the_time_the_token_and_the_public_key_only(string algorithm, string kty)
    {
        using var key = DPoPKey.Generate(algorithm);
        var token = "access-token-123";

        var (header, claims) = Verify(key.Proof("GET", DPoPKey.TargetUri(new Uri("https://api.example.com/v1/things?page=2#top")), Now, DPoPKey.AccessTokenHash(token), "n-1"));

        Assert.Equal("dpop+jwt", (string?)header["typ"]);
        Assert.Equal(algorithm, (string?)header["alg"]);
        Assert.Equal(kty, (string?)header["jwk"]!["kty"]);
        Assert.Null(header["jwk"]!["d"]);
        Assert.Null(header["jwk"]!["p"]);
        Assert.Equal("GET", (string?)claims["htm"]);
        Assert.Equal("https://api.example.com/v1/things", (string?)claims["htu"]);
        Assert.Equal(Now.ToUnixTimeSeconds(), (long)claims["iat"]!);
        Assert.Equal(Base64Url.EncodeToString(SHA256.HashData(Encoding.ASCII.GetBytes(token))), (string?)claims["ath"]);
        Assert.Equal("n-1", (string?)claims["nonce"]);
        Assert.Equal(22, ((string)claims["jti"]!).Length);
        // The thumbprint is RFC 7638's: the SHA-256 of the jwk's required members, sorted, without whitespace.
        var canonical = kty == "EC"
            ? $"{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{header["jwk"]!["x"]}\",\"y\":\"{header["jwk"]!["y"]}\"}}"
            : $"{{\"e\":\"{header["jwk"]!["e"]}\",\"kty\":\"RSA\",\"n\":\"{header["jwk"]!["n"]}\"}}";
        Assert.Equal(Base64Url.EncodeToString(SHA256.HashData(Encoding.UTF8.GetBytes(canonical))), key.Thumbprint);
    }

    [Fact]
    public void A_token_request_proof_has_no_ath_or_nonce_and_every_proof_has_its_own_jti()
    {
        using var key = DPoPKey.Generate("ES256");

        var first = Verify(key.Proof("POST", "https://as.example.com/token", Now, null, null)).Claims;
        var second = Verify(key.Proof("POST", "https://as.example.com/token", Now, null, null)).Claims;

        Assert.Null(first["ath"]);
        Assert.Null(first["nonce"]);
        Assert.NotEqual((string?)first["jti"], (string?)second["jti"]);
    }

    [Fact]
    public void A_key_read_back_from_the_store_is_the_same_key_and_shows_nothing_of_itself()
    {
        using var key = DPoPKey.Generate("ES256");
        var pkcs8 = key.ExportForStore();
        using var again = DPoPKey.Import(pkcs8, "ES256");

        Assert.Equal(key.Thumbprint, again.Thumbprint);
        Assert.Equal($"[DPoP key ES256 {key.Thumbprint}]", again.ToString());
        Assert.Throws<CryptographicException>(() => DPoPKey.Import(pkcs8.AsSpan(0, 20), "ES256"));
    }

    [Fact]
    public void The_signer_proves_the_request_as_sent_with_the_clock_the_token_hash_and_the_servers_latest_nonce()
    {
        var time = new FakeTimeProvider(Now);
        var nonces = new DPoPNonces();
        var signer = new DPoPSigner(null!, nonces, "ES256", time);
        using var key = DPoPKey.Generate("ES256");
        var credential = new Credential(new CredentialKey("r", "production", "shared"),
            new TokenSet { AccessToken = new Keyway.Secrets.Secret("tok-abc"), ObtainedAt = Now }, 1, null, "h");
        using var challenge = new HttpResponseMessage(System.Net.HttpStatusCode.Unauthorized);
        challenge.Headers.TryAddWithoutValidation("WWW-Authenticate", "DPoP algs=\"ES256\", error=\"use_dpop_nonce\", error_description=\"nonce\"");
        challenge.Headers.Add("DPoP-Nonce", "server-nonce-7");

        Assert.True(signer.AsksForNonce(new Uri("https://api.example.com/other"), challenge));
        time.Advance(TimeSpan.FromSeconds(90));
        using var request = new HttpRequestMessage(HttpMethod.Delete, "https://api.example.com/v1/things/9?force=true");
        request.Headers.TryAddWithoutValidation("DPoP", "the caller's own");
        signer.Sign(request, key, credential);

        var claims = Verify(Assert.Single(request.Headers.GetValues("DPoP"))).Claims;
        Assert.Equal("DELETE", (string?)claims["htm"]);
        Assert.Equal("https://api.example.com/v1/things/9", (string?)claims["htu"]);
        Assert.Equal(Now.AddSeconds(90).ToUnixTimeSeconds(), (long)claims["iat"]!);
        Assert.Equal(DPoPKey.AccessTokenHash("tok-abc"), (string?)claims["ath"]);
        Assert.Equal("server-nonce-7", (string?)claims["nonce"]);
        Assert.Null(nonces.For(new Uri("https://other.example.com/")));
    }

    [Fact]
    public void A_401_without_the_nonce_error_is_not_a_nonce_challenge()
    {
        using var refused = new HttpResponseMessage(System.Net.HttpStatusCode.Unauthorized);
        refused.Headers.WwwAuthenticate.Add(new AuthenticationHeaderValue("DPoP", "error=\"invalid_token\""));
        refused.Headers.Add("DPoP-Nonce", "n");

        Assert.False(DPoPHeaders.AsksForNonce(refused));
    }

    private static ResourceValidationException Refused(AuthDefinition auth) =>
        Assert.Throws<ResourceValidationException>(() => ResourceCompiler.Compile("r", 1, new ResourceDefinition { BaseUrl = "https://api.example.com", Auth = auth }));

    private static AuthDefinition OAuth2(DPoPDefinition dpop) => new()
    {
        Type = "oauth2",
        TokenUrl = "https://as.example.com/token",
        ClientId = "c",
        ClientSecret = "{{ environment.variables.S }}",
        Dpop = dpop,
    };

    [Fact]
    public void A_DPoP_resource_sends_its_token_as_Authorization_DPoP_and_ES256_is_the_default()
    {
        var compiled = ResourceCompiler.Compile("r", 1, new ResourceDefinition { BaseUrl = "https://api.example.com", Auth = OAuth2(new DPoPDefinition()) }).OAuth2!;

        Assert.Equal("ES256", compiled.DPoPAlgorithm);
        Assert.Equal("DPoP ", compiled.TokenPrefix);
        Assert.Equal("Authorization", compiled.TokenName);
    }

    [Fact]
    public void DPoP_settings_that_cannot_work_are_refused_field_by_field()
    {
        Assert.Contains(Refused(OAuth2(new DPoPDefinition { Algorithm = "HS256" })).Errors, e => e.Field == "auth.dpop.algorithm" && e.Message.Contains("ES256, RS256, PS256"));
        Assert.Contains(Refused(OAuth2(new DPoPDefinition()) with { In = "query" }).Errors, e => e.Field == "auth.in");
        Assert.Contains(Refused(OAuth2(new DPoPDefinition()) with { Prefix = "Bearer " }).Errors, e => e.Field == "auth.prefix");
        Assert.Contains(Refused(OAuth2(new DPoPDefinition()) with { Name = "X-Token" }).Errors, e => e.Field == "auth.name");
        Assert.Contains(Refused(new AuthDefinition { Type = "bearer", Token = "{{ environment.variables.T }}", Dpop = new DPoPDefinition() }).Errors,
            e => e.Field == "auth.dpop" && e.Message.Contains("oauth2"));
    }

    [Theory]
    [InlineData("true", null)]
    [InlineData("{\"algorithm\":\"PS256\"}", "PS256")]
    public void The_definition_reads_true_or_an_object_and_writes_them_back(string json, string? algorithm)
    {
        var auth = JsonSerializer.Deserialize<AuthDefinition>($"{{\"type\":\"oauth2\",\"dpop\":{json}}}", ConfigJson.Options)!;

        Assert.Equal(algorithm, auth.Dpop!.Algorithm);
        Assert.Contains($"\"dpop\":{json}", JsonSerializer.Serialize(auth, ConfigJson.Options));
        Assert.Null(JsonSerializer.Deserialize<AuthDefinition>("{\"type\":\"oauth2\",\"dpop\":false}", ConfigJson.Options)!.Dpop);
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<AuthDefinition>("{\"dpop\":{\"alg\":\"ES256\"}}", ConfigJson.Options));
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<AuthDefinition>("{\"dpop\":\"yes\"}", ConfigJson.Options));
    }
}

using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Keyway.Credentials;
using Keyway.Outbound;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Credentials;

/// <summary>
/// The token request of a DPoP resource against a token endpoint that answers as told: the proof it carries, the
/// nonce challenge answered once, and a bearer answer to a DPoP request refused.
/// </summary>
[Trait("Category", "Integration")]
public sealed class DPoPTokenRequestTests
{
    private static readonly CredentialKey Key = new("api", "production", CredentialKey.Shared);

    private static async Task<(OAuth2Client Client, DPoPKeyStore Keys, ScratchStore Scratch)> ClientAsync()
    {
        var scratch = await ScratchStore.CreateAsync(StoreKind.Sqlite);
        await new Migrator(scratch.Database, TimeProvider.System, NullLogger<Migrator>.Instance).ApplyAsync(CancellationToken.None);
        var ring = await KeyRing.OpenAsync(MasterKeyRing.FromKeys(RandomNumberGenerator.GetBytes(32)), new DataKeyStore(scratch.Database), TimeProvider.System, CancellationToken.None);
        var keys = new DPoPKeyStore(scratch.Database, ring, TimeProvider.System, NullLogger<DPoPKeyStore>.Instance);
        var outbound = new OutboundClient(new DestinationPolicy(new DestinationPolicyOptions { Allow = ["127.0.0.0/8"] }), new OutboundHandlerOptions());
        return (new OAuth2Client(outbound, TimeProvider.System, keys), keys, scratch);
    }

    private static OAuth2Settings Settings(UpstreamServer server) => new()
    {
        Grant = "client_credentials",
        TokenUrl = server.BaseUrl + "/token",
        ClientId = "keyway",
        ClientSecret = new Secret("client-secret-1"),
        DPoPAlgorithm = "ES256",
    };

    private static JsonObject Claims(string proof) => JsonNode.Parse(Base64Url.DecodeFromChars(proof.Split('.')[1]))!.AsObject();

    [Fact]
    public async Task A_nonce_challenge_is_answered_once_with_the_servers_nonce_and_a_fresh_proof()
    {
        var calls = 0;
        await using var server = await UpstreamServer.StartAsync(app => app.MapPost("/token", (HttpContext context) =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                context.Response.Headers["DPoP-Nonce"] = "as-nonce-1";
                return Results.Json(new { error = "use_dpop_nonce", error_description = "Authorization server requires nonce in DPoP proof" }, statusCode: 400);
            }

            return Results.Json(new { access_token = "bound-token", token_type = "DPoP", expires_in = 300 });
        }));
        var (client, keys, scratch) = await ClientAsync();
        await using var _ = scratch;

        var result = await client.RequestTokenAsync(Settings(server), "client_credentials", null, null, null, null, Key, CancellationToken.None);

        Assert.Equal("bound-token", result.Tokens!.AccessToken.Reveal());
        var proofs = server.Requests.Where(r => r.Path == "/token").Select(r => r.Headers["DPoP"]).ToList();
        Assert.Equal(2, proofs.Count);
        var (first, second) = (Claims(proofs[0]), Claims(proofs[1]));
        Assert.Null(first["nonce"]);
        Assert.Equal("as-nonce-1", (string?)second["nonce"]);
        Assert.NotEqual((string?)first["jti"], (string?)second["jti"]);
        Assert.Equal("POST", (string?)second["htm"]);
        Assert.Equal(server.BaseUrl + "/token", (string?)second["htu"]);
        Assert.Null(second["ath"]);
        // Signed with the credential's stored key.
        var key = await keys.GetAsync(Key, "ES256", CancellationToken.None);
        var header = JsonNode.Parse(Base64Url.DecodeFromChars(proofs[1].Split('.')[0]))!;
        Assert.Equal("dpop+jwt", (string?)header["typ"]);
        Assert.Equal(key.Thumbprint, Base64Url.EncodeToString(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(
            $"{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{header["jwk"]!["x"]}\",\"y\":\"{header["jwk"]!["y"]}\"}}"))));

        // The next token request carries the nonce from the start.
        await client.RequestTokenAsync(Settings(server), "client_credentials", null, null, null, null, Key, CancellationToken.None);
        Assert.Equal("as-nonce-1", (string?)Claims(server.Requests.Where(r => r.Path == "/token").Last().Headers["DPoP"])["nonce"]);
        Assert.Equal(3, calls);
    }

    [Fact]
    public async Task A_bearer_token_given_for_a_DPoP_request_is_not_used()
    {
        await using var server = await UpstreamServer.StartAsync(app => app.MapPost("/token", () =>
            Results.Json(new { access_token = "unbound-token", token_type = "Bearer", expires_in = 300 })));
        var (client, _, scratch) = await ClientAsync();
        await using var __ = scratch;

        var result = await client.RequestTokenAsync(Settings(server), "client_credentials", null, null, null, null, Key, CancellationToken.None);

        Assert.Null(result.Tokens);
        Assert.Equal(FailureKind.Misconfigured, result.Failure);
        Assert.Contains("'Bearer' token although the request carried a DPoP proof", result.Error);
        Assert.DoesNotContain("unbound-token", result.Error);
    }

    [Fact]
    public async Task A_second_nonce_challenge_is_the_servers_answer()
    {
        await using var server = await UpstreamServer.StartAsync(app => app.MapPost("/token", (HttpContext context) =>
        {
            context.Response.Headers["DPoP-Nonce"] = "n-" + Guid.NewGuid().ToString("N");
            return Results.Json(new { error = "use_dpop_nonce" }, statusCode: 400);
        }));
        var (client, _, scratch) = await ClientAsync();
        await using var __ = scratch;

        var result = await client.RequestTokenAsync(Settings(server), "client_credentials", null, null, null, null, Key, CancellationToken.None);

        Assert.Equal(FailureKind.Misconfigured, result.Failure);
        Assert.Contains("use_dpop_nonce", result.Error);
        Assert.Equal(2, server.Requests.Count(r => r.Path == "/token"));
    }
}

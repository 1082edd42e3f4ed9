using System.Net;
using System.Security.Cryptography;
using System.Text;
using Keyway.Api;
using Keyway.Credentials;
using Microsoft.Extensions.Time.Testing;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Keyway.Tests.Credentials;

/// <summary>Signing keys read from PEM, the JWTs they sign, and GitHub App installation tokens on a fake clock.</summary>
public sealed class SignedJwtTests
{
    private static readonly CredentialKey Key = EngineFixture.Key;

    [Fact]
    public async Task An_RS256_key_with_a_kid_and_an_ES256_key_sign_JWTs_that_an_independent_library_verifies()
    {
        using var rsa = RSA.Create(2048);
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        foreach (var (pem, verifying, algorithm, kid) in new (string, SecurityKey, string, string?)[]
                 {
                     (rsa.ExportRSAPrivateKeyPem(), new RsaSecurityKey(rsa.ExportParameters(false)), "RS256", "key-1"),
                     (rsa.ExportPkcs8PrivateKeyPem(), new RsaSecurityKey(rsa.ExportParameters(false)), "RS256", null),
                     (ec.ExportECPrivateKeyPem(), new ECDsaSecurityKey(ECDsa.Create(ec.ExportParameters(false))), "ES256", "ec"),
                     (ec.ExportPkcs8PrivateKeyPem(), new ECDsaSecurityKey(ECDsa.Create(ec.ExportParameters(false))), "ES256", null),
                 })
        {
            var key = SigningKey.FromPem(pem, null, kid, "auth.privateKey");
            var jwt = key.Sign(claims =>
            {
                claims.WriteString("iss", "me");
                claims.WriteNumber("exp", DateTimeOffset.UtcNow.AddMinutes(5).ToUnixTimeSeconds());
            });

            var result = await new JsonWebTokenHandler().ValidateTokenAsync(jwt, new TokenValidationParameters
            {
                IssuerSigningKey = verifying,
                ValidIssuer = "me",
                ValidateAudience = false,
                ValidAlgorithms = [algorithm],
            });
            Assert.True(result.IsValid, result.Exception?.Message);
            var token = (JsonWebToken)result.SecurityToken;
            Assert.Equal(algorithm, token.Alg);
            Assert.Equal(kid, token.Kid is { Length: > 0 } k ? k : null);
            Assert.DoesNotContain(pem, key.ToString());
        }
    }

    [Fact]
    public void A_key_that_cannot_be_read_is_reported_without_a_word_of_it()
    {
        using var rsa = RSA.Create(2048);
        var pem = rsa.ExportPkcs8PrivateKeyPem();
        var broken = pem.Replace(pem.Split('\n')[5], "!!not base64!!", StringComparison.Ordinal);
        var body = pem.Split('\n')[3];

        var error = Assert.Throws<KeywayException>(() => SigningKey.FromPem(broken, null, null, "auth.privateKey"));
        Assert.Equal("invalid_config", error.Code);
        Assert.DoesNotContain(body, error.ToString());
        Assert.Null(error.InnerException);
        Assert.Throws<KeywayException>(() => SigningKey.FromPem(pem, "ES256", null, "auth.privateKey"));
        using var small = RSA.Create(1024);
        Assert.Contains("2048", Assert.Throws<KeywayException>(() => SigningKey.FromPem(small.ExportPkcs8PrivateKeyPem(), null, null, "auth.privateKey")).Message);
        var json = Assert.Throws<KeywayException>(() => GoogleServiceAccount.Parse("{\"private_key\": \"" + body + "\"", "auth.serviceAccountKey"));
        Assert.DoesNotContain(body, json.ToString());
    }

    [Fact]
    public void A_key_is_parsed_once_per_value()
    {
        using var rsa = RSA.Create(2048);
        using var other = RSA.Create(2048);
        var cache = new SigningKeyCache();

        var first = cache.Get(rsa.ExportPkcs8PrivateKeyPem(), null, "k", "auth.privateKey");
        var again = cache.Get(rsa.ExportPkcs8PrivateKeyPem(), null, "k", "auth.privateKey");
        var rotated = cache.Get(other.ExportPkcs8PrivateKeyPem(), null, "k", "auth.privateKey");

        Assert.Same(first, again);
        Assert.NotSame(first, rotated);
        Assert.Equal(2, cache.Count);
    }

    [Fact]
    public async Task An_installation_token_is_refreshed_before_its_hour_ends_and_only_once_under_concurrency()
    {
        await using var f = await EngineFixture.CreateAsync();
        using var app = RSA.Create(2048);
        var github = new FakeGitHub(f.Time, app);
        using var http = new HttpClient(github);
        var settings = new GitHubAppSettings
        {
            AppId = "12345",
            InstallationId = "678",
            ApiUrl = "https://github.example.com/api/v3",
            Key = SigningKey.FromPem(app.ExportRSAPrivateKeyPem(), null, null, "auth.privateKey"),
        };
        var provider = new GitHubAppProvider(new GitHubAppClient(http, f.Time), settings);
        var replicaB = f.NewEngine();

        var first = await f.Engine.GetAsync(Key, provider, default);
        Assert.Equal("ghs_1", first.Tokens.AccessToken.Reveal());
        Assert.Equal(f.Time.GetUtcNow().AddHours(1), first.Tokens.ExpiresAt);
        Assert.True(first.RefreshAt < first.Tokens.ExpiresAt);
        Assert.True(first.RefreshAt > f.Time.GetUtcNow().AddMinutes(55));

        // Just before the refresh is due: served from the cache.
        f.Time.Advance(first.RefreshAt!.Value - f.Time.GetUtcNow() - TimeSpan.FromSeconds(1));
        Assert.Same(first, await f.Engine.GetAsync(Key, provider, default));

        // Due, the hour not yet over: a storm on two replicas still sees one token request, and the valid token meanwhile.
        f.Time.Advance(TimeSpan.FromSeconds(2));
        Assert.True(f.Time.GetUtcNow() < first.Tokens.ExpiresAt);
        github.Gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var storm = Enumerable.Range(0, 200).Select(i => Task.Run(async () => await (i % 2 == 0 ? f.Engine : replicaB).GetAsync(Key, provider, default))).ToList();
        await Infrastructure.Poll.UntilAsync(() => github.Calls == 2, TimeSpan.FromSeconds(10), "the refresh to start");
        github.Gate.SetResult();
        var during = await Task.WhenAll(storm);
        Assert.All(during, c => Assert.Contains(c.Tokens.AccessToken.Reveal(), new[] { "ghs_1", "ghs_2" }));
        await Infrastructure.Poll.UntilAsync(async () => (await f.Engine.GetAsync(Key, provider, default)).Tokens.AccessToken.Reveal() == "ghs_2",
            TimeSpan.FromSeconds(10), "the installation token to be replaced");

        Assert.Equal(2, github.Calls);
        Assert.Empty(github.Refusals);
        Assert.True(f.Time.GetUtcNow() < first.Tokens.ExpiresAt);
    }

    [Fact]
    public async Task GitHub_refusing_the_app_JWT_is_a_configuration_failure_that_names_what_to_check()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var app = RSA.Create(2048);
        using var stranger = RSA.Create(2048);
        using var http = new HttpClient(new FakeGitHub(time, app));
        var settings = new GitHubAppSettings
        {
            AppId = "12345",
            InstallationId = "678",
            ApiUrl = "https://api.github.com",
            Key = SigningKey.FromPem(stranger.ExportPkcs8PrivateKeyPem(), null, null, "k"),
        };

        var result = await new GitHubAppClient(http, time).RequestTokenAsync(settings, default);

        Assert.Equal(FailureKind.Misconfigured, result.Failure);
        Assert.Contains("401", result.Error);
        Assert.Contains("auth.privateKey", result.Error);
    }

    /// <summary>GitHub's installation token endpoint: verifies the app JWT with the app's public key and its iat/exp against the (fake) clock.</summary>
    private sealed class FakeGitHub(FakeTimeProvider time, RSA app) : HttpMessageHandler
    {
        private readonly RsaSecurityKey _public = new(app.ExportParameters(false));
        private int _calls;

        public TaskCompletionSource? Gate { get; set; }

        public int Calls => Volatile.Read(ref _calls);

        public System.Collections.Concurrent.ConcurrentQueue<string> Refusals { get; } = new();

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var call = Interlocked.Increment(ref _calls);
            if (Gate is { } gate)
            {
                await gate.Task;
            }

            var jwt = request.Headers.Authorization?.Parameter ?? "";
            var result = await new JsonWebTokenHandler().ValidateTokenAsync(jwt, new TokenValidationParameters
            {
                IssuerSigningKey = _public,
                ValidIssuer = "12345",
                ValidateAudience = false,
                ValidateLifetime = false,
                ValidAlgorithms = ["RS256"],
            });
            var now = time.GetUtcNow();
            string? refusal = null;
            if (!result.IsValid)
            {
                refusal = "signature";
            }
            else
            {
                var token = (JsonWebToken)result.SecurityToken;
                if (token.IssuedAt > now.UtcDateTime || token.ValidTo - token.IssuedAt > TimeSpan.FromMinutes(10) || token.ValidTo <= now.UtcDateTime ||
                    !request.RequestUri!.AbsolutePath.EndsWith("/app/installations/678/access_tokens", StringComparison.Ordinal) || request.Method != HttpMethod.Post)
                {
                    refusal = "bounds";
                }
            }

            if (refusal is not null)
            {
                Refusals.Enqueue(refusal);
                return new HttpResponseMessage(HttpStatusCode.Unauthorized)
                {
                    Content = new StringContent("{\"message\":\"A JSON web token could not be decoded\"}", Encoding.UTF8, "application/json"),
                };
            }

            var expiresAt = now.AddHours(1).ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture);
            return new HttpResponseMessage(HttpStatusCode.Created)
            {
                Content = new StringContent($"{{\"token\":\"ghs_{call}\",\"expires_at\":\"{expiresAt}\"}}", Encoding.UTF8, "application/json"),
            };
        }
    }
}

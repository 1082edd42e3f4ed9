using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// <c>auth.type: oauth1</c> through a real <c>keyway serve</c>: requests sent by <c>/run</c> and <c>/proxy</c> arrive at an
/// upstream that recomputes every signature with the npm package <c>oauth-1.0a</c> (<see cref="OAuth1VerifierServer"/>)
/// and refuses a wrong one.
/// </summary>
[Trait("Category", "Integration")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class OAuth1AuthTests
{
    private const string ConsumerKey = "ck-keyway-0001";
    private const string ConsumerSecret = "kwcanary-consumer/SECRET+0123456789";
    private const string Token = "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb";
    private const string TokenSecret = "kwcanary-token-secret!0123456789abc";

    private static Dictionary<string, string> Environment() => new()
    {
        ["KEYWAY_ADMIN_TOKEN"] = "kw_oauth1_" + Guid.NewGuid().ToString("N"),
        ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
    };

    [Theory]
    [InlineData("HMAC-SHA1", "header")]
    [InlineData("HMAC-SHA256", "query")]
    public async Task Runs_and_proxied_requests_arrive_signed_with_hmac_and_a_wrong_secret_is_refused(string method, string placement)
    {
        await using var verifier = await OAuth1VerifierServer.StartAsync(new OAuth1Expectation(ConsumerKey, ConsumerSecret, Token, TokenSecret));
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Environment());
        using var admin = keyway.CreateAdminClient();
        await SetAsync(admin, "CONSUMER_SECRET", ConsumerSecret);
        await SetAsync(admin, "TOKEN_SECRET", TokenSecret);
        await SetAsync(admin, "WRONG_SECRET", "not-the-token-secret-0123456789");
        foreach (var (name, tokenSecret) in new[] { ("api", "TOKEN_SECRET"), ("api-wrong", "WRONG_SECRET") })
        {
            await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/resources/{name}", new
            {
                baseUrl = verifier.BaseUrl + "/1.1",
                auth = new
                {
                    type = "oauth1",
                    consumerKey = ConsumerKey,
                    consumerSecret = "{{ environment.variables.CONSUMER_SECRET }}",
                    token = Token,
                    tokenSecret = $"{{{{ environment.variables.{tokenSecret} }}}}",
                    signatureMethod = method,
                    @in = placement,
                    realm = "Keyway Tests",
                },
            }), 201);
        }

        var get = await RunAsync(admin, "api", new { method = "GET", path = "/statuses/home timeline.json", query = new Dictionary<string, string> { ["count"] = "2", ["since"] = "ünï code", ["a"] = "1" } });
        Assert.True((bool)get["body"]!["ok"]!, get.ToJsonString());
        var form = await RunAsync(admin, "api", new
        {
            method = "POST",
            path = "/statuses/update.json",
            query = new Dictionary<string, string> { ["include_entities"] = "true" },
            headers = new Dictionary<string, string> { ["Content-Type"] = "application/x-www-form-urlencoded" },
            body = "status=Hello%20Ladies%20%2B%20Gentlemen%2C%20a%20signed%20OAuth%20request%21&b=2",
        });
        Assert.True((bool)form["body"]!["ok"]!, form.ToJsonString());

        using (var proxied = await admin.GetAsync("/proxy/api/account/verify.json?skip_status=true"))
        {
            Assert.Equal(200, (int)proxied.StatusCode);
        }

        using (var posted = await admin.PostAsync("/proxy/api/statuses/update.json", new FormUrlEncodedContent(new Dictionary<string, string> { ["status"] = "from the proxy", ["z"] = "*" })))
        {
            var body = await posted.Content.ReadAsStringAsync();
            Assert.True(200 == (int)posted.StatusCode, body);
            Assert.Contains("from+the+proxy", body);
        }

        using (var json = await admin.PostAsync("/proxy/api/statuses/json", new StringContent("{\"status\":\"json bodies are not signed\"}", Encoding.UTF8, "application/json")))
        {
            Assert.Equal(200, (int)json.StatusCode);
        }

        // The verifier refuses a wrong token secret: the refusal comes back as the upstream's answer.
        var wrong = await RunAsync(admin, "api-wrong", new { method = "GET", path = "/statuses/home_timeline.json" }, status: 401);
        Assert.Contains("signature mismatch", (string)wrong["body"]!["error"]!);
        using (var refused = await admin.GetAsync("/proxy/api-wrong/account/verify.json"))
        {
            Assert.Equal(401, (int)refused.StatusCode);
        }

        // The signature is derived from the secrets: the request as sent withholds it, wherever it went.
        if (placement == "header")
        {
            Assert.DoesNotContain("oauth_signature", (string)get["outbound"]!["headers"]!["Authorization"]!);
        }
        else
        {
            Assert.Contains("oauth_signature=«withheld", (string)get["outbound"]!["url"]!);
        }

        foreach (var secret in new[] { ConsumerSecret, TokenSecret })
        {
            Assert.DoesNotContain(secret, get.ToJsonString());
            Assert.DoesNotContain(secret, keyway.AllOutput);
            Assert.DoesNotContain(secret, await admin.GetStringAsync("/api/v1/audit"));
            Assert.DoesNotContain(secret, await admin.GetStringAsync("/api/v1/resources/api"));
        }
    }

    [Fact]
    public async Task Rsa_sha1_requests_are_signed_with_the_private_key_and_verify_with_the_public_key()
    {
        using var rsa = RSA.Create(2048);
        var pem = rsa.ExportPkcs8PrivateKeyPem();
        await using var verifier = await OAuth1VerifierServer.StartAsync(new OAuth1Expectation(ConsumerKey, null, Token, null, rsa.ExportSubjectPublicKeyInfoPem()));
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Environment());
        using var admin = keyway.CreateAdminClient();
        await SetAsync(admin, "OAUTH1_PRIVATE_KEY", pem);
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/resources/rsa", new
        {
            baseUrl = verifier.BaseUrl,
            auth = new { type = "oauth1", signatureMethod = "RSA-SHA1", consumerKey = ConsumerKey, token = Token, privateKey = "{{ environment.variables.OAUTH1_PRIVATE_KEY }}" },
        }), 201);

        for (var i = 0; i < 2; i++)
        {
            var run = await RunAsync(admin, "rsa", new { method = "GET", path = "/photos", query = new Dictionary<string, string> { ["file"] = "vacation.jpg", ["size"] = "original" } });
            Assert.True((bool)run["body"]!["ok"]!, run.ToJsonString());
        }

        using (var posted = await admin.PostAsync("/proxy/rsa/photos", new FormUrlEncodedContent(new Dictionary<string, string> { ["title"] = "a b" })))
        {
            Assert.Equal(200, (int)posted.StatusCode);
        }

        var keyLine = pem.Split('\n', StringSplitOptions.RemoveEmptyEntries)[3].Trim();
        Assert.DoesNotContain(keyLine, keyway.AllOutput);
    }

    private static async Task<JsonNode> RunAsync(HttpClient admin, string resource, object call, int status = 200)
    {
        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", call), 200);
        Assert.True((int)run["status"]! == status, run.ToJsonString());
        return run;
    }

    private static async Task SetAsync(HttpClient admin, string name, string value) =>
        await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{name}", new { value, secret = true }), 200);
}

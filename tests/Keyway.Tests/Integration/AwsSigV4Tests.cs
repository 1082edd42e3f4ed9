using System.Net.Http.Json;
using System.Text;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// <c>auth.type: awsSigV4</c> through a real <c>keyway serve</c>: requests sent by <c>/run</c> and <c>/proxy</c>
/// arrive signed, and botocore (the AWS SDK for Python) finds every signature valid.
/// </summary>
[Trait("Category", "Integration")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class AwsSigV4Tests
{
    private const string AccessKeyId = "AKIAKEYWAYTEST000001";
    private const string SecretCanary = "kwcanary/sigv4+SECRET/0123456789abcdefABCDEF";
    private const string TokenCanary = "kwcanary-session-token-FwoGZXIvYXdzEXAMPLE0123456789";

    private static Dictionary<string, string> Environment() => new()
    {
        ["KEYWAY_ADMIN_TOKEN"] = "kw_sigv4_" + Guid.NewGuid().ToString("N"),
        ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
    };

    [Fact]
    public async Task Runs_and_proxied_requests_arrive_signed_and_botocore_verifies_them()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Environment());
        using var admin = keyway.CreateAdminClient();
        await SetAsync(admin, "AWS_ACCESS_KEY_ID", AccessKeyId, secret: false);
        await SetAsync(admin, "AWS_SECRET_ACCESS_KEY", SecretCanary, secret: true);
        await SetAsync(admin, "AWS_SESSION_TOKEN", TokenCanary, secret: true);
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/resources/aws", new
        {
            baseUrl = upstream.BaseUrl + "/api",
            headers = new Dictionary<string, string> { ["X-Amz-Target"] = "Keyway_20261207.Echo" },
            auth = new
            {
                type = "awsSigV4",
                accessKeyId = "{{ environment.variables.AWS_ACCESS_KEY_ID }}",
                secretAccessKey = "{{ environment.variables.AWS_SECRET_ACCESS_KEY }}",
                sessionToken = "{{ environment.variables.AWS_SESSION_TOKEN }}",
                region = "eu-west-1",
                service = "execute-api",
            },
        }), 201);

        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/aws/run", new
        {
            method = "POST",
            path = "/items/a b/42",
            query = new Dictionary<string, string> { ["color"] = "blue green", ["b"] = "*", ["a"] = "1" },
            headers = new Dictionary<string, string> { ["Authorization"] = "Bearer caller-own" },
            body = new { name = "widget", note = "ünïcode" },
        }), 200);
        Assert.Equal(200, (int)run["status"]!);
        await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/aws/run", new { method = "GET", path = "/" }), 200);

        using var proxied = new HttpRequestMessage(HttpMethod.Put, "/proxy/aws/objects/report%20q4.csv?versioning=on")
        {
            Content = new StringContent("a,b\n1,2\n", Encoding.UTF8, "text/csv"),
        };
        Assert.Equal(200, (int)(await admin.SendAsync(proxied)).StatusCode);
        Assert.Equal(200, (int)(await admin.GetAsync("/proxy/aws/health")).StatusCode);

        var received = upstream.Requests.ToList();
        Assert.Equal(4, received.Count);
        var verdicts = await SigV4Verifier.VerifyAsync(received, new SigV4Expectation(AccessKeyId, SecretCanary, TokenCanary, "eu-west-1", "execute-api"));
        Assert.All(verdicts, v => Assert.True(v.Ok, v.Error));
        Assert.All(received, r =>
        {
            Assert.Equal(TokenCanary, r.Headers["X-Amz-Security-Token"]);
            Assert.Contains("x-amz-target", r.Headers["Authorization"]);
            Assert.DoesNotContain(SecretCanary, string.Join("\n", r.Headers.Values) + r.RawTarget + r.Body);
        });

        // The caller's own Authorization never reaches the upstream; the key's secret never reaches a log, answer or audit record.
        Assert.DoesNotContain(received, r => r.Headers["Authorization"].Contains("caller-own"));
        Assert.DoesNotContain(SecretCanary, keyway.AllOutput);
        Assert.DoesNotContain(TokenCanary, keyway.AllOutput);
        Assert.DoesNotContain(SecretCanary, await admin.GetStringAsync("/api/v1/resources/aws"));
        Assert.DoesNotContain(SecretCanary, await admin.GetStringAsync("/api/v1/audit"));
    }

    [Fact]
    public async Task S3_signs_the_path_as_sent_and_streams_an_unsigned_payload_when_told_to()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Environment());
        using var admin = keyway.CreateAdminClient();
        await SetAsync(admin, "AWS_SECRET_ACCESS_KEY", SecretCanary, secret: true);
        foreach (var (name, unsigned) in new[] { ("s3", false), ("s3-unsigned", true) })
        {
            await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/resources/{name}", new
            {
                baseUrl = upstream.BaseUrl + "/bucket",
                auth = new
                {
                    type = "awsSigV4",
                    accessKeyId = AccessKeyId,
                    secretAccessKey = "{{ environment.variables.AWS_SECRET_ACCESS_KEY }}",
                    region = "us-east-1",
                    service = "s3",
                    unsignedPayload = unsigned,
                },
            }), 201);
        }

        foreach (var name in new[] { "s3", "s3-unsigned" })
        {
            using var put = new HttpRequestMessage(HttpMethod.Put, $"/proxy/{name}/dir/my%20file.txt")
            {
                Content = new StringContent("hello from " + name, Encoding.UTF8, "text/plain"),
            };
            Assert.Equal(200, (int)(await admin.SendAsync(put)).StatusCode);
        }

        var received = upstream.Requests.ToList();
        Assert.Equal(2, received.Count);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData("hello from s3"u8)), received[0].Headers["X-Amz-Content-Sha256"]);
        Assert.Equal("UNSIGNED-PAYLOAD", received[1].Headers["X-Amz-Content-Sha256"]);
        var verdicts = await SigV4Verifier.VerifyAsync(received, new SigV4Expectation(AccessKeyId, SecretCanary, null, "us-east-1", "s3"));
        Assert.All(verdicts, v => Assert.True(v.Ok, v.Error));
        Assert.False(received[0].Headers.ContainsKey("X-Amz-Security-Token"));
    }

    [Fact]
    public async Task A_definition_is_checked_field_by_field_and_a_key_written_in_plain_text_is_refused()
    {
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Environment());
        using var admin = keyway.CreateAdminClient();
        var problem = await Expect.ProblemAsync(await admin.PutAsJsonAsync("/api/v1/resources/aws", new
        {
            baseUrl = "https://example.amazonaws.com",
            auth = new { type = "awsSigV4", accessKeyId = AccessKeyId, secretAccessKey = "written-in-plain-text", region = "EU West", token = "x" },
        }), 400, "invalid_config");
        var fields = problem["errors"]!.AsArray().Select(e => (string)e!["field"]!).ToList();
        Assert.Contains("auth.secretAccessKey", fields);
        Assert.Contains("auth.region", fields);
        Assert.Contains("auth.service", fields);
        Assert.Contains("auth.token", fields);

        var misplaced = await Expect.ProblemAsync(await admin.PutAsJsonAsync("/api/v1/resources/b", new
        {
            baseUrl = "https://example.com",
            auth = new { type = "bearer", token = "{{ environment.variables.T }}", region = "us-east-1" },
        }), 400, "invalid_config");
        var error = Assert.Single(misplaced["errors"]!.AsArray(), e => (string)e!["field"]! == "auth.region")!;
        Assert.Equal("'region' belongs to auth type 'awsSigV4', not 'bearer'.", (string)error["message"]!);
    }

    private static async Task SetAsync(HttpClient admin, string name, string value, bool secret) =>
        await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{name}", new { value, secret }), 200);
}

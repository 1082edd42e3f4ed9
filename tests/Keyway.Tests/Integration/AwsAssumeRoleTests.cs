using System.Net.Http.Json;
using System.Text;
using Keyway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Keyway.Tests.Integration;

/// <summary>
/// <c>auth.assumeRole</c> of an awsSigV4 resource through a real <c>keyway serve</c>: the long-term key signs an STS
/// <c>AssumeRole</c> request to a local STS stand-in, which checks that signature with botocore before it answers
/// (and refuses a wrong one as STS does); the temporary credentials it gives sign every request to the resource,
/// once obtained and cached by the credential engine, and botocore finds those signatures valid too.
/// </summary>
[Trait("Category", "Integration")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class AwsAssumeRoleTests
{
    private const string AccessKeyId = "AKIAKEYWAYROLE000001";
    private const string SecretCanary = "kwcanary/assume-role+LONGTERM/0123456789abcdef";
    private const string TempKeyId = "ASIAKEYWAYTEMP000001";
    private const string TempSecretCanary = "kwcanary/assume-role+TEMPORARY/fedcba9876543210";
    private const string TempSessionCanary = "kwcanary-assumed-session-FwoGZXIvYXdzEXAMPLE9876543210";
    private const string RoleArn = "arn:aws:iam::123456789012:role/keyway-reader";

    /// <summary>An STS stand-in on <paramref name="app"/>: AssumeRole verified by botocore, answered with the temporary credentials above.</summary>
    private static void Sts(WebApplication app, string secret, List<string> verdicts) => app.MapPost("/sts", async context =>
    {
        var request = await UpstreamRequest.ReadAsync(context.Request);
        var verdict = Assert.Single(await SigV4Verifier.VerifyAsync([request], new SigV4Expectation(AccessKeyId, secret, null, "eu-west-1", "sts")));
        var form = System.Web.HttpUtility.ParseQueryString(request.Body);
        lock (verdicts)
            verdicts.Add(verdict.Ok ? "ok" : "refused");
        context.Response.ContentType = "text/xml";
        if (!verdict.Ok)
        {
            context.Response.StatusCode = StatusCodes.Status403Forbidden;
            await context.Response.WriteAsync(
                "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code>" +
                "<Message>The request signature we calculated does not match the signature you provided.</Message></Error></ErrorResponse>");
            return;
        }

        Assert.Equal(("AssumeRole", RoleArn, "reports", "ext-42", "900"),
            (form["Action"], form["RoleArn"], form["RoleSessionName"], form["ExternalId"], form["DurationSeconds"]));
        var expiration = DateTimeOffset.UtcNow.AddMinutes(15).ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);
        await context.Response.WriteAsync(
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><Credentials>" +
            $"<AccessKeyId>{TempKeyId}</AccessKeyId><SecretAccessKey>{TempSecretCanary}</SecretAccessKey>" +
            $"<SessionToken>{TempSessionCanary}</SessionToken><Expiration>{expiration}</Expiration></Credentials>" +
            $"<AssumedRoleUser><Arn>{RoleArn}/reports</Arn><AssumedRoleId>AROAKEYWAY:reports</AssumedRoleId></AssumedRoleUser>" +
            "</AssumeRoleResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></AssumeRoleResponse>");
    });

    private static object Resource(UpstreamServer upstream) => new
    {
        baseUrl = upstream.BaseUrl + "/api",
        auth = new
        {
            type = "awsSigV4",
            accessKeyId = AccessKeyId,
            secretAccessKey = "{{ environment.variables.AWS_SECRET_ACCESS_KEY }}",
            region = "eu-west-1",
            service = "execute-api",
            assumeRole = new { roleArn = RoleArn, sessionName = "reports", externalId = "ext-42", durationSeconds = 900, stsUrl = upstream.BaseUrl + "/sts" },
        },
    };

    private static async Task<(KeywayProcess, HttpClient)> StartAsync(string secret)
    {
        var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_role_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
        });
        var admin = keyway.CreateAdminClient();
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/environments/production/variables/AWS_SECRET_ACCESS_KEY",
            new { value = secret, secret = true }), 200);
        return (keyway, admin);
    }

    [Fact]
    public async Task The_role_is_assumed_once_and_its_temporary_credentials_sign_runs_and_proxied_requests()
    {
        var verdicts = new List<string>();
        await using var upstream = await UpstreamServer.StartAsync(app => Sts(app, SecretCanary, verdicts));
        var (keyway, admin) = await StartAsync(SecretCanary);
        await using var _ = keyway;
        using var __ = admin;
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/resources/reports", Resource(upstream)), 201);

        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/reports/run",
            new { method = "POST", path = "/items", body = new { name = "q4" } }), 200);
        using var proxied = await admin.GetAsync("/proxy/reports/items/42?color=blue");
        using var put = await admin.PutAsync("/proxy/reports/items/43", new StringContent("{\"n\":1}", Encoding.UTF8, "application/json"));
        var credential = await Expect.StatusAsync(await admin.GetAsync("/api/v1/resources/reports/credential"), 200);

        Assert.Equal(200, (int)run["status"]!);
        Assert.Equal(200, (int)proxied.StatusCode);
        Assert.Equal(200, (int)put.StatusCode);
        Assert.Equal(["ok"], verdicts);
        Assert.Equal("valid", (string?)credential["state"]);
        var calls = upstream.Requests.Where(r => r.Path.StartsWith("/api/", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, calls.Count);
        var signed = await SigV4Verifier.VerifyAsync(calls, new SigV4Expectation(TempKeyId, TempSecretCanary, TempSessionCanary, "eu-west-1", "execute-api"));
        Assert.All(signed, v => Assert.True(v.Ok, v.Error));
        Assert.All(calls, c => Assert.Equal(TempSessionCanary, c.Headers["X-Amz-Security-Token"]));

        foreach (var canary in new[] { SecretCanary, TempSecretCanary, TempSessionCanary })
        {
            Assert.DoesNotContain(canary, keyway.AllOutput);
            Assert.DoesNotContain(canary, run.ToJsonString());
            Assert.DoesNotContain(canary, credential.ToJsonString());
            Assert.DoesNotContain(canary, await admin.GetStringAsync("/api/v1/audit"));
        }
    }

    [Fact]
    public async Task A_wrong_long_term_key_is_refused_by_sts_and_reported_as_a_configuration_failure_naming_the_fields()
    {
        var verdicts = new List<string>();
        await using var upstream = await UpstreamServer.StartAsync(app => Sts(app, SecretCanary, verdicts));
        var (keyway, admin) = await StartAsync("kwcanary/not-the-key-sts-knows/000000000000");
        await using var _ = keyway;
        using var __ = admin;
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/resources/reports", Resource(upstream)), 201);

        var refused = await admin.PostAsJsonAsync("/api/v1/resources/reports/run", new { path = "/items" });
        var problem = await refused.Content.ReadFromJsonAsync<System.Text.Json.Nodes.JsonObject>();

        Assert.False(refused.IsSuccessStatusCode);
        Assert.Equal(["refused"], verdicts);
        Assert.Contains("SignatureDoesNotMatch", (string?)problem!["detail"]);
        Assert.Contains("auth.secretAccessKey", (string?)problem["detail"]);
        Assert.DoesNotContain(upstream.Requests, r => r.Path.StartsWith("/api/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_role_is_checked_field_by_field()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        var (keyway, admin) = await StartAsync(SecretCanary);
        await using var _ = keyway;
        using var __ = admin;
        var problem = await Expect.ProblemAsync(await admin.PutAsJsonAsync("/api/v1/resources/bad", new
        {
            baseUrl = upstream.BaseUrl,
            auth = new
            {
                type = "awsSigV4",
                accessKeyId = AccessKeyId,
                secretAccessKey = "{{ environment.variables.AWS_SECRET_ACCESS_KEY }}",
                region = "eu-west-1",
                service = "execute-api",
                assumeRole = new { roleArn = "keyway-reader", sessionName = "has spaces", durationSeconds = 60 },
            },
        }), 400, "invalid_config");
        var fields = problem["errors"]!.AsArray().Select(e => (string)e!["field"]!).ToList();
        Assert.Equal(["auth.assumeRole.durationSeconds", "auth.assumeRole.roleArn", "auth.assumeRole.sessionName"], fields.Order().ToList());

        var secretUrl = await Expect.ProblemAsync(await admin.PutAsJsonAsync("/api/v1/resources/bad", new
        {
            baseUrl = upstream.BaseUrl,
            auth = new
            {
                type = "awsSigV4",
                accessKeyId = AccessKeyId,
                secretAccessKey = "{{ environment.variables.AWS_SECRET_ACCESS_KEY }}",
                region = "eu-west-1",
                service = "execute-api",
                assumeRole = new { roleArn = RoleArn, stsUrl = "https://sts.example.com/{{ environment.variables.AWS_SECRET_ACCESS_KEY }}" },
            },
        }), 400, "invalid_config");
        Assert.Contains(secretUrl["errors"]!.AsArray(), e => (string?)e!["field"] == "auth.assumeRole.stsUrl");
    }
}

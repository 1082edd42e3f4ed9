using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// <c>auth.type: digest</c> through a real <c>keyway serve</c>: against Apache httpd's <c>mod_auth_digest</c> (MD5, the one
/// algorithm it offers) and against <see cref="DigestVerifier"/> for SHA-256; both refuse a wrong answer.
/// </summary>
[Trait("Category", "Integration")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class DigestAuthTests
{
    private const string User = "svc-keyway";
    private const string Password = "kwcanary-digest/PASSWORD+0123456789";

    private static Dictionary<string, string> Environment() => new()
    {
        ["KEYWAY_ADMIN_TOKEN"] = "kw_digest_" + Guid.NewGuid().ToString("N"),
        ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
    };

    [Fact]
    public async Task Runs_and_proxied_requests_answer_apaches_challenge_once_then_count_nc_and_a_wrong_password_is_refused()
    {
        await using var apache = await ApacheDigestServer.StartAsync(User, Password);
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Environment());
        using var admin = keyway.CreateAdminClient();
        await SetAsync(admin, "DIGEST_PASSWORD", Password);
        await SetAsync(admin, "WRONG_PASSWORD", "not-the-password-0123456789");
        await CreateAsync(admin, "apache", apache.BaseUrl + "/fresh", "DIGEST_PASSWORD");
        await CreateAsync(admin, "apache-wrong", apache.BaseUrl + "/fresh", "WRONG_PASSWORD");

        var runs = new List<JsonNode>();
        for (var i = 0; i < 3; i++)
        {
            var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/apache/run", new { method = "GET", path = "/ok.txt" }), 200);
            Assert.True((int)run["status"]! == 200, apache.ErrorLog);
            Assert.Equal("ok from fresh\n", (string)run["body"]!);
            runs.Add(run);
        }

        using (var proxied = await admin.GetAsync("/proxy/apache/ok.txt"))
        {
            Assert.Equal(200, (int)proxied.StatusCode);
            Assert.Equal("ok from fresh\n", await proxied.Content.ReadAsStringAsync());
        }

        using (var posted = await admin.PostAsync("/proxy/apache/echo.cgi", new StringContent("hello apache", Encoding.UTF8, "text/plain")))
        {
            Assert.Equal(200, (int)posted.StatusCode);
            Assert.Equal("body:hello apache", await posted.Content.ReadAsStringAsync());
        }

        // One 401 for the first request only; every later one answered the kept nonce with the next nc. (Apache logs a
        // request once its answer has gone.)
        await Poll.UntilAsync(() => apache.Requests().Count >= 6, TimeSpan.FromSeconds(10), "Apache to log six requests");
        var log = apache.Requests();
        Assert.Equal([401, 200, 200, 200, 200, 200], log.Select(l => l.Status));
        Assert.Null(log[0].Nc);
        Assert.Equal(["00000001", "00000002", "00000003", "00000004", "00000005"], log.Skip(1).Select(l => l.Nc));

        // A wrong password is refused by Apache, and the refusal comes back as the upstream's answer.
        var wrong = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/apache-wrong/run", new { method = "GET", path = "/ok.txt" }), 200);
        Assert.Equal(401, (int)wrong["status"]!);
        using (var refused = await admin.GetAsync("/proxy/apache-wrong/ok.txt"))
        {
            Assert.Equal(401, (int)refused.StatusCode);
        }

        // The answer (response=, cnonce, nc) is derived from the password: the request as sent withholds it.
        var authorization = (string)runs[2]["outbound"]!["headers"]!["Authorization"]!;
        Assert.DoesNotContain("response=", authorization);
        Assert.DoesNotContain(Password, runs[2].ToJsonString());
        Assert.DoesNotContain(Password, keyway.AllOutput);
        Assert.DoesNotContain(Password, await admin.GetStringAsync("/api/v1/audit"));
        Assert.DoesNotContain(Password, await admin.GetStringAsync("/api/v1/resources/apache"));
    }

    [Fact]
    public async Task A_stale_nonce_is_answered_again_without_the_caller_seeing_a_401()
    {
        await using var apache = await ApacheDigestServer.StartAsync(User, Password);
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Environment());
        using var admin = keyway.CreateAdminClient();
        await SetAsync(admin, "DIGEST_PASSWORD", Password);
        await CreateAsync(admin, "stale", apache.BaseUrl + "/stale", "DIGEST_PASSWORD");

        // Apache's nonces for /stale/ live one second: poll until one went stale under a request of each kind.
        async Task UntilStaleAsync(string what, Func<Task> send, Func<ApacheLogLine, bool> which)
        {
            await Poll.UntilAsync(async () =>
            {
                await send();
                return apache.Requests().Any(l => which(l) && l.Status == 401 && l.Nc is not null);
            }, TimeSpan.FromSeconds(30), what);
        }

        await UntilStaleAsync("a run's nonce to go stale", async () =>
        {
            var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/stale/run", new { method = "GET", path = "/ok.txt" }), 200);
            Assert.True((int)run["status"]! == 200, apache.ErrorLog);
        }, l => l.Method == "GET");
        await UntilStaleAsync("a proxied POST's nonce to go stale", async () =>
        {
            using var posted = await admin.PostAsync("/proxy/stale/echo.cgi", new StringContent("again", Encoding.UTF8, "text/plain"));
            Assert.Equal(200, (int)posted.StatusCode);
            Assert.Equal("body:again", await posted.Content.ReadAsStringAsync());
        }, l => l.Method == "POST");

        // Each stale answer was followed by the same request answering the new nonce, accepted (logged once answered).
        await Poll.UntilAsync(() => apache.Requests() is [.., { Status: 200 }], TimeSpan.FromSeconds(10), "Apache to log the last request");
        var log = apache.Requests();
        Assert.Contains(log, l => l.Status == 401 && l.Nc is not null);
        for (var i = 0; i < log.Count; i++)
        {
            if (log[i].Status == 401 && log[i].Nc is not null)
            {
                Assert.Equal((200, log[i].Method, "00000001"), (log[i + 1].Status, log[i + 1].Method, log[i + 1].Nc));
            }
        }

        Assert.Contains("nonce expired", apache.ErrorLog);
    }

    [Fact]
    public async Task Sha256_challenges_are_answered_and_a_large_body_gets_its_challenge_from_a_bodiless_request_first()
    {
        var verifier = new DigestVerifier(User, Password);
        await using var upstream = await UpstreamServer.StartAsync(verifier.Install);
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Environment());
        using var admin = keyway.CreateAdminClient();
        await SetAsync(admin, "DIGEST_PASSWORD", Password);
        await CreateAsync(admin, "sha", upstream.BaseUrl + "/api", "DIGEST_PASSWORD");
        var large = new string('x', 100 * 1024);

        // No challenge kept and a body too large to hold: a HEAD obtains one, then the body is sent once.
        using (var first = await admin.PostAsync("/proxy/sha/upload?n=1", new StringContent(large, Encoding.UTF8, "text/plain")))
        {
            Assert.Equal(200, (int)first.StatusCode);
        }

        Assert.Equal(["HEAD", "POST"], upstream.Requests.Select(r => r.Method));
        Assert.Equal(large, upstream.Requests[1].Body);
        Assert.Equal(1, verifier.Challenges);

        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/sha/run", new { method = "PUT", path = "/items/a b", query = new { q = "1" }, body = new { x = 1 } }), 200);
        Assert.Equal(200, (int)run["status"]!);
        Assert.Equal(1, verifier.Challenges);

        // A stale nonce: a small body was held and is sent again; a run replays its body.
        verifier.ExpireNonces();
        using (var small = await admin.PostAsync("/proxy/sha/small", new StringContent("small body", Encoding.UTF8, "text/plain")))
        {
            Assert.Equal(200, (int)small.StatusCode);
        }

        Assert.Equal(2, verifier.Challenges);
        Assert.Equal("small body", upstream.Requests[^1].Body);
        verifier.ExpireNonces();
        run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/sha/run", new { method = "POST", path = "/again", body = "text" }), 200);
        Assert.Equal(200, (int)run["status"]!);
        Assert.Equal(3, verifier.Challenges);

        // A large body whose nonce went stale under way cannot be sent twice: the caller is told to send it again, and that works.
        verifier.ExpireNonces();
        await Expect.ProblemAsync(await admin.PostAsync("/proxy/sha/upload?n=2", new StringContent(large, Encoding.UTF8, "text/plain")), 502, "upstream_unauthorized");
        using (var again = await admin.PostAsync("/proxy/sha/upload?n=2", new StringContent(large, Encoding.UTF8, "text/plain")))
        {
            Assert.Equal(200, (int)again.StatusCode);
        }

        Assert.Equal(4, verifier.Challenges);
        Assert.Equal(5, verifier.Accepted);
        Assert.DoesNotContain(Password, keyway.AllOutput);
    }

    private static async Task CreateAsync(HttpClient admin, string name, string baseUrl, string passwordVariable) =>
        await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/resources/{name}", new
        {
            baseUrl,
            auth = new { type = "digest", username = User, password = $"{{{{ environment.variables.{passwordVariable} }}}}" },
        }), 201);

    private static async Task SetAsync(HttpClient admin, string name, string value) =>
        await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{name}", new { value, secret = true }), 200);
}

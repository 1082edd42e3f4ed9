using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.SignIn;
using Keyway.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Keyway.Tests.Integration;

/// <summary>
/// Two real <c>keyway serve</c> replicas on a PostgreSQL cluster of the test's own, which crashes
/// (<c>pg_ctl stop -m immediate</c>) under them and starts again. What the replicas hold in memory
/// keeps being served; what needs the store answers <c>503 store_unavailable</c>, never 500; and
/// they recover on their own.
/// </summary>
[Trait("Category", "Integration")]
public sealed class StoreOutageTests(ITestOutputHelper output)
{
    private const string Secret = "outage-bearer-secret-7f3c9a";

    /// <summary>Longer than the API key cache's 30 s and the session check's 15 s: what is served past them is served stale-if-error.</summary>
    private static readonly TimeSpan ServedOutage = TimeSpan.FromSeconds(32);

    private static readonly TimeSpan Recovery = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Replicas_serve_runs_and_the_proxy_from_memory_while_the_database_is_down_and_recover_on_their_own()
    {
        using var cluster = await PostgresCluster.StartOwnAsync();
        var database = await cluster.CreateDatabaseAsync();
        await using var upstream = await UpstreamServer.StartAsync();
        var adminPassword = "outage-admin-" + Guid.NewGuid().ToString("N");
        var options = new KeywayProcessOptions
        {
            Store = StoreKind.Postgres,
            DatabaseUrl = database.Url,
            Environment = new Dictionary<string, string>
            {
                ["KEYWAY_ADMIN_TOKEN"] = "kw_outage_" + Guid.NewGuid().ToString("N"),
                ["KEYWAY_ADMIN_PASSWORD"] = adminPassword,
                ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
                ["KEYWAY_STORE_OUTAGE_STALENESS"] = "5m",
                // Each run is its own audit event here: the test finds every served run's path in the log.
                ["KEYWAY_AUDIT_TRAFFIC"] = "each",
            },
        };
        await using var a = await KeywayProcess.StartAsync(options);
        await using var b = await KeywayProcess.StartAsync(options);
        KeywayProcess[] replicas = [a, b];
        using var adminA = a.CreateAdminClient();

        // A resource whose bearer secret lives in a secret variable; a key for the runs; a key nobody has used yet.
        await Expect.StatusAsync(await adminA.PutAsJsonAsync("/api/v1/environments/production/variables/OUTAGE_TOKEN", new { value = Secret, secret = true }), 200);
        await Expect.SuccessAsync(await adminA.PutAsJsonAsync("/api/v1/resources/outage", new
        {
            baseUrl = upstream.BaseUrl,
            headers = new Dictionary<string, string> { ["X-Config"] = "before" },
            auth = new { type = "bearer", token = "{{ environment.variables.OUTAGE_TOKEN }}" },
        }));
        var runKey = (string)(await Expect.StatusAsync(await adminA.PostAsJsonAsync("/api/v1/keys", new { name = "runs" }), 201))["token"]!;
        var unseenKey = (string)(await Expect.StatusAsync(await adminA.PostAsJsonAsync("/api/v1/keys", new { name = "unseen" }), 201))["token"]!;
        var runClients = replicas.Select(r => r.CreateClient(runKey)).ToArray();
        var browsers = replicas.Select(Browser).ToArray();
        try
        {
            // Everything the outage will need from memory is used once on each replica.
            for (var i = 0; i < replicas.Length; i++)
            {
                await RunAsync(runClients[i], upstream, "warm");
                await ProxyAsync(runClients[i], upstream, "warm");
                var signedIn = await Expect.StatusAsync(await browsers[i].PostAsJsonAsync("/api/v1/auth/login", new { name = "admin", password = adminPassword }), 200);
                browsers[i].DefaultRequestHeaders.Add(Sessions.CsrfHeader, (string)signedIn["csrfToken"]!);
                await RunAsync(browsers[i], upstream, "warm");
            }

            await cluster.CrashAsync();
            var crashed = Stopwatch.StartNew();
            var answers = new List<string>();

            // What needs the store says so, on every replica: 503 store_unavailable with Retry-After, never 500.
            foreach (var replica in replicas)
            {
                using var admin = replica.CreateAdminClient();
                using var unseen = replica.CreateClient(unseenKey);
                using var anonymous = replica.CreateClient();
                await Poll.UntilAsync(async () => (await anonymous.GetAsync("/readyz")).StatusCode == HttpStatusCode.ServiceUnavailable,
                    TimeSpan.FromSeconds(10), $"{replica.BaseUrl}/readyz to say not ready");
                answers.Add(await StoreUnavailableAsync(await anonymous.GetAsync("/readyz")));
                Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/healthz")).StatusCode);
                answers.Add(await StoreUnavailableAsync(await admin.PutAsJsonAsync("/api/v1/resources/created-during-outage", new { baseUrl = upstream.BaseUrl })));
                answers.Add(await StoreUnavailableAsync(await admin.PutAsJsonAsync("/api/v1/environments/production/variables/OUTAGE_TOKEN", new { value = "changed", secret = true })));
                answers.Add(await StoreUnavailableAsync(await admin.GetAsync("/api/v1/resources")));
                answers.Add(await StoreUnavailableAsync(await admin.GetAsync("/api/v1/me")));
                answers.Add(await StoreUnavailableAsync(await admin.PostAsJsonAsync("/api/v1/keys", new { name = "during-outage" })));
                answers.Add(await StoreUnavailableAsync(await anonymous.PostAsJsonAsync("/api/v1/auth/login", new { name = "admin", password = adminPassword })));
                answers.Add(await StoreUnavailableAsync(await unseen.PostAsJsonAsync("/api/v1/resources/outage/run", new { path = "/unseen" })));
                answers.Add(await StoreUnavailableAsync(await unseen.GetAsync("/proxy/outage/unseen")));
            }

            // Runs (by API key and by console session) and the proxy keep answering from memory, past the key and session cache lifetimes.
            var served = 0;
            var outageProbes = new List<string>();
            // Paced load, not a wait: a round every 50 ms keeps the audit events queued meanwhile far below
            // the queue's bound (KEYWAY_AUDIT_QUEUE), past which requests would wait for the store.
            using var pace = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
            while (crashed.Elapsed < ServedOutage && await pace.WaitForNextTickAsync())
            {
                for (var i = 0; i < replicas.Length; i++)
                {
                    var probe = await RunAsync(runClients[i], upstream, "outage");
                    outageProbes.Add(probe.Probe);
                    answers.Add(probe.Answer);
                    answers.Add((await ProxyAsync(runClients[i], upstream, "outage")).Answer);
                    var bySession = await RunAsync(browsers[i], upstream, "outage");
                    outageProbes.Add(bySession.Probe);
                    answers.Add(bySession.Answer);
                }

                served++;
            }

            output.WriteLine($"Served {served} rounds of a run by key, a proxied request and a run by console session, on each of the two replicas, over {crashed.Elapsed.TotalSeconds:0.0} s without the store.");
            Assert.DoesNotContain(answers, answer => answer.Contains(Secret, StringComparison.Ordinal));

            await cluster.StartAgainAsync();
            var restarted = Stopwatch.StartNew();
            foreach (var replica in replicas)
            {
                using var anonymous = replica.CreateClient();
                await Poll.UntilAsync(async () => (await anonymous.GetAsync("/readyz")).StatusCode == HttpStatusCode.OK, Recovery, $"{replica.BaseUrl}/readyz to say ready again");
                output.WriteLine($"{replica.BaseUrl}/readyz answered 200 {restarted.Elapsed.TotalMilliseconds:0} ms after PostgreSQL accepted connections again.");
            }

            // Writes work again, and a change through one replica reaches the other.
            await Poll.UntilAsync(async () =>
            {
                using var put = await adminA.PutAsJsonAsync("/api/v1/resources/outage", new
                {
                    baseUrl = upstream.BaseUrl,
                    headers = new Dictionary<string, string> { ["X-Config"] = "after" },
                    auth = new { type = "bearer", token = "{{ environment.variables.OUTAGE_TOKEN }}" },
                });
                return put.IsSuccessStatusCode;
            }, Recovery, "a resource to be saved through replica A");
            await Poll.UntilAsync(async () => (await RunAsync(runClients[1], upstream, "after")).Request.Headers.GetValueOrDefault("X-Config") == "after",
                Recovery, "replica B to run with the configuration saved through replica A after the outage");
            output.WriteLine($"A change through replica A reached replica B {restarted.Elapsed.TotalMilliseconds:0} ms after PostgreSQL accepted connections again.");

            // The runs served during the outage reached the audit log once the writer could write again.
            await Poll.UntilAsync(async () =>
            {
                var logged = await AuditedPathsAsync(adminA);
                return outageProbes.All(p => logged.Any(path => path.Contains(p, StringComparison.Ordinal)));
            }, Recovery, "the outage's runs to be in the audit log");
            output.WriteLine($"Every run of the outage was in the audit log {restarted.Elapsed.TotalMilliseconds:0} ms after PostgreSQL accepted connections again.");

            foreach (var replica in replicas)
            {
                Assert.DoesNotContain(Secret, replica.AllOutput, StringComparison.Ordinal);
                Assert.DoesNotContain("internal_error", replica.AllOutput, StringComparison.Ordinal);
                Assert.DoesNotContain("Unhandled", replica.AllOutput, StringComparison.Ordinal);
                // An outage is logged as warnings; an error line would be a bug.
                Assert.DoesNotContain(" fail: ", replica.AllOutput, StringComparison.Ordinal);
            }
        }
        catch
        {
            // What the replicas logged, for whoever reads a failure.
            foreach (var replica in replicas)
                output.WriteLine($"--- {replica.BaseUrl}\n{replica.AllOutput}");
            throw;
        }
        finally
        {
            foreach (var client in runClients.Concat(browsers))
                client.Dispose();
        }
    }

    [Fact]
    public async Task Past_the_staleness_bound_a_replica_drops_what_it_held_and_answers_503_until_the_database_is_back()
    {
        using var cluster = await PostgresCluster.StartOwnAsync();
        var database = await cluster.CreateDatabaseAsync();
        await using var upstream = await UpstreamServer.StartAsync();
        await using var keyway = await KeywayProcess.StartAsync(new KeywayProcessOptions
        {
            Store = StoreKind.Postgres,
            DatabaseUrl = database.Url,
            Environment = new Dictionary<string, string>
            {
                ["KEYWAY_ADMIN_TOKEN"] = "kw_stale_" + Guid.NewGuid().ToString("N"),
                ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
                ["KEYWAY_STORE_OUTAGE_STALENESS"] = "3s",
            },
        });
        using var admin = keyway.CreateAdminClient();
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/environments/production/variables/OUTAGE_TOKEN", new { value = Secret, secret = true }), 200);
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/outage", new
        {
            baseUrl = upstream.BaseUrl,
            auth = new { type = "bearer", token = "{{ environment.variables.OUTAGE_TOKEN }}" },
        }));
        await RunAsync(admin, upstream, "warm");

        // From before the crash: the replica notices it later, so the bound is measured from no earlier than its start.
        var crashed = Stopwatch.StartNew();
        await cluster.CrashAsync();
        await RunAsync(admin, upstream, "within-bound");
        var statuses = new List<HttpStatusCode>();
        await Poll.UntilAsync(async () =>
        {
            using var response = await admin.PostAsJsonAsync("/api/v1/resources/outage/run", new { path = "/past-bound" });
            statuses.Add(response.StatusCode);
            if (response.StatusCode != HttpStatusCode.ServiceUnavailable)
                return false;
            Assert.DoesNotContain(Secret, await StoreUnavailableAsync(response), StringComparison.Ordinal);
            return true;
        }, TimeSpan.FromSeconds(30), "the replica to stop serving from memory past the 3 s staleness bound");
        var dropped = crashed.Elapsed;
        output.WriteLine($"Served from memory for {dropped.TotalSeconds:0.0} s with KEYWAY_STORE_OUTAGE_STALENESS=3s.");
        Assert.True(dropped >= TimeSpan.FromSeconds(3), $"Stopped serving after {dropped.TotalSeconds:0.0} s, before the bound.");
        Assert.All(statuses, status => Assert.True(status is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, $"Answered {(int)status}."));

        await cluster.StartAgainAsync();
        var restarted = Stopwatch.StartNew();
        await Poll.UntilAsync(async () =>
        {
            using var response = await admin.PostAsJsonAsync("/api/v1/resources/outage/run", new { path = "/back" });
            return response.StatusCode == HttpStatusCode.OK;
        }, Recovery, "runs to be served again once PostgreSQL is back");
        output.WriteLine($"Runs were served again {restarted.Elapsed.TotalMilliseconds:0} ms after PostgreSQL accepted connections again.");
        Assert.DoesNotContain(Secret, keyway.AllOutput, StringComparison.Ordinal);
        Assert.Contains("staleness bound", keyway.AllOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_full_audit_queue_during_an_outage_refuses_runs_with_503_instead_of_holding_them_and_its_events_land_afterwards()
    {
        using var cluster = await PostgresCluster.StartOwnAsync();
        var database = await cluster.CreateDatabaseAsync();
        await using var upstream = await UpstreamServer.StartAsync();
        await using var keyway = await KeywayProcess.StartAsync(new KeywayProcessOptions
        {
            Store = StoreKind.Postgres,
            DatabaseUrl = database.Url,
            Environment = new Dictionary<string, string>
            {
                ["KEYWAY_ADMIN_TOKEN"] = "kw_queue_" + Guid.NewGuid().ToString("N"),
                ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
                ["KEYWAY_AUDIT_QUEUE"] = "20",
                // One audit event per run, so runs fill the queue, and each served run's path is found in the log afterwards.
                ["KEYWAY_AUDIT_TRAFFIC"] = "each",
            },
        });
        using var admin = keyway.CreateAdminClient();
        // A request held on a full queue would wait for the store: far longer than this.
        admin.Timeout = TimeSpan.FromSeconds(10);
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/environments/production/variables/OUTAGE_TOKEN", new { value = Secret, secret = true }), 200);
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/outage", new
        {
            baseUrl = upstream.BaseUrl,
            auth = new { type = "bearer", token = "{{ environment.variables.OUTAGE_TOKEN }}" },
        }));
        await RunAsync(admin, upstream, "warm");
        await ProxyAsync(admin, upstream, "warm");

        await cluster.CrashAsync();
        var served = new List<string>();
        await Poll.UntilAsync(async () =>
        {
            var probe = "queued-" + Guid.NewGuid().ToString("N");
            using var response = await admin.PostAsJsonAsync("/api/v1/resources/outage/run", new { path = "/run/" + probe });
            if (response.StatusCode == HttpStatusCode.OK)
            {
                served.Add(probe);
                return false;
            }

            await StoreUnavailableAsync(response);
            return true;
        }, TimeSpan.FromSeconds(30), "a run to be refused once the audit queue is full");
        await StoreUnavailableAsync(await admin.GetAsync("/proxy/outage/refused"));
        // The queue's 20, and the batch the writer holds and retries.
        output.WriteLine($"{served.Count} runs were served and queued for the audit log before the queue of 20 was full.");
        Assert.InRange(served.Count, 1, 20 + 500);

        await cluster.StartAgainAsync();
        await Poll.UntilAsync(async () =>
        {
            using var response = await admin.GetAsync("/proxy/outage/proxied/after-" + Guid.NewGuid().ToString("N"));
            return response.StatusCode == HttpStatusCode.OK;
        }, Recovery, "the proxy to serve again once PostgreSQL is back");
        await Poll.UntilAsync(async () =>
        {
            var logged = await AuditedPathsAsync(admin);
            return served.All(p => logged.Any(path => path.Contains(p, StringComparison.Ordinal)));
        }, Recovery, "the runs served during the outage to be in the audit log");
    }

    /// <summary>Asserts a 503 <c>store_unavailable</c> problem with a <c>Retry-After</c> header; returns its body.</summary>
    private static async Task<string> StoreUnavailableAsync(HttpResponseMessage response)
    {
        using (response)
        {
            var body = await Expect.ProblemAsync(response, 503, "store_unavailable");
            Assert.True(response.Headers.RetryAfter?.Delta is { TotalSeconds: > 0 }, $"No Retry-After on {response.RequestMessage?.RequestUri}.");
            return body.ToJsonString();
        }
    }

    private static async Task<(UpstreamRequest Request, string Probe, string Answer)> RunAsync(HttpClient client, UpstreamServer upstream, string phase)
    {
        var probe = phase + "-" + Guid.NewGuid().ToString("N");
        using var response = await client.PostAsJsonAsync("/api/v1/resources/outage/run", new { path = "/run/" + probe });
        var answer = (await Expect.StatusAsync(response, 200)).ToJsonString();
        var received = upstream.Requests.Single(r => r.Path.EndsWith(probe, StringComparison.Ordinal));
        Assert.Equal("Bearer " + Secret, received.Headers["Authorization"]);
        return (received, probe, answer);
    }

    private static async Task<(UpstreamRequest Request, string Answer)> ProxyAsync(HttpClient client, UpstreamServer upstream, string phase)
    {
        var probe = phase + "-" + Guid.NewGuid().ToString("N");
        using var response = await client.GetAsync("/proxy/outage/proxied/" + probe);
        var answer = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"Expected 200 from the proxy, got {(int)response.StatusCode}: {answer}");
        var received = upstream.Requests.Single(r => r.Path.EndsWith(probe, StringComparison.Ordinal));
        Assert.Equal("Bearer " + Secret, received.Headers["Authorization"]);
        return (received, answer);
    }

    private static async Task<List<string>> AuditedPathsAsync(HttpClient admin)
    {
        var paths = new List<string>();
        long? after = 0;
        while (after is not null)
        {
            using var response = await admin.GetAsync($"/api/v1/audit?action=run&resource=outage&limit=1000&after={after}");
            if (!response.IsSuccessStatusCode)
                return paths;
            var page = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            var events = page["events"]!.AsArray();
            paths.AddRange(events.Select(e => (string?)e!["detail"]?["path"] ?? ""));
            after = events.Count == 0 ? null : (long?)page["next"];
        }

        return paths;
    }

    private static HttpClient Browser(KeywayProcess replica) =>
        new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, UseCookies = true, CookieContainer = new CookieContainer() })
        {
            BaseAddress = new Uri(replica.BaseUrl + "/"),
        };
}

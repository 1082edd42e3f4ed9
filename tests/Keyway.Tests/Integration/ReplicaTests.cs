using System.Net;
using System.Net.Http.Json;
using Keyway.SignIn;
using Keyway.Tests.Infrastructure;
using Npgsql;

namespace Keyway.Tests.Integration;

/// <summary>
/// Two real <c>keyway serve</c> replicas on one PostgreSQL database (same master key, same admin
/// token) and one upstream. A change made through <see cref="A"/> must reach <see cref="B"/>'s
/// caches within seconds, through LISTEN/NOTIFY, including after B's listener lost its connection.
/// </summary>
public sealed class ReplicaPair : IAsyncLifetime
{
    private PostgresDatabase? _database;

    public PostgresDatabase Database => _database ?? throw new InvalidOperationException("Not initialized.");

    public KeywayProcess A { get; private set; } = null!;

    public KeywayProcess B { get; private set; } = null!;

    public UpstreamServer Upstream { get; private set; } = null!;

    public HttpClient AdminA { get; private set; } = null!;

    public HttpClient AdminB { get; private set; } = null!;

    /// <summary>A key provider on <see cref="Upstream"/> (<c>/provider/keys</c>, <c>/base/verify</c>) for rotations across replicas.</summary>
    internal RotationProvider Provider { get; } = new();

    public async Task InitializeAsync()
    {
        Upstream = await UpstreamServer.StartAsync(Provider.Map);
        _database = await (await PostgresCluster.GetSharedAsync()).CreateDatabaseAsync();
        var options = new KeywayProcessOptions
        {
            Store = StoreKind.Postgres,
            DatabaseUrl = Database.Url,
            Environment = new Dictionary<string, string>
            {
                ["KEYWAY_ADMIN_TOKEN"] = "kw_replica_" + Guid.NewGuid().ToString("N"),
                ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
                // A token comes back every 15 s: the rate-limit test's four attempts stay well inside that, however loaded the machine.
                ["KEYWAY_SIGNIN_RATE_PER_USER"] = "4",
            },
        };

        // One after the other: the first bootstraps the admin, the second finds it.
        A = await KeywayProcess.StartAsync(options);
        B = await KeywayProcess.StartAsync(options);
        AdminA = A.CreateAdminClient();
        AdminB = B.CreateAdminClient();
    }

    public async Task DisposeAsync()
    {
        AdminA?.Dispose();
        AdminB?.Dispose();
        if (B is not null)
            await B.DisposeAsync();
        if (A is not null)
            await A.DisposeAsync();
        if (Upstream is not null)
            await Upstream.DisposeAsync();
        if (_database is not null)
            await (await PostgresCluster.GetSharedAsync()).DropDatabaseAsync(_database.Name);
    }
}

[Trait("Category", "Integration")]
public sealed class ReplicaTests(ReplicaPair replicas) : IClassFixture<ReplicaPair>
{
    /// <summary>"Promptly": far below the 30 s key cache and any reasonable staleness.</summary>
    private static readonly TimeSpan Propagation = TimeSpan.FromSeconds(5);

    private const string ListenerApplicationName = "keyway-listener";

    [Fact]
    public async Task A_resource_changed_through_one_replica_is_used_at_once_by_the_other()
    {
        var resource = KeywayFixture.Unique("rep");
        await PutResourceAsync(replicas.AdminA, resource, "/v1", "one");
        var before = await RunAsync(replicas.AdminB, resource);
        Assert.StartsWith("/v1/", before.Path, StringComparison.Ordinal);
        Assert.Equal("one", before.Headers["X-Config"]);

        await PutResourceAsync(replicas.AdminA, resource, "/v2", "two");

        await Poll.UntilAsync(async () =>
        {
            var seen = await RunAsync(replicas.AdminB, resource);
            return seen.Path.StartsWith("/v2/", StringComparison.Ordinal) && seen.Headers["X-Config"] == "two";
        }, Propagation, "replica B to run with the configuration saved through replica A");
    }

    [Fact]
    public async Task A_secret_changed_through_one_replica_is_sent_at_once_by_the_other()
    {
        var resource = KeywayFixture.Unique("sec");
        var variable = "REPLICA_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await SetSecretAsync(replicas.AdminA, variable, "first-secret");
        await Expect.SuccessAsync(await replicas.AdminA.PutAsJsonAsync($"/api/v1/resources/{resource}", new
        {
            baseUrl = replicas.Upstream.BaseUrl,
            auth = new { type = "bearer", token = $"{{{{ environment.variables.{variable} }}}}" },
        }));
        Assert.Equal("Bearer first-secret", (await RunAsync(replicas.AdminB, resource)).Headers["Authorization"]);

        await SetSecretAsync(replicas.AdminA, variable, "second-secret");

        await Poll.UntilAsync(
            async () => (await RunAsync(replicas.AdminB, resource)).Headers["Authorization"] == "Bearer second-secret",
            Propagation, "replica B to send the secret set through replica A");
    }

    [Fact]
    public async Task A_grant_revoked_through_one_replica_is_enforced_by_the_other_at_once()
    {
        var resource = KeywayFixture.Unique("grant");
        await Expect.SuccessAsync(await replicas.AdminA.PutAsJsonAsync($"/api/v1/resources/{resource}", new { baseUrl = replicas.Upstream.BaseUrl }));
        var member = KeywayFixture.Unique("m");
        await Expect.StatusAsync(await replicas.AdminA.PostAsJsonAsync("/api/v1/users", new { name = member }), 201);
        var key = await Expect.StatusAsync(await replicas.AdminA.PostAsJsonAsync("/api/v1/keys", new { name = "k", owner = member }), 201);
        var grant = await Expect.StatusAsync(await replicas.AdminA.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = member, permission = "use" }), 201);
        using var onB = replicas.B.CreateClient((string)key["token"]!);
        async Task<HttpStatusCode> RunOnB()
        {
            using var response = await onB.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { method = "GET", path = "/g" });
            return response.StatusCode;
        }

        await Poll.UntilAsync(async () => await RunOnB() == HttpStatusCode.OK, Propagation, "replica B to honour the grant made through replica A");
        await Expect.StatusAsync(await replicas.AdminA.DeleteAsync($"/api/v1/resources/{resource}/permissions/{(string)grant["id"]!}"), 204);

        await Poll.UntilAsync(async () => await RunOnB() == HttpStatusCode.Forbidden, Propagation, "replica B to refuse once the grant was revoked through replica A");
    }

    [Fact]
    public async Task A_key_revoked_through_one_replica_is_refused_by_the_other_long_before_its_cache_expires()
    {
        var created = await Expect.StatusAsync(await replicas.AdminA.PostAsJsonAsync("/api/v1/keys", new { name = KeywayFixture.Unique("key") }), 201);
        var id = (string)created["key"]!["id"]!;
        using var caller = replicas.B.CreateClient((string)created["token"]!);
        // B verifies the key and caches the caller for 30 s.
        await Expect.StatusAsync(await caller.GetAsync("/api/v1/keys"), 200);

        await Expect.StatusAsync(await replicas.AdminA.DeleteAsync($"/api/v1/keys/{id}"), 204);

        await Poll.UntilAsync(
            async () => (await caller.GetAsync("/api/v1/keys")).StatusCode == HttpStatusCode.Unauthorized,
            Propagation, "replica B to refuse the key revoked through replica A");
    }

    [Fact]
    public async Task A_session_signed_out_on_one_replica_is_refused_by_the_other_at_once()
    {
        var name = KeywayFixture.Unique("user");
        const string password = "a replica passphrase";
        await Expect.StatusAsync(await replicas.AdminA.PostAsJsonAsync("/api/v1/users", new { name, role = "member", source = "local", password }), 201);
        using var onA = replicas.A.CreateClient();
        var login = await onA.PostAsJsonAsync("/api/v1/auth/login", new { name, password });
        var signedIn = await Expect.StatusAsync(login, 200);
        var session = login.Headers.GetValues("Set-Cookie").Select(c => c.Split(';')[0]).Single(c => c.StartsWith(Sessions.CookieName + "=", StringComparison.Ordinal));
        // The same cookie, presented to the other replica (a load balancer without stickiness).
        using var onB = replicas.B.CreateClient();
        onB.DefaultRequestHeaders.Add("Cookie", session);
        await Expect.StatusAsync(await onB.GetAsync("/api/v1/me"), 200);

        using var logout = new HttpRequestMessage(HttpMethod.Post, "/api/v1/auth/logout");
        logout.Headers.Add("Cookie", session);
        logout.Headers.Add(Sessions.CsrfHeader, (string)signedIn["csrfToken"]!);
        await Expect.StatusAsync(await onA.SendAsync(logout), 204);

        await Poll.UntilAsync(
            async () => (await onB.GetAsync("/api/v1/me")).StatusCode == HttpStatusCode.Unauthorized,
            Propagation, "replica B to refuse the session signed out on replica A");
    }

    [Fact]
    public async Task Sign_in_attempts_for_one_name_are_limited_across_replicas_not_per_replica()
    {
        // An unknown name: no lockout, so only the per-name limit (4 a minute here) refuses.
        var name = KeywayFixture.Unique("nobody");
        using var onA = replicas.A.CreateClient();
        using var onB = replicas.B.CreateClient();
        for (var i = 0; i < 4; i++)
        {
            var replica = i % 2 == 0 ? onA : onB;
            await Expect.ProblemAsync(await replica.PostAsJsonAsync("/api/v1/auth/login", new { name, password = "guess " + i }), 401, "invalid_credentials");
        }

        // Two attempts on each replica: in memory each is at half its limit; shared, the name is at its limit.
        var refused = await Expect.ProblemAsync(await onA.PostAsJsonAsync("/api/v1/auth/login", new { name, password = "guess 10" }), 429, "rate_limited");
        Assert.True((int)refused["retryAfter"]! >= 1);
        await Expect.ProblemAsync(await onB.PostAsJsonAsync("/api/v1/auth/login", new { name, password = "guess 11" }), 429, "rate_limited");
    }

    [Fact]
    public async Task The_listener_reconnects_after_its_connection_is_killed_and_changes_reach_the_other_replica_again()
    {
        var resource = KeywayFixture.Unique("rec");
        await PutResourceAsync(replicas.AdminA, resource, "/v1", "one");
        Assert.Equal("one", (await RunAsync(replicas.AdminB, resource)).Headers["X-Config"]);

        var killed = await TerminateListenersAsync();
        Assert.Equal(2, killed.Count);
        await Poll.UntilAsync(
            async () => (await ListenerPidsAsync()).Count(pid => !killed.Contains(pid)) == 2,
            TimeSpan.FromSeconds(10), "both replicas to listen again on new connections");

        await PutResourceAsync(replicas.AdminA, resource, "/v2", "two");

        await Poll.UntilAsync(
            async () => (await RunAsync(replicas.AdminB, resource)).Headers["X-Config"] == "two",
            Propagation, "replica B to use the configuration saved through replica A after the reconnect");
        Assert.Contains("Lost the change listener", replicas.B.AllOutput, StringComparison.Ordinal);
    }

    private async Task PutResourceAsync(HttpClient admin, string name, string basePath, string marker) =>
        await Expect.SuccessAsync(await admin.PutAsJsonAsync($"/api/v1/resources/{name}", new
        {
            baseUrl = replicas.Upstream.BaseUrl + basePath,
            headers = new Dictionary<string, string> { ["X-Config"] = marker },
        }));

    private static async Task SetSecretAsync(HttpClient admin, string name, string value) =>
        await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{name}", new { value, secret = true }), 200);

    /// <summary>Runs the resource through <paramref name="admin"/>'s replica and returns the request the upstream received.</summary>
    private async Task<UpstreamRequest> RunAsync(HttpClient admin, string resource)
    {
        var probe = Guid.NewGuid().ToString("N");
        await Expect.StatusAsync(await admin.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/probe", query = new { probe } }), 200);
        return replicas.Upstream.Requests.Single(r => r.Query.GetValueOrDefault("probe") == probe);
    }

    private async Task<List<int>> TerminateListenersAsync()
    {
        await using var connection = new NpgsqlConnection((await PostgresCluster.GetSharedAsync()).AdminConnectionString);
        await connection.OpenAsync();
        // pg_terminate_backend in the select list, not the WHERE clause: only filtered rows reach it.
        await using var command = new NpgsqlCommand(
            "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2", connection)
        {
            Parameters = { new() { Value = replicas.Database.Name }, new() { Value = ListenerApplicationName } },
        };
        return await ReadPidsAsync(command);
    }

    private async Task<List<int>> ListenerPidsAsync()
    {
        await using var connection = new NpgsqlConnection((await PostgresCluster.GetSharedAsync()).AdminConnectionString);
        await connection.OpenAsync();
        // A listener counts once it has run LISTEN (its last statement, unless a later keep-alive ping).
        await using var command = new NpgsqlCommand(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2 AND (query ILIKE 'LISTEN%' OR query = 'SELECT 1')", connection)
        {
            Parameters = { new() { Value = replicas.Database.Name }, new() { Value = ListenerApplicationName } },
        };
        return await ReadPidsAsync(command);
    }

    private static async Task<List<int>> ReadPidsAsync(NpgsqlCommand command)
    {
        var pids = new List<int>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
            pids.Add(reader.GetInt32(0));
        return pids;
    }
}

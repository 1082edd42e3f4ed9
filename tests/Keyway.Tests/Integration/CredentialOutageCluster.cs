using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// Three <c>keyway serve</c> replicas on a PostgreSQL cluster of their own (one the tests crash and
/// start again), an OpenID Connect provider that rotates refresh tokens, revokes the grant on
/// reuse and issues 3-second access tokens stating <c>expires_in</c> as a whole 3 seconds while
/// their JWT <c>exp</c> counts from the issue second (<see cref="AuthServerOptions.StateNominalExpiresIn"/>), and its
/// protected API (<c>/api/me</c>) as the upstream: it accepts only access tokens valid now (JWT
/// <c>exp</c> without clock skew, not revoked) and answers 401 otherwise, counted by
/// <see cref="AuthServer.ApiRejectionCount"/>.
/// Each test connects a resource of its own (<see cref="ConnectAsync"/>) with a provider client of
/// its own, so a hold on that client's token answers catches only that resource's refreshes.
/// </summary>
public sealed class CredentialOutageCluster : IAsyncLifetime
{
    /// <summary>The access token lifetime the provider issues.</summary>
    public static readonly TimeSpan AccessTokenLifetime = TimeSpan.FromSeconds(3);

    /// <summary>The resources' <c>timeouts.requestMs</c>.</summary>
    public const int RequestTimeoutMs = 2000;

    /// <summary>The journal directory in a replica's data directory; one <c>*.entry</c> file per pending token answer.</summary>
    public const string JournalDirectoryName = "credential-journal";

    private PostgresDatabase? _database;

    internal PostgresCluster Postgres { get; private set; } = null!;

    public AuthServer Provider { get; private set; } = null!;

    /// <summary>Replicas 1, 2 and 3 (indexes 0, 1, 2).</summary>
    public IReadOnlyList<KeywayProcess> Replicas { get; private set; } = [];

    public async Task InitializeAsync()
    {
        Postgres = await PostgresCluster.StartOwnAsync();
        _database = await Postgres.CreateDatabaseAsync();
        Provider = await AuthServer.StartAsync(new AuthServerOptions { AccessTokenLifetime = AccessTokenLifetime, StateNominalExpiresIn = true });
        var options = new KeywayProcessOptions
        {
            Store = StoreKind.Postgres,
            DatabaseUrl = _database.Url,
            Environment = new Dictionary<string, string>
            {
                ["KEYWAY_ADMIN_TOKEN"] = "kw_outage_" + Guid.NewGuid().ToString("N"),
                ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
            },
        };

        // One after the other: the first bootstraps the admin, the others find it.
        var replicas = new List<KeywayProcess>();
        Replicas = replicas;
        for (var i = 0; i < 3; i++)
            replicas.Add(await KeywayProcess.StartAsync(options));
    }

    public async Task DisposeAsync()
    {
        foreach (var replica in Replicas)
            await replica.DisposeAsync();
        if (Provider is not null)
            await Provider.DisposeAsync();
        Postgres?.Dispose();
    }

    /// <summary>The journal entries of a replica now: complete files (written under another name, then renamed).</summary>
    public static string[] JournalEntries(KeywayProcess replica)
    {
        var directory = Path.Combine(replica.DataDirectory, JournalDirectoryName);
        return Directory.Exists(directory) ? Directory.GetFiles(directory, "*.entry") : [];
    }

    /// <summary>The journal entries of a replica written (created or replaced) at or after <paramref name="since"/>.</summary>
    public static string[] JournalEntriesWrittenSince(KeywayProcess replica, DateTime since) =>
        [.. JournalEntries(replica).Where(f =>
        {
            try
            {
                return File.GetLastWriteTimeUtc(f) >= since;
            }
            catch (IOException)
            {
                return false;
            }
        })];

    /// <summary>What a replica logged about a problem answer (the lines with its trace id, and a few after each), for failure messages.</summary>
    public string LogFor(RunOutcome outcome)
    {
        if (outcome.TraceId is not { } traceId || outcome.Replica < 0 || outcome.Replica >= Replicas.Count)
            return "";
        var lines = Replicas[outcome.Replica].OutputLines;
        var found = new List<string>();
        for (var i = 0; i < lines.Count && found.Count < 40; i++)
        {
            if (lines[i].Contains(traceId, StringComparison.Ordinal))
                found.AddRange(lines.Skip(i).Take(12));
        }
        return found.Count == 0 ? $"(replica {outcome.Replica + 1} logged nothing with {traceId})" : string.Join('\n', found);
    }

    /// <summary>
    /// Puts PostgreSQL and every replica back up after a test that stopped them, and forgets the
    /// provider's records, so each test starts from a running cluster.
    /// </summary>
    public async Task EnsureRunningAsync()
    {
        if (Postgres.IsDown)
            await Postgres.StartAgainAsync();
        foreach (var replica in Replicas)
        {
            if (replica.HasExited)
                await replica.RestartAsync();
        }

        Provider.ClearRecords();
    }

    /// <summary>
    /// A resource of its own, <c>oauth2</c> with grant <c>refresh_token</c> and
    /// <c>timeouts.requestMs</c> = <see cref="RequestTimeoutMs"/>, against a provider client of its
    /// own, connected by importing a refresh token alice obtained (as a person connecting would).
    /// </summary>
    public async Task<OutageResource> ConnectAsync(string prefix)
    {
        var name = KeywayFixture.Unique(prefix);
        var client = new AuthServerClient { ClientId = name, ClientSecret = "secret-" + Guid.NewGuid().ToString("N") };
        await Provider.AddClientAsync(client);
        var variable = "CLIENT_SECRET_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        using var admin = Replicas[0].CreateAdminClient();
        await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{variable}",
            new { value = client.ClientSecret, secret = true }), 200);
        await Expect.SuccessAsync(await admin.PutAsJsonAsync($"/api/v1/resources/{name}", new
        {
            baseUrl = Provider.BaseUrl,
            auth = new
            {
                type = "oauth2",
                grant = "refresh_token",
                tokenUrl = Provider.TokenEndpoint,
                clientId = client.ClientId,
                clientSecret = $"{{{{ environment.variables.{variable} }}}}",
            },
            timeouts = new { requestMs = RequestTimeoutMs },
        }));

        using var http = new HttpClient();
        var initial = await Duende.IdentityModel.Client.HttpClientTokenRequestExtensions.RequestPasswordTokenAsync(http, new Duende.IdentityModel.Client.PasswordTokenRequest
        {
            Address = Provider.TokenEndpoint,
            ClientId = client.ClientId,
            ClientSecret = client.ClientSecret,
            UserName = AuthServerUser.Alice.Username,
            Password = AuthServerUser.Alice.Password,
            Scope = AuthServer.ApiScope + " " + OpenIddict.Abstractions.OpenIddictConstants.Scopes.OfflineAccess,
        });
        Assert.False(initial.IsError, initial.Raw);
        await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/resources/{name}/credential", new { refreshToken = initial.RefreshToken }), 200);
        return new OutageResource(name, client.ClientId);
    }

    /// <summary>Deletes a test's resource once the store is up again, so the proactive sweep leaves it alone in later tests.</summary>
    public async Task RemoveAsync(OutageResource resource)
    {
        using var admin = Replicas[0].CreateAdminClient();
        using var _ = await admin.DeleteAsync($"/api/v1/resources/{resource.Name}");
    }

    /// <summary>
    /// One run (<c>POST …/run</c>, <c>GET /api/me</c> at the upstream) through a replica. An answer
    /// slower than <paramref name="timeout"/> (default: the request timeout plus 8 s) is reported
    /// with status 0; a replica not listening with status −1.
    /// </summary>
    public static async Task<RunOutcome> RunAsync(KeywayProcess replica, int index, string resource, TimeSpan? timeout = null)
    {
        using var client = replica.CreateAdminClient();
        client.Timeout = timeout ?? TimeSpan.FromMilliseconds(RequestTimeoutMs + 8000);
        var clock = Stopwatch.StartNew();
        try
        {
            using var response = await client.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { method = "GET", path = "/api/me" });
            var body = await response.Content.ReadAsStringAsync();
            JsonNode? json = null;
            try
            {
                json = body.Length > 0 ? JsonNode.Parse(body) : null;
            }
            catch (System.Text.Json.JsonException)
            {
            }

            var status = (int)response.StatusCode;
            return new RunOutcome(index, status, status == 200 ? null : (string?)json?["code"],
                status == 200 ? (int?)json?["status"] : null, clock.Elapsed, status == 200 ? "" : body);
        }
        catch (TaskCanceledException)
        {
            return new RunOutcome(index, 0, null, null, clock.Elapsed, $"no answer within {client.Timeout.TotalSeconds:0.#} s");
        }
        catch (HttpRequestException e)
        {
            return new RunOutcome(index, -1, null, null, clock.Elapsed, e.Message);
        }
    }

    /// <summary>When the stored access token expires, as a replica reports it.</summary>
    public static async Task<DateTimeOffset> StoredExpiryAsync(KeywayProcess replica, string resource) =>
        DateTimeOffset.Parse((string)(await CredentialAsync(replica, resource))["expiresAt"]!, System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>The credential's status as a replica reports it (<c>GET …/credential</c>).</summary>
    public static async Task<JsonNode> CredentialAsync(KeywayProcess replica, string resource)
    {
        using var admin = replica.CreateAdminClient();
        return await Expect.StatusAsync(await admin.GetAsync($"/api/v1/resources/{resource}/credential"), 200);
    }

    /// <summary>
    /// Starts <c>POST …/credential/refresh</c> on a replica (the refresh takes the cluster lock, marks
    /// the refresh in flight and asks the provider) and returns its outcome when it answers.
    /// </summary>
    public static async Task<RunOutcome> ForceRefreshAsync(KeywayProcess replica, int index, string resource)
    {
        using var admin = replica.CreateAdminClient();
        admin.Timeout = TimeSpan.FromSeconds(60);
        var clock = Stopwatch.StartNew();
        try
        {
            using var response = await admin.PostAsync($"/api/v1/resources/{resource}/credential/refresh", null);
            var body = await response.Content.ReadAsStringAsync();
            return new RunOutcome(index, (int)response.StatusCode, null, null, clock.Elapsed, body);
        }
        catch (TaskCanceledException)
        {
            return new RunOutcome(index, 0, null, null, clock.Elapsed, "no answer within 60 s");
        }
        catch (HttpRequestException e)
        {
            return new RunOutcome(index, -1, null, null, clock.Elapsed, e.Message);
        }
    }

    /// <summary>
    /// Waits until a run through every replica answers 200 with the upstream's 200; on timeout,
    /// fails with what each replica answered last and what the provider saw.
    /// </summary>
    public async Task WaitUntilEveryReplicaServesAsync(string resource, TimeSpan timeout, string when)
    {
        var last = new RunOutcome[Replicas.Count];
        try
        {
            await Poll.UntilAsync(async () =>
            {
                var outcomes = await Task.WhenAll(Replicas.Select((r, i) => RunAsync(r, i, resource)));
                outcomes.CopyTo(last, 0);
                return outcomes.All(o => o.Succeeded);
            }, timeout, $"every replica to serve the credential {when}");
        }
        catch (TimeoutException e)
        {
            Assert.Fail($"{e.Message}\nLast answers:\n{string.Join('\n', last.Select(o => o?.ToString() ?? "(none)"))}\n{ProviderSummary()}");
        }
    }

    /// <summary>Reuses, revocations and refreshes at the provider, for failure messages and test output.</summary>
    public string ProviderSummary() =>
        $"provider: {Provider.RefreshTokenReuses.Count} refresh token reuses, " +
        $"{Provider.TokenRequests.Count(r => r.GrantType == "refresh_token" && r.StatusCode == 200)} successful and " +
        $"{Provider.TokenRequests.Count(r => r.GrantType == "refresh_token" && r.StatusCode != 200)} refused refresh_token requests, " +
        $"{Provider.ApiRejectionCount} API 401s";
}

/// <summary>A test's resource and the provider client its credential was issued to.</summary>
public sealed record OutageResource(string Name, string ClientId);

/// <summary>
/// What one request through a replica answered. <see cref="Status"/> 0: no answer in time; −1: the
/// replica did not listen. <see cref="UpstreamStatus"/>: the upstream's status in a 200 run answer.
/// </summary>
public sealed record RunOutcome(int Replica, int Status, string? Code, int? UpstreamStatus, TimeSpan Elapsed, string Detail)
{
    /// <summary>When the answer came (or the caller gave up).</summary>
    public DateTimeOffset At { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>The <c>traceId</c> of a problem answer, to find the replica's log lines.</summary>
    public string? TraceId => System.Text.RegularExpressions.Regex.Match(Detail, "\"traceId\":\"([^\"]+)\"") is { Success: true } m ? m.Groups[1].Value : null;

    public bool Succeeded => Status == 200 && UpstreamStatus == 200;

    public override string ToString() =>
        $"replica {Replica + 1}: {Status}{(Code is null ? "" : " " + Code)}{(UpstreamStatus is { } u ? $" (upstream {u})" : "")} " +
        $"in {Elapsed.TotalMilliseconds:0} ms{(Detail.Length > 0 ? ": " + Truncate(Detail) : "")}";

    private static string Truncate(string text) => text.Length <= 300 ? text : text[..300] + "…";
}

/// <summary>
/// Runs through every replica, one caller per replica at a steady pace, until stopped, and keeps
/// every outcome: the witness that no replica answered 500 (or hung) while the store was down.
/// </summary>
public sealed class OutageTraffic : IAsyncDisposable
{
    private static readonly TimeSpan Pace = TimeSpan.FromMilliseconds(100);

    private readonly CancellationTokenSource _stop = new();
    private readonly List<RunOutcome> _outcomes = [];
    private readonly Task _workers;
    private readonly Action<string>? _report;

    /// <param name="replicas">The replicas to call.</param>
    /// <param name="resource">The resource to run.</param>
    /// <param name="report">Where the summary and the first violations go when the traffic is disposed (the test's output), pass or fail.</param>
    public OutageTraffic(IReadOnlyList<KeywayProcess> replicas, string resource, Action<string>? report = null)
    {
        _report = report;
        _workers = Task.WhenAll(replicas.Select((replica, index) => Task.Run(async () =>
        {
            using var pace = new PeriodicTimer(Pace);
            while (!_stop.IsCancellationRequested)
            {
                var outcome = await CredentialOutageCluster.RunAsync(replica, index, resource);
                lock (_outcomes)
                    _outcomes.Add(outcome);
                try
                {
                    await pace.WaitForNextTickAsync(_stop.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        })));
    }

    public IReadOnlyList<RunOutcome> Outcomes
    {
        get
        {
            lock (_outcomes)
                return [.. _outcomes];
        }
    }

    /// <summary>Whether each of <paramref name="replicas"/> answered at least <paramref name="count"/> runs (any answer but "not listening") after <paramref name="since"/>.</summary>
    public bool Answered(IEnumerable<int> replicas, DateTimeOffset since, int count)
    {
        var outcomes = Outcomes;
        return replicas.All(r => outcomes.Count(o => o.Replica == r && o.Status != -1 && o.At - o.Elapsed > since) >= count);
    }

    /// <summary>Answers that must not happen: a 500 (any internal error) or no answer within the request timeout and slack.</summary>
    public IReadOnlyList<RunOutcome> Violations => [.. Outcomes.Where(o => o.Status is 500 or 0)];

    /// <summary>How many answers of each status, e.g. <c>200×40, 503 store_unavailable×12</c>.</summary>
    public string Summary() => string.Join(", ", Outcomes
        .GroupBy(o => o.Status + (o.Code is null ? "" : " " + o.Code))
        .OrderBy(g => g.Key, StringComparer.Ordinal)
        .Select(g => $"{g.Key}×{g.Count()}"));

    /// <summary>Stops the callers and waits for their last requests.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await _workers;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
            await StopAsync();
        _stop.Dispose();
        _report?.Invoke($"traffic during the test: {Summary()}");
        foreach (var violation in Violations.Take(5))
            _report?.Invoke("  " + violation);
    }
}

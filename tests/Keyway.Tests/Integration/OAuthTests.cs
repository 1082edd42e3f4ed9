using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// The oauth2 auth method against a real OpenID Connect server on loopback (OpenIddict) with short
/// token lifetimes and refresh-token rotation with reuse detection.
/// </summary>
[Trait("Category", "Integration")]
public sealed class OAuthTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static Dictionary<string, string> Env(string token, string? masterKey = null) => new()
    {
        ["KEYWAY_ADMIN_TOKEN"] = token,
        ["KEYWAY_MASTER_KEY"] = masterKey ?? KeywayProcess.NewMasterKey(),
    };

    private static async Task ResourceAsync(HttpClient admin, string name, AuthServer server, object auth, object? extra = null)
    {
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/environments/production/variables/OAUTH_SECRET",
            new { value = AuthServerClient.Default.ClientSecret, secret = true }), 200);
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/environments/production/variables/ALICE_PASSWORD",
            new { value = AuthServerUser.Alice.Password, secret = true }), 200);
        var definition = JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(new { baseUrl = server.BaseUrl, auth }))!.AsObject();
        if (extra is not null)
        {
            foreach (var (key, value) in System.Text.Json.JsonSerializer.SerializeToNode(extra)!.AsObject())
            {
                definition[key] = value?.DeepClone();
            }
        }

        await Expect.SuccessAsync(await admin.PutAsJsonAsync($"/api/v1/resources/{name}", definition));
    }

    private static object ClientCredentials(AuthServer server, bool discovery = false) => discovery
        ? new { type = "oauth2", grant = "client_credentials", issuer = server.Issuer, clientId = "keyway", clientSecret = "{{ environment.variables.OAUTH_SECRET }}", scope = AuthServer.ApiScope }
        : new { type = "oauth2", grant = "client_credentials", tokenUrl = server.TokenEndpoint, clientId = "keyway", clientSecret = "{{ environment.variables.OAUTH_SECRET }}", scope = AuthServer.ApiScope, clientAuth = "post" };

    private static object Password(AuthServer server) => new
    {
        type = "oauth2",
        grant = "password",
        tokenUrl = server.TokenEndpoint,
        clientId = "keyway",
        clientSecret = "{{ environment.variables.OAUTH_SECRET }}",
        scope = AuthServer.ApiScope + " offline_access",
        username = "alice",
        password = "{{ environment.variables.ALICE_PASSWORD }}",
    };

    [Theory]
    [MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Client_credentials_tokens_are_obtained_once_and_attached_by_runs_and_the_proxy(StoreKind store)
    {
        await using var server = await AuthServer.StartAsync();
        var token = "kw_oauth_" + Guid.NewGuid().ToString("N");
        await using var keyway = await KeywayProcess.StartAsync(store, Env(token));
        using var admin = keyway.CreateAdminClient();
        await ResourceAsync(admin, "cc", server, ClientCredentials(server));
        await ResourceAsync(admin, "cc-discovered", server, ClientCredentials(server, discovery: true));

        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/cc/run", new { path = "/api/me" }), 200);
        var proxied = await admin.GetAsync("/proxy/cc/api/me");
        var discovered = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/cc-discovered/run", new { path = "/api/me" }), 200);
        var status = await Expect.StatusAsync(await admin.GetAsync("/api/v1/resources/cc/credential"), 200);

        Assert.Equal(200, (int)run["status"]!);
        Assert.Equal(HttpStatusCode.OK, proxied.StatusCode);
        Assert.Equal(200, (int)discovered["status"]!);
        Assert.Equal(2, server.TokenRequestCount("client_credentials"));
        Assert.Equal("valid", (string?)status["state"]);
        Assert.Null(status["accessToken"]);
        Assert.DoesNotContain(AuthServerClient.Default.ClientSecret, keyway.AllOutput);
    }

    [Theory]
    [MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Expired_tokens_are_refreshed_once_per_expiry_with_rotating_refresh_tokens_and_no_request_fails(StoreKind store)
    {
        await using var server = await AuthServer.StartAsync(new AuthServerOptions { AccessTokenLifetime = TimeSpan.FromSeconds(3) });
        var token = "kw_oauth_" + Guid.NewGuid().ToString("N");
        await using var keyway = await KeywayProcess.StartAsync(store, Env(token));
        using var admin = keyway.CreateAdminClient();
        await ResourceAsync(admin, "pw", server, Password(server));

        var statuses = await LoadAsync([keyway], "pw", TimeSpan.FromSeconds(10));
        Report(store + ", 1 process", statuses, server, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(3));

        Assert.All(statuses, s => Assert.Equal(200, s));
        Assert.Empty(server.RefreshTokenReuses);
        var refreshes = server.TokenRequestCount("refresh_token");
        // A 3-second token is refreshed a quarter of its life in (its whole-second and clock-skew allowances
        // leave no more): one refresh per 0.75 s at most, never a storm.
        Assert.InRange(refreshes, 2, MostRefreshes(TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(3)));
        Assert.Equal(1, server.TokenRequestCount("password"));
        Assert.All(server.IssuedRefreshTokens, rt => Assert.DoesNotContain(rt, keyway.AllOutput));
    }

    [Fact]
    public async Task Three_replicas_on_one_postgresql_spend_each_refresh_token_once()
    {
        await using var server = await AuthServer.StartAsync(new AuthServerOptions { AccessTokenLifetime = TimeSpan.FromSeconds(3) });
        var cluster = await PostgresCluster.GetSharedAsync();
        var database = await cluster.CreateDatabaseAsync();
        var token = "kw_oauth_" + Guid.NewGuid().ToString("N");
        var env = Env(token);
        var replicas = new List<KeywayProcess>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                replicas.Add(await KeywayProcess.StartAsync(new KeywayProcessOptions { Store = StoreKind.Postgres, DatabaseUrl = database.Url, Environment = env }));
            }

            using (var admin = replicas[0].CreateAdminClient())
            {
                await ResourceAsync(admin, "shared", server, Password(server));
            }

            var statuses = await LoadAsync(replicas, "shared", TimeSpan.FromSeconds(12));
            Report("Postgres, 3 replicas", statuses, server, TimeSpan.FromSeconds(12), TimeSpan.FromSeconds(3));

            Assert.All(statuses, s => Assert.Equal(200, s));
            Assert.Empty(server.RefreshTokenReuses);
            // Tokens live 3 s over 12 s of load: across the three replicas no more refreshes than one
            // process makes (one per quarter lifetime, see above), and at least one, however slowly a loaded
            // machine served the load.
            Assert.InRange(server.TokenRequestCount("refresh_token"), 1, MostRefreshes(TimeSpan.FromSeconds(12), TimeSpan.FromSeconds(3)));
            Assert.Equal(1, server.TokenRequestCount("password"));
        }
        finally
        {
            foreach (var replica in replicas)
            {
                await replica.DisposeAsync();
            }

            await cluster.DropDatabaseAsync(database.Name);
        }
    }

    [Fact]
    public async Task A_replica_killed_in_the_middle_of_refreshes_leaves_every_credential_working_after_restart()
    {
        // Real providers allow a short reuse interval for exactly this case (a client that died
        // before storing the rotated token); without one, Keyway reports reconnect_required instead.
        await using var server = await AuthServer.StartAsync(new AuthServerOptions
        {
            AccessTokenLifetime = TimeSpan.FromSeconds(2),
            RefreshTokenReuseLeeway = TimeSpan.FromSeconds(30),
        });
        var cluster = await PostgresCluster.GetSharedAsync();
        var database = await cluster.CreateDatabaseAsync();
        var env = Env("kw_oauth_" + Guid.NewGuid().ToString("N"));
        await using var a = await KeywayProcess.StartAsync(new KeywayProcessOptions { Store = StoreKind.Postgres, DatabaseUrl = database.Url, Environment = env });
        await using var b = await KeywayProcess.StartAsync(new KeywayProcessOptions { Store = StoreKind.Postgres, DatabaseUrl = database.Url, Environment = env });
        using (var admin = a.CreateAdminClient())
        {
            for (var i = 0; i < 5; i++)
            {
                await ResourceAsync(admin, $"r{i}", server, Password(server));
            }
        }

        var load = Task.Run(async () =>
        {
            using var client = a.CreateAdminClient();
            for (var round = 0; round < 40; round++)
            {
                foreach (var i in Enumerable.Range(0, 5))
                {
                    using var _ = await client.GetAsync($"/proxy/r{i}/api/me");
                }
            }
        });
        await Poll.UntilAsync(() => server.TokenRequestCount("refresh_token") >= 3, TimeSpan.FromSeconds(30), "refreshes to be under way");
        Assert.Equal(137, await a.KillAsync());
        await load.ContinueWith(_ => { }, TaskScheduler.Default);
        await a.RestartAsync();

        // After the next expiry every credential must still work, through either replica.
        var expiry = server.TokenRequestCount("refresh_token");
        await Poll.UntilAsync(() => server.TokenRequestCount("refresh_token") > expiry, TimeSpan.FromSeconds(30), "a refresh after the restart", default);
        var statuses = await LoadAsync([a, b], "r0", TimeSpan.FromSeconds(3));
        foreach (var i in Enumerable.Range(0, 5))
        {
            using var client = (i % 2 == 0 ? a : b).CreateAdminClient();
            var response = await client.GetAsync($"/proxy/r{i}/api/me");
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"r{i}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        Assert.All(statuses, s => Assert.Equal(200, s));
        await cluster.DropDatabaseAsync(database.Name);
    }

    [Theory]
    [MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_revoked_grant_gives_reconnect_required_and_the_provider_is_not_called_again(StoreKind store)
    {
        await using var server = await AuthServer.StartAsync(new AuthServerOptions { AccessTokenLifetime = TimeSpan.FromSeconds(2) });
        await using var keyway = await KeywayProcess.StartAsync(store, Env("kw_oauth_" + Guid.NewGuid().ToString("N")));
        using var admin = keyway.CreateAdminClient();
        await ResourceAsync(admin, "revoked", server, Password(server));
        await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/revoked/run", new { path = "/api/me" }), 200);
        // Spend the refresh token behind Keyway's back: reuse detection takes the grant down.
        using var http = new HttpClient();
        foreach (var rt in server.IssuedRefreshTokens)
        {
            await Duende.IdentityModel.Client.HttpClientTokenRequestExtensions.RequestRefreshTokenAsync(http, new Duende.IdentityModel.Client.RefreshTokenRequest
            {
                Address = server.TokenEndpoint,
                ClientId = "keyway",
                ClientSecret = AuthServerClient.Default.ClientSecret,
                RefreshToken = rt,
            });
            await Duende.IdentityModel.Client.HttpClientTokenRequestExtensions.RequestRefreshTokenAsync(http, new Duende.IdentityModel.Client.RefreshTokenRequest
            {
                Address = server.TokenEndpoint,
                ClientId = "keyway",
                ClientSecret = AuthServerClient.Default.ClientSecret,
                RefreshToken = rt,
            });
        }

        await Poll.UntilAsync(async () =>
        {
            var status = await Expect.StatusAsync(await admin.GetAsync("/api/v1/resources/revoked/credential"), 200);
            return (string?)status["state"] is "expired" or "expiring" or "reconnect_required";
        }, TimeSpan.FromSeconds(10), "the token to expire");
        var first = await admin.PostAsJsonAsync("/api/v1/resources/revoked/run", new { path = "/api/me" });
        var problem = await Expect.ProblemAsync(first, 409, "reconnect_required");
        var requests = server.TokenRequests.Count;
        var again = await admin.PostAsJsonAsync("/api/v1/resources/revoked/run", new { path = "/api/me" });
        var status = await Expect.StatusAsync(await admin.GetAsync("/api/v1/resources/revoked/credential"), 200);

        await Expect.ProblemAsync(again, 409, "reconnect_required");
        Assert.Equal(requests, server.TokenRequests.Count);
        Assert.Equal("reconnect_required", (string?)status["state"]);
        Assert.Contains("invalid_grant", (string?)status["lastError"]);
        Assert.Contains("invalid_grant", (string?)problem["detail"]);
    }

    [Fact]
    public async Task A_transient_provider_failure_while_the_token_is_valid_is_invisible_to_callers()
    {
        await using var server = await AuthServer.StartAsync(new AuthServerOptions { AccessTokenLifetime = TimeSpan.FromSeconds(60) });
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Env("kw_oauth_" + Guid.NewGuid().ToString("N")));
        using var admin = keyway.CreateAdminClient();
        await ResourceAsync(admin, "flaky", server, Password(server));
        await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/flaky/run", new { path = "/api/me" }), 200);
        server.FailNextTokenRequests(1, 503);

        var refreshed = await Expect.StatusAsync(await admin.PostAsync("/api/v1/resources/flaky/credential/refresh", null), 200);
        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/flaky/run", new { path = "/api/me" }), 200);

        Assert.Equal(1, (int)refreshed["failureCount"]!);
        Assert.Contains("503", (string?)refreshed["lastError"]);
        Assert.Equal(200, (int)run["status"]!);
    }

    [Fact]
    public async Task A_misconfigured_client_is_a_clear_failure_that_stops_calling_the_provider()
    {
        await using var server = await AuthServer.StartAsync();
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Env("kw_oauth_" + Guid.NewGuid().ToString("N")));
        using var admin = keyway.CreateAdminClient();
        await ResourceAsync(admin, "wrong", server, ClientCredentials(server));
        server.RejectClient("keyway");

        var first = await Expect.ProblemAsync(await admin.PostAsJsonAsync("/api/v1/resources/wrong/run", new { path = "/api/me" }), 502, "credential_failed");
        var count = server.TokenRequests.Count;
        await Expect.ProblemAsync(await admin.PostAsJsonAsync("/api/v1/resources/wrong/run", new { path = "/api/me" }), 502, "credential_failed");

        Assert.Contains("invalid_client", (string?)first["detail"]);
        Assert.Equal(count, server.TokenRequests.Count);
    }

    [Fact]
    public async Task Each_person_connects_their_own_account_with_pkce_and_disconnecting_revokes_it()
    {
        await using var server = await AuthServer.StartAsync();
        var environment = Env("kw_oauth_" + Guid.NewGuid().ToString("N"));
        environment["KEYWAY_ADMIN_PASSWORD"] = "admin-password-" + Guid.NewGuid().ToString("N");
        await using var keyway = await KeywayProcess.StartAsync(new KeywayProcessOptions { Environment = environment });
        await server.AddRedirectUriAsync("keyway", new Uri(keyway.BaseUrl + "/oauth/callback"));
        using var admin = keyway.CreateAdminClient();
        await ResourceAsync(admin, "mine", server, new
        {
            type = "oauth2",
            grant = "authorization_code",
            issuer = server.Issuer,
            clientId = "keyway",
            clientSecret = "{{ environment.variables.OAUTH_SECRET }}",
            scope = "openid " + AuthServer.ApiScope + " offline_access",
        }, new { shareCredentials = false });

        var before = await Expect.ProblemAsync(await admin.PostAsJsonAsync("/api/v1/resources/mine/run", new { path = "/api/me" }), 409, "not_connected");
        async Task<Uri> ApprovedCallbackAsync(string who)
        {
            using var connectRequest = new HttpRequestMessage(HttpMethod.Get, "/api/v1/resources/mine/connect");
            connectRequest.Headers.Accept.ParseAdd("application/json");
            var connect = await Expect.StatusAsync(await admin.SendAsync(connectRequest), 200);
            var authorizeUrl = (string)connect["authorizeUrl"]!;
            Assert.Contains("code_challenge_method=S256", authorizeUrl);
            Assert.Contains("state=", authorizeUrl);
            Assert.Contains("nonce=", authorizeUrl);
            using var atProvider = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false, UseProxy = false });
            var approved = await atProvider.GetAsync(authorizeUrl + "&login_hint=" + who);
            Assert.Equal(HttpStatusCode.Redirect, approved.StatusCode);
            Assert.StartsWith(keyway.BaseUrl + "/oauth/callback", approved.Headers.Location!.ToString());
            return approved.Headers.Location!;
        }

        // A browser that is not signed in to Keyway as the admin (someone the link was sent to) cannot finish it.
        using var strangersBrowser = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false, UseProxy = false });
        var elsewhere = await strangersBrowser.GetAsync(await ApprovedCallbackAsync("bob"));
        Assert.Equal(HttpStatusCode.Forbidden, elsewhere.StatusCode);
        Assert.Contains("signed in to Keyway as the person who started it", WebUtility.HtmlDecode(await elsewhere.Content.ReadAsStringAsync()));
        await Expect.ProblemAsync(await admin.PostAsJsonAsync("/api/v1/resources/mine/run", new { path = "/api/me" }), 409, "not_connected");

        // The admin's own browser, signed in to Keyway, finishes it.
        using var browser = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = true, CookieContainer = new CookieContainer(), UseProxy = false })
        {
            BaseAddress = new Uri(keyway.BaseUrl),
        };
        await Expect.StatusAsync(await browser.PostAsJsonAsync("/api/v1/auth/login", new { name = "admin", password = environment["KEYWAY_ADMIN_PASSWORD"] }), 200);
        var callback = await ApprovedCallbackAsync("bob");
        var page = await browser.GetAsync(callback);
        var replay = await browser.GetAsync(callback);

        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, replay.StatusCode);
        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/mine/run", new { path = "/api/me" }), 200);
        Assert.Contains("bob", run["body"]!.ToJsonString());
        Assert.EndsWith("/api/v1/resources/mine/connect?environment=production", (string?)before["connectUrl"]);

        var disconnected = await Expect.StatusAsync(await admin.DeleteAsync("/api/v1/resources/mine/credential"), 200);
        Assert.True((bool)disconnected["revokedAtProvider"]!);
        Assert.NotEmpty(server.Revocations);
        await Expect.ProblemAsync(await admin.PostAsJsonAsync("/api/v1/resources/mine/run", new { path = "/api/me" }), 409, "not_connected");
    }

    [Fact]
    public async Task An_imported_refresh_token_is_used_and_the_cli_shows_the_state_without_tokens()
    {
        await using var server = await AuthServer.StartAsync(new AuthServerOptions { AccessTokenLifetime = TimeSpan.FromSeconds(30) });
        var adminToken = "kw_oauth_" + Guid.NewGuid().ToString("N");
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Env(adminToken));
        using var admin = keyway.CreateAdminClient();
        await ResourceAsync(admin, "imported", server, new
        {
            type = "oauth2",
            grant = "refresh_token",
            tokenUrl = server.TokenEndpoint,
            clientId = "keyway",
            clientSecret = "{{ environment.variables.OAUTH_SECRET }}",
        });
        using var http = new HttpClient();
        var initial = await Duende.IdentityModel.Client.HttpClientTokenRequestExtensions.RequestPasswordTokenAsync(http, new Duende.IdentityModel.Client.PasswordTokenRequest
        {
            Address = server.TokenEndpoint,
            ClientId = "keyway",
            ClientSecret = AuthServerClient.Default.ClientSecret,
            UserName = "alice",
            Password = "alice-password",
            Scope = AuthServer.ApiScope + " offline_access",
        });
        Assert.False(initial.IsError, initial.Error);
        var cli = keyway.CliEnvironment(adminToken);

        var import = await KeywayProcess.RunCliAsync(["credential", "import", "imported"], cli, initial.RefreshToken);
        var run = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/resources/imported/run", new { path = "/api/me" }), 200);
        var status = await KeywayProcess.RunCliAsync(["credential", "status", "imported"], cli);
        var test = await KeywayProcess.RunCliAsync(["resource", "test", "imported", "--path", "/api/me"], cli);

        Assert.True(import.ExitCode == 0, import.Output);
        Assert.Equal(200, (int)run["status"]!);
        Assert.Contains("valid", status.StandardOutput);
        Assert.True(test.ExitCode == 0, test.Output);
        Assert.DoesNotContain(initial.RefreshToken!, import.Output + status.Output + test.Output + keyway.AllOutput);
        Assert.All(server.IssuedRefreshTokens, rt => Assert.DoesNotContain(rt, keyway.AllOutput));
    }

    /// <summary>The most refresh_token requests one credential may cause over <paramref name="load"/>: one per quarter lifetime, plus the first and one in flight.</summary>
    private static int MostRefreshes(TimeSpan load, TimeSpan lifetime) => (int)(load / (lifetime / 4)) + 2;

    /// <summary>The figures docs/benchmarks.md records: requests, failures, refreshes against expiries.</summary>
    private void Report(string setup, List<int> statuses, AuthServer server, TimeSpan duration, TimeSpan lifetime) =>
        output.WriteLine($"credential load | {setup} | {statuses.Count} requests | {statuses.Count(s => s != 200)} failed | " +
                         $"{server.TokenRequestCount("refresh_token")} refresh_token requests over {duration.TotalSeconds:0} s of {lifetime.TotalSeconds:0} s tokens " +
                         $"(~{duration / lifetime:0.#} expiries) | {server.RefreshTokenReuses.Count} reuses");

    /// <summary>Sends proxied requests from several tasks through the replicas for a while; returns every status.</summary>
    private static async Task<List<int>> LoadAsync(List<KeywayProcess> replicas, string resource, TimeSpan duration)
    {
        var statuses = new List<int>();
        var until = DateTime.UtcNow + duration;
        var workers = Enumerable.Range(0, 6).Select(w => Task.Run(async () =>
        {
            using var client = replicas[w % replicas.Count].CreateAdminClient();
            for (var i = 0; i < 2000 && DateTime.UtcNow < until; i++)
            {
                using var response = await client.GetAsync($"/proxy/{resource}/api/me");
                lock (statuses)
                {
                    statuses.Add((int)response.StatusCode);
                }
            }
        }));
        await Task.WhenAll(workers);
        return statuses;
    }
}

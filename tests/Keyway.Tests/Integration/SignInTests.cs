using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Keyway.Access;
using Keyway.Environments;
using Keyway.SignIn;
using Keyway.Storage;
using Keyway.Tests.Infrastructure;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Integration;

/// <summary>
/// A real Keyway process with single sign-on pointed at a real OpenID Connect provider on loopback
/// (<see cref="AuthServer"/>), a real upstream, and a per-user sign-in limit low enough to reach.
/// </summary>
public abstract class SignInFixture(StoreKind store) : IAsyncLifetime
{
    public const string ClientId = "keyway-sso";
    public const string AdminGroup = "idp-admins";
    public const int PerUserLimit = 8;

    /// <summary>In the provider's admin group, and in a group the map renames.</summary>
    public static readonly AuthServerUser Carol = new("carol", "carol-password")
    {
        DisplayName = "Carol Example",
        Groups = [AdminGroup, "idp-eng", "sales"],
    };

    /// <summary>In no admin group.</summary>
    public static readonly AuthServerUser Dave = new("dave", "dave-password") { Groups = ["sales"] };

    /// <summary>Disabled in Keyway by a test after her first sign-on.</summary>
    public static readonly AuthServerUser Erin = new("erin", "erin-password") { Groups = ["sales"] };

    public StoreKind Store { get; } = store;

    /// <summary>The OIDC client secret Keyway holds: planted, so tests can prove it never comes out.</summary>
    public string ClientSecret { get; } = "sso-canary-" + Guid.NewGuid().ToString("N");

    public string AdminPassword { get; } = "admin-password-" + Guid.NewGuid().ToString("N");

    public AuthServer Provider { get; private set; } = null!;

    public UpstreamServer Upstream { get; private set; } = null!;

    public KeywayProcess Keyway { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Provider = await AuthServer.StartAsync(new AuthServerOptions
        {
            Clients = [new AuthServerClient { ClientId = ClientId, ClientSecret = ClientSecret }],
            Users = [Carol, Dave, Erin],
        });
        Upstream = await UpstreamServer.StartAsync();
        Keyway = await KeywayProcess.StartAsync(Store, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_test_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_ADMIN_PASSWORD"] = AdminPassword,
            ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
            ["KEYWAY_OIDC_AUTHORITY"] = Provider.Issuer,
            ["KEYWAY_OIDC_CLIENT_ID"] = ClientId,
            ["KEYWAY_OIDC_CLIENT_SECRET"] = ClientSecret,
            ["KEYWAY_OIDC_ALLOW_HTTP"] = "true",
            ["KEYWAY_OIDC_ADMIN_GROUPS"] = AdminGroup,
            ["KEYWAY_OIDC_GROUP_MAP"] = "idp-eng=engineering",
            // Every test signs in from 127.0.0.1: only the per-user limit is meant to be reached.
            ["KEYWAY_SIGNIN_RATE_PER_CLIENT"] = "100000",
            ["KEYWAY_SIGNIN_RATE_PER_USER"] = PerUserLimit.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        await Provider.AddRedirectUriAsync(ClientId, new Uri(Keyway.BaseUrl + SingleSignOn.CallbackPath));
        Admin = Keyway.CreateAdminClient();
    }

    public async Task DisposeAsync()
    {
        Admin.Dispose();
        await Keyway.DisposeAsync();
        await Upstream.DisposeAsync();
        await Provider.DisposeAsync();
    }

    /// <summary>A local account with that password, written to the store as an admin tool would.</summary>
    public async Task CreateUserAsync(string name, string password)
    {
        await using var database = OpenStore();
        var users = new UserStore(database, TimeProvider.System, new ChangeFeed());
        await users.CreateAsync(new NewUser(name, Caller.MemberRole, UserSources.Local) { PasswordHash = PasswordSignIn.Hash(name, password) }, CancellationToken.None);
    }

    /// <summary>Disables a user in the store, as an admin would.</summary>
    public async Task DisableUserAsync(string name)
    {
        await using var database = OpenStore();
        await using var connection = await database.OpenAsync(CancellationToken.None);
        await connection.ExecuteAsync("UPDATE users SET disabled_at = 1 WHERE name = @name", new { name });
    }

    private global::Keyway.Storage.Database OpenStore() => Keyway.DatabaseUrl is { } url
        ? global::Keyway.Storage.Database.Postgres(url)
        : global::Keyway.Storage.Database.Sqlite(Path.Combine(Keyway.DataDirectory, "keyway.db"));

    /// <summary>The value of the session cookie a <see cref="Browser"/> holds.</summary>
    public string SessionCookie(HttpClient browser) => Cookie(browser, Sessions.CookieName);

    /// <summary>The value of a cookie a <see cref="Browser"/> holds.</summary>
    public string Cookie(HttpClient browser, string name)
    {
        Assert.True(_jars.TryGetValue(browser, out var jar), "Not a browser from Browser().");
        return jar.GetCookies(new Uri(Keyway.BaseUrl)).Single(c => c.Name == name).Value;
    }

    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<HttpClient, CookieContainer> _jars = [];

    /// <summary>A browser: keeps cookies, follows no redirect by itself.</summary>
    public HttpClient Browser()
    {
        var jar = new CookieContainer();
        var browser = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, UseCookies = true, CookieContainer = jar })
        {
            BaseAddress = new Uri(Keyway.BaseUrl + "/"),
        };
        _jars.Add(browser, jar);
        return browser;
    }
}

public sealed class SqliteSignIn() : SignInFixture(StoreKind.Sqlite);

public sealed class PostgresSignIn() : SignInFixture(StoreKind.Postgres);

/// <summary>Console sign-in end to end: local passwords, sessions, antiforgery, lockout, rate limits and single sign-on.</summary>
[Trait("Category", "Integration")]
public abstract class SignInTests<TFixture>(TFixture fixture) : IClassFixture<TFixture>
    where TFixture : SignInFixture
{
    private const string Password = "a long enough passphrase";

    protected TFixture Fixture { get; } = fixture;

    private static string Unique(string prefix) => KeywayFixture.Unique(prefix);

    private static Task<HttpResponseMessage> LoginAsync(HttpClient client, string name, string password) =>
        client.PostAsJsonAsync("/api/v1/auth/login", new { name, password });

    private static async Task<string> SignInAsync(HttpClient browser, string name, string password)
    {
        var body = await Expect.StatusAsync(await LoginAsync(browser, name, password), 200);
        return (string)body["csrfToken"]!;
    }

    private static HttpRequestMessage Unsafe(HttpMethod method, string url, string? csrf, object? body = null)
    {
        var request = new HttpRequestMessage(method, url) { Content = body is null ? null : JsonContent.Create(body) };
        if (csrf is not null)
            request.Headers.Add(Sessions.CsrfHeader, csrf);
        return request;
    }

    [Fact]
    public async Task A_local_sign_in_sets_a_session_cookie_that_authenticates_api_calls()
    {
        var name = Unique("user");
        await Fixture.CreateUserAsync(name, Password);
        using var browser = Fixture.Browser();

        var login = await LoginAsync(browser, name, Password);
        var body = await Expect.StatusAsync(login, 200);
        var me = await Expect.StatusAsync(await browser.GetAsync("/api/v1/me"), 200);
        using var anonymous = Fixture.Keyway.CreateClient();
        var nobody = await anonymous.GetAsync("/api/v1/me");

        var session = login.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(Sessions.CookieName + "=", StringComparison.Ordinal));
        Assert.Contains("httponly", session, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=lax", session, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("secure", session, StringComparison.OrdinalIgnoreCase); // plain http here; https requests get Secure
        var csrfCookie = login.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith(Sessions.CsrfCookie + "=", StringComparison.Ordinal));
        Assert.DoesNotContain("httponly", csrfCookie, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(name, (string?)body["user"]!["name"]);
        Assert.Equal(name, (string?)me["name"]);
        Assert.Equal("local", (string?)me["source"]);
        Assert.Equal("member", (string?)me["role"]);
        Assert.Equal("session", (string?)me["authentication"]);
        Assert.Equal(HttpStatusCode.Unauthorized, nobody.StatusCode);
    }

    [Fact]
    public async Task A_wrong_password_and_an_unknown_user_get_the_same_401_problem()
    {
        var name = Unique("user");
        await Fixture.CreateUserAsync(name, Password);
        using var client = Fixture.Keyway.CreateClient();

        var wrong = await Expect.ProblemAsync(await LoginAsync(client, name, "not the password"), 401, "invalid_credentials");
        var unknown = await Expect.ProblemAsync(await LoginAsync(client, Unique("ghost"), Password), 401, "invalid_credentials");

        Assert.Equal((string?)wrong["detail"], (string?)unknown["detail"]);
    }

    [Fact]
    public async Task Five_wrong_passwords_lock_the_account_and_the_right_one_is_refused_meanwhile()
    {
        var name = Unique("user");
        await Fixture.CreateUserAsync(name, Password);
        using var client = Fixture.Keyway.CreateClient();
        for (var i = 0; i < PasswordSignIn.FailuresBeforeLock; i++)
            await Expect.ProblemAsync(await LoginAsync(client, name, "wrong " + i), 401, "invalid_credentials");

        await Expect.ProblemAsync(await LoginAsync(client, name, Password), 401, "invalid_credentials");
    }

    [Fact]
    public async Task Sign_in_attempts_beyond_the_limit_for_a_name_get_429_with_retry_after()
    {
        var name = Unique("ghost");
        using var client = Fixture.Keyway.CreateClient();
        for (var i = 0; i < SignInFixture.PerUserLimit; i++)
            await Expect.ProblemAsync(await LoginAsync(client, name, "guess " + i), 401, "invalid_credentials");

        var limited = await LoginAsync(client, name, "one more guess");

        await Expect.ProblemAsync(limited, 429, "rate_limited");
        Assert.True(int.Parse(limited.Headers.RetryAfter!.ToString(), System.Globalization.CultureInfo.InvariantCulture) >= 1);
    }

    [Fact]
    public async Task Sign_in_must_be_json_so_a_cross_site_form_cannot_sign_anyone_in()
    {
        using var client = Fixture.Keyway.CreateClient();

        var form = await client.PostAsync("/api/v1/auth/login", new FormUrlEncodedContent(new Dictionary<string, string> { ["name"] = "admin", ["password"] = Fixture.AdminPassword }));

        var broken = await client.PostAsync("/api/v1/auth/login", new StringContent("{\"name\": \"admin\", \"password\": ", Encoding.UTF8, "application/json"));

        await Expect.ProblemAsync(form, 415, "unsupported_media_type");
        Assert.False(form.Headers.Contains("Set-Cookie"));
        await Expect.ProblemAsync(broken, 400, "bad_request");
    }

    [Fact]
    public async Task An_unsafe_request_with_the_session_cookie_needs_the_antiforgery_header()
    {
        using var browser = Fixture.Browser();
        var csrf = await SignInAsync(browser, "admin", Fixture.AdminPassword);
        var environment = Unique("env");

        var without = await browser.SendAsync(Unsafe(HttpMethod.Put, $"/api/v1/environments/{environment}", null));
        var wrong = await browser.SendAsync(Unsafe(HttpMethod.Put, $"/api/v1/environments/{environment}", "not-the-token"));
        var proxied = await browser.SendAsync(Unsafe(HttpMethod.Post, "/proxy/anything/x", null));
        var with = await browser.SendAsync(Unsafe(HttpMethod.Put, $"/api/v1/environments/{environment}", csrf));
        var byKey = await Fixture.Admin.PutAsync($"/api/v1/environments/{Unique("env")}", null);

        var problem = await Expect.ProblemAsync(without, 403, "csrf_failed");
        Assert.Contains(Sessions.CsrfHeader, (string?)problem["detail"], StringComparison.Ordinal);
        await Expect.ProblemAsync(wrong, 403, "csrf_failed");
        // The proxy does not read the session cookie at all: API keys only.
        await Expect.ProblemAsync(proxied, 401, "unauthorized");
        await Expect.SuccessAsync(with);
        await Expect.SuccessAsync(byKey);
    }

    [Fact]
    public async Task Signing_out_ends_the_session_on_the_server_so_a_copy_of_its_cookie_is_refused_too()
    {
        var name = Unique("user");
        await Fixture.CreateUserAsync(name, Password);
        using var browser = Fixture.Browser();
        var csrf = await SignInAsync(browser, name, Password);
        using var other = Fixture.Browser();
        await SignInAsync(other, name, Password);
        // What a shared machine or a cookie thief keeps: the session cookie as it was before sign-out.
        var cookie = Fixture.SessionCookie(browser);
        using var copy = Fixture.Keyway.CreateClient();
        copy.DefaultRequestHeaders.Add("Cookie", $"{Sessions.CookieName}={cookie}");
        await Expect.StatusAsync(await copy.GetAsync("/api/v1/me"), 200);

        await Expect.StatusAsync(await browser.SendAsync(Unsafe(HttpMethod.Post, "/api/v1/auth/logout", csrf)), 204);

        await Expect.ProblemAsync(await copy.GetAsync("/api/v1/me"), 401, "unauthorized");
        await Expect.ProblemAsync(await browser.GetAsync("/api/v1/me"), 401, "unauthorized");
        // Only that session: the same person's other session goes on.
        await Expect.StatusAsync(await other.GetAsync("/api/v1/me"), 200);
        // And it stays refused after a restart, from the store.
        await Fixture.Keyway.RestartAsync();
        await Expect.ProblemAsync(await copy.GetAsync("/api/v1/me"), 401, "unauthorized");
        await Expect.StatusAsync(await other.GetAsync("/api/v1/me"), 200);
    }

    [Fact]
    public async Task Signing_out_everywhere_ends_every_session_of_that_person_and_no_one_elses()
    {
        var name = Unique("user");
        await Fixture.CreateUserAsync(name, Password);
        var someoneElse = Unique("user");
        await Fixture.CreateUserAsync(someoneElse, Password);
        using var laptop = Fixture.Browser();
        using var phone = Fixture.Browser();
        using var colleague = Fixture.Browser();
        var csrf = await SignInAsync(laptop, name, Password);
        await SignInAsync(phone, name, Password);
        await SignInAsync(colleague, someoneElse, Password);

        await Expect.StatusAsync(await laptop.SendAsync(Unsafe(HttpMethod.Post, "/api/v1/auth/logout?everywhere=true", csrf)), 204);

        await Expect.ProblemAsync(await laptop.GetAsync("/api/v1/me"), 401, "unauthorized");
        await Expect.ProblemAsync(await phone.GetAsync("/api/v1/me"), 401, "unauthorized");
        await Expect.StatusAsync(await colleague.GetAsync("/api/v1/me"), 200);
        // Signing in again works as ever.
        using var again = Fixture.Browser();
        await SignInAsync(again, name, Password);
        await Expect.StatusAsync(await again.GetAsync("/api/v1/me"), 200);
    }

    [Fact]
    public async Task A_password_change_ends_the_other_sessions_and_keeps_this_one()
    {
        var name = Unique("user");
        await Fixture.CreateUserAsync(name, Password);
        using var here = Fixture.Browser();
        using var elsewhere = Fixture.Browser();
        var csrf = await SignInAsync(here, name, Password);
        await SignInAsync(elsewhere, name, Password);
        await Expect.StatusAsync(await elsewhere.GetAsync("/api/v1/me"), 200);

        var changed = await here.SendAsync(Unsafe(HttpMethod.Post, "/api/v1/me/password", csrf, new { current = Password, @new = "an even longer passphrase" }));

        var body = await Expect.StatusAsync(changed, 200);
        await Expect.StatusAsync(await here.GetAsync("/api/v1/me"), 200);
        await Expect.ProblemAsync(await elsewhere.GetAsync("/api/v1/me"), 401, "unauthorized");
        var newCsrf = (string)body["csrfToken"]!;
        await Expect.StatusAsync(await here.SendAsync(Unsafe(HttpMethod.Post, "/api/v1/auth/logout", newCsrf)), 204);
        await Expect.ProblemAsync(await here.GetAsync("/api/v1/me"), 401, "unauthorized");
        using var client = Fixture.Keyway.CreateClient();
        await Expect.ProblemAsync(await LoginAsync(client, name, Password), 401, "invalid_credentials");
        await Expect.StatusAsync(await LoginAsync(client, name, "an even longer passphrase"), 200);
    }

    [Fact]
    public async Task Single_sign_on_creates_the_user_with_mapped_groups_and_the_admin_role_and_templates_see_the_email()
    {
        using var browser = Fixture.Browser();
        Fixture.Provider.SignInUser = SignInFixture.Carol.Username;

        var (landing, trail) = await SingleSignOnAsync(browser, "/api/v1/me");
        var me = await Expect.StatusAsync(landing, 200);

        Assert.Equal("carol", (string?)me["name"]);
        Assert.Equal("carol@example.test", (string?)me["email"]);
        Assert.Equal("Carol Example", (string?)me["displayName"]);
        Assert.Equal("oidc", (string?)me["source"]);
        Assert.Equal("admin", (string?)me["role"]);
        Assert.Equal(["engineering", SignInFixture.AdminGroup, "sales"], me["groups"]!.AsArray().Select(g => (string?)g));
        Assert.Contains(trail, url => url.StartsWith(Fixture.Provider.AuthorizationEndpoint, StringComparison.Ordinal) && url.Contains("code_challenge=", StringComparison.Ordinal) && url.Contains("nonce=", StringComparison.Ordinal));

        // A resource whose header reads current_user sends the SSO user's email upstream.
        var resource = Unique("res");
        await Expect.SuccessAsync(await Fixture.Admin.PutAsJsonAsync($"/api/v1/resources/{resource}", new
        {
            kind = "rest",
            baseUrl = Fixture.Upstream.BaseUrl + "/sso",
            headers = new Dictionary<string, string> { ["X-User-Email"] = "{{ current_user.email }}", ["X-User-Groups"] = "{{ current_user.groups.length }}" },
        }));
        using var run = new HttpRequestMessage(HttpMethod.Post, $"/api/v1/resources/{resource}/run") { Content = JsonContent.Create(new { method = "GET", path = "/whoami" }) };
        run.Headers.Add(Sessions.CsrfHeader, Fixture.Cookie(browser, Sessions.CsrfCookie));
        await Expect.StatusAsync(await browser.SendAsync(run), 200);
        var seen = Fixture.Upstream.Requests.Last(r => r.Path == "/sso/whoami");
        Assert.Equal("carol@example.test", seen.Headers["X-User-Email"]);
        Assert.Equal("3", seen.Headers["X-User-Groups"]);

        // Signing on again finds the same user.
        using var again = Fixture.Browser();
        var (second, _) = await SingleSignOnAsync(again, "/api/v1/me");
        Assert.Equal((string?)me["id"], (string?)(await Expect.StatusAsync(second, 200))["id"]);
    }

    [Fact]
    public async Task Single_sign_on_without_an_admin_group_makes_a_member_and_rejects_foreign_return_urls()
    {
        using var browser = Fixture.Browser();
        Fixture.Provider.SignInUser = SignInFixture.Dave.Username;

        var foreign = await browser.GetAsync("/auth/oidc/login?returnUrl=" + Uri.EscapeDataString("//evil.example.com/"));
        var (landing, _) = await SingleSignOnAsync(browser, "/api/v1/me");
        var me = await Expect.StatusAsync(landing, 200);

        await Expect.ProblemAsync(foreign, 400, "bad_request");
        Assert.Equal("dave", (string?)me["name"]);
        Assert.Equal("member", (string?)me["role"]);
        Assert.Equal(["sales"], me["groups"]!.AsArray().Select(g => (string?)g));
    }

    [Fact]
    public async Task A_disabled_user_cannot_sign_on_again()
    {
        Fixture.Provider.SignInUser = SignInFixture.Erin.Username;
        using (var first = Fixture.Browser())
            await Expect.StatusAsync((await SingleSignOnAsync(first, "/api/v1/me")).Landing, 200);
        await Fixture.DisableUserAsync("erin");

        using var second = Fixture.Browser();
        var (refused, _) = await SingleSignOnAsync(second, "/api/v1/me");

        await Expect.ProblemAsync(refused, 403, "sso_failed");
        await Expect.ProblemAsync(await second.GetAsync("/api/v1/me"), 401, "unauthorized");
    }

    [Fact]
    public async Task The_planted_password_and_the_sso_client_secret_reach_no_log_and_no_response()
    {
        var name = Unique("user");
        var canary = "canary-password-" + Guid.NewGuid().ToString("N");
        await Fixture.CreateUserAsync(name, canary);
        var seen = new StringBuilder();
        async Task<HttpResponseMessage> Keep(Task<HttpResponseMessage> call)
        {
            var response = await call;
            seen.Append(response.Headers).Append(await response.Content.ReadAsStringAsync()).Append('\n');
            return response;
        }

        using var browser = Fixture.Browser();
        await Keep(LoginAsync(browser, name, canary + "x"));
        await Keep(LoginAsync(browser, Unique("ghost"), canary));
        var login = await Keep(LoginAsync(browser, name, canary));
        var csrf = (string)(await Expect.StatusAsync(login, 200))["csrfToken"]!;
        await Keep(browser.SendAsync(Unsafe(HttpMethod.Post, "/api/v1/me/password", csrf, new { current = canary + "y", @new = "a different passphrase" })));
        await Keep(browser.SendAsync(Unsafe(HttpMethod.Post, "/api/v1/me/password", csrf, new { current = canary, @new = canary + "!" })));
        await Keep(browser.GetAsync("/api/v1/me"));
        Fixture.Provider.SignInUser = SignInFixture.Dave.Username;
        using var sso = Fixture.Browser();
        var (landing, trail) = await SingleSignOnAsync(sso, "/api/v1/me");
        await Keep(Task.FromResult(landing));
        seen.AppendJoin('\n', trail);
        await Keep(Fixture.Admin.GetAsync("/openapi/v1.json"));

        var everything = seen + "\n" + Fixture.Keyway.AllOutput;
        Assert.DoesNotContain(canary, everything, StringComparison.Ordinal);
        Assert.DoesNotContain(Fixture.ClientSecret, everything, StringComparison.Ordinal);
        Assert.Contains("signed in", Fixture.Keyway.AllOutput, StringComparison.Ordinal);
    }

    /// <summary>
    /// Drives the redirect dance a browser would: Keyway's login → the provider's authorization
    /// endpoint (which signs the configured user in at once) → Keyway's callback → the return URL.
    /// Returns the last answer and every URL visited.
    /// </summary>
    private async Task<(HttpResponseMessage Landing, List<string> Trail)> SingleSignOnAsync(HttpClient browser, string returnUrl)
    {
        var trail = new List<string>();
        var url = new Uri(new Uri(Fixture.Keyway.BaseUrl), "/auth/oidc/login?returnUrl=" + Uri.EscapeDataString(returnUrl));
        for (var hops = 0; hops < 10; hops++)
        {
            trail.Add(url.ToString());
            var response = await browser.GetAsync(url);
            if (response.StatusCode is not (HttpStatusCode.Found or HttpStatusCode.Redirect or HttpStatusCode.SeeOther or HttpStatusCode.TemporaryRedirect))
                return (response, trail);
            url = new Uri(url, response.Headers.Location!);
        }

        throw new InvalidOperationException("Too many redirects: " + string.Join(" → ", trail));
    }
}

public sealed class SqliteSignInTests(SqliteSignIn fixture) : SignInTests<SqliteSignIn>(fixture);

public sealed class PostgresSignInTests(PostgresSignIn fixture) : SignInTests<PostgresSignIn>(fixture);

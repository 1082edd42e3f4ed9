using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Keyway.Tests.Integration;

/// <summary>
/// The web console in a real browser (Chromium through Playwright) against a real
/// <c>keyway serve</c>: sign-in, the pages a person uses, the same refusals the API gives, and a
/// planted secret that no page and no response the browser receives ever holds.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ConsoleTests(SqliteKeyway fixture, Chromium chromium) : IClassFixture<SqliteKeyway>, IClassFixture<Chromium>
{
    [Fact]
    public async Task An_admin_stores_a_secret_and_runs_a_request_and_the_secret_reaches_no_page_and_no_response()
    {
        var page = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        var received = Record(page);
        var canary = "CANARY-console-" + Guid.NewGuid().ToString("N");
        var variable = "CONSOLE_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();

        await page.GotoAsync("/");
        Assert.Equal("/console", new Uri(page.Url).AbsolutePath);
        await SignInAsync(page, "admin", fixture.Keyway.AdminPassword!);
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Attention", Exact = true })).ToBeVisibleAsync();

        // Store the secret through the console's form: the table then says it is there, never what it is.
        await Nav(page, "Variables").ClickAsync();
        var form = page.Locator("#set-variable");
        await form.GetByLabel("Name").FillAsync(variable);
        await form.GetByLabel("Value").FillAsync(canary);
        await form.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        var row = page.Locator("tr", new() { HasText = variable });
        await Assertions.Expect(row).ToContainTextAsync("secret");
        await Assertions.Expect(row).ToContainTextAsync("hidden");
        await Assertions.Expect(form.GetByLabel("Value")).ToHaveValueAsync("");
        var pages = new List<string> { await page.ContentAsync() };

        // A resource that sends it upstream as a bearer token, to an upstream that echoes it back.
        var resource = KeywayFixture.Unique("console");
        await fixture.PutResourceAsync(resource, new
        {
            kind = "rest",
            baseUrl = fixture.Upstream.BaseUrl,
            auth = new { type = "bearer", token = $"{{{{ environment.variables.{variable} }}}}" },
        });
        await Nav(page, "Resources").ClickAsync();
        await page.GetByRole(AriaRole.Link, new() { Name = resource, Exact = true }).ClickAsync();
        await Assertions.Expect(page.Locator("#configuration")).ToContainTextAsync($"environment.variables.{variable}");
        var run = page.Locator("#run");
        await run.GetByLabel("Path").FillAsync("/echo-header/Authorization");
        await run.GetByRole(AriaRole.Button, new() { Name = "Run" }).ClickAsync();
        await Assertions.Expect(page.Locator("#run-result .body")).ToContainTextAsync("[REDACTED]");
        await Assertions.Expect(page.Locator("#run-result .badge").First).ToHaveTextAsync("200");
        pages.Add(await page.ContentAsync());
        Assert.Equal("Bearer " + canary, fixture.Upstream.Requests.Last(r => r.Path == "/echo-header/Authorization").Headers["Authorization"]);

        // The audit page: the run is there (written off the request path, so it may take a moment), and the chain verifies.
        await Nav(page, "Audit log").ClickAsync();
        await page.Locator("input[name=resource]").FillAsync(resource);
        await Poll.UntilAsync(async () =>
        {
            await page.GetByRole(AriaRole.Button, new() { Name = "Filter" }).ClickAsync();
            return await page.Locator("tr", new() { HasText = "run" }).Filter(new() { HasText = "/echo-header/Authorization" }).CountAsync() > 0;
        }, TimeSpan.FromSeconds(15), "the run in the console's audit page");
        await page.GetByRole(AriaRole.Button, new() { Name = "Verify chain" }).ClickAsync();
        await Assertions.Expect(page.Locator("#verify-result")).ToContainTextAsync("chain intact");
        pages.Add(await page.ContentAsync());

        var responses = await received();
        Assert.Contains(responses, r => r.Url.Contains("/run", StringComparison.Ordinal));
        Assert.All(pages, html => Assert.DoesNotContain(canary, html, StringComparison.Ordinal));
        Assert.All(responses, r => Assert.False(r.Body.Contains(canary, StringComparison.Ordinal), $"{r.Url} returned the secret"));
        Assert.DoesNotContain(canary, fixture.Keyway.AllOutput, StringComparison.Ordinal);
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_plain_variable_set_in_the_console_shows_its_value_and_keeps_its_expiry_and_an_environment_comes_and_goes()
    {
        var variable = "PLAIN_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var page = await AdminPageAsync("/console#/variables");

        var form = page.Locator("#set-variable");
        await form.GetByLabel("Name").FillAsync(variable);
        await form.GetByLabel("Secret").UncheckAsync();
        await Assertions.Expect(form.GetByLabel("Value")).ToHaveAttributeAsync("type", "text");
        await form.GetByLabel("Value").FillAsync("https://example.test/v2");
        await form.Locator("input[name=expires]").FillAsync("2099-01-02T03:04");
        await form.GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();

        var row = page.Locator("tr", new() { HasText = variable });
        await Assertions.Expect(row).ToContainTextAsync("https://example.test/v2");
        await Assertions.Expect(row).ToContainTextAsync("2099");
        var stored = await Expect.StatusAsync(await fixture.Admin.GetAsync($"/api/v1/environments/production/variables/{variable}"), 200);
        Assert.False((bool)stored["secret"]!);
        Assert.Equal(new DateTimeOffset(2099, 1, 2, 3, 4, 0, TimeSpan.Zero), DateTimeOffset.Parse((string)stored["expiresAt"]!, System.Globalization.CultureInfo.InvariantCulture));

        // An environment made and deleted from the same page; production offers no delete.
        await Assertions.Expect(page.Locator("#delete-environment")).ToHaveCountAsync(0);
        var environment = KeywayFixture.Unique("env");
        await page.Locator("input[name=env]").FillAsync(environment);
        await page.GetByRole(AriaRole.Button, new() { Name = "Create", Exact = true }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = $"Set a variable in {environment}" })).ToBeVisibleAsync();
        await page.Locator("#delete-environment").ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Set a variable in production" })).ToBeVisibleAsync();
        await Expect.ProblemAsync(await fixture.Admin.GetAsync($"/api/v1/environments/{environment}"), 404, "not_found");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Tokens_imported_in_the_console_are_used_upstream_and_never_come_back_to_the_page()
    {
        var resource = KeywayFixture.Unique("imported");
        var clientSecret = "CLIENT_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await fixture.SetVariableAsync(clientSecret, "client-secret-" + Guid.NewGuid().ToString("N"), secret: true);
        await fixture.PutResourceAsync(resource, new
        {
            kind = "rest",
            baseUrl = fixture.Upstream.BaseUrl,
            auth = new
            {
                type = "oauth2",
                grant = "refresh_token",
                tokenUrl = fixture.Upstream.BaseUrl + "/token",
                clientId = "console",
                clientSecret = $"{{{{ environment.variables.{clientSecret} }}}}",
            },
        });
        var accessToken = "CANARY-access-" + Guid.NewGuid().ToString("N");
        var refreshToken = "CANARY-refresh-" + Guid.NewGuid().ToString("N");
        var page = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        var received = Record(page);
        await page.GotoAsync($"/console#/resources/{resource}");
        await SignInAsync(page, "admin", fixture.Keyway.AdminPassword!);
        await Assertions.Expect(page.Locator("#credential")).ToContainTextAsync("not_connected");

        await page.GetByText("Import tokens obtained elsewhere").ClickAsync();
        var form = page.Locator("#import-credential");
        await form.GetByLabel("Access token").FillAsync(accessToken);
        await form.GetByLabel("Refresh token").FillAsync(refreshToken);
        await form.GetByLabel("Expires in (seconds)").FillAsync("3600");
        await form.GetByRole(AriaRole.Button, new() { Name = "Import" }).ClickAsync();
        await Assertions.Expect(page.Locator("#credential")).ToContainTextAsync("valid");
        await Assertions.Expect(form.GetByLabel("Access token")).ToHaveValueAsync("");

        var run = page.Locator("#run");
        await run.GetByLabel("Path").FillAsync("/echo-header/Authorization");
        await run.GetByRole(AriaRole.Button, new() { Name = "Run" }).ClickAsync();
        await Assertions.Expect(page.Locator("#run-result .body")).ToContainTextAsync("[REDACTED]");
        Assert.Equal("Bearer " + accessToken, fixture.Upstream.Requests.Last(r => r.Path == "/echo-header/Authorization").Headers["Authorization"]);

        var html = await page.ContentAsync();
        var responses = await received();
        foreach (var token in new[] { accessToken, refreshToken })
        {
            Assert.DoesNotContain(token, html, StringComparison.Ordinal);
            Assert.All(responses, r => Assert.False(r.Body.Contains(token, StringComparison.Ordinal), $"{r.Url} returned a token"));
        }

        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_member_without_use_is_refused_in_the_console_as_in_the_api_and_can_run_once_granted()
    {
        var member = await MemberAsync();
        var (resource, _) = await fixture.BearerResourceAsync();

        var page = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        await page.GotoAsync($"/console#/resources/{resource}");
        await SignInAsync(page, member, MemberPassword);

        await Assertions.Expect(page.GetByRole(AriaRole.Alert)).ToContainTextAsync("403 forbidden");
        var nav = page.Locator("#nav");
        await Assertions.Expect(nav).ToContainTextAsync("API keys");
        await Assertions.Expect(nav).Not.ToContainTextAsync("Audit log");
        await Assertions.Expect(nav).Not.ToContainTextAsync("Variables");
        await Assertions.Expect(nav).Not.ToContainTextAsync("Users");

        // Typing an admin page's address shows no admin page: the console falls back to its home page.
        await page.EvaluateAsync("() => { location.hash = '#/audit'; }");
        await Assertions.Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex("#/attention$"));

        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = member, permission = "use" }), 201);
        await page.GotoAsync($"/console#/resources/{resource}");
        await page.ReloadAsync();
        var run = page.Locator("#run");
        await run.GetByLabel("Path").FillAsync("/after-grant");
        await run.GetByRole(AriaRole.Button, new() { Name = "Run" }).ClickAsync();
        await Assertions.Expect(page.Locator("#run-result .badge").First).ToHaveTextAsync("200");
        Assert.Contains(fixture.Upstream.Requests, r => r.Path == "/base/after-grant");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task An_admin_grants_everyone_use_in_one_environment_from_the_console_and_a_new_member_can_run_there()
    {
        var (resource, _) = await fixture.BearerResourceAsync();
        var page = await AdminPageAsync($"/console#/resources/{resource}");

        var form = page.Locator("form", new() { Has = page.GetByRole(AriaRole.Button, new() { Name = "Grant" }) });
        await form.Locator("select[name=kind]").SelectOptionAsync("everyone");
        await Assertions.Expect(form.Locator("input[name=principal]")).ToBeDisabledAsync();
        await form.Locator("select[name=genv]").SelectOptionAsync("production");
        await form.GetByRole(AriaRole.Button, new() { Name = "Grant" }).ClickAsync();
        await Assertions.Expect(page.Locator("tr", new() { HasText = "everyone" })).ToContainTextAsync("production");

        var member = KeywayFixture.Unique("anyone");
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/users", new { name = member, role = "member", source = "service" }), 201);
        var token = (string)(await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/keys", new { name = "anyone", owner = member }), 201))["token"]!;
        using var client = fixture.Keyway.CreateClient(token);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/everyone" })).StatusCode);
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task An_admin_creates_promotes_resets_groups_and_deletes_a_person_from_the_console()
    {
        var person = KeywayFixture.Unique("person");
        var team = KeywayFixture.Unique("team");
        var page = await AdminPageAsync("/console#/users");

        var newUser = page.Locator("#new-user");
        await newUser.Locator("input[name=name]").FillAsync(person);
        await newUser.GetByRole(AriaRole.Button, new() { Name = "Create user" }).ClickAsync();
        await Assertions.Expect(page.Locator(".once code")).ToHaveCountAsync(1);
        var first = (await page.Locator(".once code").TextContentAsync())!;
        var row = page.Locator("#users tr", new() { HasText = person });
        await Assertions.Expect(row).ToContainTextAsync("member");

        await row.GetByRole(AriaRole.Button, new() { Name = "Make admin" }).ClickAsync();
        await Assertions.Expect(row.GetByRole(AriaRole.Button, new() { Name = "Make member" })).ToBeVisibleAsync();
        await row.GetByRole(AriaRole.Button, new() { Name = "Reset password" }).ClickAsync();
        var reset = page.Locator(".once", new() { HasText = "new password" }).Locator("code");
        await Assertions.Expect(reset).ToHaveCountAsync(1);
        var password = (await reset.TextContentAsync())!;
        Assert.NotEqual(first, password);
        using (var http = fixture.Keyway.CreateClient())
        {
            await Expect.ProblemAsync(await http.PostAsJsonAsync("/api/v1/auth/login", new { name = person, password = first }), 401, "invalid_credentials");
            var signedIn = await Expect.StatusAsync(await http.PostAsJsonAsync("/api/v1/auth/login", new { name = person, password }), 200);
            Assert.Equal("admin", (string?)signedIn["user"]!["role"]);
        }

        var groupForm = page.Locator("form", new() { Has = page.GetByRole(AriaRole.Button, new() { Name = "Save group" }) });
        await groupForm.Locator("input[name=group]").FillAsync(team);
        await groupForm.Locator("input[name=member]").FillAsync(person);
        await groupForm.GetByRole(AriaRole.Button, new() { Name = "Save group" }).ClickAsync();
        var groupRow = page.Locator("#groups tr", new() { HasText = team });
        await Assertions.Expect(groupRow).ToContainTextAsync(person);
        await groupRow.GetByRole(AriaRole.Button, new() { Name = $"Remove {person} from {team}" }).ClickAsync();
        await Assertions.Expect(groupRow).Not.ToContainTextAsync(person);

        await row.GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();
        await Assertions.Expect(row).ToHaveCountAsync(0);
        await Expect.ProblemAsync(await fixture.Admin.GetAsync($"/api/v1/users/{person}"), 404, "not_found");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task An_admin_creates_a_webhook_sees_its_secret_once_sends_a_test_event_and_redelivers_it_from_the_console()
    {
        var name = KeywayFixture.Unique("hook");
        var path = "/" + name;
        var page = await AdminPageAsync("/console#/webhooks");

        var form = page.Locator("#new-webhook");
        await form.Locator("input[name=name]").FillAsync(name);
        await form.Locator("input[name=url]").FillAsync(fixture.Upstream.BaseUrl + path);
        await form.GetByRole(AriaRole.Button, new() { Name = "Create endpoint" }).ClickAsync();
        await Assertions.Expect(page.Locator(".once code")).ToHaveCountAsync(1);
        var secret = (await page.Locator(".once code").TextContentAsync())!;
        Assert.StartsWith("whsec_", secret);
        Assert.DoesNotContain(secret, (await Expect.StatusAsync(await fixture.Admin.GetAsync("/api/v1/webhooks"), 200)).ToJsonString());

        var row = page.Locator("#webhooks tr", new() { HasText = name });
        await row.GetByRole(AriaRole.Button, new() { Name = "Send test" }).ClickAsync();
        await Poll.UntilAsync(() => fixture.Upstream.Requests.Any(r => r.Path == path), TimeSpan.FromSeconds(20), "the test event to arrive");

        await page.GotoAsync(fixture.Keyway.BaseUrl + "/console#/webhooks/" + name);
        var delivery = page.Locator("#deliveries tbody tr").First;
        await Assertions.Expect(delivery).ToContainTextAsync("webhook.test");
        await delivery.GetByRole(AriaRole.Button, new() { Name = "Redeliver" }).ClickAsync();
        await Poll.UntilAsync(() => fixture.Upstream.Requests.Count(r => r.Path == path) == 2, TimeSpan.FromSeconds(20), "the redelivery to arrive");
        await Assertions.Expect(page.Locator("#deliveries tbody tr")).ToHaveCountAsync(2);
        Assert.DoesNotContain(secret, await page.ContentAsync());
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_resource_with_a_token_written_in_plain_text_is_refused_with_the_field_and_what_to_do_and_nothing_is_stored()
    {
        var name = KeywayFixture.Unique("plain");
        var page = await AdminPageAsync("/console#/resources");

        var form = page.Locator("#resource-form");
        await form.Locator("input[name=name]").FillAsync(name);
        await form.GetByRole(AriaRole.Tab, new() { Name = "Source" }).ClickAsync();
        await form.Locator("textarea[name=source]").FillAsync(
            $$$"""{"baseUrl": "{{{fixture.Upstream.BaseUrl}}}", "auth": {"type": "bearer", "token": "typed-in-plain-text"}}""");
        await form.GetByRole(AriaRole.Button, new() { Name = "Create resource" }).ClickAsync();

        var errors = form.Locator(".form-errors");
        await Assertions.Expect(errors).ToContainTextAsync("auth.token");
        await Assertions.Expect(errors).ToContainTextAsync("keyway var set NAME --secret");
        await Assertions.Expect(errors).ToContainTextAsync("(400 invalid_config)");
        await Assertions.Expect(form.Locator("textarea[name=source]")).ToHaveValueAsync(new System.Text.RegularExpressions.Regex("typed-in-plain-text"));
        await Expect.ProblemAsync(await fixture.Admin.GetAsync($"/api/v1/resources/{name}"), 404, "not_found");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_resource_created_in_the_console_offers_to_bind_the_secret_it_sends_to_its_origin()
    {
        var name = KeywayFixture.Unique("bindme");
        var variable = "BIND_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await fixture.SetVariableAsync(variable, "bind-canary-" + Guid.NewGuid().ToString("N"), secret: true);
        var page = await AdminPageAsync("/console#/resources");

        var form = page.Locator("#resource-form");
        await form.Locator("input[name=name]").FillAsync(name);
        await form.GetByRole(AriaRole.Tab, new() { Name = "Source" }).ClickAsync();
        await form.Locator("textarea[name=source]").FillAsync(
            $$$"""{"baseUrl": "{{{fixture.Upstream.BaseUrl}}}/v1", "auth": {"type": "bearer", "token": "{{ environment.variables.{{{variable}}} }}"}}""");
        await form.GetByRole(AriaRole.Button, new() { Name = "Create resource" }).ClickAsync();

        var card = page.Locator("#unbound");
        await Assertions.Expect(card).ToContainTextAsync(variable);
        await card.GetByRole(AriaRole.Button, new() { Name = $"Bind to {fixture.Upstream.BaseUrl}" }).ClickAsync();
        await Assertions.Expect(page.Locator("#notice")).ToContainTextAsync($"is bound to {fixture.Upstream.BaseUrl}");
        await Assertions.Expect(page.Locator("#unbound")).ToHaveCountAsync(0);

        var shown = await Expect.StatusAsync(await fixture.Admin.GetAsync($"/api/v1/environments/production/variables/{variable}"), 200);
        Assert.Equal(fixture.Upstream.BaseUrl, (string)shown["origins"]!.AsArray().Single()!);
        await page.GotoAsync("/console#/variables");
        await Assertions.Expect(page.Locator("tr", new() { HasText = variable })).ToContainTextAsync(fixture.Upstream.BaseUrl);
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_query_saved_in_the_console_runs_with_inputs_and_an_invalid_name_gets_the_servers_reason()
    {
        var (resource, _) = await fixture.BearerResourceAsync();
        var query = KeywayFixture.Unique("query");
        var page = await AdminPageAsync("/console#/queries");

        var editor = page.Locator("#save-query");
        await editor.Locator("input[name=name]").FillAsync("bad name!");
        await editor.Locator("textarea[name=definition]").FillAsync($$$"""{"resource": "{{{resource}}}", "path": "/orders/{{ inputs.id }}"}""");
        await editor.GetByRole(AriaRole.Button, new() { Name = "Save query" }).ClickAsync();
        await Assertions.Expect(page.Locator("#notice")).ToContainTextAsync("may hold only letters, digits");

        await editor.Locator("input[name=name]").FillAsync(query);
        await editor.GetByRole(AriaRole.Button, new() { Name = "Save query" }).ClickAsync();
        var row = page.Locator("#queries tr", new() { HasText = query });
        await Assertions.Expect(row).ToContainTextAsync("/orders/{{ inputs.id }}");

        var run = page.Locator("#run-query");
        await run.Locator("select[name=query]").SelectOptionAsync(query);
        await run.Locator("input[name=inputs]").FillAsync("""{"id": "o-42"}""");
        await run.GetByRole(AriaRole.Button, new() { Name = "Run" }).ClickAsync();
        await Assertions.Expect(page.Locator("#query-result .badge").First).ToHaveTextAsync("200");
        Assert.Contains(fixture.Upstream.Requests, r => r.Path == "/base/orders/o-42");

        await row.GetByRole(AriaRole.Button, new() { Name = "Delete" }).ClickAsync();
        await Assertions.Expect(row).ToHaveCountAsync(0);
        await Expect.ProblemAsync(await fixture.Admin.GetAsync($"/api/v1/queries/{query}"), 404, "not_found");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_wrong_password_is_refused_with_the_reason_and_the_password_field_is_emptied()
    {
        var page = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        await page.GotoAsync("/console");
        await SignInAsync(page, "admin", "not the password at all");

        await Assertions.Expect(page.Locator("#signin-error")).ToContainTextAsync("401 invalid_credentials");
        await Assertions.Expect(page.GetByLabel("Password")).ToHaveValueAsync("");
        await Assertions.Expect(page.Locator("#bar")).ToBeHiddenAsync();
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task An_api_key_made_in_the_console_is_shown_once_works_within_its_scope_and_stops_when_revoked()
    {
        var (resource, _) = await fixture.BearerResourceAsync();
        var other = KeywayFixture.Unique("other");
        await fixture.PutResourceAsync(other, new { baseUrl = fixture.Upstream.BaseUrl });
        var name = KeywayFixture.Unique("console-key");
        var page = await AdminPageAsync("/console#/keys");

        var form = page.Locator("#new-key");
        await form.GetByLabel("Name").FillAsync(name);
        await form.GetByLabel("Resources").FillAsync(resource);
        await form.GetByLabel("Expires in").FillAsync("1d");
        await form.GetByRole(AriaRole.Button, new() { Name = "Create key" }).ClickAsync();
        var token = (await page.Locator("#new-token code").TextContentAsync())!;
        Assert.StartsWith("kw_", token, StringComparison.Ordinal);
        var row = page.Locator("tr", new() { HasText = name });
        await Assertions.Expect(row).ToContainTextAsync("resources: " + resource);

        using (var key = fixture.Keyway.CreateClient(token))
        {
            Assert.Equal(HttpStatusCode.OK, (await key.PostAsJsonAsync($"/api/v1/resources/{resource}/run", new { path = "/scoped" })).StatusCode);
            await Expect.ProblemAsync(await key.PostAsJsonAsync($"/api/v1/resources/{other}/run", new { path = "/scoped" }), 403, "forbidden");
        }

        // Shown once: a reload lists the key by its hint only.
        await page.ReloadAsync();
        await Assertions.Expect(row).ToBeVisibleAsync();
        Assert.DoesNotContain(token, await page.ContentAsync(), StringComparison.Ordinal);

        await row.GetByRole(AriaRole.Button, new() { Name = "Revoke" }).ClickAsync();
        await Assertions.Expect(row).ToContainTextAsync("revoked");
        using (var key = fixture.Keyway.CreateClient(token))
        {
            await Expect.ProblemAsync(await key.GetAsync("/api/v1/me"), 401, "unauthorized");
        }

        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Signing_out_ends_the_session_so_the_console_asks_to_sign_in_again()
    {
        var page = await AdminPageAsync("/console");
        await Assertions.Expect(page.Locator("#who")).ToContainTextAsync("admin");

        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Sign in to Keyway" })).ToBeVisibleAsync();
        await page.ReloadAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Sign in to Keyway" })).ToBeVisibleAsync();
        Assert.DoesNotContain(await page.Context.CookiesAsync(), c => c.Name == "keyway-session");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Sign_out_everywhere_on_the_account_page_ends_the_persons_sessions_in_other_browsers_too()
    {
        var member = await MemberAsync();
        var laptop = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        var phone = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        foreach (var page in new[] { laptop, phone })
        {
            await page.GotoAsync("/console#/account");
            await SignInAsync(page, member, MemberPassword);
            await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = "Your account" })).ToBeVisibleAsync();
        }

        laptop.Dialog += (_, dialog) => dialog.AcceptAsync();
        await laptop.GetByRole(AriaRole.Button, new() { Name = "Sign out everywhere" }).ClickAsync();
        await Assertions.Expect(laptop.GetByRole(AriaRole.Heading, new() { Name = "Sign in to Keyway" })).ToBeVisibleAsync();

        await phone.ReloadAsync();
        await Assertions.Expect(phone.GetByRole(AriaRole.Heading, new() { Name = "Sign in to Keyway" })).ToBeVisibleAsync();
        await laptop.Context.CloseAsync();
        await phone.Context.CloseAsync();
    }

    [Fact]
    public async Task The_console_is_served_with_a_policy_that_runs_only_its_own_script_and_cannot_be_framed()
    {
        using var http = fixture.Keyway.CreateClient();
        using var root = await http.GetAsync("/");
        Assert.Equal(HttpStatusCode.Redirect, root.StatusCode);
        Assert.Equal("/console", root.Headers.Location?.OriginalString);

        using var shell = await http.GetAsync("/console");
        Assert.Equal(HttpStatusCode.OK, shell.StatusCode);
        var csp = string.Join(' ', shell.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
        Assert.Contains("frame-ancestors 'none'", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-inline", csp, StringComparison.Ordinal);
        Assert.Equal("nosniff", shell.Headers.GetValues("X-Content-Type-Options").Single());
        Assert.Equal("text/html", shell.Content.Headers.ContentType?.MediaType);
        var html = await shell.Content.ReadAsStringAsync();
        Assert.Contains("content=\"off\"", html, StringComparison.Ordinal); // no single sign-on configured here

        using var conditional = new HttpRequestMessage(HttpMethod.Get, "/console/app.js");
        conditional.Headers.IfNoneMatch.Add(EntityTagHeaderValue(await http.GetAsync("/console/app.js")));
        Assert.Equal(HttpStatusCode.NotModified, (await http.SendAsync(conditional)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/console/index.html")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/console/..%2Fkeyway.db")).StatusCode);
    }

    private static System.Net.Http.Headers.EntityTagHeaderValue EntityTagHeaderValue(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return response.Headers.ETag!;
    }

    private const string MemberPassword = "member passphrase long enough";

    /// <summary>A new member who signs in with <see cref="MemberPassword"/>, holding no grant.</summary>
    private async Task<string> MemberAsync()
    {
        var member = KeywayFixture.Unique("member");
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/users", new { name = member, role = "member", source = "local", password = MemberPassword }), 201);
        return member;
    }

    [Fact]
    public async Task An_admin_lists_a_secrets_versions_and_rolls_one_back_without_a_value_on_the_page()
    {
        var variable = "CONSOLE_VER_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var values = new[] { "CANARY-v1-" + Guid.NewGuid().ToString("N"), "CANARY-v2-" + Guid.NewGuid().ToString("N") };
        foreach (var value in values)
        {
            await fixture.SetVariableAsync(variable, value, secret: true);
        }

        var page = await AdminPageAsync("/console#/variables");
        var received = Record(page);
        await page.Locator($"button[data-versions={variable}]").ClickAsync();
        var versions = page.Locator("#variable-versions");
        var currentNumber = versions.Locator("tr", new() { HasText = "current" }).Locator("td").First;
        await Assertions.Expect(currentNumber).ToHaveTextAsync("2");
        await versions.Locator("button[data-rollback='1']").ClickAsync();
        await Assertions.Expect(currentNumber).ToHaveTextAsync("3");
        await Assertions.Expect(versions).ToContainTextAsync("admin");

        var current = await Expect.StatusAsync(await fixture.Admin.GetAsync($"/api/v1/environments/production/variables/{variable}/versions"), 200);
        Assert.Equal(1, (int)current["versions"]![0]!["restoredFrom"]!);
        var html = await page.ContentAsync();
        var responses = await received();
        Assert.All(values, v => Assert.DoesNotContain(v, html, StringComparison.Ordinal));
        Assert.All(responses, r => Assert.All(values, v => Assert.DoesNotContain(v, r.Body, StringComparison.Ordinal)));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task An_admin_rotates_a_secret_from_its_versions_and_sees_the_rotation_in_its_history()
    {
        var variable = "CONSOLE_ROT_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var original = "CANARY-rot-" + Guid.NewGuid().ToString("N");
        await fixture.SetVariableAsync(variable, original, secret: true);
        var admin = KeywayFixture.Unique("rotadmin");
        var api = KeywayFixture.Unique("rotapi");
        await fixture.PutResourceAsync(admin, new { kind = "rest", baseUrl = fixture.Upstream.BaseUrl + "/provider" });
        await fixture.PutResourceAsync(api, new JsonObject
        {
            ["kind"] = "rest",
            ["baseUrl"] = fixture.Upstream.BaseUrl + "/base",
            ["auth"] = new JsonObject { ["type"] = "bearer", ["token"] = $"{{{{ environment.variables.{variable} }}}}" },
        });
        await Expect.StatusAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{variable}/origins",
            new { origins = new[] { fixture.Upstream.BaseUrl } }), 200);
        // The upstream echoes what it is sent: the "minted" value is the echoed body of the mint request.
        var minted = "CANARY-minted-" + Guid.NewGuid().ToString("N");
        await Expect.StatusAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{variable}/rotation", new JsonObject
        {
            ["mint"] = new JsonArray(new JsonObject { ["name"] = "create", ["resource"] = admin, ["method"] = "POST", ["path"] = "/keys", ["body"] = minted }),
            ["value"] = "{{ create.body.body }}",
            ["verify"] = new JsonObject { ["resource"] = api, ["path"] = "/verify" },
        }), 200);

        var page = await AdminPageAsync("/console#/variables");
        var received = Record(page);
        await page.Locator($"button[data-versions={variable}]").ClickAsync();
        var versions = page.Locator("#variable-versions");
        await Assertions.Expect(versions.Locator("#variable-rotations")).ToContainTextAsync("No rotations yet.");
        await versions.Locator($"button[data-rotate={variable}]").ClickAsync();
        await Assertions.Expect(versions.Locator("#variable-rotations")).ToContainTextAsync("committed");
        var currentNumber = versions.Locator("tr", new() { HasText = "current" }).Locator("td").First;
        await Assertions.Expect(currentNumber).ToHaveTextAsync("2");

        await Expect.StatusAsync(await fixture.Admin.GetAsync($"/proxy/{api}/after-console-rotation"), 200);
        Assert.Equal("Bearer " + minted, fixture.Upstream.Requests.Last(r => r.Path == "/base/after-console-rotation").Headers["Authorization"]);
        var html = await page.ContentAsync();
        var responses = await received();
        Assert.All((string[])[original, minted], v => Assert.DoesNotContain(v, html, StringComparison.Ordinal));
        Assert.All(responses, r => Assert.DoesNotContain(original, r.Body, StringComparison.Ordinal));
        await page.Context.CloseAsync();
    }

    /// <summary>A fresh browser at <paramref name="path"/>, signed in as admin there; it confirms every dialog.</summary>
    private async Task<IPage> AdminPageAsync(string path)
    {
        var page = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        page.Dialog += (_, dialog) => dialog.AcceptAsync();
        await page.GotoAsync(path);
        await SignInAsync(page, "admin", fixture.Keyway.AdminPassword!);
        return page;
    }

    internal static ILocator Nav(IPage page, string section) =>
        page.Locator("#nav").GetByRole(AriaRole.Link, new() { Name = section, Exact = true });

    internal static async Task SignInAsync(IPage page, string name, string password)
    {
        var form = page.Locator("#signin");
        await form.GetByLabel("User name").FillAsync(name);
        await form.GetByLabel("Password").FillAsync(password);
        await form.GetByRole(AriaRole.Button, new() { Name = "Sign in" }).ClickAsync();
    }

    internal sealed record Received(string Url, string Body);

    /// <summary>Keeps every answer the page receives from Keyway; the returned function waits for them all.</summary>
    internal static Func<Task<IReadOnlyList<Received>>> Record(IPage page)
    {
        var reads = new ConcurrentQueue<Task<Received>>();
        page.Response += (_, response) =>
        {
            if (response.Status is < 300 or >= 400)
                reads.Enqueue(ReadAsync(response));
        };
        return async () => await Task.WhenAll(reads);

        static async Task<Received> ReadAsync(IResponse response)
        {
            var headers = string.Join('\n', (await response.AllHeadersAsync()).Select(h => $"{h.Key}: {h.Value}"));
            return new Received(response.Url, headers + "\n\n" + await response.TextAsync());
        }
    }
}

/// <summary>The console's single sign-on and account connection, against the real OpenID Connect / OAuth 2.0 provider on loopback.</summary>
[Trait("Category", "Integration")]
public sealed class ConsoleProviderTests(SqliteSignIn fixture, Chromium chromium) : IClassFixture<SqliteSignIn>, IClassFixture<Chromium>
{
    [Fact]
    public async Task The_single_sign_on_button_signs_a_person_in_through_the_provider_and_back_to_the_console()
    {
        var page = await SignOnAsync(SignInFixture.Carol);

        await Assertions.Expect(page.Locator("#nav")).ToContainTextAsync("Audit log"); // an admin through the provider's group
        Assert.Equal(new Uri(fixture.Keyway.BaseUrl).Authority, new Uri(page.Url).Authority);
        await page.Locator("#who").ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Main)).ToContainTextAsync("single sign-on");
        Assert.DoesNotContain(fixture.ClientSecret, await page.ContentAsync(), StringComparison.Ordinal);
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Connect_account_goes_to_the_provider_and_back_to_the_resource_whose_credential_is_then_valid()
    {
        var page = await SignOnAsync(SignInFixture.Carol);
        await fixture.Provider.AddRedirectUriAsync(SignInFixture.ClientId, new Uri(fixture.Keyway.BaseUrl + "/oauth/callback"));
        var resource = KeywayFixture.Unique("connect");
        var variable = "CLIENT_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await Expect.StatusAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{variable}", new { value = fixture.ClientSecret, secret = true }), 200);
        await Expect.SuccessAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/resources/{resource}", new
        {
            baseUrl = fixture.Provider.BaseUrl,
            shareCredentials = false,
            auth = new
            {
                type = "oauth2",
                grant = "authorization_code",
                issuer = fixture.Provider.Issuer,
                clientId = SignInFixture.ClientId,
                clientSecret = $"{{{{ environment.variables.{variable} }}}}",
                scope = "openid " + AuthServer.ApiScope + " offline_access",
            },
        }));

        await page.GotoAsync($"/console#/resources/{resource}");
        await Assertions.Expect(page.Locator("#credential")).ToContainTextAsync("not_connected");
        await page.Locator("#connect").ClickAsync();

        await Assertions.Expect(page.Locator("#credential")).ToContainTextAsync("valid");
        Assert.EndsWith($"/console#/resources/{resource}?env=production", page.Url, StringComparison.Ordinal);
        var run = page.Locator("#run");
        await run.GetByLabel("Path").FillAsync("/api/me");
        await run.GetByRole(AriaRole.Button, new() { Name = "Run" }).ClickAsync();
        await Assertions.Expect(page.Locator("#run-result .badge").First).ToHaveTextAsync("200");
        await Assertions.Expect(page.Locator("#run-result .body")).ToContainTextAsync(SignInFixture.ClientId);
        Assert.DoesNotContain(fixture.ClientSecret, await page.ContentAsync(), StringComparison.Ordinal);

        // The connection's return address must stay on Keyway, whatever a browser would make of it.
        using var browser = fixture.Browser();
        foreach (var returnTo in new[] { "//evil.example", "/\\evil.example", "/\t/evil.example", "https://evil.example/" })
        {
            using var connect = new HttpRequestMessage(HttpMethod.Get, $"/api/v1/resources/{resource}/connect?returnTo={Uri.EscapeDataString(returnTo)}");
            connect.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", fixture.Keyway.AdminToken);
            await Expect.ProblemAsync(await browser.SendAsync(connect), 400, "bad_request");
        }

        await page.Context.CloseAsync();
    }

    private async Task<IPage> SignOnAsync(AuthServerUser user)
    {
        fixture.Provider.SignInUser = user.Username;
        var page = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        await page.GotoAsync("/console");
        await page.GetByRole(AriaRole.Link, new() { Name = "Sign in with single sign-on" }).ClickAsync();
        await Assertions.Expect(page.Locator("#who")).ToContainTextAsync(user.DisplayName ?? user.Username);
        return page;
    }
}

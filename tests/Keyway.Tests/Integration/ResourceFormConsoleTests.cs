using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Keyway.Tests.Infrastructure;
using Microsoft.Playwright;

namespace Keyway.Tests.Integration;

/// <summary>
/// The console's resource form in a real browser against a real <c>keyway serve</c>: resources of every
/// kind of auth made through the form alone (a secret created from the form's picker, never typed into
/// the definition), checked through the API and run; the Source view in YAML; the server's per-field
/// errors next to their fields; a planted secret that no page, field, response or screenshot holds.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ResourceFormConsoleTests(SqliteKeyway fixture, Chromium chromium) : IClassFixture<SqliteKeyway>, IClassFixture<Chromium>
{
    [Fact]
    public async Task Bearer_basic_and_api_key_resources_made_with_the_form_are_stored_as_intended_and_run_and_the_secret_shows_nowhere()
    {
        var canary = "CANARY-form-" + Guid.NewGuid().ToString("N");
        var secret = "FORM_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var page = await AdminPageAsync("/console#/resources");
        var received = ConsoleTests.Record(page);
        var views = new List<string>();

        // Bearer, with its secret created from the picker and bound to where the resource sends it.
        var bearer = KeywayFixture.Unique("bearer");
        await GeneralAsync(page, bearer, fixture.Upstream.BaseUrl + "/v1");
        await AuthMethodAsync(page, "bearer");
        var token = Form(page).Locator("[data-field='auth.token']");
        await token.Locator("select[name='auth.token']").SelectOptionAsync("new");
        await token.GetByLabel(new Regex("new secret's name")).FillAsync(secret);
        await token.GetByLabel(new Regex("new secret's value")).FillAsync(canary);
        await Assertions.Expect(token.GetByLabel(new Regex("origins the new secret"))).ToHaveValueAsync(fixture.Upstream.BaseUrl);
        await token.GetByRole(AriaRole.Button, new() { Name = "Create secret" }).ClickAsync();
        await Assertions.Expect(token).ToContainTextAsync($"Secret {secret} stored in production, sent only to {fixture.Upstream.BaseUrl}");
        await Assertions.Expect(token.GetByLabel(new Regex("new secret's value"))).ToHaveValueAsync("");
        views.Add(await SnapshotAsync(page, "form-bearer", canary));
        await CreateAsync(page, bearer);

        var stored = await DefinitionAsync(bearer);
        Assert.Equal(fixture.Upstream.BaseUrl + "/v1", (string?)stored["baseUrl"]);
        Assert.Equal("bearer", (string?)stored["auth"]!["type"]);
        Assert.Equal($"{{{{ environment.variables.{secret} }}}}", (string?)stored["auth"]!["token"]);
        var variable = await Expect.StatusAsync(await fixture.Admin.GetAsync($"/api/v1/environments/production/variables/{secret}"), 200);
        Assert.True((bool)variable["secret"]!);
        Assert.Equal(fixture.Upstream.BaseUrl, (string?)variable["origins"]!.AsArray().Single());

        // Run a request: the query string typed into the path becomes a row, and the upstream gets it.
        var run = page.Locator("#run");
        await run.GetByLabel("Path").FillAsync("/anything?color=blue");
        await run.GetByLabel("Path").PressAsync("Tab");
        await Assertions.Expect(run.GetByLabel("Query parameters: name 1")).ToHaveValueAsync("color");
        await Assertions.Expect(run.GetByLabel("Path")).ToHaveValueAsync("/anything");
        await run.GetByRole(AriaRole.Button, new() { Name = "Run" }).ClickAsync();
        await Assertions.Expect(page.Locator("#run-result .badge").First).ToHaveTextAsync("200");
        await Assertions.Expect(page.Locator("#run-result .body")).ToContainTextAsync("[REDACTED]");
        var sent = fixture.Upstream.Requests.Last(r => r.Path == "/v1/anything");
        Assert.Equal("blue", sent.Query["color"]);
        Assert.Equal("Bearer " + canary, sent.Headers["Authorization"]);
        views.Add(await SnapshotAsync(page, "resource-bearer-run", canary));

        // Basic: a user name and the same secret, picked from the list.
        var basic = KeywayFixture.Unique("basic");
        await page.GotoAsync("/console#/resources");
        await GeneralAsync(page, basic, fixture.Upstream.BaseUrl);
        await AuthMethodAsync(page, "basic");
        await Form(page).GetByLabel("User name").FillAsync("svc-user");
        await Form(page).Locator("select[name='auth.password']").SelectOptionAsync("var:" + secret);
        await CreateAsync(page, basic);
        stored = await DefinitionAsync(basic);
        Assert.Equal("svc-user", (string?)stored["auth"]!["username"]);
        Assert.Equal($"{{{{ environment.variables.{secret} }}}}", (string?)stored["auth"]!["password"]);
        var basicRun = await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{basic}/run", new { path = "/echo-header/Authorization" }), 200);
        Assert.Equal(200, (int)basicRun["status"]!);
        Assert.Equal("Basic " + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("svc-user:" + canary)),
            fixture.Upstream.Requests.Last(r => r.Path == "/echo-header/Authorization").Headers["Authorization"]);

        // An API key in a query parameter, with a header sent on every request.
        var apiKey = KeywayFixture.Unique("apikey");
        await page.GotoAsync("/console#/resources");
        await GeneralAsync(page, apiKey, fixture.Upstream.BaseUrl);
        await AuthMethodAsync(page, "apiKey");
        await Form(page).GetByLabel("Sent in").SelectOptionAsync("query");
        await Form(page).GetByLabel("Header, parameter or cookie name").FillAsync("api_key");
        await Form(page).Locator("select[name='auth.value']").SelectOptionAsync("var:" + secret);
        var headers = Form(page).Locator("fieldset[data-field='headers']");
        await Form(page).GetByRole(AriaRole.Button, new() { Name = "Add header" }).ClickAsync();
        await headers.GetByLabel("Headers: name 1").FillAsync("X-Team");
        await headers.GetByLabel("Headers: value 1").FillAsync("payments");
        views.Add(await SnapshotAsync(page, "form-api-key", canary));
        await CreateAsync(page, apiKey);
        stored = await DefinitionAsync(apiKey);
        Assert.Equal("apiKey", (string?)stored["auth"]!["type"]);
        Assert.Equal("query", (string?)stored["auth"]!["in"]);
        Assert.Equal("api_key", (string?)stored["auth"]!["name"]);
        Assert.Equal("payments", (string?)stored["headers"]!["X-Team"]);
        await page.Locator("#run").GetByLabel("Path").FillAsync("/keyed");
        await page.Locator("#run").GetByRole(AriaRole.Button, new() { Name = "Run" }).ClickAsync();
        await Assertions.Expect(page.Locator("#run-result .badge").First).ToHaveTextAsync("200");
        var keyed = fixture.Upstream.Requests.Last(r => r.Path == "/keyed");
        Assert.Equal(canary, keyed.Query["api_key"]);
        Assert.Equal("payments", keyed.Headers["X-Team"]);
        views.Add(await SnapshotAsync(page, "resource-api-key-run", canary));

        var responses = await received();
        Assert.All(views, html => Assert.DoesNotContain(canary, html, StringComparison.Ordinal));
        Assert.All(responses, r => Assert.False(r.Body.Contains(canary, StringComparison.Ordinal), $"{r.Url} returned the secret"));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task An_oauth_client_credentials_resource_made_with_the_form_gets_a_token_from_the_real_provider_and_puts_it_where_the_api_wants_it()
    {
        await using var server = await AuthServer.StartAsync();
        var secret = "OAUTH_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var name = KeywayFixture.Unique("oauth");
        var page = await AdminPageAsync("/console#/resources");
        var received = ConsoleTests.Record(page);

        await GeneralAsync(page, name, server.BaseUrl);
        await AuthMethodAsync(page, "oauth2");
        var form = Form(page);
        await form.GetByLabel("Grant").SelectOptionAsync("client_credentials");
        await Assertions.Expect(form.Locator("#callback-url")).ToHaveCountAsync(0);
        await form.GetByLabel("Token URL").FillAsync(server.TokenEndpoint);
        await form.GetByLabel("Client ID").FillAsync(AuthServerClient.Default.ClientId);
        var clientSecret = form.Locator("[data-field='auth.clientSecret']");
        await clientSecret.Locator("select[name='auth.clientSecret']").SelectOptionAsync("new");
        await clientSecret.GetByLabel(new Regex("new secret's name")).FillAsync(secret);
        await clientSecret.GetByLabel(new Regex("new secret's value")).FillAsync(AuthServerClient.Default.ClientSecret);
        // The secret goes to the token endpoint, so that is the origin offered.
        await Assertions.Expect(clientSecret.GetByLabel(new Regex("origins the new secret"))).ToHaveValueAsync(server.BaseUrl);
        await clientSecret.GetByRole(AriaRole.Button, new() { Name = "Create secret" }).ClickAsync();
        await Assertions.Expect(clientSecret).ToContainTextAsync($"Secret {secret} stored");
        await form.GetByLabel("Client authentication").SelectOptionAsync("post");
        await form.GetByLabel("Scope").FillAsync(AuthServer.ApiScope);
        // The authorization-code grant shows the callback URL to register, with a copy button.
        await form.GetByLabel("Grant").SelectOptionAsync("authorization_code");
        await Assertions.Expect(form.Locator("#callback-url")).ToHaveTextAsync(fixture.Keyway.BaseUrl + "/oauth/callback");
        await Assertions.Expect(form.GetByRole(AriaRole.Button, new() { Name = "Copy callback url to register with the provider" })).ToBeVisibleAsync();
        await form.GetByLabel("Grant").SelectOptionAsync("client_credentials");
        // This API takes its token in a header of its own: "Token anywhere" puts it there instead of Authorization.
        var anywhere = form.Locator("details", new() { HasText = "Token anywhere" });
        await anywhere.Locator("summary").ClickAsync();
        await anywhere.GetByRole(AriaRole.Button, new() { Name = "Add header" }).ClickAsync();
        await anywhere.GetByLabel("Token in headers: name 1").FillAsync("X-Access-Token");
        await anywhere.GetByLabel("Token in headers: value 1").FillAsync("{{ credential.accessToken }}");
        await CreateAsync(page, name);

        var stored = await DefinitionAsync(name);
        var auth = stored["auth"]!;
        Assert.Equal("oauth2", (string?)auth["type"]);
        Assert.Equal("client_credentials", (string?)auth["grant"]);
        Assert.Equal(server.TokenEndpoint, (string?)auth["tokenUrl"]);
        Assert.Equal("keyway", (string?)auth["clientId"]);
        Assert.Equal($"{{{{ environment.variables.{secret} }}}}", (string?)auth["clientSecret"]);
        Assert.Equal("post", (string?)auth["clientAuth"]);
        Assert.Equal(AuthServer.ApiScope, (string?)auth["scope"]);
        Assert.Equal("{{ credential.accessToken }}", (string?)auth["apply"]!["headers"]!["X-Access-Token"]);

        await page.Locator("#run").GetByLabel("Path").FillAsync("/api/anywhere");
        await page.Locator("#run").GetByRole(AriaRole.Button, new() { Name = "Run" }).ClickAsync();
        await Assertions.Expect(page.Locator("#run-result .badge").First).ToHaveTextAsync("200");
        await Assertions.Expect(page.Locator("#run-result .body")).ToContainTextAsync("header");
        Assert.Equal(1, server.TokenRequestCount("client_credentials"));
        Assert.Equal("valid", (string?)(await Expect.StatusAsync(await fixture.Admin.GetAsync($"/api/v1/resources/{name}/credential"), 200))["state"]);

        var responses = await received();
        Assert.All(responses, r => Assert.False(r.Body.Contains(AuthServerClient.Default.ClientSecret, StringComparison.Ordinal), $"{r.Url} returned the client secret"));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_DPoP_resource_made_with_the_form_gets_bound_tokens_from_a_provider_that_enforces_DPoP()
    {
        await using var server = await DPoPServer.StartAsync();
        var secret = "DPOP_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await Expect.StatusAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{secret}", new { value = server.ClientSecret, secret = true }), 200);
        var name = KeywayFixture.Unique("dpop");
        var page = await AdminPageAsync("/console#/resources");

        await GeneralAsync(page, name, server.ResourceUrl);
        await AuthMethodAsync(page, "oauth2");
        var form = Form(page);
        await form.GetByLabel("Token URL").FillAsync(server.TokenEndpoint);
        await form.GetByLabel("Client ID").FillAsync(DPoPServer.ClientId);
        await form.Locator("select[name='auth.clientSecret']").SelectOptionAsync("var:" + secret);
        await Assertions.Expect(form.GetByLabel("DPoP proof algorithm")).ToHaveCountAsync(0);
        await form.GetByLabel(new Regex("Bind tokens to a key Keyway holds")).CheckAsync();
        await form.GetByLabel("DPoP proof algorithm").SelectOptionAsync("PS256");
        await form.GetByLabel("DPoP proof algorithm").SelectOptionAsync("");
        await CreateAsync(page, name);

        var auth = (await DefinitionAsync(name))["auth"]!;
        Assert.True((bool)auth["dpop"]!);
        await page.Locator("#run").GetByLabel("Path").FillAsync("/api/me");
        await page.Locator("#run").GetByRole(AriaRole.Button, new() { Name = "Run" }).ClickAsync();
        await Assertions.Expect(page.Locator("#run-result .badge").First).ToHaveTextAsync("200");
        Assert.Equal(1, (int)(await server.StatsAsync())["accepted"]!);
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task A_custom_login_flow_made_with_the_step_editor_logs_in_and_its_session_is_attached()
    {
        var password = "pw-" + Guid.NewGuid().ToString("N");
        await using var login = await CustomLoginApi.StartAsync("svc-user", password);
        var secret = "FLOW_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await fixture.SetVariableAsync(secret, password, secret: true);
        var name = KeywayFixture.Unique("flow");
        var page = await AdminPageAsync("/console#/resources");

        await GeneralAsync(page, name, login.BaseUrl);
        await AuthMethodAsync(page, "custom");
        var form = Form(page);
        // Added out of order, and one too many: the editor moves and removes steps.
        await form.GetByRole(AriaRole.Button, new() { Name = "Add extract a value step" }).First.ClickAsync();
        await form.GetByRole(AriaRole.Button, new() { Name = "Add request step" }).First.ClickAsync();
        await form.GetByRole(AriaRole.Button, new() { Name = "Add javascript step" }).First.ClickAsync();
        await form.GetByRole(AriaRole.Button, new() { Name = "Add javascript step" }).First.ClickAsync();
        await form.GetByRole(AriaRole.Button, new() { Name = "Move step 2 up" }).ClickAsync();
        await form.GetByRole(AriaRole.Button, new() { Name = "Remove step 4" }).ClickAsync();
        await Assertions.Expect(form.Locator(".step")).ToHaveCountAsync(3);

        var request = form.Locator("[data-step='auth.steps[0]']");
        await Assertions.Expect(request.GetByLabel("Type")).ToHaveValueAsync("request");
        await request.GetByLabel("Name", new() { Exact = true }).FillAsync("login");
        await request.GetByLabel("Method").SelectOptionAsync("POST");
        await request.GetByLabel("URL").FillAsync(login.BaseUrl + "/login");
        await request.GetByRole(AriaRole.Button, new() { Name = "Add header" }).ClickAsync();
        await request.GetByLabel("Headers: name 1").FillAsync("Content-Type");
        await request.GetByLabel("Headers: value 1").FillAsync("application/json");
        await request.GetByLabel("Body").FillAsync($$$"""{"username": "svc-user", "password": "{{ environment.variables.{{{secret}}} }}"}""");
        var extract = form.Locator("[data-step='auth.steps[1]']");
        await extract.GetByLabel("Name", new() { Exact = true }).FillAsync("TOKEN");
        await extract.GetByLabel("Value (what to extract)").FillAsync("{{ login.body.session.token }}");
        var script = form.Locator("[data-step='auth.steps[2]']");
        await script.GetByLabel("Name", new() { Exact = true }).FillAsync("derived");
        await script.GetByLabel("Code").FillAsync("return { CSRF: login.headers['x-csrf'] };");
        var apply = form.Locator("fieldset[data-field='auth.apply.headers']");
        await apply.GetByRole(AriaRole.Button, new() { Name = "Add header" }).ClickAsync();
        await apply.GetByLabel("Apply: headers: name 1").FillAsync("Authorization");
        await apply.GetByLabel("Apply: headers: value 1").FillAsync("Bearer {{ TOKEN }}");
        await apply.GetByRole(AriaRole.Button, new() { Name = "Add header" }).ClickAsync();
        await apply.GetByLabel("Apply: headers: name 2").FillAsync("X-CSRF");
        await apply.GetByLabel("Apply: headers: value 2").FillAsync("{{ CSRF }}");
        await form.GetByLabel("Lifetime in seconds (a template)").FillAsync("{{ login.body.session.expiresIn }}");
        await SnapshotAsync(page, "form-custom-flow", password);
        await CreateAsync(page, name);

        var auth = (await DefinitionAsync(name))["auth"]!;
        var steps = auth["steps"]!.AsArray();
        Assert.Equal(["request", "variable", "javascript"], steps.Select(s => (string?)s!["type"]));
        Assert.Equal(["login", "TOKEN", "derived"], steps.Select(s => (string?)s!["name"]));
        Assert.Equal(login.BaseUrl + "/login", (string?)steps[0]!["url"]);
        Assert.Equal("application/json", (string?)steps[0]!["headers"]!["Content-Type"]);
        Assert.Equal("{{ login.body.session.token }}", (string?)steps[1]!["value"]);
        Assert.Equal("Bearer {{ TOKEN }}", (string?)auth["apply"]!["headers"]!["Authorization"]);

        await page.Locator("#run").GetByLabel("Path").FillAsync("/data");
        await page.Locator("#run").GetByRole(AriaRole.Button, new() { Name = "Run" }).ClickAsync();
        await Assertions.Expect(page.Locator("#run-result .badge").First).ToHaveTextAsync("200");
        await Assertions.Expect(page.Locator("#run-result .body")).ToContainTextAsync("\"ok\": true");
        Assert.Equal(1, login.Logins);
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task The_source_view_takes_yaml_shows_it_back_as_yaml_and_the_form_reads_it()
    {
        var name = KeywayFixture.Unique("yaml");
        var page = await AdminPageAsync("/console#/resources");
        await Form(page).GetByLabel("Name", new() { Exact = true }).FillAsync(name);
        await Form(page).GetByRole(AriaRole.Tab, new() { Name = "Source" }).ClickAsync();
        var yaml = $"""
            # pasted from a file
            kind: rest
            baseUrl: {fixture.Upstream.BaseUrl}/yaml
            description: "Orders: read only"
            headers:
              Accept: application/json
            query:
              api-version: '2024-01-01'
            timeouts:
              requestMs: 5000
            authFailureStatuses: [401, 419]
            auth:
              type: none
            """;
        await Form(page).Locator("textarea[name=source]").FillAsync(yaml);
        // The form reads what the source says.
        await Form(page).GetByRole(AriaRole.Tab, new() { Name = "General" }).ClickAsync();
        await Assertions.Expect(Form(page).GetByLabel("Description")).ToHaveValueAsync("Orders: read only");
        await Form(page).GetByRole(AriaRole.Tab, new() { Name = "Advanced" }).ClickAsync();
        await Assertions.Expect(Form(page).GetByLabel("Request timeout (ms)")).ToHaveValueAsync("5000");
        await CreateAsync(page, name);

        var stored = await DefinitionAsync(name);
        Assert.Equal("Orders: read only", (string?)stored["description"]);
        Assert.Equal("2024-01-01", (string?)stored["query"]!["api-version"]);
        Assert.Equal(5000, (int)stored["timeouts"]!["requestMs"]!);
        Assert.Equal([401, 419], stored["authFailureStatuses"]!.AsArray().Select(s => (int)s!));

        // Shown back as YAML, edited as YAML, saved.
        await Assertions.Expect(page.Locator("#configuration")).ToContainTextAsync("description: \"Orders: read only\"");
        await page.Locator("#edit-resource").ClickAsync();
        await Form(page).GetByRole(AriaRole.Tab, new() { Name = "Source" }).ClickAsync();
        var source = Form(page).Locator("textarea[name=source]");
        await Assertions.Expect(source).ToHaveValueAsync(new Regex("^kind: rest\n", RegexOptions.Multiline));
        await Assertions.Expect(source).ToHaveValueAsync(new Regex("authFailureStatuses:\n  - 401\n  - 419"));
        var text = await source.InputValueAsync();
        await source.FillAsync(text.Replace("Orders: read only", "Orders: read and write", StringComparison.Ordinal));
        await Form(page).GetByRole(AriaRole.Button, new() { Name = "Save" }).ClickAsync();
        await Assertions.Expect(page.Locator("#configuration")).ToContainTextAsync("Orders: read and write");
        var saved = await DefinitionAsync(name);
        Assert.Equal("Orders: read and write", (string?)saved["description"]);
        Assert.Equal("2024-01-01", (string?)saved["query"]!["api-version"]);

        // A document the source view cannot read says where, and keeps the text.
        await page.Locator("#edit-resource").ClickAsync();
        await Form(page).GetByRole(AriaRole.Tab, new() { Name = "Source" }).ClickAsync();
        await source.FillAsync("kind: rest\nheaders:\n  Accept: json\n    X: y\n");
        await Form(page).GetByRole(AriaRole.Tab, new() { Name = "General" }).ClickAsync();
        await Assertions.Expect(Form(page)).ToContainTextAsync("line 4");
        await Assertions.Expect(source).ToHaveValueAsync(new Regex("X: y"));
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task The_servers_field_errors_are_shown_next_to_their_fields_and_nothing_is_stored()
    {
        var name = KeywayFixture.Unique("invalid");
        var page = await AdminPageAsync("/console#/resources");
        await GeneralAsync(page, name, fixture.Upstream.BaseUrl);
        await Form(page).GetByRole(AriaRole.Tab, new() { Name = "Advanced" }).ClickAsync();
        await Form(page).GetByLabel("Request timeout (ms)").FillAsync("-5");
        await AuthMethodAsync(page, "apiKey");
        // No parameter name, and a key written as a template that names nothing secret.
        var value = Form(page).Locator("[data-field='auth.value']");
        await value.Locator("select[name='auth.value']").SelectOptionAsync("template");
        await value.GetByLabel(new Regex("template$")).FillAsync("typed-in-plain-text");
        await Form(page).GetByRole(AriaRole.Button, new() { Name = "Create resource" }).ClickAsync();

        // Each message sits beside its field, which is marked invalid; another tab's errors are counted on it.
        var nameField = Form(page).Locator("[data-field='auth.name']");
        await Assertions.Expect(nameField.Locator(".field-error")).ToContainTextAsync("Name the header, query parameter or cookie");
        await Assertions.Expect(nameField.Locator("input")).ToHaveAttributeAsync("aria-invalid", "true");
        await Assertions.Expect(value.Locator(".field-error")).ToContainTextAsync("keyway var set NAME --secret");
        await Assertions.Expect(Form(page).Locator(".form-errors")).ToContainTextAsync("timeouts.requestMs");
        await Assertions.Expect(Form(page).GetByRole(AriaRole.Tab, new() { Name = "Advanced" })).ToContainTextAsync("1");
        await Form(page).GetByRole(AriaRole.Tab, new() { Name = "Advanced" }).ClickAsync();
        await Assertions.Expect(Form(page).Locator("[data-field='timeouts.requestMs'] .field-error")).ToBeVisibleAsync();
        await Expect.ProblemAsync(await fixture.Admin.GetAsync($"/api/v1/resources/{name}"), 404, "not_found");
        await page.Context.CloseAsync();
    }

    [Fact]
    public async Task Digest_and_oauth1_resources_made_with_the_form_are_stored_as_intended_and_an_oauth1_request_arrives_signed()
    {
        var secret = "SIGN_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        await Expect.StatusAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{secret}",
            new { value = "form-signing-secret-" + Guid.NewGuid().ToString("N"), secret = true }), 200);
        var page = await AdminPageAsync("/console#/resources");

        var digest = KeywayFixture.Unique("digest");
        await GeneralAsync(page, digest, fixture.Upstream.BaseUrl);
        await AuthMethodAsync(page, "digest");
        await Form(page).GetByLabel("User name").FillAsync("svc-digest");
        await Form(page).Locator("select[name='auth.password']").SelectOptionAsync("var:" + secret);
        await CreateAsync(page, digest);
        var stored = await DefinitionAsync(digest);
        Assert.Equal("digest", (string?)stored["auth"]!["type"]);
        Assert.Equal("svc-digest", (string?)stored["auth"]!["username"]);
        Assert.Equal($"{{{{ environment.variables.{secret} }}}}", (string?)stored["auth"]!["password"]);

        // RSA-SHA1 asks for a private key instead of the two secrets; back to HMAC-SHA1, they are asked for again.
        var oauth1 = KeywayFixture.Unique("oauth1");
        await page.GotoAsync("/console#/resources");
        await GeneralAsync(page, oauth1, fixture.Upstream.BaseUrl);
        await AuthMethodAsync(page, "oauth1");
        await Form(page).GetByLabel("Signature method").SelectOptionAsync("RSA-SHA1");
        await Assertions.Expect(Form(page).Locator("select[name='auth.privateKey']")).ToBeVisibleAsync();
        await Assertions.Expect(Form(page).Locator("select[name='auth.consumerSecret']")).ToHaveCountAsync(0);
        await Form(page).GetByLabel("Signature method").SelectOptionAsync("");
        await Form(page).GetByLabel("Consumer key").FillAsync("ck-form");
        await Form(page).Locator("select[name='auth.consumerSecret']").SelectOptionAsync("var:" + secret);
        await Form(page).GetByLabel("Access token", new() { Exact = true }).FillAsync("tok-form");
        await Form(page).Locator("select[name='auth.tokenSecret']").SelectOptionAsync("var:" + secret);
        await Form(page).GetByLabel("Parameters sent in").SelectOptionAsync("query");
        await CreateAsync(page, oauth1);
        stored = await DefinitionAsync(oauth1);
        Assert.Equal("oauth1", (string?)stored["auth"]!["type"]);
        Assert.Equal("ck-form", (string?)stored["auth"]!["consumerKey"]);
        Assert.Equal("tok-form", (string?)stored["auth"]!["token"]);
        Assert.Equal("query", (string?)stored["auth"]!["in"]);
        Assert.Null(stored["auth"]!["privateKey"]);

        var run = await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{oauth1}/run", new { path = "/signed-by-form" }), 200);
        Assert.Equal(200, (int)run["status"]!);
        var sent = fixture.Upstream.Requests.Last(r => r.Path == "/signed-by-form");
        Assert.Equal("ck-form", sent.Query["oauth_consumer_key"]);
        Assert.Equal("HMAC-SHA1", sent.Query["oauth_signature_method"]);
        Assert.True(sent.Query.ContainsKey("oauth_signature"));
        await page.Context.CloseAsync();
    }

    internal static ILocator Form(IPage page) => page.Locator("#resource-form");

    private static async Task GeneralAsync(IPage page, string name, string baseUrl)
    {
        await Form(page).GetByRole(AriaRole.Tab, new() { Name = "General" }).ClickAsync();
        await Form(page).GetByLabel("Name", new() { Exact = true }).FillAsync(name);
        await Form(page).GetByLabel("Base URL").FillAsync(baseUrl);
    }

    private static async Task AuthMethodAsync(IPage page, string method)
    {
        await Form(page).GetByRole(AriaRole.Tab, new() { Name = "Auth & Headers" }).ClickAsync();
        await Form(page).GetByLabel("Auth method").SelectOptionAsync(method);
    }

    private static async Task CreateAsync(IPage page, string name)
    {
        await Form(page).GetByRole(AriaRole.Button, new() { Name = "Create resource" }).ClickAsync();
        await Assertions.Expect(page.GetByRole(AriaRole.Heading, new() { Name = name, Exact = true })).ToBeVisibleAsync();
    }

    private async Task<JsonNode> DefinitionAsync(string name) =>
        (await Expect.StatusAsync(await fixture.Admin.GetAsync($"/api/v1/resources/{name}"), 200))["definition"]!;

    private async Task<IPage> AdminPageAsync(string path)
    {
        var page = await chromium.NewPageAsync(fixture.Keyway.BaseUrl);
        await page.GotoAsync(path);
        await ConsoleTests.SignInAsync(page, "admin", fixture.Keyway.AdminPassword!);
        await Assertions.Expect(page.Locator("#bar")).ToBeVisibleAsync();
        return page;
    }

    /// <summary>
    /// A screenshot saved with the test output (console-screenshots/), taken when neither the page's
    /// markup nor any field's value holds <paramref name="secret"/>; returns the markup.
    /// </summary>
    internal static async Task<string> SnapshotAsync(IPage page, string name, string secret)
    {
        var html = await page.ContentAsync();
        Assert.DoesNotContain(secret, html, StringComparison.Ordinal);
        Assert.False(await page.EvaluateAsync<bool>("s => [...document.querySelectorAll('input, textarea')].some(i => i.value.includes(s)) || document.body.innerText.includes(s)", secret),
            $"{name}: a field or the page's text holds the secret");
        var directory = Path.Combine(AppContext.BaseDirectory, "console-screenshots");
        Directory.CreateDirectory(directory);
        await page.ScreenshotAsync(new() { Path = Path.Combine(directory, name + ".png"), FullPage = true });
        return html;
    }
}

using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// Every route the running server serves × every kind of caller. The routes come from the server
/// itself (<c>GET /api/v1/operator/routes</c> lists its <c>EndpointDataSource</c>), so a route added
/// without a row in <see cref="Expected"/> fails this test, and so does a row whose route is gone.
/// Each cell asserts the outcome's class only: 401, 403, or neither (the call got past
/// authorization; it may still be a 400 or 404 because the matrix sends placeholder bodies and names).
/// </summary>
[Trait("Category", "Integration")]
public sealed class RouteMatrixTests(SqliteKeyway fixture) : IClassFixture<SqliteKeyway>
{
    private enum Role { Anonymous, Member, MemberUse, MemberEdit, MemberOwn, KeyForOtherResource, Admin }

    // One letter per role, in the order of Role: U = 401, F = 403, o = neither.
    private const string Open = "ooooooo";
    private const string AnyCaller = "Uoooooo";
    private const string ResourceRead = "UFoooFo";
    private const string ResourceUse = "UFoooFo";
    private const string ResourceEdit = "UFFooFo";
    private const string ResourceOwn = "UFFFoFo";
    private const string AdminOnly = "UFFFFFo";

    private static readonly Dictionary<string, string> Expected = new(StringComparer.Ordinal)
    {
        ["GET /healthz"] = Open,
        ["GET /readyz"] = Open,
        ["GET /metrics"] = Open,
        ["GET /openapi/{documentName}.json"] = Open,
        ["GET /schema/v1.json"] = Open, // the JSON Schema of configuration files: shapes, never data
        ["GET /api/reference/{documentName?}"] = Open,
        ["GET /api/reference/favicon.svg"] = Open,
        ["GET /api/reference/scalar.js"] = Open,
        ["GET /api/reference/scalar.aspnetcore.js"] = Open,
        ["GET /oauth/callback"] = Open,
        ["GET /auth/oidc/login"] = Open, // starts single sign-on (404 sso_not_configured here)
        ["POST /api/v1/auth/login"] = Open, // sign-in itself
        ["GET /"] = Open, // a redirect to the console
        ["GET /console"] = Open, // the console's page: it holds no data, it reads the API as whoever signs in
        ["GET /console/{file}"] = Open, // its script, style and icon

        ["POST /api/v1/auth/logout"] = AnyCaller,
        ["GET /api/v1/me"] = AnyCaller,
        ["POST /api/v1/me/password"] = "UooooFo", // proving the current password is the check that matters; a scoped key may not

        ["GET /api/v1/environments/"] = AnyCaller,
        ["GET /api/v1/environments/{env}"] = AnyCaller,
        ["PUT /api/v1/environments/{env}"] = AdminOnly,
        ["DELETE /api/v1/environments/{env}"] = AdminOnly,
        ["GET /api/v1/environments/{env}/variables"] = AdminOnly,
        ["GET /api/v1/environments/{env}/variables/{name}"] = AdminOnly,
        ["PUT /api/v1/environments/{env}/variables/{name}"] = AdminOnly,
        ["DELETE /api/v1/environments/{env}/variables/{name}"] = AdminOnly,
        ["PUT /api/v1/environments/{env}/variables/{name}/origins"] = AdminOnly,
        ["PATCH /api/v1/environments/{env}/variables/{name}"] = AdminOnly,
        ["GET /api/v1/environments/{env}/variables/{name}/versions"] = AdminOnly,
        ["POST /api/v1/environments/{env}/variables/{name}/rollback"] = AdminOnly,
        ["GET /api/v1/environments/{env}/variables/{name}/rotation"] = AdminOnly,
        ["PUT /api/v1/environments/{env}/variables/{name}/rotation"] = AdminOnly,
        ["DELETE /api/v1/environments/{env}/variables/{name}/rotation"] = AdminOnly,
        ["POST /api/v1/environments/{env}/variables/{name}/rotate"] = AdminOnly,
        ["GET /api/v1/environments/{env}/variables/{name}/rotations"] = AdminOnly,
        ["GET /api/v1/status/attention"] = AnyCaller, // each caller sees only what it may see
        ["GET /api/v1/status/credentials"] = AnyCaller, // each caller sees only the credentials it may see
        ["GET /api/v1/rights/"] = AdminOnly,
        ["POST /api/v1/rights/"] = AdminOnly,
        ["DELETE /api/v1/rights/{id}"] = AdminOnly,
        ["GET /api/v1/webhooks/"] = AdminOnly,
        ["POST /api/v1/webhooks/"] = AdminOnly,
        ["GET /api/v1/webhooks/{name}"] = AdminOnly,
        ["PATCH /api/v1/webhooks/{name}"] = AdminOnly,
        ["DELETE /api/v1/webhooks/{name}"] = AdminOnly,
        ["POST /api/v1/webhooks/{name}/rotate-secret"] = AdminOnly,
        ["POST /api/v1/webhooks/{name}/test"] = AdminOnly,
        ["GET /api/v1/webhooks/{name}/deliveries"] = AdminOnly,
        ["GET /api/v1/webhooks/{name}/deliveries/{id}"] = AdminOnly,
        ["POST /api/v1/webhooks/{name}/deliveries/{id}/redeliver"] = AdminOnly,

        ["GET /api/v1/resources/"] = AnyCaller,
        ["GET /api/v1/resources/{name}"] = ResourceRead,
        ["PUT /api/v1/resources/{name}"] = ResourceEdit,
        ["DELETE /api/v1/resources/{name}"] = ResourceOwn,
        ["POST /api/v1/resources/{name}/run"] = ResourceUse,
        ["POST /api/v1/resources/{name}/test"] = ResourceUse,
        ["GET /api/v1/resources/{name}/credential"] = ResourceRead,
        ["PUT /api/v1/resources/{name}/credential"] = ResourceUse,
        ["DELETE /api/v1/resources/{name}/credential"] = ResourceUse,
        ["POST /api/v1/resources/{name}/credential/refresh"] = ResourceUse,
        ["GET /api/v1/resources/{name}/connect"] = ResourceUse,
        ["GET /api/v1/resources/{name}/permissions/"] = ResourceOwn,
        ["POST /api/v1/resources/{name}/permissions/"] = ResourceOwn,
        ["DELETE /api/v1/resources/{name}/permissions/{grantId}"] = ResourceOwn,
        ["GET /proxy/{resource}/{**path}"] = ResourceUse,

        ["GET /api/v1/queries/"] = AnyCaller,
        ["GET /api/v1/queries/{name}"] = ResourceRead,
        ["PUT /api/v1/queries/{name}"] = ResourceUse,
        ["DELETE /api/v1/queries/{name}"] = ResourceUse,
        ["POST /api/v1/queries/{name}/run"] = ResourceUse,
        // The matrix's schedule runs the matrix's query in production: it needs what running that query needs.
        ["GET /api/v1/schedules/"] = AnyCaller,
        ["GET /api/v1/schedules/{name}"] = ResourceRead,
        ["PUT /api/v1/schedules/{name}"] = ResourceUse,
        ["DELETE /api/v1/schedules/{name}"] = ResourceUse,
        ["POST /api/v1/schedules/{name}/run"] = ResourceUse,
        ["GET /api/v1/schedules/{name}/history"] = ResourceRead,
        ["GET /api/v1/schedules/{name}/runs/{id}"] = ResourceRead,

        ["GET /api/v1/keys/"] = AnyCaller,
        ["POST /api/v1/keys/"] = "UooooFo", // a scoped key creates no keys
        ["DELETE /api/v1/keys/{id}"] = AnyCaller,

        ["GET /api/v1/users/"] = AdminOnly,
        ["POST /api/v1/users/"] = AdminOnly,
        ["GET /api/v1/users/{name}"] = AdminOnly,
        ["PATCH /api/v1/users/{name}"] = AdminOnly,
        ["DELETE /api/v1/users/{name}"] = AdminOnly,
        ["GET /api/v1/groups/"] = AdminOnly,
        ["GET /api/v1/groups/{name}"] = AdminOnly,
        ["PUT /api/v1/groups/{name}"] = AdminOnly,
        ["DELETE /api/v1/groups/{name}"] = AdminOnly,
        ["PUT /api/v1/groups/{name}/members/{user}"] = AdminOnly,
        ["DELETE /api/v1/groups/{name}/members/{user}"] = AdminOnly,

        ["GET /api/v1/audit/"] = AdminOnly,
        ["GET /api/v1/audit/export"] = AdminOnly,
        ["POST /api/v1/audit/verify"] = AdminOnly,
        ["POST /api/v1/audit/prune"] = AdminOnly,

        ["GET /api/v1/operator/rekey"] = AdminOnly,
        ["POST /api/v1/operator/rekey"] = AdminOnly,
        ["GET /api/v1/operator/routes"] = AdminOnly,
        ["GET /api/v1/config/export"] = AdminOnly, // every environment's variables, groups and webhooks: what only admins read
    };

    [Fact]
    public async Task Every_route_answers_every_kind_of_caller_as_the_table_says()
    {
        var routes = await ServedRoutesAsync(Expected.Keys);

        var other = KeywayFixture.Unique("other");
        await fixture.PutResourceAsync(other, new { baseUrl = fixture.Upstream.BaseUrl });
        var scoped = await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/keys", new { name = "matrix", scopes = new { resources = new[] { other } } }), 201);

        var failures = new List<string>();
        var cells = 0;
        foreach (var role in Enum.GetValues<Role>())
        {
            var (resource, query) = await ResourceAndQueryAsync();
            using var client = await ClientForAsync(role, resource, (string)scoped["token"]!);
            foreach (var (method, pattern) in routes)
            {
                var expected = Expected[$"{method} {pattern}"][(int)role];
                using var request = Request(method, pattern, resource, query);
                using var response = await client.SendAsync(request);
                var status = (int)response.StatusCode;
                var actual = status switch { 401 => 'U', 403 => 'F', _ => 'o' };
                cells++;
                if (actual != expected)
                {
                    failures.Add($"{role,-20} {method,-6} {pattern}: expected {Describe(expected)}, got {status} {await response.Content.ReadAsStringAsync()}");
                }
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {cells} cells differ:\n" + string.Join('\n', failures));
    }

    /// <summary>Every route the server serves, checked against a table's keys both ways.</summary>
    private async Task<List<(string Method, string Pattern)>> ServedRoutesAsync(IEnumerable<string> table)
    {
        var routes = (await Expect.StatusAsync(await fixture.Admin.GetAsync("/api/v1/operator/routes"), 200))["routes"]!.AsArray()
            .SelectMany(r => (r!["methods"]!.AsArray().Count == 0 ? ["GET"] : r["methods"]!.AsArray().Select(m => (string)m!))
                .Select(method => (Method: method, Pattern: (string)r["pattern"]!)))
            .ToList();
        var served = routes.Select(r => $"{r.Method} {r.Pattern}").ToHashSet(StringComparer.Ordinal);
        var expected = table.ToHashSet(StringComparer.Ordinal);
        Assert.True(served.Count > 40, "The route listing looks truncated.");
        Assert.Empty(served.Where(r => !expected.Contains(r)).Select(r => $"{r} is served but missing from the expectation table"));
        Assert.Empty(expected.Where(r => !served.Contains(r)).Select(r => $"{r} is in the table but no longer served"));
        // Destructive calls last, a schedule's before its query's, the resource's own deletion very last: the other cells need it.
        return [.. routes.OrderBy(r => r.Method == "DELETE")
            .ThenBy(r => r.Method == "DELETE" && !r.Pattern.StartsWith("/api/v1/schedules/", StringComparison.Ordinal))
            .ThenBy(r => r.Pattern == "/api/v1/resources/{name}" && r.Method == "DELETE")];
    }

    private async Task<(string Resource, string Query)> ResourceAndQueryAsync()
    {
        var resource = KeywayFixture.Unique("mx");
        await fixture.PutResourceAsync(resource, new { baseUrl = fixture.Upstream.BaseUrl });
        var query = KeywayFixture.Unique("mq");
        await Expect.SuccessAsync(await fixture.Admin.PutAsJsonAsync($"/api/v1/queries/{query}", new { resource, method = "GET", path = "/q" }));
        await Expect.SuccessAsync(await fixture.Admin.PutAsync($"/api/v1/schedules/{ScheduleOf(resource)}", ScheduleBody(query)));
        return (resource, query);
    }

    private async Task<HttpClient> ClientForAsync(Role role, string resource, string scopedToken)
    {
        switch (role)
        {
            case Role.Anonymous:
                return fixture.Keyway.CreateClient();
            case Role.Admin:
                return fixture.Keyway.CreateAdminClient();
            case Role.KeyForOtherResource:
                return fixture.Keyway.CreateClient(scopedToken);
        }

        var name = KeywayFixture.Unique("mm");
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/users", new { name }), 201);
        var permission = role switch { Role.MemberUse => "use", Role.MemberEdit => "edit", Role.MemberOwn => "own", _ => null };
        if (permission is not null)
        {
            await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = name, permission }), 201);
        }

        var key = await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/keys", new { name = "matrix", owner = name }), 201);
        return fixture.Keyway.CreateClient((string)key["token"]!);
    }

    private static HttpRequestMessage Request(string method, string pattern, string resource, string query, string environment = "matrix-none", string keyId = "matrix-none")
    {
        var path = pattern
            .Replace("{**path}", "x", StringComparison.Ordinal)
            .Replace("{resource}", resource, StringComparison.Ordinal)
            .Replace("{documentName?}", "v1", StringComparison.Ordinal)
            .Replace("{documentName}", "v1", StringComparison.Ordinal)
            .Replace("{file}", "app.js", StringComparison.Ordinal);
        if (path.StartsWith("/api/v1/resources/", StringComparison.Ordinal))
        {
            path = path.Replace("{name}", resource, StringComparison.Ordinal);
        }
        else if (path.StartsWith("/api/v1/schedules/", StringComparison.Ordinal))
        {
            path = path.Replace("{name}", ScheduleOf(resource), StringComparison.Ordinal);
        }
        else if (path.StartsWith("/api/v1/queries/", StringComparison.Ordinal))
        {
            path = path.Replace("{name}", query, StringComparison.Ordinal);
        }
        else if (path.StartsWith("/api/v1/environments/", StringComparison.Ordinal))
        {
            path = path.Replace("{name}", "MATRIX_NONE", StringComparison.Ordinal);
        }

        path = path.Replace("{env}", environment, StringComparison.Ordinal).Replace("{id}", keyId, StringComparison.Ordinal);
        foreach (var placeholder in (string[])["{name}", "{grantId}", "{user}"])
        {
            path = path.Replace(placeholder, "matrix-none", StringComparison.Ordinal);
        }

        Assert.DoesNotContain("{", path);
        var request = new HttpRequestMessage(new HttpMethod(method), path.TrimStart('/'));
        if (method is "POST" or "PUT" or "PATCH")
        {
            request.Content = method == "PUT" && pattern == "/api/v1/schedules/{name}"
                ? ScheduleBody(query)
                : new StringContent((method == "PUT" && pattern == "/api/v1/queries/{name}"
                    ? new JsonObject { ["resource"] = resource, ["method"] = "GET", ["path"] = "/q" }
                    : new JsonObject()).ToJsonString(), Encoding.UTF8, "application/json");
        }

        return request;
    }

    /// <summary>The matrix's schedule of a resource: it runs the resource's matrix query in production.</summary>
    private static string ScheduleOf(string resource) => resource + "-sch";

    private static StringContent ScheduleBody(string query) =>
        new(new JsonObject { ["cron"] = "0 3 * * *", ["action"] = "run", ["query"] = query }.ToJsonString(), Encoding.UTF8, "application/json");

    // ---- Every route × every scope shape, for a key of an admin and of a member who owns the resource ----

    /// <summary>What a key's scope names, in the order of the expectation strings below.</summary>
    private enum Shape { Unscoped, ThisResource, OtherResource, Production, OtherEnvironment, Read, Use, Edit, Own, AdminAction, UseThisResource }

    /// <summary>What a route needs, as far as a key's scope is concerned.</summary>
    private enum Need { Open, AnyKey, Account, KeyRevoke, EnvironmentRead, Admin, ResourceRead, ResourceReadHere, ResourceUse, ResourceUseEverywhere, ResourceUseHere, ResourceEdit, ResourceOwn }

    // One letter per Shape: F = refused (403, or 404 where the route hides what exists), o = got past authorization.
    // "Here" is production, the environment the matrix calls in: a key scoped to another environment is refused there.
    private static readonly Dictionary<Need, (string AdminKey, string MemberKey)> ScopeOutcomes = new()
    {
        [Need.Open] = ("ooooooooooo", "ooooooooooo"),
        [Need.AnyKey] = ("ooooooooooo", "ooooooooooo"), // lists filter what a scope does not cover
        [Need.Account] = ("oFFFFFFFFoF", "oFFFFFFFFoF"), // only a key whose scope is admin over everything creates keys or changes the password
        [Need.KeyRevoke] = ("oFFFFFFFFoF", "FFFFFFFFFFF"), // another user's key: admin over everything, nothing less
        [Need.EnvironmentRead] = ("ooooFoooooo", "ooooFoooooo"),
        [Need.Admin] = ("oFFFFFFFFoF", "FFFFFFFFFFF"),
        [Need.ResourceRead] = ("ooFoooooooo", "ooFoooooooo"),
        [Need.ResourceReadHere] = ("ooFoFoooooo", "ooFoFoooooo"),
        [Need.ResourceUse] = ("ooFooFooooo", "ooFooFooooo"), // saved queries belong to no environment
        [Need.ResourceUseEverywhere] = ("ooFFFFooooo", "ooFFFFooooo"), // a saved query runs in every environment: an environment-scoped key writes none
        [Need.ResourceUseHere] = ("ooFoFFooooo", "ooFoFFooooo"),
        [Need.ResourceEdit] = ("ooFFFFFoooF", "ooFFFFFoooF"), // a configuration is every environment's: an environment-scoped key edits none
        [Need.ResourceOwn] = ("ooFFFFFFooF", "ooFFFFFFooF"),
    };

    private static readonly Dictionary<string, Need> ScopeNeeds = new(StringComparer.Ordinal)
    {
        ["GET /healthz"] = Need.Open,
        ["GET /readyz"] = Need.Open,
        ["GET /metrics"] = Need.Open,
        ["GET /openapi/{documentName}.json"] = Need.Open,
        ["GET /schema/v1.json"] = Need.Open,
        ["GET /api/reference/{documentName?}"] = Need.Open,
        ["GET /api/reference/favicon.svg"] = Need.Open,
        ["GET /api/reference/scalar.js"] = Need.Open,
        ["GET /api/reference/scalar.aspnetcore.js"] = Need.Open,
        ["GET /oauth/callback"] = Need.Open,
        ["GET /auth/oidc/login"] = Need.Open,
        ["POST /api/v1/auth/login"] = Need.Open,
        ["GET /"] = Need.Open,
        ["GET /console"] = Need.Open,
        ["GET /console/{file}"] = Need.Open,

        ["POST /api/v1/auth/logout"] = Need.AnyKey,
        ["GET /api/v1/me"] = Need.AnyKey,
        ["POST /api/v1/me/password"] = Need.Account,

        ["GET /api/v1/environments/"] = Need.AnyKey,
        ["GET /api/v1/environments/{env}"] = Need.EnvironmentRead,
        ["PUT /api/v1/environments/{env}"] = Need.Admin,
        ["DELETE /api/v1/environments/{env}"] = Need.Admin,
        ["GET /api/v1/environments/{env}/variables"] = Need.Admin,
        ["GET /api/v1/environments/{env}/variables/{name}"] = Need.Admin,
        ["PUT /api/v1/environments/{env}/variables/{name}"] = Need.Admin,
        ["DELETE /api/v1/environments/{env}/variables/{name}"] = Need.Admin,
        ["PUT /api/v1/environments/{env}/variables/{name}/origins"] = Need.Admin,
        ["PATCH /api/v1/environments/{env}/variables/{name}"] = Need.Admin,
        ["GET /api/v1/environments/{env}/variables/{name}/versions"] = Need.Admin,
        ["POST /api/v1/environments/{env}/variables/{name}/rollback"] = Need.Admin,
        ["GET /api/v1/environments/{env}/variables/{name}/rotation"] = Need.Admin,
        ["PUT /api/v1/environments/{env}/variables/{name}/rotation"] = Need.Admin,
        ["DELETE /api/v1/environments/{env}/variables/{name}/rotation"] = Need.Admin,
        ["POST /api/v1/environments/{env}/variables/{name}/rotate"] = Need.Admin,
        ["GET /api/v1/environments/{env}/variables/{name}/rotations"] = Need.Admin,
        ["GET /api/v1/status/attention"] = Need.AnyKey,
        ["GET /api/v1/status/credentials"] = Need.AnyKey,
        ["GET /api/v1/rights/"] = Need.Admin,
        ["POST /api/v1/rights/"] = Need.Admin,
        ["DELETE /api/v1/rights/{id}"] = Need.Admin,
        ["GET /api/v1/webhooks/"] = Need.Admin,
        ["POST /api/v1/webhooks/"] = Need.Admin,
        ["GET /api/v1/webhooks/{name}"] = Need.Admin,
        ["PATCH /api/v1/webhooks/{name}"] = Need.Admin,
        ["DELETE /api/v1/webhooks/{name}"] = Need.Admin,
        ["POST /api/v1/webhooks/{name}/rotate-secret"] = Need.Admin,
        ["POST /api/v1/webhooks/{name}/test"] = Need.Admin,
        ["GET /api/v1/webhooks/{name}/deliveries"] = Need.Admin,
        ["GET /api/v1/webhooks/{name}/deliveries/{id}"] = Need.Admin,
        ["POST /api/v1/webhooks/{name}/deliveries/{id}/redeliver"] = Need.Admin,

        ["GET /api/v1/resources/"] = Need.AnyKey,
        ["GET /api/v1/resources/{name}"] = Need.ResourceRead,
        ["PUT /api/v1/resources/{name}"] = Need.ResourceEdit,
        ["DELETE /api/v1/resources/{name}"] = Need.ResourceOwn,
        ["POST /api/v1/resources/{name}/run"] = Need.ResourceUseHere,
        ["POST /api/v1/resources/{name}/test"] = Need.ResourceUseHere,
        ["GET /api/v1/resources/{name}/credential"] = Need.ResourceReadHere,
        ["PUT /api/v1/resources/{name}/credential"] = Need.ResourceUseHere,
        ["DELETE /api/v1/resources/{name}/credential"] = Need.ResourceUseHere,
        ["POST /api/v1/resources/{name}/credential/refresh"] = Need.ResourceUseHere,
        ["GET /api/v1/resources/{name}/connect"] = Need.ResourceUseHere,
        ["GET /api/v1/resources/{name}/permissions/"] = Need.ResourceOwn,
        ["POST /api/v1/resources/{name}/permissions/"] = Need.ResourceOwn,
        ["DELETE /api/v1/resources/{name}/permissions/{grantId}"] = Need.ResourceOwn,
        ["GET /proxy/{resource}/{**path}"] = Need.ResourceUseHere,

        ["GET /api/v1/queries/"] = Need.AnyKey,
        ["GET /api/v1/queries/{name}"] = Need.ResourceRead,
        ["PUT /api/v1/queries/{name}"] = Need.ResourceUseEverywhere,
        ["DELETE /api/v1/queries/{name}"] = Need.ResourceUseEverywhere,
        ["POST /api/v1/queries/{name}/run"] = Need.ResourceUseHere,

        ["GET /api/v1/schedules/"] = Need.AnyKey, // lists filter what a scope does not cover
        ["GET /api/v1/schedules/{name}"] = Need.ResourceReadHere, // the schedule acts in production
        ["PUT /api/v1/schedules/{name}"] = Need.ResourceUseHere,
        ["DELETE /api/v1/schedules/{name}"] = Need.ResourceUseHere,
        ["POST /api/v1/schedules/{name}/run"] = Need.ResourceUseHere,
        ["GET /api/v1/schedules/{name}/history"] = Need.ResourceReadHere,
        ["GET /api/v1/schedules/{name}/runs/{id}"] = Need.ResourceReadHere,

        ["GET /api/v1/keys/"] = Need.AnyKey, // its owner's keys; everyone's only for admin over everything (ScopeTests)
        ["POST /api/v1/keys/"] = Need.Account,
        ["DELETE /api/v1/keys/{id}"] = Need.KeyRevoke,

        ["GET /api/v1/users/"] = Need.Admin,
        ["POST /api/v1/users/"] = Need.Admin,
        ["GET /api/v1/users/{name}"] = Need.Admin,
        ["PATCH /api/v1/users/{name}"] = Need.Admin,
        ["DELETE /api/v1/users/{name}"] = Need.Admin,
        ["GET /api/v1/groups/"] = Need.Admin,
        ["GET /api/v1/groups/{name}"] = Need.Admin,
        ["PUT /api/v1/groups/{name}"] = Need.Admin,
        ["DELETE /api/v1/groups/{name}"] = Need.Admin,
        ["PUT /api/v1/groups/{name}/members/{user}"] = Need.Admin,
        ["DELETE /api/v1/groups/{name}/members/{user}"] = Need.Admin,

        ["GET /api/v1/audit/"] = Need.Admin,
        ["GET /api/v1/audit/export"] = Need.Admin,
        ["POST /api/v1/audit/verify"] = Need.Admin,
        ["POST /api/v1/audit/prune"] = Need.Admin,

        ["GET /api/v1/operator/rekey"] = Need.Admin,
        ["POST /api/v1/operator/rekey"] = Need.Admin,
        ["GET /api/v1/operator/routes"] = Need.Admin,
        ["GET /api/v1/config/export"] = Need.Admin,
    };

    [Fact]
    public async Task Every_route_holds_every_scope_shape_of_an_admins_key_and_a_members_key_to_what_it_says()
    {
        Assert.All(Enum.GetValues<Need>(), need => Assert.True(ScopeOutcomes.ContainsKey(need), $"{need} has no outcome row"));
        Assert.All(ScopeOutcomes.Values, row => Assert.True(row.AdminKey.Length == Enum.GetValues<Shape>().Length && row.MemberKey.Length == row.AdminKey.Length));
        var routes = await ServedRoutesAsync(ScopeNeeds.Keys);
        var victim = KeywayFixture.Unique("victim");
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/users", new { name = victim }), 201);

        var failures = new List<string>();
        var cells = 0;
        foreach (var adminOwned in (bool[])[true, false])
        {
            foreach (var shape in Enum.GetValues<Shape>())
            {
                var (resource, query) = await ResourceAndQueryAsync();
                // Another user's key, which only admin over everything may revoke; a fresh one per cell.
                var victimKey = await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/keys", new { name = "victim", owner = victim }), 201);
                using var client = await ScopedClientAsync(adminOwned, shape, resource);
                foreach (var (method, pattern) in routes)
                {
                    var row = ScopeOutcomes[ScopeNeeds[$"{method} {pattern}"]];
                    var expected = (adminOwned ? row.AdminKey : row.MemberKey)[(int)shape];
                    using var request = Request(method, pattern, resource, query, method == "GET" ? "production" : "matrix-none", (string)victimKey["key"]!["id"]!);
                    using var response = await client.SendAsync(request);
                    var status = (int)response.StatusCode;
                    // Revoking another's key answers 404 to whoever may not learn that it exists.
                    var actual = status == 403 || (status == 404 && pattern == "/api/v1/keys/{id}") ? 'F' : status == 401 ? 'U' : 'o';
                    cells++;
                    if (actual != expected)
                    {
                        failures.Add($"{(adminOwned ? "admin" : "member"),-6} {shape,-16} {method,-6} {pattern}: expected {(expected == 'F' ? "refused" : "allowed")}, got {status} {await response.Content.ReadAsStringAsync()}");
                    }
                }
            }
        }

        Assert.True(failures.Count == 0, $"{failures.Count} of {cells} cells differ:\n" + string.Join('\n', failures));
    }

    private async Task<HttpClient> ScopedClientAsync(bool adminOwned, Shape shape, string resource)
    {
        string? owner = null;
        if (!adminOwned)
        {
            owner = KeywayFixture.Unique("ms");
            await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/users", new { name = owner }), 201);
            await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync($"/api/v1/resources/{resource}/permissions", new { user = owner, permission = "own" }), 201);
        }

        object? scopes = shape switch
        {
            Shape.Unscoped => null,
            Shape.ThisResource => new { resources = new[] { resource } },
            Shape.OtherResource => new { resources = new[] { "matrix-elsewhere" } },
            Shape.Production => new { environments = new[] { "production" } },
            Shape.OtherEnvironment => new { environments = new[] { "matrix-elsewhere" } },
            Shape.UseThisResource => new { resources = new[] { resource }, actions = new[] { "use" } },
            _ => new { actions = new[] { shape == Shape.AdminAction ? "admin" : shape.ToString().ToLowerInvariant() } },
        };
        var key = await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/keys", new { name = "scope-matrix", owner, scopes }), 201);
        return fixture.Keyway.CreateClient((string)key["token"]!);
    }

    private static string Describe(char outcome) => outcome switch { 'U' => "401", 'F' => "403", _ => "neither 401 nor 403" };
}

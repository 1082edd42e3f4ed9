using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>
/// One real <c>keyway serve</c> on a store, and one real upstream on loopback, shared by a test
/// class. Each test uses its own resource and variable names, so tests do not see each other.
/// </summary>
public abstract class KeywayFixture(StoreKind store) : IAsyncLifetime
{
    public StoreKind Store { get; } = store;

    public KeywayProcess Keyway { get; private set; } = null!;

    public UpstreamServer Upstream { get; private set; } = null!;

    public HttpClient Admin { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Upstream = await UpstreamServer.StartAsync();
        Keyway = await KeywayProcess.StartAsync(Store, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_test_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_ADMIN_PASSWORD"] = "admin-password-" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
        });
        Admin = Keyway.CreateAdminClient();
    }

    public async Task DisposeAsync()
    {
        Admin.Dispose();
        await Keyway.DisposeAsync();
        await Upstream.DisposeAsync();
    }

    /// <summary>A name no other test uses.</summary>
    public static string Unique(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)];

    public async Task SetVariableAsync(string name, string value, bool secret, string environment = "production")
    {
        var response = await Admin.PutAsJsonAsync($"/api/v1/environments/{environment}/variables/{name}", new { value, secret });
        await Expect.StatusAsync(response, 200);
    }

    public async Task PutResourceAsync(string name, object definition)
    {
        var response = await Admin.PutAsJsonAsync($"/api/v1/resources/{name}", definition);
        await Expect.SuccessAsync(response);
    }

    /// <summary>A secret variable and a bearer resource that uses it, pointing at the upstream (base path /base).</summary>
    public async Task<(string Resource, string Token)> BearerResourceAsync(object? extra = null)
    {
        var resource = Unique("res");
        var variable = "TOKEN_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var token = "tok-" + Guid.NewGuid().ToString("N");
        await SetVariableAsync(variable, token, secret: true);
        var definition = new JsonObject
        {
            ["kind"] = "rest",
            ["baseUrl"] = Upstream.BaseUrl + "/base",
            ["auth"] = new JsonObject { ["type"] = "bearer", ["token"] = $"{{{{ environment.variables.{variable} }}}}" },
        };
        if (extra is not null)
        {
            foreach (var (key, value) in JsonSerializer.SerializeToNode(extra)!.AsObject())
            {
                definition[key] = value?.DeepClone();
            }
        }

        await PutResourceAsync(resource, definition);
        return (resource, token);
    }
}

public sealed class SqliteKeyway() : KeywayFixture(StoreKind.Sqlite);

public sealed class PostgresKeyway() : KeywayFixture(StoreKind.Postgres);

/// <summary>Assertions on HTTP responses that print the body when they fail.</summary>
public static class Expect
{
    public static async Task<JsonNode> StatusAsync(HttpResponseMessage response, int status)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"Expected {status}, got {(int)response.StatusCode}: {body}");
        return body.Length == 0 ? new JsonObject() : JsonNode.Parse(body)!;
    }

    public static async Task<JsonNode> SuccessAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"Expected success, got {(int)response.StatusCode}: {body}");
        return body.Length == 0 ? new JsonObject() : JsonNode.Parse(body)!;
    }

    /// <summary>A problem+json response with this status and code.</summary>
    public static async Task<JsonNode> ProblemAsync(HttpResponseMessage response, int status, string code)
    {
        var body = await StatusAsync(response, status);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(code, (string?)body["code"]);
        return body;
    }
}

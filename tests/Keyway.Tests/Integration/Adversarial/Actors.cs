using System.Net.Http.Json;
using System.Text.Json.Nodes;

namespace Keyway.Tests.Integration.Adversarial;

/// <summary>The people and secrets the adversarial tests play with: a canary secret, a member, a builder.</summary>
internal static class Actors
{
    /// <summary>A secret variable in production holding a value no test writes anywhere else.</summary>
    public static async Task<(string Name, string Value)> CanaryAsync(this KeywayFixture fixture)
    {
        var name = "CANARY_" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var value = "canary-" + Guid.NewGuid().ToString("N");
        await fixture.SetVariableAsync(name, value, secret: true);
        return (name, value);
    }

    /// <summary>A member with no grant and an unscoped API key.</summary>
    public static async Task<(string Name, HttpClient Client)> MemberAsync(this KeywayFixture fixture)
    {
        var name = KeywayFixture.Unique("m");
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/users", new { name, role = "member" }), 201);
        var key = await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/keys", new { name = "test", owner = name }), 201);
        return (name, fixture.Keyway.CreateClient((string)key["token"]!));
    }

    /// <summary>A member an admin gave the build right: they may create resources, and attach nothing.</summary>
    public static async Task<(string Name, HttpClient Client)> BuilderAsync(this KeywayFixture fixture)
    {
        var (name, client) = await fixture.MemberAsync();
        await Expect.StatusAsync(await fixture.Admin.PostAsJsonAsync("/api/v1/rights", new { right = "build", user = name }), 201);
        return (name, client);
    }

    /// <summary>A REST resource definition.</summary>
    public static JsonObject Resource(string baseUrl, JsonObject? headers, JsonObject? auth)
    {
        var definition = new JsonObject { ["kind"] = "rest", ["baseUrl"] = baseUrl };
        if (headers is not null)
        {
            definition["headers"] = headers;
        }

        if (auth is not null)
        {
            definition["auth"] = auth;
        }

        return definition;
    }

    /// <summary>Bearer auth with the value of a variable.</summary>
    public static JsonObject Bearer(string variable) => new() { ["type"] = "bearer", ["token"] = $"{{{{ environment.variables.{variable} }}}}" };
}

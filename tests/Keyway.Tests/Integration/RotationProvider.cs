using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Keyway.Tests.Integration;

/// <summary>
/// A provider whose keys Keyway rotates, on a real upstream: <c>POST /provider/keys</c> mints a
/// numbered key (<c>{"key", "id"}</c>), <c>GET /base/verify</c> answers 200 only to the newest key,
/// <c>DELETE /provider/keys/{id}</c> revokes (204, then 404: already gone). Verify and revoke can be
/// held open until the test lets them answer, so a test can kill Keyway while one is at the provider.
/// Everything else under <c>/base</c> is the upstream's echo.
/// </summary>
internal sealed class RotationProvider
{
    private readonly ConcurrentDictionary<string, int> _revoked = new(StringComparer.Ordinal);
    private int _minted;
    private TaskCompletionSource _verifyGate = Open();
    private TaskCompletionSource _revokeGate = Open();

    /// <summary>Every minted key starts with it: a value no surface may ever show.</summary>
    public string Canary { get; } = "canary" + Guid.NewGuid().ToString("N");

    public string Key(int n) => $"{Canary}-{n}";

    public int Minted => Volatile.Read(ref _minted);

    /// <summary>Verify answers 401 whatever it is sent.</summary>
    public bool FailVerify { get; set; }

    /// <summary>How many DELETEs of each key id reached the provider (a held one counts when it arrives).</summary>
    public int RevokesOf(string id) => _revoked.GetValueOrDefault(id);

    public void HoldVerify() => _verifyGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void ReleaseVerify() => _verifyGate.TrySetResult();

    public void HoldRevoke() => _revokeGate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    public void ReleaseRevoke() => _revokeGate.TrySetResult();

    public void Map(WebApplication app)
    {
        app.MapPost("/provider/keys", () =>
        {
            var n = Interlocked.Increment(ref _minted);
            return Results.Json(new { key = Key(n), id = $"key_{n}" });
        });
        app.MapGet("/base/verify", async (HttpContext context) =>
        {
            await _verifyGate.Task.WaitAsync(context.RequestAborted);
            var newest = "Bearer " + Key(Minted);
            return !FailVerify && context.Request.Headers.Authorization == newest ? Results.Ok(new { ok = true }) : Results.Json(new { error = "bad key" }, statusCode: 401);
        });
        app.MapDelete("/provider/keys/{id}", async (string id, HttpContext context) =>
        {
            var count = _revoked.AddOrUpdate(id, 1, (_, c) => c + 1);
            await _revokeGate.Task.WaitAsync(context.RequestAborted);
            return count == 1 ? Results.NoContent() : Results.NotFound();
        });
    }

    /// <summary>
    /// The admin resource (mint, revoke), the API resource that reads <paramref name="variable"/>, and the rotation flow, whose
    /// revoke names the key by <c>rotation.revoke.id</c> (<paramref name="revokePath"/>): the replaced key after a commit, the
    /// minted one after a roll-back.
    /// </summary>
    public static async Task DefineAsync(
        HttpClient admin, UpstreamServer upstream, string variable, string initial, string revokeAfter = "0s", int? keepVersions = null,
        string revokePath = "/keys/{{ rotation.revoke.id }}")
    {
        var suffix = variable.ToLowerInvariant().Replace('_', '-');
        await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{variable}",
            new { value = initial, secret = true, origins = new[] { upstream.BaseUrl }, keepVersions }), 200);
        await Expect.SuccessAsync(await admin.PutAsJsonAsync($"/api/v1/resources/admin-{suffix}", new { kind = "rest", baseUrl = upstream.BaseUrl + "/provider" }));
        await Expect.SuccessAsync(await admin.PutAsJsonAsync($"/api/v1/resources/api-{suffix}", new JsonObject
        {
            ["kind"] = "rest",
            ["baseUrl"] = upstream.BaseUrl + "/base",
            ["auth"] = new JsonObject { ["type"] = "bearer", ["token"] = $"{{{{ environment.variables.{variable} }}}}" },
        }));
        await Expect.StatusAsync(await admin.PutAsJsonAsync($"/api/v1/environments/production/variables/{variable}/rotation", new JsonObject
        {
            ["mint"] = new JsonArray(new JsonObject
            {
                ["name"] = "create",
                ["resource"] = $"admin-{suffix}",
                ["method"] = "POST",
                ["path"] = "/keys",
                ["body"] = "{\"label\": \"{{ rotation.variable }}\"}",
            }),
            ["value"] = "{{ create.body.key }}",
            ["id"] = "{{ create.body.id }}",
            ["verify"] = new JsonObject { ["resource"] = $"api-{suffix}", ["path"] = "/verify" },
            ["revoke"] = new JsonObject { ["resource"] = $"admin-{suffix}", ["method"] = "DELETE", ["path"] = revokePath },
            ["revokeAfter"] = revokeAfter,
        }), 200);
    }

    public static string ApiResource(string variable) => "api-" + variable.ToLowerInvariant().Replace('_', '-');

    public static string AdminResource(string variable) => "admin-" + variable.ToLowerInvariant().Replace('_', '-');

    private static TaskCompletionSource Open()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        gate.SetResult();
        return gate;
    }
}

using Keyway.Api;
using Keyway.Audit;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Access;

internal static class KeyEndpoints
{
    internal sealed record CreateKeyRequest(string? Name, DateTimeOffset? ExpiresAt);

    /// <summary>A new key: the only response that ever carries its token.</summary>
    internal sealed record CreatedKey(ApiKeyInfo Key, string Token);

    public static RouteGroupBuilder MapKeys(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/keys").WithTags("API keys");

        group.MapGet("/", async (HttpContext http, ApiKeyService keys, CancellationToken ct) =>
                TypedResults.Ok(new { keys = await keys.ListAsync(null, ct) }))
            .Requires(Permission.Admin)
            .WithSummary("List API keys (never their tokens).");

        group.MapPost("/", async Task<Results<Created<CreatedKey>, ProblemHttpResult>> (
                CreateKeyRequest? body, HttpContext http, ApiKeyService keys, TimeProvider time, IAuditLog audit, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                if (string.IsNullOrWhiteSpace(body?.Name))
                {
                    return Problems.BadRequest("Name the key: {\"name\": \"billing-app\"}.");
                }

                if (body.ExpiresAt is { } expires && expires <= time.GetUtcNow())
                {
                    return Problems.BadRequest("expiresAt is in the past.");
                }

                var (key, token) = await keys.CreateAsync(caller.UserId, body.Name.Trim(), body.ExpiresAt, null, ct);
                await audit.RecordAsync(new AuditEntry("key.create")
                {
                    Actor = caller,
                    Target = key.Id,
                    Detail = new Dictionary<string, object?> { ["name"] = key.Name, ["expiresAt"] = body.ExpiresAt },
                }, CancellationToken.None);
                return TypedResults.Created($"/api/v1/keys/{key.Id}", new CreatedKey(key, token));
            })
            .Requires(Permission.Admin)
            .WithSummary("Create an API key. Its token is in this response and nowhere else, ever.");

        group.MapDelete("/{id}", async Task<Results<NoContent, ProblemHttpResult>> (string id, ApiKeyService keys, HttpContext http, IAuditLog audit, CancellationToken ct) =>
            {
                if (!await keys.RevokeAsync(id, ct))
                {
                    return Problems.NotFound($"There is no active API key '{id}'.");
                }

                await audit.RecordAsync(new AuditEntry("key.revoke") { Actor = Caller.From(http.User), Target = id }, CancellationToken.None);
                return TypedResults.NoContent();
            })
            .Requires(Permission.Admin)
            .WithSummary("Revoke an API key.");

        return api;
    }
}

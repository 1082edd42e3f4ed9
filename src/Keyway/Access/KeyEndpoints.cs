using System.Globalization;
using Keyway.Api;
using Keyway.Audit;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Access;

/// <summary>
/// <c>/api/v1/keys</c>: API keys for apps and scripts. Admins create keys for anyone (a user or a
/// service identity); members only for themselves. A key's scope only narrows what its owner may do,
/// so a member's key is never wider than the member.
/// </summary>
/// <remarks>
/// Every admin decision here goes through <see cref="AccessPolicy"/>, never the owner's role alone, so
/// an admin's scoped key is held to its scope: it sees and revokes only its owner's keys, unless its
/// scope is admin over everything. Managing the owner's keys (creating, revoking another) needs a key
/// whose scope covers the account (<see cref="AccessPolicy.ScopeCoversAccount"/>); any key may list its
/// owner's keys and revoke itself.
/// </remarks>
internal static class KeyEndpoints
{
    internal sealed record ScopeRequest(IReadOnlyList<string>? Resources, IReadOnlyList<string>? Environments, IReadOnlyList<string>? Actions);

    internal sealed record CreateKeyRequest(string? Name, string? Owner, string? ExpiresIn, DateTimeOffset? ExpiresAt, ScopeRequest? Scopes);

    /// <summary>A new key: the only response that ever carries its token.</summary>
    internal sealed record CreatedKey(ApiKeyInfo Key, string Token);

    public static RouteGroupBuilder MapKeys(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/keys").WithTags("API keys");

        group.MapGet("/", async (HttpContext http, ApiKeyService keys, AccessPolicy access, CancellationToken ct) =>
            {
                // Members see their own keys; admins see everyone's, unless the admin's key is scoped short of admin.
                var caller = Caller.From(http.User)!;
                var everyone = access.Allows(caller, Permission.Admin, null, null);
                return TypedResults.Ok(new KeyList(await keys.ListAsync(everyone ? null : caller.UserId, ct)));
            })
            .Requires(Permission.Read)
            .WithSummary("List API keys (never their tokens): owner, scopes, last use, expiry, revocation. Members see their own.");

        group.MapPost("/", async Task<Results<Created<CreatedKey>, ProblemHttpResult>> (
                CreateKeyRequest? body, HttpContext http, ApiKeyService keys, UserStore users, AccessPolicy access, IAuditLog audit, TimeProvider time, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                // A key it created could be wider than itself.
                AccessPolicy.DemandAccount(caller, "create keys");

                if (string.IsNullOrWhiteSpace(body?.Name))
                {
                    return Problems.BadRequest("Name the key: {\"name\": \"billing-app\"}.");
                }

                var owner = body.Owner is null || body.Owner == caller.UserName ? null : await users.FindByNameAsync(body.Owner, ct);
                if (body.Owner is not null && body.Owner != caller.UserName)
                {
                    if (!access.Allows(caller, Permission.Admin, null, null))
                    {
                        return Problems.Forbidden($"'{caller.UserName}' may create keys only for themselves; only admins create keys for other users or service identities.");
                    }

                    if (owner is null)
                    {
                        return Problems.NotFound($"There is no user or service identity named '{body.Owner}'. Create one with 'keyway user create {body.Owner} --service'.");
                    }

                    if (owner.DisabledAt is not null)
                    {
                        return Problems.Create(StatusCodes.Status409Conflict, "conflict", $"'{owner.Name}' is disabled; enable them before creating keys for them.");
                    }
                }

                var now = time.GetUtcNow();
                var expiresAt = body.ExpiresAt;
                if (body.ExpiresIn is not null)
                {
                    if (expiresAt is not null)
                    {
                        return Problems.BadRequest("Send expiresIn or expiresAt, not both.");
                    }

                    expiresAt = now + ParseDuration(body.ExpiresIn);
                }

                if (expiresAt is { } expires && expires <= now)
                {
                    return Problems.BadRequest("expiresAt is in the past.");
                }

                var scope = CheckScope(body.Scopes);
                var (key, token) = await keys.CreateAsync(owner?.Id ?? caller.UserId, body.Name.Trim(), expiresAt, null, scope, ct,
                    (transaction, created) => audit.StageAsync(transaction, new AuditEntry("key.create")
                    {
                        Actor = caller,
                        Target = created.Id,
                        Detail = new Dictionary<string, object?>
                        {
                            ["name"] = created.Name,
                            ["owner"] = created.Owner,
                            ["expiresAt"] = created.ExpiresAt,
                            ["resources"] = scope?.Resources,
                            ["environments"] = scope?.Environments,
                            ["actions"] = scope?.Actions,
                        },
                    }, ct));
                audit.NotifyStaged();
                return TypedResults.Created($"/api/v1/keys/{key.Id}", new CreatedKey(key, token));
            })
            .Requires(Permission.Read)
            .WithSummary("Create an API key: {name, owner?, expiresIn? ('30d', '12h'), expiresAt?, scopes?: {resources, environments, actions}}. Its token is in this response and nowhere else, ever.");

        group.MapDelete("/{id}", async Task<Results<NoContent, ProblemHttpResult>> (
                string id, HttpContext http, ApiKeyService keys, AccessPolicy access, IAuditLog audit, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                var key = await keys.GetAsync(id, ct);
                var mine = key is not null && key.UserId == caller.UserId;
                if (key is null || key.RevokedAt is not null || (!mine && !access.Allows(caller with { Scope = null }, Permission.Admin, null, null)))
                {
                    // Another member's key is reported as absent: its existence is not theirs to learn.
                    return Problems.NotFound($"There is no active API key '{id}' of yours. List them with 'keyway key list'.");
                }

                if (!mine)
                {
                    // The owner is an admin: the key's scope decides, and says so.
                    access.Demand(caller, Permission.Admin, null, null);
                }
                else if (key.Id != caller.ApiKeyId)
                {
                    // Any key may revoke itself (a leaked key ends its own life); revoking its siblings is account management.
                    AccessPolicy.DemandAccount(caller, "revoke its owner's other keys");
                }

                if (!await keys.RevokeAsync(id, ct, transaction => audit.StageAsync(transaction, new AuditEntry("key.revoke")
                {
                    Actor = caller,
                    Target = id,
                    Detail = new Dictionary<string, object?> { ["name"] = key.Name, ["owner"] = key.Owner },
                }, ct)))
                {
                    return Problems.NotFound($"There is no active API key '{id}'.");
                }

                audit.NotifyStaged();
                return TypedResults.NoContent();
            })
            .Requires(Permission.Read)
            .WithSummary("Revoke an API key (members: their own; admins: any). A scoped key may revoke itself, and no other key unless its scope is admin over everything.");

        return api;
    }

    /// <summary><c>90m</c>, <c>12h</c>, <c>30d</c>, <c>2w</c>.</summary>
    internal static TimeSpan ParseDuration(string text)
    {
        var value = text.Trim();
        if (value.Length >= 2 && long.TryParse(value.AsSpan(0, value.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is > 0 and <= 3650 * 24 * 60)
        {
            TimeSpan? span = char.ToLowerInvariant(value[^1]) switch
            {
                'm' => TimeSpan.FromMinutes(n),
                'h' => TimeSpan.FromHours(n),
                'd' => TimeSpan.FromDays(n),
                'w' => TimeSpan.FromDays(7 * n),
                _ => null,
            };
            if (span is { } s && s <= TimeSpan.FromDays(3650))
            {
                return s;
            }
        }

        throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request", $"expiresIn '{text}' is not a duration such as 90m, 12h, 30d or 2w (at most 10 years).");
    }

    private static KeyScope? CheckScope(ScopeRequest? request)
    {
        if (request is null || (request.Resources is null && request.Environments is null && request.Actions is null))
        {
            return null;
        }

        static IReadOnlyList<string>? Clean(IReadOnlyList<string>? list, string what)
        {
            if (list is null)
            {
                return null;
            }

            var cleaned = list.Where(x => !string.IsNullOrWhiteSpace(x)).Select(x => x.Trim()).Distinct(StringComparer.Ordinal).ToArray();
            return cleaned.Length > 0
                ? cleaned
                : throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request", $"scopes.{what} is empty; leave it out for no limit.");
        }

        var actions = Clean(request.Actions?.Select(a => a.Trim().ToLowerInvariant()).ToArray(), "actions");
        if (actions?.FirstOrDefault(a => AccessPolicy.ParseAction(a) is null && a != AccessPolicy.ConfigRead) is { } bad)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request",
                $"'{bad}' is not an action: choose read, use, edit, own, admin or {AccessPolicy.ConfigRead}.");
        }

        if (actions?.Contains(AccessPolicy.ConfigRead) == true && (request.Resources is not null || request.Environments is not null))
        {
            // The export is the whole configuration: a key limited to some resources or environments could not read it.
            throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request",
                $"'{AccessPolicy.ConfigRead}' reads the whole configuration: leave out resources and environments for such a key.");
        }

        return new KeyScope(Clean(request.Resources, "resources"), Clean(request.Environments, "environments"), actions);
    }
}

/// <summary>The body of <c>GET /api/v1/keys</c>.</summary>
internal sealed record KeyList(IReadOnlyList<ApiKeyInfo> Keys);

using System.Security.Cryptography;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Storage;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Identity;

namespace Keyway.Access;

/// <summary>A user as the admin API shows it: never a password or its hash.</summary>
internal sealed record UserView(
    string Id, string Name, string? Email, string? DisplayName, string Role, string Source, bool Disabled,
    DateTimeOffset? DisabledAt, DateTimeOffset CreatedAt, DateTimeOffset? UpdatedAt, IReadOnlyList<string> Groups)
{
    public static UserView From(UserRecord user, IReadOnlyList<string> groups) => new(
        user.Id, user.Name, user.Email, user.DisplayName, user.Role, user.Source, user.DisabledAt is not null,
        Time.From(user.DisabledAt), Time.From(user.CreatedAt), Time.From(user.UpdatedAt), groups);
}

/// <summary><c>/api/v1/users</c> and <c>/api/v1/groups</c>: admins manage people, service identities and groups.</summary>
internal static class UserEndpoints
{
    internal sealed record CreateUserRequest(string? Name, string? Role, string? Source, string? Email, string? DisplayName, string? Password);

    /// <summary>A new user; <see cref="Password"/> is set only when Keyway generated it, and shown only here.</summary>
    internal sealed record CreatedUser(UserView User, string? Password);

    internal sealed record UpdateUserRequest(string? Role, string? Email, string? DisplayName, bool? Disabled, string? Password);

    internal sealed record PutGroupRequest(string? Description);

    public static RouteGroupBuilder MapUsers(this RouteGroupBuilder api)
    {
        var users = api.MapGroup("/users").WithTags("Users");

        users.MapGet("/", async (UserStore store, CancellationToken ct) =>
            {
                var list = new List<UserView>();
                foreach (var user in await store.ListAsync(ct))
                {
                    list.Add(UserView.From(user, await store.GroupsOfAsync(user.Id, ct)));
                }

                return TypedResults.Ok(new UserList(list));
            })
            .Requires(Permission.Admin)
            .WithSummary("List users and service identities.");

        users.MapPost("/", async Task<Results<Created<CreatedUser>, ProblemHttpResult>> (
                CreateUserRequest? body, HttpContext http, UserStore store, IAuditLog audit, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                if (Names.CheckName("user", body?.Name) is { } nameError)
                {
                    return Problems.BadRequest(nameError);
                }

                var role = CheckRole(body!.Role ?? Caller.MemberRole);
                var source = body.Source?.Trim().ToLowerInvariant() ?? UserSources.Local;
                if (source is not (UserSources.Local or UserSources.Service))
                {
                    return Problems.BadRequest($"source '{body.Source}' cannot be created here: choose local (signs in with a password) or service (owns API keys, never signs in). Single sign-on users are created at their first sign-in.");
                }

                string? generated = null;
                string? hash = null;
                if (source == UserSources.Service)
                {
                    if (body.Password is not null)
                    {
                        return Problems.BadRequest("A service identity has no password; it acts through API keys ('keyway key create --owner NAME').");
                    }
                }
                else
                {
                    if (body.Password is { Length: < 12 })
                    {
                        return Problems.BadRequest("The password is shorter than 12 characters.");
                    }

                    generated = body.Password is null ? ApiKeyService.Base64Url(RandomNumberGenerator.GetBytes(18)) : null;
                    hash = new PasswordHasher<string>().HashPassword(body.Name!, body.Password ?? generated!);
                }

                var user = await store.CreateAsync(new NewUser(body.Name!, role, source) { Email = body.Email, DisplayName = body.DisplayName, PasswordHash = hash }, ct,
                    transaction => audit.StageAsync(transaction, new AuditEntry("user.create")
                    {
                        Actor = caller,
                        Target = body.Name,
                        Detail = new Dictionary<string, object?> { ["role"] = role, ["source"] = source },
                    }, ct));
                audit.NotifyStaged();
                return TypedResults.Created($"/api/v1/users/{user.Name}", new CreatedUser(UserView.From(user, []), generated));
            })
            .Requires(Permission.Admin)
            .WithSummary("Create a local user (password given, or generated and shown once in this response) or a service identity (source 'service': no password, owns API keys).");

        users.MapGet("/{name}", async Task<Results<Ok<UserView>, ProblemHttpResult>> (string name, UserStore store, CancellationToken ct) =>
                await store.FindByNameAsync(name, ct) is { } user
                    ? TypedResults.Ok(UserView.From(user, await store.GroupsOfAsync(user.Id, ct)))
                    : Problems.NotFound($"There is no user named '{name}'. List them with 'keyway user list'."))
            .Requires(Permission.Admin)
            .WithSummary("Get a user.");

        users.MapPatch("/{name}", async Task<Results<Ok<UserView>, ProblemHttpResult>> (
                string name, UpdateUserRequest? body, HttpContext http, UserStore store, IAuditLog audit, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                if (await store.FindByNameAsync(name, ct) is not { } user)
                {
                    return Problems.NotFound($"There is no user named '{name}'. List them with 'keyway user list'.");
                }

                if (body is null)
                {
                    return Problems.BadRequest("Send what changes: {\"role\": \"admin\"}, {\"disabled\": true}, {\"email\": \"…\"}, {\"displayName\": \"…\"} or {\"password\": \"…\"}.");
                }

                string? hash = null;
                if (body.Password is not null)
                {
                    if (user.Source != UserSources.Local)
                    {
                        return Problems.BadRequest($"'{name}' is a {user.Source} user; only local users have a password.");
                    }

                    if (body.Password.Length < 12)
                    {
                        return Problems.BadRequest("The password is shorter than 12 characters.");
                    }

                    hash = new PasswordHasher<string>().HashPassword(name, body.Password);
                }

                var action = body.Disabled switch { true => "user.disable", false => "user.enable", null => "user.update" };
                var updated = await store.UpdateAsync(user, new UserStore.UserUpdate
                {
                    Role = body.Role is null ? null : CheckRole(body.Role),
                    Email = body.Email,
                    DisplayName = body.DisplayName,
                    Disabled = body.Disabled,
                    PasswordHash = hash,
                }, ct, transaction => audit.StageAsync(transaction, new AuditEntry(action)
                {
                    Actor = caller,
                    Target = name,
                    Detail = new Dictionary<string, object?>
                    {
                        ["role"] = body.Role,
                        ["email"] = body.Email is null ? null : "changed",
                        ["displayName"] = body.DisplayName is null ? null : "changed",
                        ["password"] = hash is null ? null : "changed",
                    },
                }, ct));
                audit.NotifyStaged();
                return TypedResults.Ok(UserView.From(updated, await store.GroupsOfAsync(updated.Id, ct)));
            })
            .Requires(Permission.Admin)
            .WithSummary("Change a user's role, email, display name or password, or disable/enable them. Disabling ends their sessions and stops their API keys. The last admin cannot be demoted or disabled (409 last_admin).");

        users.MapDelete("/{name}", async Task<Results<NoContent, ProblemHttpResult>> (
                string name, HttpContext http, UserStore store, AccessPolicy access, IAuditLog audit, CancellationToken ct) =>
            {
                if (await store.FindByNameAsync(name, ct) is not { } user ||
                    !await store.DeleteAsync(user, ct, transaction => audit.StageAsync(transaction, new AuditEntry("user.delete") { Actor = Caller.From(http.User), Target = name }, ct)))
                {
                    return Problems.NotFound($"There is no user named '{name}'. List them with 'keyway user list'.");
                }

                audit.NotifyStaged();
                await access.ReloadAsync(ct);
                return TypedResults.NoContent();
            })
            .Requires(Permission.Admin)
            .WithSummary("Delete a user with their API keys, memberships and grants. The last admin cannot be deleted (409 last_admin).");

        var groups = api.MapGroup("/groups").WithTags("Groups");

        groups.MapGet("/", async (UserStore store, CancellationToken ct) => TypedResults.Ok(new GroupList(await store.ListGroupsAsync(ct))))
            .Requires(Permission.Admin)
            .WithSummary("List groups and their members.");

        groups.MapPut("/{name}", async Task<Results<Ok<UserStore.GroupInfo>, Created<UserStore.GroupInfo>, ProblemHttpResult>> (
                string name, PutGroupRequest? body, HttpContext http, UserStore store, IAuditLog audit, CancellationToken ct) =>
            {
                if (Names.CheckName("group", name) is { } error)
                {
                    return Problems.BadRequest(error);
                }

                var created = await store.PutGroupAsync(name, body?.Description, ct, (transaction, isNew) => audit.StageAsync(transaction,
                    new AuditEntry(isNew ? "group.create" : "group.update") { Actor = Caller.From(http.User), Target = name }, ct));
                audit.NotifyStaged();
                var group = (await store.GetGroupAsync(name, ct))!;
                return created ? TypedResults.Created($"/api/v1/groups/{name}", group) : TypedResults.Ok(group);
            })
            .Requires(Permission.Admin)
            .WithSummary("Create a group (or change its description).");

        groups.MapGet("/{name}", async Task<Results<Ok<UserStore.GroupInfo>, ProblemHttpResult>> (string name, UserStore store, CancellationToken ct) =>
                await store.GetGroupAsync(name, ct) is { } group ? TypedResults.Ok(group) : Problems.NotFound($"There is no group named '{name}'. List them with 'keyway group list'."))
            .Requires(Permission.Admin)
            .WithSummary("Get a group and its members.");

        groups.MapDelete("/{name}", async Task<Results<NoContent, ProblemHttpResult>> (
                string name, HttpContext http, UserStore store, AccessPolicy access, IAuditLog audit, CancellationToken ct) =>
            {
                if (!await store.DeleteGroupAsync(name, ct, transaction => audit.StageAsync(transaction,
                        new AuditEntry("group.delete") { Actor = Caller.From(http.User), Target = name }, ct)))
                {
                    return Problems.NotFound($"There is no group named '{name}'. List them with 'keyway group list'.");
                }

                audit.NotifyStaged();
                await access.ReloadAsync(ct);
                return TypedResults.NoContent();
            })
            .Requires(Permission.Admin)
            .WithSummary("Delete a group, its memberships and the grants given to it.");

        groups.MapPut("/{name}/members/{user}", async Task<Results<NoContent, ProblemHttpResult>> (
                string name, string user, HttpContext http, UserStore store, IAuditLog audit, CancellationToken ct) =>
            {
                if (await store.GetGroupAsync(name, ct) is null)
                {
                    return Problems.NotFound($"There is no group named '{name}'. Create it with 'keyway group create {name}'.");
                }

                if (await store.FindByNameAsync(user, ct) is not { } member)
                {
                    return Problems.NotFound($"There is no user named '{user}'. List them with 'keyway user list'.");
                }

                await store.AddMemberAsync(name, member.Id, ct, transaction => audit.StageAsync(transaction, new AuditEntry("group.member.add")
                {
                    Actor = Caller.From(http.User),
                    Target = name,
                    Detail = new Dictionary<string, object?> { ["user"] = user },
                }, ct));
                audit.NotifyStaged();
                return TypedResults.NoContent();
            })
            .Requires(Permission.Admin)
            .WithSummary("Add a user to a group.");

        groups.MapDelete("/{name}/members/{user}", async Task<Results<NoContent, ProblemHttpResult>> (
                string name, string user, HttpContext http, UserStore store, IAuditLog audit, CancellationToken ct) =>
            {
                if (await store.FindByNameAsync(user, ct) is not { } member || !await store.RemoveMemberAsync(name, member.Id, ct, transaction => audit.StageAsync(transaction,
                        new AuditEntry("group.member.remove")
                        {
                            Actor = Caller.From(http.User),
                            Target = name,
                            Detail = new Dictionary<string, object?> { ["user"] = user },
                        }, ct)))
                {
                    return Problems.NotFound($"'{user}' is not a member of group '{name}'.");
                }

                audit.NotifyStaged();
                return TypedResults.NoContent();
            })
            .Requires(Permission.Admin)
            .WithSummary("Remove a user from a group.");

        return api;
    }

    private static string CheckRole(string role) => role.Trim().ToLowerInvariant() switch
    {
        Caller.AdminRole => Caller.AdminRole,
        Caller.MemberRole => Caller.MemberRole,
        _ => throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request", $"'{role}' is not a role: choose admin or member."),
    };
}

/// <summary>The body of <c>GET /api/v1/users</c>.</summary>
internal sealed record UserList(List<UserView> Users);

/// <summary>The body of <c>GET /api/v1/groups</c>.</summary>
internal sealed record GroupList(IReadOnlyList<UserStore.GroupInfo> Groups);

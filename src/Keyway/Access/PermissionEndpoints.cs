using Keyway.Api;
using Keyway.Audit;
using Keyway.Environments;
using Keyway.Resources;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Access;

/// <summary>
/// <c>/api/v1/resources/{name}/permissions</c>: who may use, edit or own a resource. Owners and
/// admins manage them; <c>*</c> as the resource name manages grants on every resource.
/// </summary>
internal static class PermissionEndpoints
{
    internal sealed record GrantRequest(string? User, string? Group, string? Permission, string? Environment, bool Everyone = false);

    public static RouteGroupBuilder MapPermissions(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/resources/{name}/permissions").WithTags("Permissions");

        group.MapGet("/", async Task<Results<Ok<PermissionList>, ProblemHttpResult>> (
                string name, ResourceService resources, GrantStore grants, CancellationToken ct) =>
            {
                if (name != GrantStore.Any && await resources.GetAsync(name, ct) is null)
                {
                    return Problems.NotFound($"There is no resource named '{name}'.");
                }

                return TypedResults.Ok(new PermissionList(name, await grants.ListForResourceAsync(name, ct)));
            })
            .Requires(Permission.Own, "name", EnvironmentSource.None)
            .WithSummary("List the grants on a resource, including grants on every resource ('*').");

        group.MapPost("/", async Task<Results<Created<GrantInfo>, Ok<GrantInfo>, ProblemHttpResult>> (
                string name, GrantRequest? body, HttpContext http, ResourceService resources, VariableService environments, UserStore users,
                GrantStore grants, AccessPolicy access, IAuditLog audit, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                if (name != GrantStore.Any && await resources.GetAsync(name, ct) is null)
                {
                    return Problems.NotFound($"There is no resource named '{name}'.");
                }

                if (body is null || !Principals.NamesOne(body.User, body.Group, body.Everyone))
                {
                    return Problems.BadRequest("Name exactly one principal: {\"user\": \"alice\", \"permission\": \"use\"}, {\"group\": \"ops\", \"permission\": \"use\", \"environment\": \"staging\"} " +
                        "or {\"everyone\": true, \"permission\": \"use\", \"environment\": \"staging\"}.");
                }

                var permission = GrantStore.CheckPermission(body.Permission);
                var environment = string.IsNullOrWhiteSpace(body.Environment) ? GrantStore.Any : body.Environment.Trim();
                if (environment != GrantStore.Any && await environments.GetEnvironmentAsync(environment, ct) is null)
                {
                    return Problems.NotFound($"There is no environment named '{environment}' ('*' means every environment).");
                }

                if (await Principals.ResolveAsync(body.User, body.Group, body.Everyone, users, ct) is not var (kind, principal, shown))
                {
                    return Problems.NotFound(Principals.NotFoundMessage(body.User, body.Group));
                }

                var (grant, created) = await grants.AddAsync(name, kind, principal, permission, environment, caller.UserId, ct, (transaction, added) => audit.StageAsync(transaction,
                    new AuditEntry("grant.add")
                    {
                        Actor = caller,
                        Resource = name,
                        Environment = environment,
                        Target = shown,
                        Detail = new Dictionary<string, object?> { ["grant"] = added.Id, ["principalKind"] = kind, ["permission"] = permission },
                    }, ct));
                if (!created)
                {
                    return TypedResults.Ok(grant);
                }

                audit.NotifyStaged();
                await grants.PublishAsync(access, name);
                return TypedResults.Created($"/api/v1/resources/{name}/permissions/{grant.Id}", grant);
            })
            .Requires(Permission.Own, "name", EnvironmentSource.None)
            .WithSummary("Grant use, edit or own on the resource to a user, a group or everyone, in one environment or every one ('*'). Granting what exists already answers 200 with it.");

        group.MapDelete("/{grantId}", async Task<Results<NoContent, ProblemHttpResult>> (
                string name, string grantId, HttpContext http, GrantStore grants, AccessPolicy access, IAuditLog audit, CancellationToken ct) =>
            {
                if (await grants.GetAsync(grantId, ct) is not { } grant || grant.Resource != name || !await grants.RemoveAsync(grantId, ct, transaction => audit.StageAsync(transaction,
                        new AuditEntry("grant.remove")
                        {
                            Actor = Caller.From(http.User),
                            Resource = name,
                            Environment = grant.Environment,
                            Target = grant.PrincipalName,
                            Detail = new Dictionary<string, object?> { ["grant"] = grant.Id, ["principalKind"] = grant.PrincipalKind, ["permission"] = grant.Permission },
                        }, ct)))
                {
                    return Problems.NotFound($"There is no grant '{grantId}' on resource '{name}'. List them with 'keyway permission list {name}'.");
                }

                audit.NotifyStaged();
                await grants.PublishAsync(access, name);
                return TypedResults.NoContent();
            })
            .Requires(Permission.Own, "name", EnvironmentSource.None)
            .WithSummary("Revoke a grant. It takes effect at once, on every replica.");

        return api;
    }

    internal sealed record PermissionList(string Resource, IReadOnlyList<GrantInfo> Grants);
}

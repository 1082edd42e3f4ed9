using Keyway.Api;

namespace Keyway.Access;

/// <summary>What a caller wants to do.</summary>
internal enum Permission
{
    /// <summary>See a resource's configuration (never its secrets).</summary>
    Read,

    /// <summary>Run queries and proxy requests through a resource.</summary>
    Use,

    /// <summary>Change a resource's configuration.</summary>
    Edit,

    /// <summary>Edit, delete and grant permissions on a resource.</summary>
    Own,

    /// <summary>Manage environments, variables, users and keys.</summary>
    Admin,
}

/// <summary>
/// The one place that decides whether a caller may do something. Every endpoint, the proxy and
/// the CLI (through the API) reach it, either through <see cref="AccessFilter"/> (route-level) or by
/// calling <see cref="Demand"/> once the environment is known (runs and the proxy).
/// </summary>
internal sealed class AccessPolicy
{
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1822", Justification = "Reads grants from the store once permissions land.")]
    public bool Allows(Caller caller, Permission permission, string? resource, string? environment)
    {
        // Admins may do everything. Members' grants per resource and environment arrive with the
        // permissions feature; until then a member may only read.
        _ = resource;
        _ = environment;
        return caller.IsAdmin || permission == Permission.Read;
    }

    /// <summary>Throws a 403 problem when the caller may not do it.</summary>
    public void Demand(Caller caller, Permission permission, string? resource, string? environment)
    {
        if (!Allows(caller, permission, resource, environment))
        {
            var on = resource is null ? "" : $" on resource '{resource}'";
            var inEnv = environment is null ? "" : $" in environment '{environment}'";
            throw new KeywayException(StatusCodes.Status403Forbidden, "forbidden",
                $"'{caller.UserName}' lacks the '{permission.ToString().ToLowerInvariant()}' permission{on}{inEnv}. Ask an owner of the resource or an admin to grant it.");
        }
    }
}

/// <summary>Endpoint metadata: the permission an endpoint needs, and which route value names the resource.</summary>
internal sealed record AccessRequirement(Permission Permission, string? ResourceRouteValue);

/// <summary>Endpoint metadata: open to callers who are not signed in (sign-in itself, and nothing else).</summary>
internal sealed record AnonymousAccess;

/// <summary>Enforces <see cref="AccessRequirement"/> on every endpoint of a route group.</summary>
internal sealed class AccessFilter(AccessPolicy policy) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var http = context.HttpContext;
        if (http.GetEndpoint()?.Metadata.GetMetadata<AnonymousAccess>() is not null)
        {
            return await next(context);
        }

        var caller = Caller.From(http.User);
        if (caller is null)
        {
            return Problems.Unauthorized("Send an API key as 'Authorization: Bearer <key>' (create one with 'keyway key create').");
        }

        var requirement = http.GetEndpoint()?.Metadata.GetMetadata<AccessRequirement>()
            ?? throw new InvalidOperationException($"Endpoint {http.GetEndpoint()?.DisplayName} declares no access requirement.");
        var resource = requirement.ResourceRouteValue is { } key ? http.Request.RouteValues[key] as string : null;
        var environment = http.Request.Query["environment"].FirstOrDefault();
        policy.Demand(caller, requirement.Permission, resource, environment);
        return await next(context);
    }
}

internal static class AccessEndpointExtensions
{
    /// <summary>Declares the permission an endpoint needs. An endpoint without one fails closed.</summary>
    public static TBuilder Requires<TBuilder>(this TBuilder builder, Permission permission, string? resourceRouteValue = null)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new AccessRequirement(permission, resourceRouteValue));

    /// <summary>Declares an endpoint open to anonymous callers. Only sign-in uses it.</summary>
    public static TBuilder Anonymous<TBuilder>(this TBuilder builder)
        where TBuilder : IEndpointConventionBuilder =>
        builder.WithMetadata(new AnonymousAccess());
}

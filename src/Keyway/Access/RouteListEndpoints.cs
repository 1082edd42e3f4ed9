using Microsoft.AspNetCore.Authorization;

namespace Keyway.Access;

/// <summary>
/// <c>GET /api/v1/operator/routes</c>: every route the running server serves, read from its own
/// <see cref="EndpointDataSource"/>, with the access requirement each declares. Admins use it to
/// review what is exposed; the route × role matrix test uses it so a new route cannot go untested.
/// </summary>
internal static class RouteListEndpoints
{
    internal sealed record RouteInfo(
        string Pattern, IReadOnlyList<string> Methods, string? Permission, string? ResourceRouteValue, string? Environment,
        bool CreatesResource, bool Anonymous);

    public static RouteGroupBuilder MapRouteList(this RouteGroupBuilder api)
    {
        api.MapGet("/operator/routes", (EndpointDataSource endpoints) =>
            {
                var routes = endpoints.Endpoints.OfType<RouteEndpoint>()
                    .Select(e =>
                    {
                        var requirement = e.Metadata.GetMetadata<AccessRequirement>();
                        return new RouteInfo(
                            "/" + (e.RoutePattern.RawText ?? "").TrimStart('/'),
                            e.Metadata.GetMetadata<HttpMethodMetadata>()?.HttpMethods.Order(StringComparer.Ordinal).ToArray() ?? [],
                            requirement?.Permission.ToString().ToLowerInvariant(),
                            requirement?.ResourceRouteValue,
                            requirement?.Environment.ToString().ToLowerInvariant(),
                            requirement?.CreatesResource ?? false,
                            requirement is null || e.Metadata.GetMetadata<IAllowAnonymous>() is not null);
                    })
                    .OrderBy(r => r.Pattern, StringComparer.Ordinal).ThenBy(r => string.Join(',', r.Methods), StringComparer.Ordinal)
                    .ToList();
                return TypedResults.Ok(new RouteList(routes));
            })
            .Requires(Permission.Admin)
            .WithTags("Operator")
            .WithSummary("Every route this server serves, with the permission each requires (from the app's own endpoint data source).");
        return api;
    }
}

/// <summary>The body of <c>GET /api/v1/operator/routes</c>.</summary>
internal sealed record RouteList(List<RouteListEndpoints.RouteInfo> Routes);

using Keyway.Access;
using Keyway.Api;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Config;

/// <summary>The body of <c>GET /api/v1/config/export</c>: every object as a canonical document, in apply order.</summary>
internal sealed record ConfigExportView(string Schema, IReadOnlyList<System.Text.Json.Nodes.JsonObject> Documents);

/// <summary>
/// Configuration as code: <c>GET /api/v1/config/export</c> (the canonical form <c>keyway export</c>,
/// <c>plan</c> and <c>apply</c> work from) and <c>GET /schema/v1.json</c>, the JSON Schema of the files.
/// </summary>
internal static class ConfigEndpoints
{
    /// <summary>Where the schema is served; <c>keyway export</c> names it in each file's first line.</summary>
    public const string SchemaPath = "/schema/v1.json";

    public static RouteGroupBuilder MapConfig(this RouteGroupBuilder api)
    {
        // Admins only: the export holds every environment's variables, groups and webhooks, which only admins read.
        api.MapGet("/config/export", async (string[]? env, ConfigExport export, CancellationToken ct) =>
                TypedResults.Ok(new ConfigExportView(SchemaPath, (await export.ExportAsync(env, ct)).Select(d => d.ToJson()).ToList())))
            .Requires(Permission.Admin)
            .WithTags("Configuration")
            .WithSummary("The whole configuration as canonical documents (kind, name, environment, spec), in apply order. Never a secret value. ?env= limits environments and variables.");
        return api;
    }

    public static IEndpointRouteBuilder MapConfigSchema(this IEndpointRouteBuilder app)
    {
        // Anonymous: editors fetch it to complete and check files; it describes shapes, never data.
        app.MapGet(SchemaPath, () => TypedResults.Text(ConfigSchema.Text, "application/schema+json"))
            .WithTags("Configuration")
            .WithSummary("The JSON Schema of configuration files (keyway export, plan, apply).");
        return app;
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Schema;
using Keyway.Resources;

namespace Keyway.Config;

/// <summary>
/// The JSON Schema of configuration files, generated from the types the server reads them into, so
/// it cannot drift from what the server accepts: one document is <c>kind</c>, <c>name</c>,
/// <c>environment</c> (variables) and <c>spec</c>, whose schema depends on the kind. The repository
/// keeps a copy (<c>schema/keyway.schema.json</c>, checked equal by a test); the server serves it at
/// <see cref="ConfigEndpoints.SchemaPath"/>.
/// </summary>
internal static class ConfigSchema
{
    private static readonly Lazy<string> s_text = new(() => Build().ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");

    public static string Text => s_text.Value;

    public static JsonObject Build()
    {
        var options = new JsonSerializerOptions(ConfigJson.Options) { TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver() };
        var exporter = new JsonSchemaExporterOptions { TreatNullObliviousAsNonNullable = true, TransformSchemaNode = Written };
        JsonNode SpecOf(Type type) => JsonSchemaExporter.GetJsonSchemaAsNode(options, type, exporter);

        var specs = new (string Kind, Type Type)[]
        {
            (ConfigKinds.Environment, typeof(EnvironmentSpec)),
            (ConfigKinds.Variable, typeof(VariableSpec)),
            (ConfigKinds.Resource, typeof(ResourceDefinition)),
            (ConfigKinds.Query, typeof(Queries.QueryDefinition)),
            (ConfigKinds.Group, typeof(GroupSpec)),
            (ConfigKinds.Grants, typeof(GrantsSpec)),
            (ConfigKinds.Schedule, typeof(Schedules.ScheduleDefinition)),
            (ConfigKinds.Webhook, typeof(WebhookSpec)),
        };

        var definitions = new JsonObject();
        var branches = new JsonArray();
        foreach (var (kind, type) in specs)
        {
            definitions[kind] = Rebase(SpecOf(type), $"#/$defs/{kind}");
            branches.Add(new JsonObject
            {
                ["if"] = new JsonObject { ["properties"] = new JsonObject { ["kind"] = new JsonObject { ["const"] = kind } } },
                ["then"] = new JsonObject { ["properties"] = new JsonObject { ["spec"] = new JsonObject { ["$ref"] = $"#/$defs/{kind}" } } },
            });
        }

        return new JsonObject
        {
            ["$schema"] = "https://json-schema.org/draft/2020-12/schema",
            ["title"] = "Keyway configuration document",
            ["description"] = "One object of Keyway's configuration (keyway export, plan, apply; docs/config-as-code.md). " +
                              "A file holds one document or several, separated by ---.",
            ["type"] = "object",
            ["required"] = new JsonArray("kind", "name"),
            ["additionalProperties"] = false,
            ["properties"] = new JsonObject
            {
                ["kind"] = new JsonObject { ["enum"] = new JsonArray(ConfigKinds.Order.Select(k => (JsonNode?)k).ToArray()) },
                ["name"] = new JsonObject { ["type"] = "string", ["minLength"] = 1 },
                ["environment"] = new JsonObject { ["type"] = "string", ["description"] = "Variables only: the environment the variable belongs to." },
                ["spec"] = new JsonObject { ["type"] = "object", ["description"] = "The object's fields, as its kind defines them; left out when every field has its default." },
            },
            ["allOf"] = branches,
            ["$defs"] = definitions,
        };
    }

    /// <summary>The schema of a type read by a converter of its own, which the exporter cannot see into: as it is written.</summary>
    private static JsonNode Written(JsonSchemaExporterContext context, JsonNode schema) =>
        context.TypeInfo.Type == typeof(DPoPDefinition)
            ? new JsonObject
            {
                ["oneOf"] = new JsonArray(
                    new JsonObject { ["type"] = new JsonArray("boolean", "null") },
                    new JsonObject
                    {
                        ["type"] = "object",
                        ["properties"] = new JsonObject
                        {
                            ["algorithm"] = new JsonObject { ["enum"] = new JsonArray(Credentials.DPoPKey.Algorithms.Select(a => (JsonNode?)a).ToArray()) },
                        },
                        ["additionalProperties"] = false,
                    }),
            }
            : schema;

    /// <summary>The exporter points a repeated type at its first place from the type's own root ("#/properties/…"): under $defs, from there.</summary>
    private static JsonNode Rebase(JsonNode node, string root)
    {
        switch (node)
        {
            case JsonObject obj:
                if (obj["$ref"] is JsonValue reference && reference.GetValue<string>() is { } target && target.StartsWith('#'))
                {
                    obj["$ref"] = root + target[1..];
                }

                foreach (var (_, child) in obj.ToList())
                {
                    if (child is not null)
                    {
                        Rebase(child, root);
                    }
                }

                break;
            case JsonArray array:
                foreach (var child in array)
                {
                    if (child is not null)
                    {
                        Rebase(child, root);
                    }
                }

                break;
        }

        return node;
    }
}

using System.Text.Json;
using System.Text.Json.Nodes;
using Keyway.Api;
using Keyway.Resources;

namespace Keyway.Config;

/// <summary>
/// The kinds of configuration documents, in the order they are applied (a kind may name objects of
/// the kinds before it: a variable its environment, a query its resource, grants a group), and the
/// folder <c>keyway export -o DIR</c> writes each kind to.
/// </summary>
internal static class ConfigKinds
{
    public const string Environment = "Environment";
    public const string Variable = "Variable";
    public const string Resource = "Resource";
    public const string Query = "Query";
    public const string Group = "Group";
    public const string Grants = "Grants";
    public const string Schedule = "Schedule";
    public const string Webhook = "Webhook";

    /// <summary>Dependency order: applied first to last, deleted last to first.</summary>
    public static readonly string[] Order = [Environment, Variable, Resource, Query, Group, Grants, Schedule, Webhook];

    public static int Rank(string kind) => Array.IndexOf(Order, kind);

    public static string? Parse(string? kind) =>
        Order.FirstOrDefault(k => string.Equals(k, kind, StringComparison.OrdinalIgnoreCase)) ??
        Order.FirstOrDefault(k => string.Equals(Folder(k), kind, StringComparison.OrdinalIgnoreCase));

    /// <summary>The folder of a kind under <c>export -o DIR</c>, and its plural on the command line.</summary>
    public static string Folder(string kind) => kind switch
    {
        Query => "queries",
        Grants => "grants",
        _ => kind.ToLowerInvariant() + "s",
    };
}

/// <summary>
/// One object's canonical document, the one shape every kind shares:
/// <c>kind</c>, <c>name</c>, <c>environment</c> (variables only) and <c>spec</c> (the object's fields,
/// defaults left out; no <c>spec</c> when every field is a default). The export writes it, <c>plan</c>
/// compares files with it, and <c>apply</c> sends each spec to the object's own endpoint.
/// </summary>
internal sealed record ConfigObject(string Kind, string Name, string? Environment, JsonObject Spec)
{
    /// <summary>What identifies the object: kind, environment and name.</summary>
    public string Key => Environment is null ? $"{Kind}/{Name}" : $"{Kind}/{Environment}/{Name}";

    /// <summary>"resource 'github'", "variable 'TOKEN' (staging)": how messages name it.</summary>
    public string Title => Environment is null ? $"{Kind.ToLowerInvariant()} '{Name}'" : $"{Kind.ToLowerInvariant()} '{Name}' ({Environment})";

    public JsonObject ToJson()
    {
        var json = new JsonObject { ["kind"] = Kind, ["name"] = Name };
        if (Environment is not null)
        {
            json["environment"] = Environment;
        }

        if (Spec.Count > 0)
        {
            json["spec"] = Spec.DeepClone();
        }

        return json;
    }

    /// <summary>Documents in the order they are applied: by kind in dependency order, then environment, then name.</summary>
    public static IEnumerable<ConfigObject> Sorted(IEnumerable<ConfigObject> documents) => documents
        .OrderBy(d => ConfigKinds.Rank(d.Kind)).ThenBy(d => d.Environment ?? "", StringComparer.Ordinal).ThenBy(d => d.Name, StringComparer.Ordinal);
}

/// <summary>
/// Canonical specs: an object's fields read as the API reads them (<see cref="ConfigJson.Options"/>:
/// an unknown field is an error naming it and what was probably meant), then written back with
/// nulls and default values left out and sets sorted, so the same configuration is always written
/// the same way whichever way it was written. The export and the CLI's plan both go through here.
/// </summary>
internal static class ConfigSpecs
{
    public static JsonObject Resource(ResourceDefinition definition) => Spec(definition, new ResourceDefinition());

    public static JsonObject Query(Queries.QueryDefinition definition) => Spec(definition, new Queries.QueryDefinition());

    public static JsonObject Schedule(Schedules.ScheduleDefinition definition) => Spec(definition, new Schedules.ScheduleDefinition());

    /// <summary>The spec of <paramref name="kind"/> in canonical form; a spec Keyway cannot read is a 400 <c>invalid_config</c> naming the field.</summary>
    public static JsonObject Canonical(string kind, JsonObject spec) => kind switch
    {
        ConfigKinds.Environment => Environment(Read<EnvironmentSpec>(spec, "environment")),
        ConfigKinds.Variable => Variable(Read<VariableSpec>(spec, "variable")),
        ConfigKinds.Resource => Resource(Read<ResourceDefinition>(spec, "resource")),
        ConfigKinds.Query => Query(Read<Queries.QueryDefinition>(spec, "query")),
        ConfigKinds.Group => Group(Read<GroupSpec>(spec, "group")),
        ConfigKinds.Grants => Grants(Read<GrantsSpec>(spec, "grants")),
        ConfigKinds.Schedule => Schedule(Read<Schedules.ScheduleDefinition>(spec, "schedule")),
        ConfigKinds.Webhook => Webhook(Read<WebhookSpec>(spec, "webhook")),
        _ => throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
            $"Unknown kind '{kind}': the kinds are {string.Join(", ", ConfigKinds.Order)}."),
    };

    public static T Read<T>(JsonNode spec, string what)
    {
        try
        {
            return spec.Deserialize<T>(ConfigJson.Options) ?? throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config", $"The {what} is empty.");
        }
        catch (JsonException e)
        {
            throw ConfigJsonErrors.Invalid(e, what);
        }
    }

    private static JsonObject Environment(EnvironmentSpec spec) =>
        Spec(spec with { Description = spec.Description is { Length: > 0 } d ? d : null }, new EnvironmentSpec());

    private static JsonObject Variable(VariableSpec spec) => Spec(spec with
    {
        Secret = spec.Secret == true ? true : null,
        Origins = Sorted(spec.Origins),
        ExpiredPolicy = spec.ExpiredPolicy == Environments.ExpiredPolicy.Warn ? null : spec.ExpiredPolicy,
        RotateEvery = spec.RotateEvery is { Length: > 0 } every ? every : null,
    }, new VariableSpec());

    private static JsonObject Group(GroupSpec spec) => Spec(spec with
    {
        Description = spec.Description is { Length: > 0 } d ? d : null,
        Members = Sorted(spec.Members),
    }, new GroupSpec());

    private static JsonObject Grants(GrantsSpec spec) => Spec(spec with
    {
        Grants = (spec.Grants ?? [])
            .Select(g => g with
            {
                Everyone = g.Everyone == true ? true : null,
                Environment = g.Environment is null or "" or Access.GrantStore.Any ? null : g.Environment,
            })
            .OrderBy(GrantOrder, StringComparer.Ordinal)
            .ToList(),
    }, new GrantsSpec());

    /// <summary>Grants sort by principal kind (everyone, group, user), principal, permission, environment.</summary>
    private static string GrantOrder(GrantSpec g) =>
        $"{(g.Everyone == true ? "everyone" : g.Group is not null ? "group" : "user")}\u0000{g.Group ?? g.User}\u0000{g.Permission}\u0000{g.Environment}";

    private static JsonObject Webhook(WebhookSpec spec) => Spec(spec with
    {
        Events = Sorted(spec.Events),
        Enabled = spec.Enabled == false ? false : null,
        Description = spec.Description is { Length: > 0 } d ? d : null,
    }, new WebhookSpec());

    private static List<string>? Sorted(List<string>? list) => list is { Count: > 0 } ? list.Distinct().Order(StringComparer.Ordinal).ToList() : null;

    private static JsonObject Spec<T>(T value, T defaults)
    {
        var json = JsonSerializer.SerializeToNode(value, ConfigJson.Options) as JsonObject ?? [];
        var plain = JsonSerializer.SerializeToNode(defaults, ConfigJson.Options) as JsonObject ?? [];
        foreach (var (key, node) in plain)
        {
            if (json[key] is { } field && JsonNode.DeepEquals(field, node))
            {
                json.Remove(key);
            }
        }

        return (JsonObject)ConfigTree.WithoutNulls(json)!;
    }
}

/// <summary>JSON trees compared and cleaned the same way on the server and in the CLI.</summary>
internal static class ConfigTree
{
    /// <summary>A copy without null-valued fields, at every depth.</summary>
    public static JsonNode? WithoutNulls(JsonNode? node) => node switch
    {
        JsonObject obj => new JsonObject(obj.Where(kv => kv.Value is not null && kv.Value.GetValueKind() != JsonValueKind.Null)
            .Select(kv => new KeyValuePair<string, JsonNode?>(kv.Key, WithoutNulls(kv.Value)))),
        JsonArray array => new JsonArray(array.Select(WithoutNulls).ToArray()),
        null => null,
        _ => JsonNode.Parse(node.ToJsonString()),
    };

    /// <summary>Whether two values are the same configuration: field order aside, 5 and 5.0 alike.</summary>
    public static bool Same(JsonNode? a, JsonNode? b) => (a, b) switch
    {
        (null, null) => true,
        (JsonObject x, JsonObject y) => x.Count == y.Count && x.All(kv => y.TryGetPropertyValue(kv.Key, out var other) && Same(kv.Value, other)),
        (JsonArray x, JsonArray y) => x.Count == y.Count && x.Zip(y).All(p => Same(p.First, p.Second)),
        (JsonValue x, JsonValue y) when x.GetValueKind() == JsonValueKind.Number && y.GetValueKind() == JsonValueKind.Number =>
            decimal.TryParse(x.ToJsonString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var m) &&
            decimal.TryParse(y.ToJsonString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var n) ? m == n : x.ToJsonString() == y.ToJsonString(),
        (JsonValue x, JsonValue y) => x.ToJsonString() == y.ToJsonString(),
        _ => false,
    };
}

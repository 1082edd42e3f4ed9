using System.Text.Json;
using System.Text.Json.Nodes;
using Keyway.Access;
using Keyway.Alerts;
using Keyway.Environments;
using Keyway.Queries;
using Keyway.Resources;
using Keyway.Schedules;

namespace Keyway.Config;

/// <summary>
/// The whole configuration as canonical documents (<see cref="ConfigObject"/>), for
/// <c>GET /api/v1/config/export</c>: what <c>keyway export</c> writes and <c>keyway plan</c> compares
/// files with. Never a secret value: a secret variable is its metadata (binding, policies, expiry,
/// rotation flow); a webhook never carries its signing secret.
/// </summary>
internal sealed class ConfigExport(
    VariableService variables, ResourceService resources, QueryService queries, UserStore users, GrantStore grants,
    ScheduleStore schedules, WebhookStore webhooks)
{
    /// <summary>Every object, sorted; <paramref name="environments"/> (when given) limits environments and variables to those.</summary>
    public async Task<IReadOnlyList<ConfigObject>> ExportAsync(IReadOnlyCollection<string>? environments, CancellationToken ct)
    {
        var documents = new List<ConfigObject>();
        foreach (var environment in await variables.ListEnvironmentsAsync(ct))
        {
            if (environments is { Count: > 0 } && !environments.Contains(environment.Name))
            {
                continue;
            }

            var spec = new JsonObject();
            if (!string.IsNullOrEmpty(environment.Description))
            {
                spec["description"] = environment.Description;
            }

            documents.Add(new ConfigObject(ConfigKinds.Environment, environment.Name, null, spec));
            foreach (var variable in await variables.ListAsync(environment.Name, ct))
            {
                documents.Add(new ConfigObject(ConfigKinds.Variable, variable.Name, environment.Name, await VariableAsync(variable, ct)));
            }
        }

        foreach (var resource in await resources.ListAsync(ct))
        {
            documents.Add(new ConfigObject(ConfigKinds.Resource, resource.Name, null, ConfigSpecs.Resource(resource.Definition)));
        }

        foreach (var query in await queries.ListAsync(null, ct))
        {
            documents.Add(new ConfigObject(ConfigKinds.Query, query.Name, null, ConfigSpecs.Query(query.Definition)));
        }

        foreach (var group in await users.ListGroupsAsync(ct))
        {
            documents.Add(new ConfigObject(ConfigKinds.Group, group.Name, null, Group(group)));
        }

        foreach (var (resource, list) in (await grants.ListAllAsync(ct)).GroupBy(g => g.Resource, StringComparer.Ordinal).Select(g => (g.Key, g.ToList())))
        {
            documents.Add(new ConfigObject(ConfigKinds.Grants, resource, null, Grants(list)));
        }

        foreach (var schedule in await schedules.ListAsync(ct))
        {
            documents.Add(new ConfigObject(ConfigKinds.Schedule, schedule.Name, null, ConfigSpecs.Schedule(schedule.Compiled.Definition)));
        }

        foreach (var webhook in await webhooks.ListAsync(ct))
        {
            documents.Add(new ConfigObject(ConfigKinds.Webhook, webhook.Name, null, Webhook(webhook)));
        }

        // Each spec read back as a file's would be: the export and a plan of the same files agree by construction.
        return ConfigObject.Sorted(documents.Select(d => d with { Spec = ConfigSpecs.Canonical(d.Kind, d.Spec) })).ToList();
    }

    /// <summary>
    /// A plain variable: its value. A secret: <c>secret: true</c> and its metadata, never its value;
    /// <c>expiresAt</c> only when it was given (one a JWT states comes back with the value).
    /// </summary>
    private async Task<JsonObject> VariableAsync(VariableInfo variable, CancellationToken ct)
    {
        var spec = new JsonObject();
        if (variable.Secret)
        {
            spec["secret"] = true;
            if (variable.Origins is { Count: > 0 } origins)
            {
                spec["origins"] = new JsonArray(origins.Order(StringComparer.Ordinal).Select(o => (JsonNode?)o).ToArray());
            }

            if (variable.ExpiresAt is { } expires && variable.ExpiresFrom == "set")
            {
                spec["expiresAt"] = JsonSerializer.SerializeToNode(expires);
            }
        }
        else
        {
            spec["value"] = variable.Value;
        }

        if (variable.RotateEvery is { } every)
        {
            spec["rotateEvery"] = every;
        }

        if (variable.ExpiredPolicy != ExpiredPolicy.Warn)
        {
            spec["expiredPolicy"] = variable.ExpiredPolicy;
        }

        if (variable.KeepVersions != variables.DefaultKeepVersions)
        {
            spec["keepVersions"] = variable.KeepVersions;
        }

        if (variable.Secret && await variables.GetRotationAsync(variable.Environment, variable.Name, ct) is { Rotation: { } rotation })
        {
            spec["rotation"] = ConfigTree.WithoutNulls(JsonNode.Parse(rotation));
        }

        return spec;
    }

    private static JsonObject Group(UserStore.GroupInfo group)
    {
        var spec = new JsonObject();
        if (!string.IsNullOrEmpty(group.Description))
        {
            spec["description"] = group.Description;
        }

        // Members single sign-on maps (source 'oidc') are the identity provider's to manage, not the files'.
        var members = group.Members.Where(m => m.Source == "manual").Select(m => m.User).Order(StringComparer.Ordinal).ToList();
        if (members.Count > 0)
        {
            spec["members"] = new JsonArray(members.Select(m => (JsonNode?)m).ToArray());
        }

        return spec;
    }

    /// <summary>A resource's grants (or those on every resource, <c>*</c>), each <c>{user|group|everyone, permission, environment}</c>, sorted.</summary>
    private static JsonObject Grants(IEnumerable<GrantInfo> list)
    {
        var items = list
            .Select(g => (Grant: g, Order: $"{g.PrincipalKind}\u0000{g.PrincipalName}\u0000{g.Permission}\u0000{g.Environment}"))
            .OrderBy(g => g.Order, StringComparer.Ordinal)
            .Select(g => (JsonNode?)Grant(g.Grant))
            .ToArray();
        return new JsonObject { ["grants"] = new JsonArray(items) };
    }

    public static JsonObject Grant(GrantInfo grant)
    {
        var item = new JsonObject();
        switch (grant.PrincipalKind)
        {
            case PrincipalKinds.Everyone:
                item["everyone"] = true;
                break;
            case PrincipalKinds.Group:
                item["group"] = grant.PrincipalName;
                break;
            default:
                item["user"] = grant.PrincipalName;
                break;
        }

        item["permission"] = grant.Permission;
        if (grant.Environment != GrantStore.Any)
        {
            item["environment"] = grant.Environment;
        }

        return item;
    }

    private static JsonObject Webhook(WebhookInfo webhook)
    {
        var spec = new JsonObject { ["url"] = webhook.Url };
        if (webhook.Events is { Count: > 0 } events)
        {
            spec["events"] = new JsonArray(events.Order(StringComparer.Ordinal).Select(e => (JsonNode?)e).ToArray());
        }

        if (!webhook.Enabled)
        {
            spec["enabled"] = false;
        }

        if (!string.IsNullOrEmpty(webhook.Description))
        {
            spec["description"] = webhook.Description;
        }

        return spec;
    }
}

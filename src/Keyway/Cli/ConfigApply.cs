using System.Text.Json.Nodes;
using Keyway.Config;

namespace Keyway.Cli;

/// <summary>
/// Sends one change to the server through the object's own endpoints, so every check the API makes
/// (permissions, validation, who may attach which secret) applies as it does to a single command.
/// Each object is one request, or a few for groups, grants and secrets (metadata, then rotation flow).
/// Never sends a secret value: a secret the server lacks is reported with the command that sets it.
/// </summary>
internal sealed class ConfigApply(KeywayClient client)
{
    /// <summary>Applies <paramref name="change"/>; the answer is what to tell the person (null: nothing more than "done").</summary>
    public async Task<string?> ApplyAsync(ConfigChange change, CancellationToken ct)
    {
        var o = change.Object;
        var name = Uri.EscapeDataString(o.Name);
        switch (o.Kind, change.Action)
        {
            case (ConfigKinds.Grants, _):
                // Deleting the object is revoking every grant it holds.
                await GrantsAsync(change.Action == ChangeAction.Delete ? o with { Spec = [] } : o, ct);
                return null;
            case (_, ChangeAction.Delete):
                await client.DeleteAsync(DeletePath(o), ct);
                return null;
            case (ConfigKinds.Environment, _):
                // "" and not null: the server keeps a description it is not sent, and the files say there is none.
                await client.PutAsync($"api/v1/environments/{name}", new JsonObject { ["description"] = o.Spec["description"]?.DeepClone() ?? "" }, ct);
                return null;
            case (ConfigKinds.Variable, _):
                return await VariableAsync(change, ct);
            case (ConfigKinds.Resource, _):
                await client.PutAsync($"api/v1/resources/{name}", o.Spec.DeepClone(), ct);
                return null;
            case (ConfigKinds.Query, _):
                await client.PutAsync($"api/v1/queries/{name}", o.Spec.DeepClone(), ct);
                return null;
            case (ConfigKinds.Group, _):
                await GroupAsync(change, ct);
                return null;
            case (ConfigKinds.Schedule, _):
                await client.PutAsync($"api/v1/schedules/{name}", o.Spec.DeepClone(), ct);
                return null;
            case (ConfigKinds.Webhook, ChangeAction.Create):
                var body = (JsonObject)o.Spec.DeepClone();
                body["name"] = o.Name;
                // The answer holds the signing secret, shown once: it is not printed (a CI log is no place for it).
                await client.PostAsync("api/v1/webhooks", body, ct);
                return $"its signing secret was not printed: give the receiver a new one with: keyway webhook rotate-secret {o.Name}";
            case (ConfigKinds.Webhook, _):
                await client.SendAsync(HttpMethod.Patch, $"api/v1/webhooks/{name}", new JsonObject
                {
                    ["url"] = o.Spec["url"]?.DeepClone(),
                    ["events"] = o.Spec["events"]?.DeepClone() ?? new JsonArray("*"),
                    ["enabled"] = o.Spec["enabled"]?.DeepClone() ?? true,
                    ["description"] = o.Spec["description"]?.DeepClone() ?? "",
                }, ct);
                return null;
            default:
                throw new CliException(ExitCodes.Invalid, $"Unknown kind '{o.Kind}'.");
        }
    }

    private static string DeletePath(ConfigObject o)
    {
        var name = Uri.EscapeDataString(o.Name);
        return o.Kind switch
        {
            ConfigKinds.Environment => $"api/v1/environments/{name}",
            ConfigKinds.Variable => $"api/v1/environments/{Uri.EscapeDataString(o.Environment!)}/variables/{name}",
            ConfigKinds.Resource => $"api/v1/resources/{name}",
            ConfigKinds.Query => $"api/v1/queries/{name}",
            ConfigKinds.Group => $"api/v1/groups/{name}",
            ConfigKinds.Schedule => $"api/v1/schedules/{name}",
            ConfigKinds.Webhook => $"api/v1/webhooks/{name}",
            _ => throw new CliException(ExitCodes.Invalid, $"Unknown kind '{o.Kind}'."),
        };
    }

    /// <summary>
    /// A plain variable: its value (a new version). A secret the server holds: its metadata without a
    /// new version, then its rotation flow. A secret it lacks (or holds as plain): the command to set it.
    /// </summary>
    private async Task<string?> VariableAsync(ConfigChange change, CancellationToken ct)
    {
        var (o, spec) = (change.Object, change.Object.Spec);
        var path = $"api/v1/environments/{Uri.EscapeDataString(o.Environment!)}/variables/{Uri.EscapeDataString(o.Name)}";
        var policy = new JsonObject
        {
            ["keepVersions"] = spec["keepVersions"]?.DeepClone() ?? 0,
            ["rotateEvery"] = spec["rotateEvery"]?.DeepClone() ?? "",
            ["expiredPolicy"] = spec["expiredPolicy"]?.DeepClone() ?? Environments.ExpiredPolicy.Warn,
        };
        if (spec["secret"] is null)
        {
            var body = (JsonObject)policy.DeepClone();
            body["value"] = spec["value"]?.DeepClone();
            body["secret"] = false;
            await client.PutAsync(path, body, ct);
            return null;
        }

        if (change.Current is not { } current || current.Spec["secret"] is null)
        {
            return $"value missing — set it with: {ConfigPlan.SetCommand(o)}";
        }

        var metadata = (JsonObject)policy.DeepClone();
        metadata["origins"] = spec["origins"]?.DeepClone() ?? new JsonArray();
        await client.SendAsync(HttpMethod.Patch, path, metadata, ct);
        if (!ConfigTree.Same(current.Spec["rotation"], spec["rotation"]))
        {
            if (spec["rotation"] is { } rotation)
            {
                await client.PutAsync(path + "/rotation", rotation.DeepClone(), ct);
            }
            else
            {
                await client.DeleteAsync(path + "/rotation", ct);
            }
        }

        return ConfigTree.Same(current.Spec["expiresAt"], spec["expiresAt"])
            ? null
            : $"its expiry comes with its value; set both with: {ConfigPlan.SetCommand(o)}";
    }

    /// <summary>A group's description, then its members: added first, removed after.</summary>
    private async Task GroupAsync(ConfigChange change, CancellationToken ct)
    {
        var o = change.Object;
        var name = Uri.EscapeDataString(o.Name);
        await client.PutAsync($"api/v1/groups/{name}", new JsonObject { ["description"] = o.Spec["description"]?.DeepClone() ?? "" }, ct);
        var wanted = Names(o.Spec["members"]);
        var held = Names(change.Current?.Spec["members"]);
        foreach (var user in wanted.Except(held))
        {
            await client.PutAsync($"api/v1/groups/{name}/members/{Uri.EscapeDataString(user)}", null, ct);
        }

        foreach (var user in held.Except(wanted))
        {
            await client.DeleteAsync($"api/v1/groups/{name}/members/{Uri.EscapeDataString(user)}", ct);
        }
    }

    /// <summary>The grants on a resource made the files' set: the missing ones added first, then the others revoked (by id, read fresh).</summary>
    private async Task GrantsAsync(ConfigObject o, CancellationToken ct)
    {
        var path = $"api/v1/resources/{Uri.EscapeDataString(o.Name)}/permissions";
        var listed = await client.GetAsync(path, ct);
        var held = (listed?["grants"] as JsonArray ?? [])
            .Where(g => g?["resource"]?.GetValue<string>() == o.Name)
            .Select(g => (Id: g!["id"]!.GetValue<string>(), Key: Key(ConfigExport.Grant(ToInfo(g)))))
            .ToList();
        var wanted = (o.Spec["grants"] as JsonArray ?? []).OfType<JsonObject>().ToList();
        foreach (var grant in wanted.Where(w => held.All(h => h.Key != Key(w))))
        {
            await client.PostAsync(path, grant.DeepClone(), ct);
        }

        foreach (var (id, _) in held.Where(h => wanted.All(w => Key(w) != h.Key)))
        {
            await client.DeleteAsync($"{path}/{Uri.EscapeDataString(id)}", ct);
        }
    }

    private static Access.GrantInfo ToInfo(JsonNode g) => new(
        g["id"]!.GetValue<string>(), g["resource"]!.GetValue<string>(), g["principalKind"]!.GetValue<string>(), g["principal"]!.GetValue<string>(),
        g["principalName"]!.GetValue<string>(), g["permission"]!.GetValue<string>(), g["environment"]!.GetValue<string>(), default, null);

    private static string Key(JsonObject grant) =>
        $"{grant["user"]}|{grant["group"]}|{grant["everyone"]}|{grant["permission"]}|{grant["environment"]}";

    private static HashSet<string> Names(JsonNode? list) =>
        (list as JsonArray ?? []).Select(n => n!.GetValue<string>()).ToHashSet(StringComparer.Ordinal);
}

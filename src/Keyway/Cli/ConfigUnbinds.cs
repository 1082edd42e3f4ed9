using System.Text.Json.Nodes;
using Keyway.Config;
using Keyway.Resources;

namespace Keyway.Cli;

/// <summary>
/// Which updates unbind a secret, the changes <c>keyway plan</c> marks destructive next to deletes and
/// <c>keyway apply</c> makes only with <c>--yes</c> when no one is at a terminal: a resource that stops
/// reading a secret (its attached set shrinks), a secret whose origin binding loses an origin or is
/// removed, and a secret made plain. Such a change can break what works today (requests that need the
/// secret, or its origin) or widen where a secret may go, so it is a person's call, as a delete is.
/// </summary>
internal static class ConfigUnbinds
{
    /// <summary>What <paramref name="after"/> unbinds that <paramref name="before"/> held, in words; empty when nothing.</summary>
    public static IReadOnlyList<string> Of(ConfigObject before, ConfigObject after, IReadOnlySet<string> secrets) => after.Kind switch
    {
        ConfigKinds.Variable => Variable(before.Spec, after.Spec),
        ConfigKinds.Resource => Resource(before, after, secrets),
        _ => [],
    };

    /// <summary>The names of the variables that are secret in some environment, on the server or in the files.</summary>
    public static IReadOnlySet<string> Secrets(IEnumerable<ConfigObject> objects) => objects
        .Where(o => o.Kind == ConfigKinds.Variable && o.Spec["secret"] is not null)
        .Select(o => o.Name)
        .ToHashSet(StringComparer.Ordinal);

    private static List<string> Variable(JsonObject before, JsonObject after)
    {
        var reasons = new List<string>();
        if (before["secret"] is null)
        {
            return reasons;
        }

        if (after["secret"] is null)
        {
            reasons.Add("makes the secret a plain variable (its value and origin binding are replaced)");
            return reasons;
        }

        var held = Strings(before["origins"]);
        var wanted = Strings(after["origins"]);
        var removed = held.Where(o => !wanted.Contains(o)).ToList();
        if (removed.Count == 0)
        {
            return reasons;
        }

        reasons.Add(wanted.Count == 0
            ? $"removes the secret's origin binding ({string.Join(", ", held)}): it may then be sent to any origin"
            : $"narrows the secret's origin binding: it may no longer be sent to {string.Join(", ", removed)}");
        return reasons;
    }

    private static List<string> Resource(ConfigObject before, ConfigObject after, IReadOnlySet<string> secrets)
    {
        var (held, heldAll) = Reads(before);
        var (wanted, wantedAll) = Reads(after);
        var reasons = new List<string>();
        if (heldAll && !wantedAll)
        {
            reasons.Add("no longer reads environment.variables as a whole (every secret it could read is unbound)");
        }

        reasons.AddRange(held.Where(v => secrets.Contains(v) && !wanted.Contains(v) && !wantedAll).Order(StringComparer.Ordinal)
            .Select(v => $"unbinds the secret '{v}': the resource no longer sends it"));
        return reasons;
    }

    /// <summary>The variables a resource's definition reads (its attached set, as the server computes it when it is saved).</summary>
    private static (IReadOnlySet<string> Names, bool All) Reads(ConfigObject resource)
    {
        try
        {
            var compiled = ResourceCompiler.Compile(resource.Name, 0, ConfigSpecs.Read<ResourceDefinition>(resource.Spec, "resource"));
            return (compiled.Variables, compiled.ReadsAllVariables);
        }
        catch (Api.KeywayException)
        {
            // A definition that does not compile is reported by the apply itself; it attaches nothing.
            return (new HashSet<string>(), false);
        }
    }

    private static List<string> Strings(JsonNode? list) =>
        (list as JsonArray ?? []).Select(n => n!.GetValue<string>()).ToList();
}

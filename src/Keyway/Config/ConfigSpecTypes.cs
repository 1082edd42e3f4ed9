using System.Text.Json.Nodes;
using Keyway.Rotations;

namespace Keyway.Config;

// The specs of the kinds that have no definition type of their own elsewhere. They are read with
// ConfigJson.Options, so a field Keyway does not know is an error that names it and what was meant,
// and the JSON Schema is generated from them (ConfigSchema).

/// <summary>One document of a configuration file, before its spec is read as its kind's.</summary>
internal sealed record ConfigFileDocument
{
    /// <summary>Environment, Variable, Resource, Query, Group, Grants, Schedule or Webhook.</summary>
    public string? Kind { get; init; }

    /// <summary>The object's name (for Grants: the resource's, or <c>*</c> for grants on every resource).</summary>
    public string? Name { get; init; }

    /// <summary>Variables only: the environment the variable belongs to.</summary>
    public string? Environment { get; init; }

    /// <summary>The object's fields; left out when every field has its default.</summary>
    public JsonObject? Spec { get; init; }
}

/// <summary>An environment's fields.</summary>
internal sealed record EnvironmentSpec
{
    public string? Description { get; init; }
}

/// <summary>
/// A variable's fields. A plain variable has its <c>value</c>; a secret (<c>secret: true</c>) never has
/// one in a file: its value is set with <c>keyway var set NAME --env ENV --secret</c>.
/// </summary>
internal sealed record VariableSpec
{
    public string? Value { get; init; }

    public bool? Secret { get; init; }

    /// <summary>A secret: the origins its value may be sent to.</summary>
    public List<string>? Origins { get; init; }

    /// <summary>A secret: when its current value expires (given with the value).</summary>
    public DateTimeOffset? ExpiresAt { get; init; }

    /// <summary>How often to rotate it: <c>90d</c>, <c>12h</c>, <c>P90D</c>.</summary>
    public string? RotateEvery { get; init; }

    /// <summary><c>warn</c> (default) or <c>block</c>: what happens past its expiry.</summary>
    public string? ExpiredPolicy { get; init; }

    /// <summary>Versions to keep, the current one included (else the server's default).</summary>
    public int? KeepVersions { get; init; }

    /// <summary>A secret: its rotation flow (docs/operations.md, "Rotation flows").</summary>
    public RotationDefinition? Rotation { get; init; }
}

/// <summary>A group's fields.</summary>
internal sealed record GroupSpec
{
    public string? Description { get; init; }

    /// <summary>The users added to it by hand (single sign-on maps the others).</summary>
    public List<string>? Members { get; init; }
}

/// <summary>The grants on one resource (or on every resource, <c>*</c>): the whole set.</summary>
internal sealed record GrantsSpec
{
    public List<GrantSpec>? Grants { get; init; }
}

/// <summary>One grant: exactly one of <c>user</c>, <c>group</c> and <c>everyone</c>.</summary>
internal sealed record GrantSpec
{
    public string? User { get; init; }

    public string? Group { get; init; }

    public bool? Everyone { get; init; }

    /// <summary><c>use</c>, <c>edit</c> or <c>own</c>.</summary>
    public string? Permission { get; init; }

    /// <summary>One environment; left out, every environment.</summary>
    public string? Environment { get; init; }
}

/// <summary>A webhook endpoint's fields (never its signing secret).</summary>
internal sealed record WebhookSpec
{
    public string? Url { get; init; }

    /// <summary>The event types it receives; left out, every type.</summary>
    public List<string>? Events { get; init; }

    public bool? Enabled { get; init; }

    public string? Description { get; init; }
}

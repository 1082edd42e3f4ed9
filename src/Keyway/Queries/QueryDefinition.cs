using System.Text.Json;

namespace Keyway.Queries;

/// <summary>
/// A saved request against a resource, run by name with inputs. Its strings may hold templates
/// over <c>inputs</c>, <c>current_user</c> and plain (never secret) variables.
/// </summary>
internal sealed record QueryDefinition
{
    public string? Resource { get; init; }

    public string? Description { get; init; }

    public string Method { get; init; } = "GET";

    public string? Path { get; init; }

    public Dictionary<string, string>? Query { get; init; }

    public Dictionary<string, string>? Headers { get; init; }

    public QueryBody? Body { get; init; }
}

/// <summary>A query's body: one of four shapes, picked by <see cref="Type"/>.</summary>
internal sealed record QueryBody
{
    /// <summary><c>json</c>, <c>form</c>, <c>raw</c> or <c>graphql</c>.</summary>
    public string Type { get; init; } = "json";

    /// <summary>json: any JSON; a string in it may be a template (exactly <c>{{ x }}</c> keeps x's type).</summary>
    public JsonElement? Json { get; init; }

    /// <summary>form: fields sent as application/x-www-form-urlencoded.</summary>
    public Dictionary<string, string>? Fields { get; init; }

    /// <summary>raw: the text (a template).</summary>
    public string? Text { get; init; }

    /// <summary>raw: its media type (default text/plain).</summary>
    public string? ContentType { get; init; }

    /// <summary>graphql: the document.</summary>
    public string? Query { get; init; }

    /// <summary>graphql: the variables, JSON whose strings may be templates.</summary>
    public JsonElement? Variables { get; init; }

    /// <summary>graphql: which operation of the document to run.</summary>
    public string? OperationName { get; init; }
}

/// <summary>A stored query with its bookkeeping.</summary>
internal sealed record QueryRecord(string Name, long Version, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, QueryDefinition Definition);

/// <summary>The body of <c>POST /api/v1/queries/{name}/run</c>.</summary>
internal sealed record QueryRunRequest
{
    public string? Environment { get; init; }

    public JsonElement? Inputs { get; init; }
}

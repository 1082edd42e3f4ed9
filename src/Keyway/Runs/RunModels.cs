using System.Text.Json;
using System.Text.Json.Serialization;

namespace Keyway.Runs;

/// <summary>An ad-hoc request against a resource (<c>POST /api/v1/resources/{name}/run</c>).</summary>
internal sealed record RunRequest
{
    public string? Environment { get; init; }

    public string Method { get; init; } = "GET";

    /// <summary>Relative to the resource's base URL.</summary>
    public string? Path { get; init; }

    public Dictionary<string, string?>? Query { get; init; }

    public Dictionary<string, string>? Headers { get; init; }

    /// <summary>A JSON value is sent as JSON; a string is sent as it is (text/plain unless a Content-Type header says otherwise).</summary>
    public JsonElement? Body { get; init; }
}

/// <summary>The upstream's answer, redacted: its status is the upstream's, not Keyway's.</summary>
internal sealed record RunResult
{
    public required int Status { get; init; }

    public required Dictionary<string, string> Headers { get; init; }

    /// <summary>JSON when the upstream sent JSON, a string for text, base64 (see <see cref="BodyEncoding"/>) for binary.</summary>
    public required JsonElement? Body { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? BodyEncoding { get; init; }

    public required long DurationMs { get; init; }

    /// <summary>Whether Keyway refreshed the credential during this run.</summary>
    public required bool Refreshed { get; init; }

    /// <summary>The request Keyway sent (the last one, after a redirect or a replay), every secret value redacted.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public OutboundRequest? Outbound { get; init; }
}

/// <summary>An outbound request ready to send: everything a run needs, already validated.</summary>
internal sealed record OutboundCall(
    HttpMethod Method,
    string? Path,
    IReadOnlyList<KeyValuePair<string, string?>> Query,
    IReadOnlyList<KeyValuePair<string, string>> Headers,
    HttpContent? Content,
    byte[]? ReplayableBody);

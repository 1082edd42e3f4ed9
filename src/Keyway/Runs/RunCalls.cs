using Keyway.Api;
using Keyway.Outbound;

namespace Keyway.Runs;

/// <summary>Turns an ad-hoc <see cref="RunRequest"/> into a checked <see cref="OutboundCall"/>.</summary>
internal static class RunCalls
{
    public static OutboundCall FromRequest(RunRequest request)
    {
        var method = ParseMethod(request.Method);
        var headers = CallerHeaders(request.Headers);
        var content = RunExecutor.ContentFor(request.Body, headers, out var replayable);
        return new OutboundCall(
            method,
            request.Path,
            request.Query?.Select(kv => new KeyValuePair<string, string?>(kv.Key, kv.Value)).ToList() ?? [],
            headers.Where(h => !h.Key.Equals("Content-Type", StringComparison.OrdinalIgnoreCase) || content is null).ToList(),
            content,
            replayable);
    }

    public static HttpMethod ParseMethod(string? method)
    {
        if (string.IsNullOrWhiteSpace(method) || !HeaderRules.IsValidName(method))
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request", $"'{method}' is not an HTTP method.");
        }

        return HttpMethod.Parse(method.ToUpperInvariant());
    }

    /// <summary>The caller's headers that may reach the upstream, each checked.</summary>
    public static List<KeyValuePair<string, string>> CallerHeaders(IReadOnlyDictionary<string, string>? headers)
    {
        var result = new List<KeyValuePair<string, string>>();
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            if (!HeaderRules.IsValidName(name))
            {
                throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_header", $"'{name}' is not a valid header name.");
            }

            if (!HeaderRules.IsValidValue(value ?? ""))
            {
                throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_header", $"The value of header '{name}' holds a line break or control character.");
            }

            if (HeaderRules.IsHopByHop(name) || HeaderRules.IsNeverForwarded(name) || name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            result.Add(new(name, value ?? ""));
        }

        return result;
    }
}

using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Api;

/// <summary>
/// Keyway's failures as RFC 9457 problem details with a stable <c>code</c> that programs switch on.
/// Messages say what went wrong and what to do; they never carry a secret value.
/// </summary>
internal static class Problems
{
    public static ProblemHttpResult Create(int status, string code, string detail, IDictionary<string, object?>? extensions = null)
    {
        var ext = new Dictionary<string, object?>(StringComparer.Ordinal) { ["code"] = code };
        if (extensions is not null)
        {
            foreach (var (key, value) in extensions)
            {
                ext[key] = value;
            }
        }

        return TypedResults.Problem(detail: detail, statusCode: status, title: Title(code), type: $"https://keyway.dev/problems/{code}", extensions: ext);
    }

    public static ProblemHttpResult NotFound(string what) => Create(StatusCodes.Status404NotFound, "not_found", what);

    public static ProblemHttpResult Invalid(string detail, IReadOnlyList<FieldError>? errors = null) =>
        Create(StatusCodes.Status400BadRequest, "invalid_config", detail,
            errors is null ? null : new Dictionary<string, object?> { ["errors"] = errors });

    public static ProblemHttpResult BadRequest(string detail) => Create(StatusCodes.Status400BadRequest, "bad_request", detail);

    public static ProblemHttpResult Forbidden(string detail) => Create(StatusCodes.Status403Forbidden, "forbidden", detail);

    public static ProblemHttpResult Unauthorized(string detail) => Create(StatusCodes.Status401Unauthorized, "unauthorized", detail);

    public static ProblemHttpResult From(KeywayException exception) =>
        Create(exception.Status, exception.Code, exception.Message, exception.Extensions);

    /// <summary>
    /// The problem for <paramref name="exception"/>, with every known secret value redacted from its
    /// detail and its field messages: the last net under texts that quote a provider or an upstream.
    /// </summary>
    public static ProblemHttpResult From(KeywayException exception, Secrets.Redactor redactor)
    {
        if (redactor.IsEmpty)
        {
            return From(exception);
        }

        var extensions = exception.Extensions?.ToDictionary(e => e.Key, e => e.Value switch
        {
            string text => redactor.Redact(text),
            IEnumerable<FieldError> errors => errors.Select(f => f with { Message = redactor.Redact(f.Message) }).ToList(),
            var other => other,
        });
        return Create(exception.Status, exception.Code, redactor.Redact(exception.Message), extensions);
    }

    /// <summary>
    /// Sets <c>Retry-After</c> when the problem says how long to wait (its <c>retryAfterSeconds</c>, as
    /// <c>503 store_unavailable</c> does), so that clients and load balancers back off without reading the body.
    /// </summary>
    public static void SetRetryAfter(HttpResponse response, KeywayException exception)
    {
        if (exception.Extensions?.TryGetValue("retryAfterSeconds", out var seconds) == true && seconds is int or long)
        {
            response.Headers.RetryAfter = Convert.ToString(seconds, System.Globalization.CultureInfo.InvariantCulture);
        }
    }

    private static string Title(string code) => code switch
    {
        "not_found" => "Not found",
        "invalid_config" => "Invalid configuration",
        "bad_request" => "Bad request",
        "forbidden" => "Forbidden",
        "unauthorized" => "Authentication required",
        "path_not_allowed" => "Path not allowed",
        "destination_denied" => "Destination denied",
        "upstream_timeout" => "Upstream timed out",
        "upstream_unreachable" => "Upstream unreachable",
        "payload_too_large" => "Payload too large",
        "invalid_json" => "Invalid JSON",
        "unsupported_media_type" => "Unsupported media type",
        "method_not_allowed" => "Method not allowed",
        "template_error" => "Template error",
        "conflict" => "Conflict",
        "store_unavailable" => "Store unavailable",
        _ => code.Replace('_', ' '),
    };
}

/// <summary>One invalid field: where (a JSON path such as <c>auth.token</c>) and why.</summary>
internal sealed record FieldError(string Field, string Message);

/// <summary>
/// A failure Keyway reports to its caller as problem+json. Its message is shown to the caller,
/// so it must never contain a secret value.
/// </summary>
internal class KeywayException(int status, string code, string message, IDictionary<string, object?>? extensions = null)
    : Exception(message)
{
    public int Status { get; } = status;

    public string Code { get; } = code;

    public IDictionary<string, object?>? Extensions { get; } = extensions;
}

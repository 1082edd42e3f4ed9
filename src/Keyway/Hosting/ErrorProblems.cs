using System.Text.Json;
using Keyway.Api;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Hosting;

/// <summary>
/// Every error Keyway itself answers is problem+json with a stable <c>code</c>, those that ASP.NET
/// Core raises before an endpoint runs included: a body that cannot be bound, one too large, a
/// route that does not exist. Their texts never quote the request body: it may hold a secret.
/// </summary>
internal static class ErrorProblems
{
    /// <summary>A request ASP.NET Core or Kestrel refused while reading or binding it.</summary>
    public static ProblemHttpResult ForBadRequest(BadHttpRequestException bad, HttpRequest request) => bad.StatusCode switch
    {
        StatusCodes.Status413PayloadTooLarge => PayloadTooLarge(),
        StatusCodes.Status415UnsupportedMediaType => UnsupportedMediaType(),
        _ when Find<JsonException>(bad) is { } json => Problems.Create(StatusCodes.Status400BadRequest, "invalid_json",
            $"The request body is not valid JSON for this call{Where(json)}: check its syntax, that it is UTF-8, and that it nests at most 64 levels deep."),
        _ when bad.InnerException is System.Text.DecoderFallbackException or InvalidOperationException => Problems.Create(StatusCodes.Status400BadRequest, "invalid_json",
            "The request body is not valid UTF-8 JSON for this call."),
        // The binder's own message names the parameter and says "body"; it is not repeated as it is.
        _ when bad.InnerException is null && bad.Message.Contains("body", StringComparison.OrdinalIgnoreCase)
            && request.ContentLength is null or 0 && !request.Headers.ContainsKey("Transfer-Encoding") =>
            Problems.Create(StatusCodes.Status400BadRequest, "bad_request", "This call needs a JSON body (Content-Type: application/json)."),
        _ => Problems.Create(bad.StatusCode is >= 400 and < 500 ? bad.StatusCode : StatusCodes.Status400BadRequest, "bad_request",
            "The request is malformed: check its query parameters and body against docs/api.md."),
    };

    private static ProblemHttpResult PayloadTooLarge() => Problems.Create(StatusCodes.Status413PayloadTooLarge, "payload_too_large",
        "The request body is larger than this server accepts (30,000,000 bytes); send less.");

    private static ProblemHttpResult UnsupportedMediaType() => Problems.Create(StatusCodes.Status415UnsupportedMediaType, "unsupported_media_type",
        "Send the body as JSON: Content-Type: application/json.");

    /// <summary>Where in the body the parser stopped: the JSON path and line, never the text.</summary>
    private static string Where(JsonException json)
    {
        var path = json.Path is { Length: > 1 } p ? $" at {p}" : "";
        return json.LineNumber is { } line ? $"{path} (line {line + 1}, byte {json.BytePositionInLine + 1})" : path;
    }

    private static T? Find<T>(Exception exception) where T : Exception
    {
        for (Exception? e = exception; e is not null; e = e.InnerException)
        {
            if (e is T match)
            {
                return match;
            }
        }

        return null;
    }

    /// <summary>
    /// An error answered with no body at all (an unknown route, a method not allowed, a body refused
    /// by the endpoint binder) gets the problem+json its status means. The proxy is left alone: its
    /// errors are problem+json already, and an upstream's empty answer is the upstream's.
    /// </summary>
    public static IApplicationBuilder UseEmptyErrorProblems(this IApplicationBuilder app) =>
        app.Use(next => context => context.Request.Path.StartsWithSegments("/proxy") ? next(context) : FillAsync(context, next));

    private static async Task FillAsync(HttpContext context, RequestDelegate next)
    {
        await next(context);
        var response = context.Response;
        if (response.HasStarted || response.StatusCode is < 400 or > 599 || response.ContentLength is not null || !string.IsNullOrEmpty(response.ContentType))
        {
            return;
        }

        var problem = response.StatusCode switch
        {
            StatusCodes.Status400BadRequest => Problems.BadRequest("The request is malformed: check its query parameters and body against docs/api.md."),
            StatusCodes.Status401Unauthorized => Problems.Unauthorized("Sign in, or send an API key as 'Authorization: Bearer kw_…'."),
            StatusCodes.Status403Forbidden => Problems.Forbidden("You may not do this."),
            StatusCodes.Status404NotFound => Problems.NotFound($"Nothing is served at {context.Request.Path}: docs/api.md lists the routes."),
            StatusCodes.Status405MethodNotAllowed => Problems.Create(StatusCodes.Status405MethodNotAllowed, "method_not_allowed",
                $"{context.Request.Method} is not allowed on {context.Request.Path}: docs/api.md lists each route's methods."),
            StatusCodes.Status413PayloadTooLarge => PayloadTooLarge(),
            StatusCodes.Status415UnsupportedMediaType => UnsupportedMediaType(),
            var status => Problems.Create(status, status < 500 ? "bad_request" : "internal_error",
                $"The request failed with status {status}. The server log has the details under trace id {context.TraceIdentifier}."),
        };
        await problem.ExecuteAsync(context);
    }
}

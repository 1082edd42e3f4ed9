namespace Keyway.Api;

/// <summary>
/// Every answer under <c>/api/v1</c> says it comes from Keyway (<c>Keyway-Api: v1</c>), errors
/// included, so that the CLI can tell Keyway from another server at <c>KEYWAY_ADDR</c> that happens to
/// answer (a proxy, another service on the port) instead of reading its answer as an empty list.
/// </summary>
internal static class ApiIdentity
{
    public const string Header = "Keyway-Api";

    public const string Version = "v1";

    /// <summary>Adds the header to every <c>/api/v1</c> answer, set as the answer starts so that the exception handler's reset keeps it.</summary>
    public static IApplicationBuilder UseApiIdentity(this IApplicationBuilder app) =>
        app.Use(static (context, next) =>
        {
            if (context.Request.Path.StartsWithSegments("/api/v1"))
            {
                context.Response.OnStarting(static state =>
                {
                    ((HttpResponse)state).Headers[Header] = Version;
                    return Task.CompletedTask;
                }, context.Response);
            }

            return next(context);
        });
}

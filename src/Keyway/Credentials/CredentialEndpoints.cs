using System.Net;
using Keyway.Access;
using Keyway.Api;
using Keyway.Environments;
using Keyway.Hosting;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Credentials;

internal static class CredentialEndpoints
{
    public static RouteGroupBuilder MapCredentials(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/resources/{name}").WithTags("Credentials");

        group.MapGet("/credential", async (string name, string? environment, string? user, HttpContext http, CredentialService service, AccessPolicy access, ServeOptions options, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                var env = environment ?? VariableService.Production;
                // A key scoped to other environments does not see this one's credential.
                access.Demand(caller, Permission.Read, name, env);
                if (user is not null && user != caller.UserId)
                {
                    access.Demand(caller, Permission.Admin, name, env);
                }

                var (_, binding) = await service.BindingAsync(name, env, caller, ct);
                var key = CredentialService.KeyFor(binding, name, env, caller, user);
                return TypedResults.Ok(await service.StatusAsync(key, binding, ConnectUrl(http, options, name, env), ct));
            })
            .Requires(Permission.Read, "name")
            .WithSummary("A credential's state, expiry, refresh counts and last error. Never a token.");

        group.MapPut("/credential", async (string name, string? environment, ImportRequest body, HttpContext http, CredentialService service, AccessPolicy access, ServeOptions options, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                var env = environment ?? VariableService.Production;
                // Use in this environment first: a key scoped elsewhere learns nothing of the resource's auth.
                access.Demand(caller, Permission.Use, name, env);
                var (_, binding) = await service.BindingAsync(name, env, caller, ct);
                access.Demand(caller, binding.Shared ? Permission.Edit : Permission.Use, name, env);
                var key = CredentialService.KeyFor(binding, name, env, caller, null);
                await service.ImportAsync(key, binding, body, ct);
                return TypedResults.Ok(await service.StatusAsync(key, binding, null, ct));
            })
            .Requires(Permission.Read, "name")
            .WithSummary("Import a token set obtained elsewhere (e.g. a refresh token). Keyway refreshes it from then on.");

        group.MapPost("/credential/refresh", async (string name, string? environment, HttpContext http, CredentialService service, CredentialEngine engine, AccessPolicy access, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                var env = environment ?? VariableService.Production;
                access.Demand(caller, Permission.Use, name, env);
                var (_, binding) = await service.BindingAsync(name, env, caller, ct);
                var key = CredentialService.KeyFor(binding, name, env, caller, null);
                await engine.RefreshAsync(key, binding.Provider, ct);
                return TypedResults.Ok(await service.StatusAsync(key, binding, null, ct));
            })
            .Requires(Permission.Read, "name")
            .WithSummary("Refresh the credential now.");

        group.MapDelete("/credential", async (string name, string? environment, HttpContext http, CredentialService service, AccessPolicy access, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                var env = environment ?? VariableService.Production;
                // Use in this environment first: a key scoped elsewhere learns nothing of the resource's auth.
                access.Demand(caller, Permission.Use, name, env);
                var (_, binding) = await service.BindingAsync(name, env, caller, ct);
                access.Demand(caller, binding.Shared ? Permission.Edit : Permission.Use, name, env);
                var key = CredentialService.KeyFor(binding, name, env, caller, null);
                var revoked = await service.DisconnectAsync(key, binding, ct);
                return TypedResults.Ok(new DisconnectResult(true, revoked));
            })
            .Requires(Permission.Read, "name")
            .WithSummary("Disconnect: revoke the tokens at the provider (RFC 7009, when offered) and forget them.");

        group.MapGet("/connect", async Task<IResult> (string name, string? environment, string? returnTo, HttpContext http, CredentialService service, AccessPolicy access, ServeOptions options, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                var env = environment ?? VariableService.Production;
                // Use in this environment first: a key scoped elsewhere learns nothing of the resource's auth.
                access.Demand(caller, Permission.Use, name, env);
                var (_, binding) = await service.BindingAsync(name, env, caller, ct);
                access.Demand(caller, binding.Shared ? Permission.Edit : Permission.Use, name, env);
                if (returnTo is not null && !LocalPaths.IsLocal(returnTo))
                {
                    return Problems.BadRequest("returnTo must be a path on this server (it starts with a single '/').");
                }

                var key = CredentialService.KeyFor(binding, name, env, caller, null);
                var url = await service.StartConnectAsync(key, binding, PublicUrl(http, options) + "/oauth/callback", returnTo, caller.UserId, ct);
                return http.Request.Headers.Accept.Any(a => a?.Contains("application/json", StringComparison.OrdinalIgnoreCase) == true)
                    ? TypedResults.Ok(new { authorizeUrl = url })
                    : TypedResults.Redirect(url);
            })
            .Requires(Permission.Read, "name")
            .WithSummary("Connect an account (authorization code with PKCE, state and nonce): redirects to the provider, or returns {authorizeUrl} for Accept: application/json.");

        group.MapPost("/test", async (string name, string? environment, string? path, TestRequest? body, HttpContext http, CredentialDebugger debugger,
                AccessPolicy access, CancellationToken ct) =>
            {
                var caller = Caller.From(http.User)!;
                var env = environment ?? VariableService.Production;
                access.Demand(caller, Permission.Use, name, env);
                var request = body ?? new TestRequest();
                // The login and token answers are the session itself: their contents only for who may own it (owners, admins).
                var full = access.Allows(caller, Permission.Own, name, env);
                return TypedResults.Ok(await debugger.RunAsync(name, env, request with { Path = request.Path ?? path }, caller, full, ct));
            })
            .Requires(Permission.Read, "name")
            .WithSummary("Debug the resource: run its credential path step by step (each custom-flow step, discovery, the token request), then a chosen request; " +
                         "each step's request and answer redacted, timed, with what it extracted; the failing step and its fix.");

        return api;
    }

    /// <summary>
    /// The OAuth redirect target. Anonymous to the access filter; the one-time state names who started
    /// connecting, and the browser must be signed in to Keyway as them (<see cref="CredentialService.FinishConnectAsync"/>).
    /// </summary>
    public static IEndpointRouteBuilder MapOAuthCallback(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/oauth/callback", async (
            string? code, string? state, string? error, string? error_description, HttpContext http, CredentialService service, CancellationToken ct) =>
        {
            if (error is not null || code is null || state is null)
            {
                var why = error is null ? "the provider sent no authorization code." : $"the provider said {error}{(error_description is null ? "" : ": " + error_description)}.";
                return Page(HttpStatusCode.BadRequest, "Not connected", "Keyway could not connect the account: " + why);
            }

            try
            {
                var (key, returnTo) = await service.FinishConnectAsync(state, code, Caller.From(http.User), ct);
                return returnTo is not null
                    ? Results.Redirect(returnTo)
                    : Page(HttpStatusCode.OK, "Connected", $"Resource '{key.Resource}' is connected in '{key.Environment}'. You can close this window.");
            }
            catch (KeywayException e)
            {
                return Page((HttpStatusCode)e.Status, "Not connected", e.Message);
            }
        }).ExcludeFromDescription();
        return routes;
    }

    private static IResult Page(HttpStatusCode status, string title, string message) => Results.Content(
        $"<!doctype html><html><head><meta charset=\"utf-8\"><title>Keyway: {WebUtility.HtmlEncode(title)}</title></head>" +
        $"<body style=\"font-family:system-ui;max-width:40rem;margin:4rem auto\"><h1>{WebUtility.HtmlEncode(title)}</h1><p>{WebUtility.HtmlEncode(message)}</p></body></html>",
        "text/html; charset=utf-8", statusCode: (int)status);

    private static string PublicUrl(HttpContext http, ServeOptions options) =>
        (options.PublicUrl ?? $"{http.Request.Scheme}://{http.Request.Host}").TrimEnd('/');

    private static string ConnectUrl(HttpContext http, ServeOptions options, string resource, string environment) =>
        $"{PublicUrl(http, options)}/api/v1/resources/{Uri.EscapeDataString(resource)}/connect?environment={Uri.EscapeDataString(environment)}";
}

/// <summary>The body of <c>DELETE …/credential</c>: whether the provider also revoked the token.</summary>
internal sealed record DisconnectResult(bool Disconnected, bool RevokedAtProvider);

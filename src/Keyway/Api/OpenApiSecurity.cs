using Keyway.Access;
using Keyway.SignIn;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Keyway.Api;

/// <summary>
/// The OpenAPI document's security: the ways <c>/api/v1</c> actually authenticates a caller, declared
/// as schemes and required on every operation except the anonymous ones (sign-in). A client
/// generator or the reference page then sends the API key the way Keyway reads it.
/// </summary>
internal static class OpenApiSecurity
{
    public const string ApiKey = "apiKey";
    public const string TokenHeader = "keywayToken";
    public const string Session = "consoleSession";

    public static OpenApiOptions AddKeywaySecurity(this OpenApiOptions options)
    {
        options.AddDocumentTransformer((document, _, _) =>
        {
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes[ApiKey] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "A Keyway API key (kw_…), sent as 'Authorization: Bearer <key>'. Create one with 'keyway key create' or on the console's API keys page.",
            };
            document.Components.SecuritySchemes[TokenHeader] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                In = ParameterLocation.Header,
                Name = ApiKeyAuthenticationHandler.TokenHeader,
                Description = "The same API key in a header of its own, for clients whose Authorization header is taken.",
            };
            document.Components.SecuritySchemes[Session] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                In = ParameterLocation.Cookie,
                Name = Sessions.CookieName,
                Description = "The web console's session, set by POST /api/v1/auth/login. A change (any method but GET and HEAD) must also send the session's antiforgery token as X-Keyway-CSRF.",
            };
            return Task.CompletedTask;
        });
        options.AddOperationTransformer((operation, context, _) =>
        {
            if (context.Description.ActionDescriptor.EndpointMetadata.OfType<IAllowAnonymous>().Any())
            {
                return Task.CompletedTask;
            }

            // Any one of the schemes will do: each is a requirement of its own.
            operation.Security = [.. new[] { ApiKey, TokenHeader, Session }.Select(id =>
                new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(id, context.Document)] = [] })];
            return Task.CompletedTask;
        });
        return options;
    }
}

using Keyway.Api;
using Keyway.Credentials;
using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>
/// <c>auth.type: githubApp</c>: an app JWT signed with the app's private key, exchanged for an installation
/// access token that the credential engine caches and refreshes before its hour ends (<see cref="GitHubAppProvider"/>).
/// </summary>
internal sealed class CompiledGitHubApp
{
    public const string Type = "githubApp";
    public const string DefaultApiUrl = "https://api.github.com";

    public required Template AppId { get; init; }

    public required Template InstallationId { get; init; }

    public required Template PrivateKey { get; init; }

    public Template? ApiUrl { get; init; }

    /// <summary>The private keys this definition version has read: each parsed once.</summary>
    public SigningKeyCache Keys { get; } = new();

    /// <summary>Where the installation token goes: <c>Authorization: Bearer</c>.</summary>
    public TokenPlacement Destination { get; } = new(Placement.Header, "Authorization", "Bearer ");

    public static CompiledGitHubApp? Compile(
        AuthDefinition auth, List<FieldError> errors, Func<string, string?, bool, Template?> parse, Func<string, string?, Template?> secret)
    {
        var appId = parse("auth.appId", auth.AppId, true);
        var installationId = parse("auth.installationId", auth.InstallationId, true);
        var privateKey = secret("auth.privateKey", auth.PrivateKey);
        var apiUrl = parse("auth.apiUrl", auth.ApiUrl, false);
        if (auth.ApiUrl is not null && !auth.ApiUrl.Contains("{{", StringComparison.Ordinal) && ResourceCompiler.CheckBaseUrl(auth.ApiUrl) is { } urlError)
        {
            errors.Add(new FieldError("auth.apiUrl", urlError));
        }

        foreach (var (field, value) in new[] { ("appId", auth.AppId), ("installationId", auth.InstallationId) })
        {
            if (value is not null && !value.Contains("{{", StringComparison.Ordinal) && !value.All(char.IsAsciiDigit))
            {
                errors.Add(new FieldError($"auth.{field}", $"'{value}' is not a GitHub {(field == "appId" ? "App id" : "installation id")}: give its number (App settings → About; the installation's URL ends with it)."));
            }
        }

        return appId is null || installationId is null || privateKey is null
            ? null
            : new CompiledGitHubApp { AppId = appId, InstallationId = installationId, PrivateKey = privateKey, ApiUrl = apiUrl };
    }

    /// <summary>The settings for one environment; the key parsed once per value (<see cref="Keys"/>).</summary>
    public GitHubAppSettings Render(TemplateScope scope)
    {
        var appId = AppId.Render(scope).Trim();
        var installationId = InstallationId.Render(scope).Trim();
        var apiUrl = (ApiUrl?.Render(scope) is { Length: > 0 } url ? url : DefaultApiUrl).TrimEnd('/');
        var pem = PrivateKey.Render(scope);
        if (pem.Length == 0)
        {
            throw Invalid("The GitHub App's private key is empty in this environment: set the secret variable auth.privateKey reads.");
        }

        if (appId.Length == 0 || !appId.All(char.IsAsciiDigit) || installationId.Length == 0 || !installationId.All(char.IsAsciiDigit))
        {
            throw Invalid("The GitHub App id and installation id must be numbers in this environment: set the variables they read.");
        }

        if (ResourceCompiler.CheckBaseUrl(apiUrl) is { } error)
        {
            // Not quoted: a URL rendered from variables could hold a piece of one.
            _ = error;
            throw Invalid("auth.apiUrl does not give an absolute https:// URL in this environment: check the variables it reads.");
        }

        return new GitHubAppSettings
        {
            AppId = appId,
            InstallationId = installationId,
            ApiUrl = apiUrl,
            Key = Keys.Get(pem, "RS256", null, "auth.privateKey"),
        };

        static KeywayException Invalid(string message) => new(StatusCodes.Status400BadRequest, "invalid_config", message);
    }
}

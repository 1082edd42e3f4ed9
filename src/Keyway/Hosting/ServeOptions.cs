namespace Keyway.Hosting;

/// <summary>What <c>keyway serve</c> was started with.</summary>
internal sealed record ServeOptions
{
    public required string DataDirectory { get; init; }

    public required string Urls { get; init; }

    /// <summary>
    /// Addresses for the proxy alone (<c>--proxy-urls</c>, <c>KEYWAY_PROXY_URLS</c>), separated by ';'.
    /// When set, <c>/proxy</c> is served only there and the API and console only on <see cref="Urls"/>,
    /// so proxied answers live on an origin of their own. Null: everything on <see cref="Urls"/>.
    /// </summary>
    public string? ProxyUrls { get; init; }

    /// <summary>A <c>postgres://</c> URL, or null for the embedded SQLite store in the data directory.</summary>
    public string? DatabaseUrl { get; init; }

    /// <summary>How people and providers reach this server (for OAuth redirects), e.g. https://keyway.example.com. Else taken from each request.</summary>
    public string? PublicUrl { get; init; }

    public const string DefaultUrls = "http://127.0.0.1:7510";
    public const string DefaultDataDirectory = "keyway-data";

    /// <summary>The data directory when <c>--data-dir</c> is not given: <c>KEYWAY_DATA_DIR</c>, else <see cref="DefaultDataDirectory"/>.</summary>
    public static string DataDirectoryFromEnvironment() =>
        Environment.GetEnvironmentVariable("KEYWAY_DATA_DIR") is { Length: > 0 } fromEnvironment ? fromEnvironment : DefaultDataDirectory;
}

/// <summary>A configuration problem found at start: printed plainly, and the process exits non-zero.</summary>
internal sealed class StartupException(string message) : Exception(message);

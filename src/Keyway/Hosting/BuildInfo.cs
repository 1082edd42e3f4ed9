using System.Reflection;
using System.Runtime.InteropServices;

namespace Keyway.Hosting;

/// <summary>
/// What this binary is: the version stamped at build time (<c>1.4.0+3f2c1ab…</c>, the commit after the
/// plus), the .NET runtime it runs on and the platform. <c>keyway --version</c>, <c>keyway version</c> and
/// the server's start line all read it from here, so they agree.
/// </summary>
internal static class BuildInfo
{
    /// <summary>The informational version: the release's version, then <c>+</c> and the git commit it was built from.</summary>
    public static string Version { get; } =
        typeof(BuildInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(BuildInfo).Assembly.GetName().Version?.ToString()
        ?? "unknown";

    /// <summary>The commit the build came from, or null when the build was not stamped with one.</summary>
    public static string? Commit => Version.IndexOf('+') is var plus and >= 0 ? Version[(plus + 1)..] : null;

    /// <summary>The .NET runtime, e.g. <c>10.0.12</c>.</summary>
    public static string Runtime => Environment.Version.ToString();

    /// <summary>The platform, e.g. <c>linux-x64</c>.</summary>
    public static string Platform => $"{(OperatingSystem.IsLinux() ? "linux" : OperatingSystem.IsMacOS() ? "osx" : OperatingSystem.IsWindows() ? "win" : "other")}-{RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant()}";

    /// <summary>True when this is a self-contained single-file release binary rather than <c>keyway.dll</c> run by <c>dotnet</c>.</summary>
#pragma warning disable IL3000 // An assembly's location is empty exactly when it is bundled in a single file: that is the test.
    public static bool SingleFile => string.IsNullOrEmpty(typeof(BuildInfo).Assembly.Location);
#pragma warning restore IL3000
}

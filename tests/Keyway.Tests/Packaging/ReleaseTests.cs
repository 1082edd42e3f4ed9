using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Packaging;

/// <summary>
/// The release as an operator gets it: <c>scripts/release.sh</c> builds the self-contained binary, its
/// tarball, the Debian package and checksums; the binary serves and answers <c>/readyz</c> with no .NET
/// installed beside it; the package holds the documented files with their modes; the systemd unit verifies
/// and its hardening scores as systemd rates it.
/// </summary>
[Trait("Category", "Integration")]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ReleaseTests : IClassFixture<ReleaseTests.Release>
{
    private static readonly string s_root = Integration.ReadmeTourTests.RepositoryRoot();
    private readonly Release _release;

    public ReleaseTests(Release release) => _release = release;

    [Fact]
    public async Task The_release_has_a_tarball_a_package_and_checksums_that_verify()
    {
        Assert.Single(Directory.GetFiles(_release.Directory, "keyway-*-linux-x64.tar.gz"));
        Assert.Single(Directory.GetFiles(_release.Directory, "keyway_*_amd64.deb"));
        var sums = await Run("sha256sum", ["-c", "SHA256SUMS"], _release.Directory);
        Assert.True(sums.ExitCode == 0, sums.Output);
        Assert.Equal(2, sums.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Count(l => l.EndsWith(": OK", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task The_binary_says_one_version_and_serves_until_readyz_answers()
    {
        var version = await Run(_release.Binary, ["--version"], _release.Directory);
        Assert.True(version.ExitCode == 0, version.Output);
        var json = await Run(_release.Binary, ["version", "--json"], _release.Directory);
        var doc = JsonNode.Parse(json.StandardOutput)!;
        Assert.Equal(version.StandardOutput.Trim(), (string)doc["version"]!);
        Assert.StartsWith(_release.Version + "+", (string)doc["version"]!, StringComparison.Ordinal);
        Assert.True((bool)doc["singleFile"]!);
        Assert.Equal("linux-x64", (string)doc["platform"]!);

        var data = TestDirectories.Create("release-serve");
        var port = FreePort.Next();
        var environment = new Dictionary<string, string?>
        {
            ["KEYWAY_DATA_DIR"] = Path.Combine(data, "data"),
            ["KEYWAY_URLS"] = $"http://127.0.0.1:{port}",
            ["KEYWAY_ADMIN_CREDENTIALS_FILE"] = Path.Combine(data, "data", "initial-admin.txt"),
            // The binary carries its runtime: no dotnet on PATH, no DOTNET_ROOT.
            ["PATH"] = "/usr/bin:/bin",
            ["DOTNET_ROOT"] = null,
            ["KEYWAY_MASTER_KEY"] = null,
            ["KEYWAY_DATABASE_URL"] = null,
        };
        using var server = new System.Diagnostics.Process
        {
            StartInfo = new System.Diagnostics.ProcessStartInfo(_release.Binary, ["serve"]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false },
        };
        foreach (var (name, value) in environment)
        {
            if (value is null)
                server.StartInfo.Environment.Remove(name);
            else
                server.StartInfo.Environment[name] = value;
        }

        server.Start();
        var output = server.StandardOutput.ReadToEndAsync();
        var error = server.StandardError.ReadToEndAsync();
        try
        {
            var ready = await Run(_release.Binary, ["operator", "wait-ready", "--timeout", "60"], data, environment);
            Assert.True(ready.ExitCode == 0, ready.Output + (server.HasExited ? await error : ""));
            using var http = new HttpClient();
            Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync(new Uri($"http://127.0.0.1:{port}/readyz"))).StatusCode);

            // The generated admin credentials went to the file, not to the terminal.
            var credentials = await File.ReadAllTextAsync(Path.Combine(data, "data", "initial-admin.txt"));
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(data, "data", "initial-admin.txt")));
            var key = credentials.Split('\n').Single(l => l.Contains("admin API key:", StringComparison.Ordinal)).Split(':', 2)[1].Trim();
            Assert.StartsWith("kw_", key, StringComparison.Ordinal);
            server.Kill();
            await server.WaitForExitAsync();
            Assert.DoesNotContain(key, await output + await error, StringComparison.Ordinal);
        }
        finally
        {
            if (!server.HasExited)
                server.Kill();
            TestDirectories.DeleteQuietly(data);
        }
    }

    [Fact]
    public async Task The_package_holds_the_documented_files_and_its_unit_verifies_with_systemds_own_checker()
    {
        var deb = Directory.GetFiles(_release.Directory, "*.deb").Single();
        var info = await Run("dpkg-deb", ["--field", deb, "Package", "Version", "Architecture", "Depends"], _release.Directory);
        Assert.True(info.ExitCode == 0, info.Output);
        Assert.Contains("Package: keyway", info.StandardOutput, StringComparison.Ordinal);
        Assert.Contains($"Version: {_release.Version.Replace('-', '~')}", info.StandardOutput, StringComparison.Ordinal);
        Assert.Contains("Architecture: amd64", info.StandardOutput, StringComparison.Ordinal);

        var listing = await Run("dpkg-deb", ["--contents", deb], _release.Directory);
        Assert.Matches(@"-rwxr-xr-x root/root .* \./usr/bin/keyway", listing.StandardOutput);
        Assert.Matches(@"-rw-r----- root/root .* \./etc/keyway/keyway\.env", listing.StandardOutput);
        Assert.Matches(@"-rw-r--r-- root/root .* \./lib/systemd/system/keyway\.service", listing.StandardOutput);
        Assert.DoesNotContain("master.key", listing.StandardOutput, StringComparison.Ordinal);

        var scratch = TestDirectories.Create("deb-root");
        try
        {
            var extract = await Run("dpkg-deb", ["-x", deb, scratch], _release.Directory);
            Assert.True(extract.ExitCode == 0, extract.Output);
            var control = TestDirectories.Create("deb-control");
            Assert.Equal(0, (await Run("dpkg-deb", ["-e", deb, control], _release.Directory)).ExitCode);
            Assert.Equal("/etc/keyway/keyway.env", File.ReadAllText(Path.Combine(control, "conffiles")).Trim());
            foreach (var script in (string[])["postinst", "prerm", "postrm"])
            {
                var syntax = await Run("sh", ["-n", Path.Combine(control, script)], control);
                Assert.True(syntax.ExitCode == 0, script + ": " + syntax.Output);
            }

            Assert.Contains("install -d -m 0700 -o keyway -g keyway /var/lib/keyway", File.ReadAllText(Path.Combine(control, "postinst")), StringComparison.Ordinal);
            TestDirectories.DeleteQuietly(control);

            // systemd-analyze resolves the unit's dependencies inside the root: the scratch root needs the targets a real system has.
            var units = Path.Combine(scratch, "lib", "systemd", "system");
            foreach (var target in (string[])["sysinit", "basic", "multi-user", "network-online", "shutdown", "sockets", "paths", "timers", "slices"])
                File.WriteAllText(Path.Combine(units, target + ".target"), $"[Unit]\nDescription={target}\n");

            var verify = await Run("systemd-analyze", ["verify", "--root=" + scratch, "/lib/systemd/system/keyway.service"], scratch);
            Assert.True(verify.ExitCode == 0 && verify.Output.Trim().Length == 0, "systemd-analyze verify: " + verify.Output);
            var security = await Run("systemd-analyze", ["security", "--offline=yes", "--root=" + scratch, "--threshold=25", "keyway.service"], scratch);
            var exposure = System.Text.RegularExpressions.Regex.Match(security.StandardOutput, @"Overall exposure level for keyway\.service: ([0-9.]+)");
            Assert.True(exposure.Success, security.Output);
            Assert.True(double.Parse(exposure.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) <= 2.0, "exposure " + exposure.Groups[1].Value + "\n" + security.StandardOutput);
        }
        finally
        {
            TestDirectories.DeleteQuietly(scratch);
        }
    }

    private static Task<CommandResult> Run(string file, string[] arguments, string directory, IReadOnlyDictionary<string, string?>? environment = null) =>
        ProcessRunner.RunAsync(file, arguments, environment, timeout: TimeSpan.FromMinutes(2), workingDirectory: directory);

    /// <summary>One <c>scripts/release.sh</c> run (linux-x64 only) shared by the tests above.</summary>
    public sealed class Release : IAsyncLifetime
    {
        public string Directory { get; private set; } = "";

        public string Version { get; private set; } = "";

        public string Binary { get; private set; } = "";

        private string _out = "";

        public async Task InitializeAsync()
        {
            _out = TestDirectories.Create("release");
            var built = await ProcessRunner.RunAsync("/bin/bash", [Path.Combine(s_root, "scripts", "release.sh"), _out],
                new Dictionary<string, string?> { ["RIDS"] = "linux-x64" }, timeout: TimeSpan.FromMinutes(12), workingDirectory: s_root);
            Assert.True(built.ExitCode == 0, "scripts/release.sh failed:\n" + built.Output);
            Directory = System.IO.Directory.GetDirectories(_out, "keyway-*").Single();
            Version = Path.GetFileName(Directory)["keyway-".Length..];
            var unpacked = Path.Combine(_out, "unpacked");
            System.IO.Directory.CreateDirectory(unpacked);
            var tar = await ProcessRunner.RunAsync("tar", ["-xzf", System.IO.Directory.GetFiles(Directory, "*.tar.gz").Single(), "-C", unpacked]);
            Assert.True(tar.ExitCode == 0, tar.Output);
            Binary = Path.Combine(unpacked, $"keyway-{Version}", "keyway");
        }

        public Task DisposeAsync()
        {
            TestDirectories.DeleteQuietly(_out);
            return Task.CompletedTask;
        }
    }
}

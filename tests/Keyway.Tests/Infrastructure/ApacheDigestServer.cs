using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

#pragma warning disable CA5351 // MD5 is HTTP Digest's own algorithm: these check Keyway's answers to it.

namespace Keyway.Tests.Infrastructure;

/// <summary>One request as Apache's access log recorded it: status, method, target, and the <c>nc</c> its Digest answer carried.</summary>
public sealed record ApacheLogLine(int Status, string Method, string Target, string? Nc);

/// <summary>
/// Apache httpd with <c>mod_auth_digest</c> (Debian's apache2, installed by scripts/test.sh) on a free loopback port:
/// an implementation of HTTP Digest that shares nothing with Keyway's and refuses a wrong answer. It serves
/// <c>/fresh/</c> (nonces live 300 s) and <c>/stale/</c> (nonces live 1 s, so a kept one goes stale), each with
/// <c>ok.txt</c> and <c>echo.cgi</c> (a CGI script that answers with the body it was sent), for one user in realm
/// <see cref="Realm"/>. Runs as <c>apache2 -X</c>, a single foreground process; disposing kills it.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed partial class ApacheDigestServer : IAsyncDisposable
{
    public const string Realm = "keyway-digest-tests";

    private readonly Process _process;
    private readonly string _directory;
    private readonly StringBuilder _output = new();

    private ApacheDigestServer(Process process, string directory, int port)
    {
        _process = process;
        _directory = directory;
        BaseUrl = $"http://127.0.0.1:{port}";
    }

    /// <summary>The server's address, e.g. <c>http://127.0.0.1:41234</c> (no trailing slash).</summary>
    public string BaseUrl { get; }

    /// <summary>What Apache wrote to its error log (for failure messages).</summary>
    public string ErrorLog => ReadShared(Path.Combine(_directory, "error.log"));

    public static async Task<ApacheDigestServer> StartAsync(string user, string password)
    {
        var binary = new[] { "/usr/sbin/apache2", "/usr/sbin/httpd" }.FirstOrDefault(File.Exists);
        var modules = new[] { "/usr/lib/apache2/modules", "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules" }.FirstOrDefault(Directory.Exists);
        Assert.True(binary is not null && modules is not null && File.Exists(Path.Combine(modules, "mod_auth_digest.so")),
            "Apache httpd with mod_auth_digest is not installed: run scripts/test.sh (it installs Debian's apache2).");

        var directory = TestDirectories.Create("apache");
        var root = Path.Combine(directory, "htdocs");
        foreach (var area in new[] { "fresh", "stale" })
        {
            Directory.CreateDirectory(Path.Combine(root, area));
            File.WriteAllText(Path.Combine(root, area, "ok.txt"), $"ok from {area}\n");
            var cgi = Path.Combine(root, area, "echo.cgi");
            File.WriteAllText(cgi, "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nprintf 'body:'\ncat\n");
            File.SetUnixFileMode(cgi, (UnixFileMode)0b111_101_101);
        }

        // The htdigest format: user:realm:MD5(user:realm:password).
        var ha1 = Convert.ToHexStringLower(MD5.HashData(Encoding.UTF8.GetBytes($"{user}:{Realm}:{password}")));
        File.WriteAllText(Path.Combine(directory, "users.digest"), $"{user}:{Realm}:{ha1}\n");

        var port = FreePort.Next();
        var runAs = Environment.UserName == "root" ? "User nobody\nGroup nogroup\n" : "";
        File.WriteAllText(Path.Combine(directory, "httpd.conf"), $$"""
            ServerRoot "{{directory}}"
            ServerName 127.0.0.1
            Listen 127.0.0.1:{{port}}
            PidFile "{{directory}}/httpd.pid"
            DefaultRuntimeDir "{{directory}}"
            Mutex file:{{directory}} default
            ErrorLog "{{directory}}/error.log"
            LogLevel warn auth_digest:info
            {{runAs}}
            LoadModule mpm_prefork_module {{modules}}/mod_mpm_prefork.so
            LoadModule authn_core_module {{modules}}/mod_authn_core.so
            LoadModule authn_file_module {{modules}}/mod_authn_file.so
            LoadModule authz_core_module {{modules}}/mod_authz_core.so
            LoadModule authz_user_module {{modules}}/mod_authz_user.so
            LoadModule auth_digest_module {{modules}}/mod_auth_digest.so
            LoadModule cgi_module {{modules}}/mod_cgi.so

            LogFormat "%>s %m %U%q \"%{Authorization}i\"" digest
            CustomLog "{{directory}}/access.log" digest
            DocumentRoot "{{root}}"
            <Directory "{{root}}">
                Options +ExecCGI
                <Files "echo.cgi">
                    SetHandler cgi-script
                </Files>
            </Directory>
            <Location "/fresh/">
                AuthType Digest
                AuthName "{{Realm}}"
                AuthDigestProvider file
                AuthUserFile "{{directory}}/users.digest"
                AuthDigestAlgorithm MD5
                AuthDigestNonceLifetime 300
                Require valid-user
            </Location>
            <Location "/stale/">
                AuthType Digest
                AuthName "{{Realm}}"
                AuthDigestProvider file
                AuthUserFile "{{directory}}/users.digest"
                AuthDigestAlgorithm MD5
                AuthDigestNonceLifetime 1
                Require valid-user
            </Location>
            """);
        // Apache drops to nobody when started as root: what it reads must be readable by others.
        foreach (var path in Directory.EnumerateFileSystemEntries(directory, "*", SearchOption.AllDirectories).Append(directory))
        {
            if (Directory.Exists(path))
            {
                File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
            }
            else if (!path.EndsWith(".cgi", StringComparison.Ordinal))
            {
                File.SetUnixFileMode(path, (UnixFileMode)0b110_100_100);
            }
        }

        var info = new ProcessStartInfo(binary!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "-X", "-f", Path.Combine(directory, "httpd.conf") })
        {
            info.ArgumentList.Add(argument);
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException("apache2 did not start.");
        var server = new ApacheDigestServer(process, directory, port);
        process.OutputDataReceived += (_, e) => server.Append(e.Data);
        process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await Poll.UntilAsync(() => process.HasExited || Accepts(port), TimeSpan.FromSeconds(20), "Apache to listen");
            Assert.False(process.HasExited, "Apache exited at start:\n" + server.Output + "\n" + server.ErrorLog);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>Every request Apache has logged so far, oldest first.</summary>
    public IReadOnlyList<ApacheLogLine> Requests()
    {
        var lines = new List<ApacheLogLine>();
        foreach (var line in ReadShared(Path.Combine(_directory, "access.log")).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var parts = line.Split(' ', 4);
            var nc = NcPattern().Match(line);
            lines.Add(new ApacheLogLine(int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture), parts[1], parts[2], nc.Success ? nc.Groups[1].Value : null));
        }

        return lines;
    }

    private string Output
    {
        get
        {
            lock (_output)
                return _output.ToString();
        }
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_output)
            _output.AppendLine(line);
    }

    private static bool Accepts(int port)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect("127.0.0.1", port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static string ReadShared(string path)
    {
        if (!File.Exists(path))
            return "";
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    [GeneratedRegex(@"nc=([0-9a-fA-F]{8})")]
    private static partial Regex NcPattern();

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        TestDirectories.DeleteQuietly(_directory);
    }
}

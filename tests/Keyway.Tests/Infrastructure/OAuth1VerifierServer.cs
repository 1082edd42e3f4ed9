using System.Diagnostics;

namespace Keyway.Tests.Infrastructure;

/// <summary>The credentials an OAuth 1.0a upstream expects; <see cref="PublicKeyPem"/> for RSA-SHA1.</summary>
public sealed record OAuth1Expectation(string ConsumerKey, string? ConsumerSecret, string? Token, string? TokenSecret, string? PublicKeyPem = null);

/// <summary>
/// An upstream that refuses (401) every request whose OAuth 1.0a signature is wrong: tests/oauth1-verifier/server.mjs,
/// a node server that recomputes the base string with the npm package <c>oauth-1.0a</c> (installed by scripts/test.sh)
/// and checks HMAC-SHA1, HMAC-SHA256 and RSA-SHA1 signatures with node's crypto, nonce reuse and the timestamp.
/// A valid request is answered 200 with <c>{"ok": true, "method", "url", "body"}</c>; a refused one with <c>{"error"}</c>.
/// </summary>
public sealed class OAuth1VerifierServer : IAsyncDisposable
{
    private readonly Process _process;

    private OAuth1VerifierServer(Process process, int port)
    {
        _process = process;
        BaseUrl = $"http://127.0.0.1:{port}";
    }

    /// <summary>The server's address (no trailing slash).</summary>
    public string BaseUrl { get; }

    public static async Task<OAuth1VerifierServer> StartAsync(OAuth1Expectation expected)
    {
        var directory = Directory();
        var info = new ProcessStartInfo("node")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = directory,
        };
        info.ArgumentList.Add(Path.Combine(directory, "server.mjs"));
        info.Environment["CONSUMER_KEY"] = expected.ConsumerKey;
        info.Environment["CONSUMER_SECRET"] = expected.ConsumerSecret ?? "";
        info.Environment["TOKEN"] = expected.Token ?? "";
        info.Environment["TOKEN_SECRET"] = expected.TokenSecret ?? "";
        info.Environment["PUBLIC_KEY"] = expected.PublicKeyPem ?? "";
        var process = Process.Start(info) ?? throw new InvalidOperationException("node did not start.");
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var line = await process.StandardOutput.ReadLineAsync(deadline.Token);
        if (line is null || !line.StartsWith("listening ", StringComparison.Ordinal))
        {
            process.Kill(entireProcessTree: true);
            var error = await process.StandardError.ReadToEndAsync(CancellationToken.None);
            process.Dispose();
            throw new InvalidOperationException("tests/oauth1-verifier/server.mjs did not start: " + line + "\n" + error);
        }

        return new OAuth1VerifierServer(process, int.Parse(line["listening ".Length..], System.Globalization.CultureInfo.InvariantCulture));
    }

    private static string Directory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "oauth1-verifier");
            if (File.Exists(Path.Combine(candidate, "server.mjs")))
            {
                Assert.True(System.IO.Directory.Exists(Path.Combine(candidate, "node_modules", "oauth-1.0a")),
                    $"{candidate} has no node_modules: run scripts/test.sh (it runs npm ci there) or 'npm ci --prefix tests/oauth1-verifier'.");
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/oauth1-verifier is not above " + AppContext.BaseDirectory);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}

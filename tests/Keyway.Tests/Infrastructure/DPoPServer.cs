using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// An authorization server and a resource server that enforce DPoP (RFC 9449), in a real node process
/// (tests/dpop-server, installed by scripts/test.sh): node's <c>oidc-provider</c> issues DPoP-bound tokens
/// to a client_credentials client (a request without a proof is refused), and a resource server checks
/// each proof with <c>jose</c> (signature, htm, htu, ath, jti replay, the token's <c>jkt</c>) and, when told
/// to, demands a nonce. Both share nothing with Keyway's code.
/// </summary>
internal sealed class DPoPServer : IAsyncDisposable
{
    public const string ClientId = "keyway";

    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(10) };

    private DPoPServer(Process process, int asPort, int rsPort, string clientSecret)
    {
        _process = process;
        Issuer = $"http://127.0.0.1:{asPort}";
        ResourceUrl = $"http://127.0.0.1:{rsPort}";
        ClientSecret = clientSecret;
    }

    /// <summary>The authorization server (oidc-provider).</summary>
    public string Issuer { get; }

    public string TokenEndpoint => Issuer + "/token";

    /// <summary>The resource server's origin: every path but /control and /stats is a protected resource.</summary>
    public string ResourceUrl { get; }

    public string ClientSecret { get; }

    /// <summary>What the node process printed, for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public static async Task<DPoPServer> StartAsync()
    {
        var directory = Directory();
        var asPort = FreePort.Next();
        var rsPort = FreePort.Next();
        var secret = "dpop-secret-" + Guid.NewGuid().ToString("N");
        var info = new ProcessStartInfo("node")
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("server.mjs");
        info.Environment["AS_PORT"] = asPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        info.Environment["RS_PORT"] = rsPort.ToString(System.Globalization.CultureInfo.InvariantCulture);
        info.Environment["CLIENT_SECRET"] = secret;
        info.Environment["NODE_ENV"] = "test";
        var process = Process.Start(info) ?? throw new InvalidOperationException("Could not start node.");
        var server = new DPoPServer(process, asPort, rsPort, secret);
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                ready.TrySetException(new InvalidOperationException("tests/dpop-server exited: " + server.Output));
                return;
            }

            server.Append(e.Data);
            if (e.Data.Contains("\"ready\":true", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                server.Append(e.Data);
            }
        };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await ready.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    /// <summary>Whether the authorization server and the resource server demand a nonce of their own in the proof.</summary>
    public async Task RequireNoncesAsync(bool authorizationServer, bool resourceServer)
    {
        using var response = await _http.PostAsJsonAsync(ResourceUrl + "/control", new { asNonce = authorizationServer, rsNonce = resourceServer });
        response.EnsureSuccessStatusCode();
    }

    /// <summary>The resource server demands a new nonce from now on.</summary>
    public async Task RotateResourceNonceAsync()
    {
        using var response = await _http.PostAsJsonAsync(ResourceUrl + "/control", new { rsNonceValue = "rs-" + Guid.NewGuid().ToString("N") });
        response.EnsureSuccessStatusCode();
    }

    /// <summary>What the servers saw: tokenRequests, tokenNonceChallenges, tokensIssued, resourceRequests, resourceNonceChallenges, accepted, refused, thumbprints.</summary>
    public async Task<JsonObject> StatsAsync() =>
        (await _http.GetFromJsonAsync<JsonObject>(ResourceUrl + "/stats"))!;

    private void Append(string line)
    {
        lock (_output)
        {
            _output.AppendLine(line);
        }
    }

    private static string Directory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "dpop-server");
            if (File.Exists(Path.Combine(candidate, "server.mjs")))
            {
                Assert.True(System.IO.Directory.Exists(Path.Combine(candidate, "node_modules", "oidc-provider")),
                    $"{candidate} has no node_modules: run scripts/test.sh (it runs npm ci there) or 'npm ci --prefix tests/dpop-server'.");
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/dpop-server is not above " + AppContext.BaseDirectory);
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}

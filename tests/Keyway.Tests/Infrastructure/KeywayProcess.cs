using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// A real <c>keyway serve</c> process (<c>dotnet keyway.dll serve --data-dir … --urls http://127.0.0.1:PORT</c>)
/// with its own data directory, ready (<c>GET /readyz</c> answered 200) when
/// <see cref="StartAsync(KeywayProcessOptions?, CancellationToken)"/> returns. Every line it writes to
/// stdout or stderr is kept in <see cref="AllOutput"/>, across restarts, so tests can prove a
/// secret never reaches a log. Disposing kills it and deletes what it created.
/// </summary>
public sealed class KeywayProcess : IAsyncDisposable
{
    private const int SigTerm = 15;
    private static readonly TimeSpan _stopTimeout = TimeSpan.FromSeconds(30);

    private readonly KeywayProcessOptions _options;
    private readonly string? _ownedDirectory;
    private readonly string? _ownedDatabase;
    private readonly string? _databaseUrl;
    private readonly int _port;
    private readonly Lock _outputLock = new();
    private readonly List<string> _output = [];
    private Process? _process;
    private bool _stopping;

    private KeywayProcess(KeywayProcessOptions options, string dataDirectory, string? ownedDirectory, string? databaseUrl, string? ownedDatabase)
    {
        _options = options;
        DataDirectory = dataDirectory;
        _ownedDirectory = ownedDirectory;
        _databaseUrl = databaseUrl;
        _ownedDatabase = ownedDatabase;
        _port = FreePort.Next();
        BaseUrl = $"http://127.0.0.1:{_port}";
    }

    /// <summary>The server's address, e.g. <c>http://127.0.0.1:41234</c> (no trailing slash).</summary>
    public string BaseUrl { get; }

    /// <summary>The <c>--data-dir</c> of the server; the same across <see cref="RestartAsync"/>.</summary>
    public string DataDirectory { get; }

    /// <summary>The <c>--database</c> URL, or null for the embedded SQLite store.</summary>
    public string? DatabaseUrl => _databaseUrl;

    /// <summary>The <c>KEYWAY_ADMIN_TOKEN</c> the test gave the server, if any.</summary>
    public string? AdminToken => _options.Environment.GetValueOrDefault("KEYWAY_ADMIN_TOKEN");

    /// <summary>The <c>KEYWAY_ADMIN_PASSWORD</c> the test gave the server, if any.</summary>
    public string? AdminPassword => _options.Environment.GetValueOrDefault("KEYWAY_ADMIN_PASSWORD");

    /// <summary>The id of the current server process.</summary>
    public int ProcessId => (_process ?? throw new InvalidOperationException("Not started.")).Id;

    /// <summary>Whether the current server process has exited.</summary>
    public bool HasExited => _process is null || _process.HasExited;

    /// <summary>Every stdout and stderr line so far, in arrival order (a snapshot).</summary>
    public IReadOnlyList<string> OutputLines
    {
        get
        {
            lock (_outputLock)
                return [.. _output];
        }
    }

    /// <summary>Every stdout and stderr line so far, joined with newlines.</summary>
    public string AllOutput => string.Join('\n', OutputLines);

    /// <summary>Starts a server on <paramref name="store"/>, with the given environment variables.</summary>
    public static Task<KeywayProcess> StartAsync(StoreKind store, IReadOnlyDictionary<string, string>? environment = null, CancellationToken cancellationToken = default) =>
        StartAsync(new KeywayProcessOptions { Store = store, Environment = environment ?? new Dictionary<string, string>() }, cancellationToken);

    /// <summary>Starts a server and waits until it is ready; throws with its output if it exits or is not ready in time.</summary>
    public static async Task<KeywayProcess> StartAsync(KeywayProcessOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new KeywayProcessOptions();
        var ownedDirectory = options.DataDirectory is null ? TestDirectories.Create("keyway") : null;
        var dataDirectory = options.DataDirectory ?? Path.Combine(ownedDirectory!, "data");
        Directory.CreateDirectory(dataDirectory);

        string? databaseUrl = options.DatabaseUrl;
        string? ownedDatabase = null;
        PostgresCluster? cluster = null;
        if (databaseUrl is null && options.Store == StoreKind.Postgres)
        {
            cluster = await PostgresCluster.GetSharedAsync();
            var database = await cluster.CreateDatabaseAsync(cancellationToken);
            databaseUrl = database.Url;
            ownedDatabase = database.Name;
        }

        var keyway = new KeywayProcess(options, dataDirectory, ownedDirectory, databaseUrl, ownedDatabase);
        try
        {
            await keyway.StartProcessAsync(cancellationToken);
            return keyway;
        }
        catch
        {
            await keyway.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Runs the CLI, <c>dotnet keyway.dll ARGS</c>, to completion. Only the given environment
    /// reaches it among <c>KEYWAY_*</c> variables (see <see cref="CliEnvironment"/>).
    /// </summary>
    public static Task<CommandResult> RunCliAsync(
        IEnumerable<string> arguments,
        IReadOnlyDictionary<string, string>? environment = null,
        string? standardInput = null,
        TimeSpan? timeout = null,
        CancellationToken cancellationToken = default) =>
        ProcessRunner.RunAsync(
            DotnetHost,
            [KeywayDll, .. arguments],
            ChildEnvironment(environment ?? new Dictionary<string, string>()),
            standardInput,
            timeout ?? TimeSpan.FromSeconds(60),
            TestDirectories.Root,
            cancellationToken);

    /// <summary>
    /// Writes an executable <c>keyway</c> into <paramref name="directory"/> that runs the built CLI
    /// (<c>dotnet keyway.dll "$@"</c>), so that a shell with that directory on PATH runs commands as a
    /// user types them; returns the directory.
    /// </summary>
    public static string WriteCliShim(string directory)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "keyway");
        File.WriteAllText(path, $"#!/bin/sh\nexec '{DotnetHost}' '{KeywayDll}' \"$@\"\n");
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return directory;
    }

    /// <summary>
    /// Runs a bash script with a <c>keyway</c> on PATH that is the built CLI (<see cref="WriteCliShim"/>),
    /// in <paramref name="workingDirectory"/>, with only the given <c>KEYWAY_*</c> variables.
    /// </summary>
    public static Task<CommandResult> RunShellAsync(string script, string workingDirectory, IReadOnlyDictionary<string, string>? environment = null, string? standardInput = null)
    {
        var bin = WriteCliShim(Path.Combine(workingDirectory, ".keyway-bin"));
        var variables = new Dictionary<string, string>(environment ?? new Dictionary<string, string>())
        {
            ["PATH"] = bin + ":" + System.Environment.GetEnvironmentVariable("PATH"),
        };
        return ProcessRunner.RunAsync("/bin/bash", ["-c", script], ChildEnvironment(variables), standardInput, TimeSpan.FromMinutes(3), workingDirectory);
    }

    /// <summary>The environment that points the CLI at this server: <c>KEYWAY_ADDR</c> and, if given, <c>KEYWAY_TOKEN</c>.</summary>
    public Dictionary<string, string> CliEnvironment(string? token = null)
    {
        var environment = new Dictionary<string, string> { ["KEYWAY_ADDR"] = BaseUrl };
        if (token is not null)
            environment["KEYWAY_TOKEN"] = token;
        return environment;
    }

    /// <summary>A fresh master key, as <c>KEYWAY_MASTER_KEY</c> takes it (base64 of 32 random bytes).</summary>
    public static string NewMasterKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>
    /// An HTTP client for this server (base address set; no proxy, no redirects followed, no
    /// cookie jar), sending <c>Authorization: Bearer <paramref name="token"/></c> when given.
    /// </summary>
    public HttpClient CreateClient(string? token = null)
    {
        var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, UseCookies = false })
        {
            BaseAddress = new Uri(BaseUrl + "/"),
        };
        if (token is not null)
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    /// <summary>A client authenticated with <see cref="AdminToken"/>.</summary>
    public HttpClient CreateAdminClient() =>
        CreateClient(AdminToken ?? throw new InvalidOperationException("Start the process with KEYWAY_ADMIN_TOKEN in its environment."));

    /// <summary>Kills the server at once (SIGKILL, whole process tree), as a crash would; returns its exit code.</summary>
    public async Task<int> KillAsync()
    {
        var process = _process ?? throw new InvalidOperationException("Not started.");
        _stopping = true;
        if (!process.HasExited)
            process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
        return process.ExitCode;
    }

    /// <summary>Stops the server gracefully (SIGTERM) and waits for it to exit; returns its exit code.</summary>
    public async Task<int> StopAsync(CancellationToken cancellationToken = default)
    {
        var process = _process ?? throw new InvalidOperationException("Not started.");
        _stopping = true;
        if (!process.HasExited && NativeMethods.Kill(process.Id, SigTerm) != 0 && !process.HasExited)
            throw new InvalidOperationException($"kill -TERM {process.Id} failed: errno {Marshal.GetLastPInvokeError()}.");

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_stopTimeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"keyway did not exit within {_stopTimeout.TotalSeconds} s of SIGTERM.\n{AllOutput}");
        }
        return process.ExitCode;
    }

    /// <summary>
    /// Starts the server again on the same data directory, database and port (stopping it
    /// gracefully first if it still runs) and waits until it is ready.
    /// </summary>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        if (!HasExited)
            await StopAsync(cancellationToken);
        _process?.Dispose();
        _process = null;
        await StartProcessAsync(cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _stopping = true;
        if (_process is not null)
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
            _process.Dispose();
            _process = null;
        }

        if (_ownedDatabase is not null)
        {
            var cluster = await PostgresCluster.GetSharedAsync();
            await cluster.DropDatabaseAsync(_ownedDatabase);
        }

        if (_ownedDirectory is not null)
            TestDirectories.DeleteQuietly(_ownedDirectory);
    }

    private async Task StartProcessAsync(CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo(DotnetHost)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
            WorkingDirectory = _ownedDirectory ?? TestDirectories.Root,
        };
        info.ArgumentList.Add(KeywayDll);
        foreach (var argument in (string[])["serve", "--data-dir", DataDirectory, "--urls", BaseUrl])
            info.ArgumentList.Add(argument);
        if (_databaseUrl is not null)
        {
            info.ArgumentList.Add("--database");
            info.ArgumentList.Add(_databaseUrl);
        }
        foreach (var argument in _options.ExtraArguments)
            info.ArgumentList.Add(argument);
        foreach (var (name, value) in ChildEnvironment(_options.Environment))
        {
            if (value is null)
                info.Environment.Remove(name);
            else
                info.Environment[name] = value;
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => AddOutput(e.Data);
        process.ErrorDataReceived += (_, e) => AddOutput(e.Data);
        process.Exited += (_, _) => ReportUnexpectedExit(process);
        _stopping = false;
        if (!process.Start())
            throw new InvalidOperationException("Could not start keyway.");
        _process = process;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.StandardInput.Close();

        await WaitUntilReadyAsync(process, cancellationToken);
    }

    private async Task WaitUntilReadyAsync(Process process, CancellationToken cancellationToken)
    {
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };
        var readyz = new Uri(BaseUrl + "/readyz");
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited)
            {
                await process.WaitForExitAsync(cancellationToken); // drains the output
                throw new InvalidOperationException(
                    $"keyway serve exited with code {process.ExitCode} before it was ready.\n{AllOutput}");
            }

            try
            {
                using var response = await client.GetAsync(readyz, cancellationToken);
                if (response.StatusCode == HttpStatusCode.OK)
                    return;
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // One probe timed out; the deadline below decides.
            }

            if (clock.Elapsed > _options.ReadyTimeout)
                throw new TimeoutException(
                    $"keyway serve was not ready (GET /readyz = 200) within {_options.ReadyTimeout.TotalSeconds} s.\n{AllOutput}");

            // Wake at once if the process dies; otherwise probe again shortly.
            using var nextProbe = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            nextProbe.CancelAfter(TimeSpan.FromMilliseconds(100));
            try
            {
                await process.WaitForExitAsync(nextProbe.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
            }
        }
    }

    /// <summary>
    /// A server that exits while no test stopped it fails every test that uses it afterwards with
    /// "connection refused", which says nothing of why. Its exit code and last lines go to a file
    /// that scripts/test.sh prints when the run fails.
    /// </summary>
    private void ReportUnexpectedExit(Process process)
    {
        if (_stopping)
            return;
        try
        {
            process.WaitForExit(); // drains the output
            var directory = Path.Combine(TestDirectories.Root, "unexpected-exits");
            Directory.CreateDirectory(directory);
            var lines = OutputLines;
            var report = $"keyway serve on {BaseUrl} (pid {process.Id}) exited with code {process.ExitCode} while tests were using it. Its last output:\n" +
                string.Join('\n', lines.Skip(Math.Max(0, lines.Count - 60)));
            File.WriteAllText(Path.Combine(directory, $"keyway-{_port}-{process.Id}.log"), report);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            // A report is a courtesy: never fail the run over it.
        }
    }

    private void AddOutput(string? line)
    {
        if (line is null)
            return;
        lock (_outputLock)
            _output.Add(line);
    }

    /// <summary>
    /// The child's environment: the runner's own <c>KEYWAY_*</c> and URL variables removed (a
    /// developer's shell must not change a test), workstation GC (many servers share 2 cores),
    /// loopback allowed (<see cref="KeywayProcessOptions.LoopbackAllow"/>: the tests' upstreams listen
    /// there), then the test's variables, which may replace it.
    /// </summary>
    internal static List<KeyValuePair<string, string?>> ChildEnvironment(IReadOnlyDictionary<string, string> environment)
    {
        var result = new List<KeyValuePair<string, string?>>();
        foreach (var name in System.Environment.GetEnvironmentVariables().Keys.Cast<string>())
        {
            if (name.StartsWith("KEYWAY_", StringComparison.OrdinalIgnoreCase)
                || name is "ASPNETCORE_URLS" or "DOTNET_URLS" or "ASPNETCORE_HTTP_PORTS" or "ASPNETCORE_HTTPS_PORTS")
                result.Add(new(name, null));
        }
        result.Add(new("DOTNET_gcServer", "0"));
        result.Add(new("KEYWAY_OUTBOUND_ALLOW", KeywayProcessOptions.LoopbackAllow));
        foreach (var (name, value) in environment)
            result.Add(new(name, value));
        return result;
    }

    /// <summary>The built server, copied next to the tests by the project reference.</summary>
    private static string KeywayDll
    {
        get
        {
            var path = Path.Combine(AppContext.BaseDirectory, "keyway.dll");
            return File.Exists(path)
                ? path
                : throw new FileNotFoundException($"keyway.dll is not next to the tests ({AppContext.BaseDirectory}); build Keyway.slnx first.", path);
        }
    }

    /// <summary>The dotnet host running these tests, else the one on PATH.</summary>
    private static string DotnetHost
    {
        get
        {
            var current = System.Environment.ProcessPath;
            if (current is not null && Path.GetFileNameWithoutExtension(current) == "dotnet")
                return current;
            var hostPath = System.Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
            return string.IsNullOrEmpty(hostPath) ? "dotnet" : hostPath;
        }
    }

    private static class NativeMethods
    {
        [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
        public static extern int Kill(int pid, int signal);
    }
}

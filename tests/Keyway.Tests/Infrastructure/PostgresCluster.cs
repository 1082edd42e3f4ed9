using System.Diagnostics;
using System.Globalization;
using Npgsql;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// One throwaway PostgreSQL cluster for the whole test run: initdb into a scratch directory,
/// started on a free port of 127.0.0.1 with durability off, stopped (pg_ctl stop -m immediate)
/// and deleted when the run ends. Tests reach it through <see cref="PostgresServer"/>.
/// </summary>
internal sealed class PostgresCluster : IDisposable
{
    public const string UserName = "keyway";
    public const string Host = "127.0.0.1";

    private static readonly Lazy<Task<PostgresCluster>> _shared = new(StartSharedAsync);
    private static readonly TimeSpan _startTimeout = TimeSpan.FromSeconds(30);

    private readonly string _binDirectory;
    private readonly string _directory;
    private readonly bool _runAsPostgresUser;
    private readonly Lock _stopLock = new();
    private Process? _reaper;
    private int _databaseCount;
    private bool _stopped;
    private bool _durableCommits;

    private PostgresCluster(string binDirectory, string directory, bool runAsPostgresUser)
    {
        _binDirectory = binDirectory;
        _directory = directory;
        _runAsPostgresUser = runAsPostgresUser;
    }

    public int Port { get; private set; }

    /// <summary>How long initdb plus start took, for the curious.</summary>
    public TimeSpan StartDuration { get; private set; }

    private string DataDirectory => Path.Combine(_directory, "data");

    private string SocketDirectory => Path.Combine(_directory, "sock");

    private string LogFile => Path.Combine(_directory, "postgres.log");

    /// <summary>A connection string for the maintenance database <c>postgres</c>.</summary>
    public string AdminConnectionString => ConnectionStringFor("postgres");

    /// <summary>The cluster of this test run, started on first use.</summary>
    public static Task<PostgresCluster> GetSharedAsync() => _shared.Value;

    /// <summary>
    /// A cluster of the caller's own, for a test that stops and starts PostgreSQL under running
    /// replicas (<see cref="CrashAsync"/>, <see cref="StartAgainAsync"/>). The caller disposes it.
    /// </summary>
    public static async Task<PostgresCluster> StartOwnAsync()
    {
        // A crash must not lose what was committed: commits wait for their WAL (which survives the process; fsync stays off).
        var cluster = await StartAsync(durableCommits: true);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => cluster.Dispose();
        return cluster;
    }

    /// <summary>Whether the cluster is down after <see cref="CrashAsync"/>.</summary>
    public bool IsDown { get; private set; }

    /// <summary>
    /// Stops PostgreSQL the way a crash does (<c>pg_ctl stop -m immediate</c>: every backend quits at
    /// once, open connections break, nothing is flushed politely) and returns once nothing listens.
    /// </summary>
    public async Task CrashAsync()
    {
        var stop = await RunAsync("pg_ctl", ["stop", "-D", DataDirectory, "-m", "immediate", "-w", "-t", "10"], TimeSpan.FromSeconds(15));
        if (stop.ExitCode != 0)
            KillPostmaster();
        IsDown = true;
        await Poll.UntilAsync(async () => !await CanConnectAsync(), TimeSpan.FromSeconds(10), "PostgreSQL to stop accepting connections");
    }

    /// <summary>Starts the cluster again on the same port after <see cref="CrashAsync"/> (crash recovery runs) and waits until it accepts connections.</summary>
    public async Task StartAgainAsync()
    {
        var failure = await TryStartOnAsync(Port);
        if (failure is not null)
            throw new InvalidOperationException($"PostgreSQL did not start again on port {Port}:\n{failure}");
        IsDown = false;
    }

    /// <summary>Stops the shared cluster if it was started. Called when the test run ends.</summary>
    public static void StopShared()
    {
        if (_shared.IsValueCreated && _shared.Value.IsCompletedSuccessfully)
            _shared.Value.Result.Dispose();
    }

    public string ConnectionStringFor(string database) =>
        new NpgsqlConnectionStringBuilder
        {
            Host = Host,
            Port = Port,
            Username = UserName,
            Database = database,
            // Databases are dropped WITH (FORCE); pooled connections to them would only break later.
            Pooling = false,
        }.ConnectionString;

    public string UrlFor(string database) => $"postgres://{UserName}@{Host}:{Port}/{database}";

    public async Task<PostgresDatabase> CreateDatabaseAsync(CancellationToken cancellationToken = default)
    {
        var name = $"keyway_{Interlocked.Increment(ref _databaseCount)}_{Guid.NewGuid().ToString("N")[..8]}";
        await using (var connection = new NpgsqlConnection(AdminConnectionString))
        {
            await connection.OpenAsync(cancellationToken);
            await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
            await command.ExecuteNonQueryAsync(cancellationToken);
        }
        return new PostgresDatabase(name, ConnectionStringFor(name), UrlFor(name));
    }

    public async Task DropDatabaseAsync(string name, CancellationToken cancellationToken = default)
    {
        await using var connection = new NpgsqlConnection(AdminConnectionString);
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{name.Replace("\"", "\"\"", StringComparison.Ordinal)}\" WITH (FORCE)", connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Kills the cluster (immediate shutdown) and deletes its files. Synchronous: it runs at process exit.</summary>
    public void Dispose()
    {
        // The run's end and process exit may both call this; the second waits for the first.
        lock (_stopLock)
        {
            if (_stopped)
                return;
            _stopped = true;
            Stop();
        }
    }

    private void Stop()
    {
        try
        {
            var stop = RunAsync("pg_ctl", ["stop", "-D", DataDirectory, "-m", "immediate", "-w", "-t", "10"], TimeSpan.FromSeconds(15))
                .GetAwaiter().GetResult();
            if (stop.ExitCode != 0)
                KillPostmaster();
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            KillPostmaster();
        }
        if (_reaper is null)
        {
            TestDirectories.DeleteQuietly(_directory);
        }
        else
        {
            // Deleting 50 MB of cluster files can outlast the test host's exit: the reaper does it.
            _reaper.StandardInput.Close();
            _reaper.Dispose();
        }
    }

    /// <summary>
    /// Starts a detached shell that waits for end-of-file on a pipe only this process holds,
    /// then stops the cluster and deletes its directory. The pipe closes however the test host
    /// ends (even SIGKILL), so no postgres outlives the run; setsid puts the reaper outside the
    /// test host's process tree so killing the tree does not take it along.
    /// </summary>
    private void StartReaper()
    {
        const string script = """
            exec >/dev/null 2>&1
            cat
            "$@" stop -D "$DATA" -m immediate -w -t 10
            rm -rf "$DIR"
            """;
        var info = new ProcessStartInfo("setsid")
        {
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        info.Environment["DATA"] = DataDirectory;
        info.Environment["DIR"] = _directory;
        foreach (var argument in (string[])["-f", "sh", "-c", script, "keyway-pg-reaper"])
            info.ArgumentList.Add(argument);
        if (_runAsPostgresUser)
        {
            foreach (var argument in (string[])["runuser", "-u", "postgres", "--"])
                info.ArgumentList.Add(argument);
        }
        info.ArgumentList.Add(Path.Combine(_binDirectory, "pg_ctl"));
        _reaper = Process.Start(info);
    }

    private void KillPostmaster()
    {
        try
        {
            var pidLine = File.ReadLines(Path.Combine(DataDirectory, "postmaster.pid")).FirstOrDefault();
            if (int.TryParse(pidLine, NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                using var postmaster = Process.GetProcessById(pid);
                postmaster.Kill(entireProcessTree: true);
            }
        }
        catch (Exception e) when (e is IOException or ArgumentException or InvalidOperationException)
        {
            // No pid file or no such process: nothing is left to stop.
        }
    }

    private static async Task<PostgresCluster> StartSharedAsync()
    {
        var cluster = await StartAsync();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => cluster.Dispose();
        return cluster;
    }

    private static async Task<PostgresCluster> StartAsync(bool durableCommits = false)
    {
        var clock = Stopwatch.StartNew();
        var binDirectory = FindBinDirectory();
        var runAsPostgresUser = IsRoot();
        var directory = TestDirectories.Create("pg");
        var cluster = new PostgresCluster(binDirectory, directory, runAsPostgresUser) { _durableCommits = durableCommits };
        try
        {
            Directory.CreateDirectory(cluster.SocketDirectory);
            cluster.StartReaper();
            if (runAsPostgresUser)
            {
                // initdb refuses to run as root; the Debian package creates the postgres user.
                var chown = await ProcessRunner.RunAsync("chown", ["-R", "postgres:postgres", directory]);
                if (chown.ExitCode != 0)
                    throw new InvalidOperationException($"chown postgres {directory} failed:\n{chown.Output}");
            }

            var initdb = await cluster.RunAsync("initdb",
                ["-D", cluster.DataDirectory, "-U", UserName, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                TimeSpan.FromSeconds(60));
            if (initdb.ExitCode != 0)
                throw new InvalidOperationException($"initdb failed:\n{initdb.Output}");

            // A port found free may be taken before postgres binds it: try a few.
            for (var attempt = 1; ; attempt++)
            {
                var started = await cluster.TryStartOnAsync(FreePort.Next());
                if (started is null)
                    break;
                if (attempt == 3)
                    throw new InvalidOperationException($"PostgreSQL did not start:\n{started}");
            }

            cluster.StartDuration = clock.Elapsed;
            return cluster;
        }
        catch
        {
            cluster.Dispose();
            throw;
        }
    }

    /// <summary>Starts postgres on <paramref name="port"/> and waits until it accepts connections; returns null or the failure.</summary>
    private async Task<string?> TryStartOnAsync(int port)
    {
        Port = port;
        var options = string.Join(' ',
            "-c listen_addresses=127.0.0.1",
            $"-c port={port}",
            $"-c unix_socket_directories='{SocketDirectory}'",
            "-c fsync=off",
            _durableCommits ? "-c synchronous_commit=on" : "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=300",
            "-c shared_buffers=64MB");
        var start = await RunAsync("pg_ctl",
            ["start", "-D", DataDirectory, "-l", LogFile, "-o", options, "-w", "-t", ((int)_startTimeout.TotalSeconds).ToString(CultureInfo.InvariantCulture)],
            _startTimeout + TimeSpan.FromSeconds(5));
        if (start.ExitCode != 0)
            return start.Output + ReadLog();

        try
        {
            await Poll.UntilAsync(CanConnectAsync, _startTimeout, $"PostgreSQL to accept connections on 127.0.0.1:{port}");
            return null;
        }
        catch (TimeoutException e)
        {
            KillPostmaster();
            return e.Message + "\n" + ReadLog();
        }
    }

    private async Task<bool> CanConnectAsync()
    {
        try
        {
            await using var connection = new NpgsqlConnection(AdminConnectionString);
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand("SELECT 1", connection);
            await command.ExecuteScalarAsync();
            return true;
        }
        catch (NpgsqlException)
        {
            return false;
        }
    }

    private string ReadLog()
    {
        try
        {
            return File.ReadAllText(LogFile);
        }
        catch (IOException)
        {
            return "(no postgres log)";
        }
    }

    private Task<CommandResult> RunAsync(string tool, IReadOnlyList<string> arguments, TimeSpan timeout)
    {
        var path = Path.Combine(_binDirectory, tool);
        return _runAsPostgresUser
            ? ProcessRunner.RunAsync("runuser", ["-u", "postgres", "--", path, .. arguments], timeout: timeout)
            : ProcessRunner.RunAsync(path, arguments, timeout: timeout);
    }

    private static bool IsRoot() => Environment.UserName == "root";

    /// <summary>The newest /usr/lib/postgresql/N/bin, else the directory of initdb on PATH.</summary>
    private static string FindBinDirectory()
    {
        const string debianRoot = "/usr/lib/postgresql";
        if (Directory.Exists(debianRoot))
        {
            var newest = Directory.EnumerateDirectories(debianRoot)
                .Select(d => (Directory: Path.Combine(d, "bin"), Version: Version.TryParse(NormalizeVersion(Path.GetFileName(d)), out var v) ? v : null))
                .Where(c => c.Version is not null && File.Exists(Path.Combine(c.Directory, "initdb")) && File.Exists(Path.Combine(c.Directory, "pg_ctl")))
                .OrderByDescending(c => c.Version)
                .Select(c => c.Directory)
                .FirstOrDefault();
            if (newest is not null)
                return newest;
        }

        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            if (File.Exists(Path.Combine(directory, "initdb")) && File.Exists(Path.Combine(directory, "pg_ctl")))
                return directory;
        }

        throw new InvalidOperationException(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found under /usr/lib/postgresql/*/bin or on PATH. " +
            "Run the tests with scripts/test.sh, which installs them (apt-get install postgresql).");
    }

    // "15" is not a System.Version; "15.0" is.
    private static string NormalizeVersion(string name) => name.Contains('.', StringComparison.Ordinal) ? name : name + ".0";
}

/// <summary>A database created for one test class or one Keyway process.</summary>
/// <param name="Name">The database name.</param>
/// <param name="ConnectionString">An Npgsql connection string: <c>Host=127.0.0.1;Port=…;Username=keyway;Database=…</c>.</param>
/// <param name="Url">The same database as a URL, <c>postgres://keyway@127.0.0.1:port/name</c>, as <c>keyway serve --database</c> takes it.</param>
public sealed record PostgresDatabase(string Name, string ConnectionString, string Url);

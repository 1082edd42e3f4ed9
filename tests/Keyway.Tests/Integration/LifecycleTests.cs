using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Integration;

/// <summary>Starting, stopping and restarting real Keyway processes: data survives, keys are checked.</summary>
[Trait("Category", "Integration")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed partial class LifecycleTests
{
    [Theory]
    [MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task Data_survives_a_restart_and_a_wrong_master_key_is_refused_without_loss(StoreKind store)
    {
        await using var upstream = await UpstreamServer.StartAsync();
        var masterKey = KeywayProcess.NewMasterKey();
        await using var keyway = await KeywayProcess.StartAsync(store, new Dictionary<string, string>
        {
            ["KEYWAY_ADMIN_TOKEN"] = "kw_lifecycle_" + Guid.NewGuid().ToString("N"),
            ["KEYWAY_MASTER_KEY"] = masterKey,
        });
        using (var admin = keyway.CreateAdminClient())
        {
            await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/environments/production/variables/KEEP", new { value = "kept-token", secret = true }), 200);
            await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/kept", new { baseUrl = upstream.BaseUrl, auth = new { type = "bearer", token = "{{ environment.variables.KEEP }}" } }));
        }

        Assert.Equal(0, await keyway.StopAsync());
        var wrongKey = KeywayProcess.NewMasterKey();
        var serve = new List<string> { "serve", "--data-dir", keyway.DataDirectory, "--urls", $"http://127.0.0.1:{FreePort.Next()}" };
        if (keyway.DatabaseUrl is not null)
        {
            serve.AddRange(["--database", keyway.DatabaseUrl]);
        }

        var refused = await KeywayProcess.RunCliAsync(serve, new Dictionary<string, string> { ["KEYWAY_MASTER_KEY"] = wrongKey });

        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("master key", refused.StandardError, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(wrongKey, refused.Output);
        Assert.DoesNotContain(masterKey, refused.Output);

        await keyway.RestartAsync();
        using var again = keyway.CreateAdminClient();
        await Expect.StatusAsync(await again.PostAsJsonAsync("/api/v1/resources/kept/run", new { path = "/after-restart" }), 200);
        Assert.Equal("Bearer kept-token", upstream.Requests.Single(r => r.Path == "/after-restart").Headers["Authorization"]);
    }

    [Fact]
    public async Task First_start_generates_a_private_master_key_and_prints_the_admin_credentials_once()
    {
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite);

        var keyFile = Path.Combine(keyway.DataDirectory, "master.key");
        Assert.True(File.Exists(keyFile));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));
        var token = AdminKeyLine().Match(keyway.AllOutput).Groups["token"].Value;
        Assert.StartsWith("kw_", token);
        Assert.Contains("admin password:", keyway.AllOutput);
        using (var admin = keyway.CreateClient(token))
        {
            await Expect.StatusAsync(await admin.GetAsync("/api/v1/resources"), 200);
        }

        await keyway.RestartAsync();

        Assert.Single(AdminKeyLine().Matches(keyway.AllOutput));
        using var afterRestart = keyway.CreateClient(token);
        await Expect.StatusAsync(await afterRestart.GetAsync("/api/v1/resources"), 200);
    }

    [Fact]
    public async Task A_master_key_file_readable_by_others_is_refused_at_start()
    {
        var directory = TestDirectories.Create("loose-key");
        try
        {
            var keyFile = Path.Combine(directory, "master.key");
            await File.WriteAllTextAsync(keyFile, KeywayProcess.NewMasterKey());
            File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

            var result = await KeywayProcess.RunCliAsync(["serve", "--data-dir", directory, "--urls", $"http://127.0.0.1:{FreePort.Next()}"]);

            Assert.NotEqual(0, result.ExitCode);
            Assert.Contains("chmod 600", result.StandardError);
        }
        finally
        {
            TestDirectories.DeleteQuietly(directory);
        }
    }

    [Fact]
    public async Task A_denied_destination_is_refused_at_connect_time_by_runs_and_the_proxy()
    {
        await using var keyway = await KeywayProcess.StartAsync(new KeywayProcessOptions
        {
            Environment = new Dictionary<string, string>
            {
                ["KEYWAY_ADMIN_TOKEN"] = "kw_deny_" + Guid.NewGuid().ToString("N"),
                ["KEYWAY_OUTBOUND_DENY"] = "127.0.0.2/32",
            },
        });
        using var admin = keyway.CreateAdminClient();
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/denied", new { baseUrl = $"http://127.0.0.2:{FreePort.Next()}" }));

        var run = await Expect.ProblemAsync(await admin.PostAsJsonAsync("/api/v1/resources/denied/run", new { path = "/x" }), 403, "destination_denied");
        await Expect.ProblemAsync(await admin.GetAsync("/proxy/denied/x"), 403, "destination_denied");

        Assert.Contains("127.0.0.2", (string?)run["detail"]);
    }

    [Fact]
    public async Task KEYWAY_METRICS_all_adds_request_metrics_and_a_wrong_value_stops_the_start()
    {
        await using var keyway = await KeywayProcess.StartAsync(new KeywayProcessOptions
        {
            Environment = new Dictionary<string, string>
            {
                ["KEYWAY_ADMIN_TOKEN"] = "kw_metrics_" + Guid.NewGuid().ToString("N"),
                ["KEYWAY_METRICS"] = "all",
            },
        });
        using var anonymous = keyway.CreateClient();
        Assert.Equal("ok", await anonymous.GetStringAsync("/healthz"));

        // ASP.NET Core records the /healthz request above; the exporter may serve a scrape cached from before it.
        await Poll.UntilAsync(async () => (await anonymous.GetStringAsync("/metrics")).Contains("http_server_request_duration_seconds", StringComparison.Ordinal),
            TimeSpan.FromSeconds(15), "http_server_request_duration_seconds on /metrics");

        var refused = await KeywayProcess.RunCliAsync(["serve", "--data-dir", keyway.DataDirectory, "--urls", $"http://127.0.0.1:{FreePort.Next()}"],
            new Dictionary<string, string> { ["KEYWAY_METRICS"] = "everything" });
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("KEYWAY_METRICS must be all, keyway or none", refused.StandardError);
    }

    [Fact]
    public async Task KEYWAY_LOG_FORMAT_json_writes_every_line_from_the_first_migration_on_as_a_stamped_JSON_object()
    {
        await using var keyway = await KeywayProcess.StartAsync(new KeywayProcessOptions
        {
            Environment = new Dictionary<string, string>
            {
                // Both seeded, so the one-time credentials block (plain text by design) is not printed.
                ["KEYWAY_ADMIN_TOKEN"] = "kw_json_" + Guid.NewGuid().ToString("N"),
                ["KEYWAY_ADMIN_PASSWORD"] = "json-logs-" + Guid.NewGuid().ToString("N"),
                ["KEYWAY_LOG_FORMAT"] = "json",
            },
        });

        // The host logs where it listens after the store, the keys and the bootstrap: every line before it is out by then.
        await Poll.UntilAsync(() => keyway.OutputLines.Any(l => l.Contains("Now listening on", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(15), "the host's listening line");
        var lines = keyway.OutputLines.Where(l => l.Length > 0).ToList();
        Assert.Contains(lines, l => l.Contains("\"Category\":\"Keyway.Storage.Migrator\"", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.Contains("\"Category\":\"Keyway.Startup\"", StringComparison.Ordinal));
        foreach (var line in lines)
        {
            using var json = System.Text.Json.JsonDocument.Parse(line);
            var root = json.RootElement;
            Assert.True(root.TryGetProperty("Timestamp", out var at) && DateTimeOffset.TryParse(at.GetString(), out _), line);
            Assert.True(root.TryGetProperty("LogLevel", out _) && root.TryGetProperty("Category", out _) && root.TryGetProperty("Message", out _), line);
        }
    }

    [Fact]
    public async Task Serve_restarts_in_place_with_a_small_allocation_budget_and_keeps_an_operators_own()
    {
        await using var tuned = await KeywayProcess.StartAsync(new KeywayProcessOptions
        {
            Environment = new Dictionary<string, string> { ["KEYWAY_ADMIN_TOKEN"] = "kw_tuning_" + Guid.NewGuid().ToString("N") },
        });
        using (var client = tuned.CreateClient())
        {
            Assert.Equal("ok", await client.GetStringAsync("/healthz"));
        }

        // The process that answers is the one started (execve keeps the pid), now with the budget set,
        // under its own name, and with one diagnostics socket that a tool can connect to.
        Assert.Contains("DOTNET_GCgen0size=0x400000", EnvironmentOf(tuned.ProcessId));
        Assert.Contains("admin", tuned.AllOutput, StringComparison.Ordinal);
        Assert.Contains("Garbage collector: generation-0 budget 0x400000 (DOTNET_GCgen0size", tuned.AllOutput, StringComparison.Ordinal);
        Assert.Equal("dotnet", File.ReadAllText($"/proc/{tuned.ProcessId}/comm").Trim());
        var socket = Assert.Single(Directory.GetFiles(Path.GetTempPath(), $"dotnet-diagnostic-{tuned.ProcessId}-*-socket"));
        using (var diagnostics = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified))
        {
            await diagnostics.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(socket));
            Assert.True(diagnostics.Connected);
        }

        await using var own = await KeywayProcess.StartAsync(new KeywayProcessOptions
        {
            Environment = new Dictionary<string, string>
            {
                ["KEYWAY_ADMIN_TOKEN"] = "kw_tuning_" + Guid.NewGuid().ToString("N"),
                ["DOTNET_GCgen0size"] = "0",
            },
        });
        using (var client = own.CreateClient())
        {
            Assert.Equal("ok", await client.GetStringAsync("/healthz"));
        }

        var environment = EnvironmentOf(own.ProcessId);
        Assert.Contains("DOTNET_GCgen0size=0", environment);
        Assert.DoesNotContain("DOTNET_GCgen0size=0x400000", environment);
    }

    [Fact]
    public async Task A_taken_port_stops_the_start_with_one_clear_error()
    {
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port;
        var directory = TestDirectories.Create("port-taken");
        try
        {
            var refused = await KeywayProcess.RunCliAsync(["serve", "--data-dir", directory, "--urls", $"http://127.0.0.1:{port}"],
                new Dictionary<string, string> { ["KEYWAY_ADMIN_TOKEN"] = "kw_port_" + Guid.NewGuid().ToString("N") });

            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains($"keyway: cannot start: http://127.0.0.1:{port} is already in use", refused.StandardError);
            Assert.Contains("Choose another address with --urls.", refused.StandardError);
            Assert.DoesNotContain("   at ", refused.Output);
            Assert.DoesNotContain("fail:", refused.Output);
            Assert.DoesNotContain("BackgroundService failed", refused.Output);
            Assert.DoesNotContain("crit:", refused.Output);
        }
        finally
        {
            TestDirectories.DeleteQuietly(directory);
        }
    }

    [Fact]
    public async Task The_script_engine_loads_only_once_a_template_needs_a_script_and_the_PostgreSQL_driver_never_on_SQLite()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        await using var keyway = await KeywayProcess.StartAsync(new KeywayProcessOptions
        {
            Environment = new Dictionary<string, string> { ["KEYWAY_ADMIN_TOKEN"] = "kw_jint_" + Guid.NewGuid().ToString("N") },
        });
        using var admin = keyway.CreateAdminClient();
        await Expect.StatusAsync(await admin.PutAsJsonAsync("/api/v1/environments/production/variables/TOKEN", new { value = "member-path-token", secret = true }), 200);
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/paths", new { baseUrl = upstream.BaseUrl, auth = new { type = "bearer", token = "{{ environment.variables.TOKEN }}" } }));
        Assert.Equal("[REDACTED]", await admin.GetStringAsync("/proxy/paths/echo-header/Authorization"));

        // Member paths only, configured and used: Jint and its parser are not in the process, nor is
        // the PostgreSQL driver on SQLite.
        Assert.DoesNotContain(LoadedFiles(keyway.ProcessId), f =>
            f.EndsWith("/Jint.dll", StringComparison.Ordinal) || f.EndsWith("/Acornima.dll", StringComparison.Ordinal) || f.EndsWith("/Npgsql.dll", StringComparison.Ordinal));

        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/queries/shout", new { resource = "paths", path = "/anything", query = new Dictionary<string, string> { ["q"] = "{{ inputs.word.toUpperCase() }}" } }));
        await Expect.SuccessAsync(await admin.PostAsJsonAsync("/api/v1/queries/shout/run", new { inputs = new { word = "hi" } }));
        Assert.Contains(LoadedFiles(keyway.ProcessId), f => f.EndsWith("/Jint.dll", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Serve_once_ready_and_proxying_maps_neither_Dapper_nor_the_XML_reader_nor_expression_trees()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        await using var keyway = await KeywayProcess.StartAsync(new KeywayProcessOptions
        {
            Environment = new Dictionary<string, string> { ["KEYWAY_ADMIN_TOKEN"] = "kw_mapper_" + Guid.NewGuid().ToString("N") },
        });
        using var admin = keyway.CreateAdminClient();
        await Expect.SuccessAsync(await admin.PutAsJsonAsync("/api/v1/resources/plain", new { baseUrl = upstream.BaseUrl }));
        using var request = new HttpRequestMessage(HttpMethod.Get, "/proxy/plain/echo-header/X-Probe") { Headers = { { "X-Probe", "proxied" } } };
        using var proxied = await admin.SendAsync(request);
        Assert.Equal("proxied", await proxied.Content.ReadAsStringAsync());

        // Dapper's static constructor loaded System.Xml.ReaderWriter, System.Private.Xml and, for its
        // emitted row readers, System.Linq.Expressions and System.Reflection.Emit. The store is read
        // without it now, and the API's access filter is one instance (AddEndpointFilter<T>() compiled
        // an expression to make it). Data Protection reads its XML key ring when a console session
        // first needs it, not at start (SignIn/SignInSetup), so System.Private.Xml stays out too. Still
        // mapped: System.Private.Xml.Linq (Data Protection's types name XElement), and
        // System.Reflection.Emit, by the DI container's IL-emitting service resolver.
        Assert.DoesNotContain(LoadedFiles(keyway.ProcessId), f =>
            f.EndsWith("/Dapper.dll", StringComparison.Ordinal) || f.EndsWith("/System.Xml.ReaderWriter.dll", StringComparison.Ordinal)
            || f.EndsWith("/System.Private.Xml.dll", StringComparison.Ordinal) || f.EndsWith("/System.Linq.Expressions.dll", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_unreachable_PostgreSQL_stops_the_start_with_a_clear_error()
    {
        var directory = TestDirectories.Create("store-unreachable");
        try
        {
            var refused = await KeywayProcess.RunCliAsync(
                ["serve", "--data-dir", directory, "--urls", $"http://127.0.0.1:{FreePort.Next()}", "--database", $"postgres://keyway@127.0.0.1:{FreePort.Next()}/keyway"]);

            Assert.NotEqual(0, refused.ExitCode);
            Assert.Contains("keyway: cannot open the store:", refused.StandardError);
            Assert.DoesNotContain("Unhandled exception", refused.Output);
        }
        finally
        {
            TestDirectories.DeleteQuietly(directory);
        }
    }

    // The files mapped into the process: an assembly .NET has loaded is one of them.
    private static string[] LoadedFiles(int processId) =>
        [.. File.ReadLines($"/proc/{processId}/maps").Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length >= 6).Select(f => f[5]).Distinct()];

    // What the kernel holds as the process's environment: what execve gave it, not what it started with.
    private static string[] EnvironmentOf(int processId) =>
        File.ReadAllText($"/proc/{processId}/environ").Split('\0', StringSplitOptions.RemoveEmptyEntries);

    [GeneratedRegex(@"admin API key:\s+(?<token>kw_\S+)")]
    private static partial Regex AdminKeyLine();
}

using Keyway.Access;
using Keyway.Audit;
using Keyway.Hosting;
using Keyway.Resources;
using Keyway.Secrets;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Keyway.Tests.Audit;

public sealed class TrafficRollupTests
{
    // 10 s into a minute: the first 60 s interval closes 50 s later.
    private static readonly DateTimeOffset s_start = new(2026, 3, 2, 9, 15, 10, TimeSpan.Zero);
    private static readonly Caller s_ana = new("u_ana", "ana", Caller.MemberRole, "k_ana", null);
    private static readonly Caller s_bo = new("u_bo", "bo", Caller.MemberRole, "k_bo", null);
    private static readonly Caller s_session = new("u_cy", "cy", Caller.AdminRole, null, null);

    private static TrafficRollup NewRollup(IAuditLog audit, TimeProvider time, TimeSpan? interval = null) =>
        new(audit, new TrafficOptions { Interval = interval ?? TrafficOptions.DefaultInterval }, time, NullLogger<TrafficRollup>.Instance);

    private static RunDetail Run(int? status, long durationMs, string? error = null, bool refreshed = false, string method = "GET") =>
        new("proxy", method, "/items", status, durationMs, refreshed, error);

    private static long Ms(DateTimeOffset at) => at.ToUnixTimeMilliseconds();

    private static IReadOnlyDictionary<string, object?> DetailOf(AuditEntry entry) => entry.Detail!;

    [Fact]
    public async Task The_interval_closing_on_the_clock_records_one_event_per_key_with_its_count_bytes_times_and_slowest()
    {
        var time = new FakeTimeProvider(s_start);
        var audit = new RecordingAuditLog();
        using var rollup = NewRollup(audit, time);
        await rollup.StartAsync(CancellationToken.None);

        rollup.Add(s_ana, "billing", "production", null, Run(200, 12), Ms(s_start.AddSeconds(1)), 10, 100);
        rollup.Add(s_ana, "billing", "production", null, Run(204, 40, refreshed: true), Ms(s_start.AddSeconds(2)), null, 50);
        rollup.Add(s_ana, "billing", "production", null, Run(201, 7), Ms(s_start.AddSeconds(30)), 5, null);
        rollup.Add(s_ana, "billing", "production", null, Run(404, 3), Ms(s_start.AddSeconds(3)), null, null);
        rollup.Add(s_ana, "billing", "production", null, Run(null, 30_000, "upstream_timeout"), Ms(s_start.AddSeconds(4)), null, null);
        rollup.Add(s_ana, "billing", "production", null, Run(null, 9, "upstream_unreachable"), Ms(s_start.AddSeconds(5)), null, null);
        rollup.Add(s_ana, "billing", "production", null, Run(null, 8, "upstream_timeout"), Ms(s_start.AddSeconds(6)), null, null);
        rollup.Add(s_bo, "billing", "production", null, Run(200, 1), Ms(s_start.AddSeconds(7)), null, null);
        rollup.Add(s_ana, "billing", "staging", null, Run(200, 1), Ms(s_start.AddSeconds(8)), null, null);
        rollup.Add(s_ana, "billing", "production", null, Run(200, 1, method: "POST"), Ms(s_start.AddSeconds(9)), null, null);
        Assert.Empty(audit.Entries);

        time.Advance(TimeSpan.FromSeconds(49));
        Assert.Empty(audit.Entries);
        time.Advance(TimeSpan.FromSeconds(1));
        await Poll.UntilAsync(() => audit.Entries.Count == 6, TimeSpan.FromSeconds(10), "six rollup events");

        Assert.All(audit.Entries, e => Assert.Equal(TrafficRollup.Action, e.Action));
        Assert.All(audit.Entries, e => Assert.Equal("2026-03-02T09:15:00.0000000Z", Format(DetailOf(e)["intervalStart"])));
        Assert.All(audit.Entries, e => Assert.Equal("2026-03-02T09:16:00.0000000Z", Format(DetailOf(e)["intervalEnd"])));
        var ok = Assert.Single(audit.Entries, e => e.Actor == s_ana && e.Environment == "production" && (string?)DetailOf(e)["method"] == "GET" &&
                                                   (string?)DetailOf(e)["statusClass"] == "2xx");
        Assert.Equal(AuditOutcome.Success, ok.Outcome);
        Assert.Equal("billing", ok.Resource);
        Assert.Equal("proxy", DetailOf(ok)["kind"]);
        Assert.Equal(3L, DetailOf(ok)["count"]);
        Assert.Equal(15L, DetailOf(ok)["bytesIn"]);
        Assert.Equal(150L, DetailOf(ok)["bytesOut"]);
        Assert.Equal("2026-03-02T09:15:11.0000000Z", Format(DetailOf(ok)["firstAt"]));
        Assert.Equal("2026-03-02T09:15:40.0000000Z", Format(DetailOf(ok)["lastAt"]));
        Assert.Equal(40L, DetailOf(ok)["slowestMs"]);
        Assert.Equal(1L, DetailOf(ok)["refreshed"]);
        Assert.Equal(0L, DetailOf(ok)["errors"]);
        Assert.False(DetailOf(ok).ContainsKey("errorCodes"));

        var failed = Assert.Single(audit.Entries, e => (string?)DetailOf(e)["statusClass"] == "error");
        Assert.Equal(AuditOutcome.Failure, failed.Outcome);
        Assert.Equal(3L, DetailOf(failed)["count"]);
        Assert.Equal(3L, DetailOf(failed)["errors"]);
        Assert.Equal(30_000L, DetailOf(failed)["slowestMs"]);
        Assert.Equal(new Dictionary<string, long> { ["upstream_timeout"] = 2, ["upstream_unreachable"] = 1 },
            Assert.IsAssignableFrom<IEnumerable<KeyValuePair<string, long>>>(DetailOf(failed)["errorCodes"]).ToDictionary());

        Assert.Equal(1L, DetailOf(Assert.Single(audit.Entries, e => (string?)DetailOf(e)["statusClass"] == "4xx"))["count"]);
        Assert.Equal(1L, DetailOf(Assert.Single(audit.Entries, e => e.Actor == s_bo))["count"]);
        Assert.Equal(1L, DetailOf(Assert.Single(audit.Entries, e => e.Environment == "staging"))["count"]);
        Assert.Equal(1L, DetailOf(Assert.Single(audit.Entries, e => (string?)DetailOf(e)["method"] == "POST"))["count"]);

        // The next interval starts empty: closing it records nothing.
        time.Advance(TimeSpan.FromSeconds(60));
        await rollup.StopAsync(CancellationToken.None);
        Assert.Equal(6, audit.Entries.Count);
    }

    [Fact]
    public async Task Stopping_records_the_open_interval_up_to_now()
    {
        var time = new FakeTimeProvider(s_start);
        var audit = new RecordingAuditLog();
        using var rollup = NewRollup(audit, time);
        await rollup.StartAsync(CancellationToken.None);
        for (var i = 0; i < 5; i++)
        {
            rollup.Add(s_ana, "billing", "production", "monthly", Run(200, i) with { Kind = "query" }, Ms(s_start), null, null);
        }

        time.Advance(TimeSpan.FromSeconds(20));
        await rollup.StopAsync(CancellationToken.None);

        var entry = Assert.Single(audit.Entries);
        Assert.Equal(5L, DetailOf(entry)["count"]);
        Assert.Equal("query", DetailOf(entry)["kind"]);
        Assert.Equal("monthly", entry.Target);
        Assert.Equal("2026-03-02T09:15:30.0000000Z", Format(DetailOf(entry)["intervalEnd"]));
    }

    [Fact]
    public async Task Adds_from_many_threads_while_intervals_close_sum_exactly()
    {
        var audit = new RecordingAuditLog();
        using var rollup = NewRollup(audit, TimeProvider.System);
        const int threads = 8;
        const int perThread = 50_000;
        using var done = new CancellationTokenSource();
        var callers = Enumerable.Range(0, 4).Select(i => new Caller("u" + i, "n" + i, Caller.MemberRole, "k" + i, null)).ToArray();
        var closer = Task.Run(async () =>
        {
            while (!done.IsCancellationRequested)
            {
                await rollup.CloseAsync(null, CancellationToken.None);
            }
        });
        var adders = Enumerable.Range(0, threads).Select(t => Task.Run(() =>
        {
            for (var i = 0; i < perThread; i++)
            {
                rollup.Add(callers[i % callers.Length], "billing", "production", null, Run(i % 3 == 0 ? 404 : 200, 1), 1, 2, 3);
            }
        })).ToArray();
        await Task.WhenAll(adders);
        await done.CancelAsync();
        await closer;
        await rollup.CloseAsync(null, CancellationToken.None);

        var entries = audit.Entries;
        Assert.Equal((long)threads * perThread, entries.Sum(e => (long)DetailOf(e)["count"]!));
        Assert.Equal(2L * threads * perThread, entries.Sum(e => (long)DetailOf(e)["bytesIn"]!));
        Assert.Equal(3L * threads * perThread, entries.Sum(e => (long)DetailOf(e)["bytesOut"]!));
        var fourxx = threads * Enumerable.Range(0, perThread).Count(i => i % 3 == 0);
        Assert.Equal(fourxx, entries.Where(e => (string?)DetailOf(e)["statusClass"] == "4xx").Sum(e => (long)DetailOf(e)["count"]!));
    }

    [Fact]
    public async Task Each_mode_records_one_run_event_per_request_and_one_access_line_each()
    {
        var time = new FakeTimeProvider(s_start);
        var audit = new RecordingAuditLog();
        using var rollup = NewRollup(audit, time);
        var traffic = new TrafficAudit(audit, rollup, new TrafficOptions { Mode = TrafficMode.Each }, time);
        for (var i = 0; i < 7; i++)
        {
            await traffic.RecordRunAsync(null, "proxy", s_ana, "billing", "production", "GET", "/x/" + i, 200, 1, false, null);
        }

        Assert.Equal(7, audit.Entries.Count(e => e.Action == AuditEntries.RunAction));
        Assert.Equal(0, await rollup.CloseAsync(null, CancellationToken.None));
        Assert.Equal(7, audit.Entries.Count);
    }

    [Fact]
    public async Task In_rollup_mode_a_key_is_counted_a_console_session_is_recorded_one_by_one_and_every_run_has_its_access_line()
    {
        var time = new FakeTimeProvider(s_start);
        var audit = new RecordingAuditLog();
        using var rollup = NewRollup(audit, time);
        var loggers = new CountingLoggers();
        using var access = new AccessLog(new AccessLogOptions(), _ => Task.FromResult(Redactor.None), loggers);
        var traffic = new TrafficAudit(audit, rollup, new TrafficOptions(), time, access);
        for (var i = 0; i < 4; i++)
        {
            await traffic.RecordRunAsync(null, "proxy", s_ana, "billing", "production", "GET", "/x", 200, 1, false, null);
            await traffic.RecordRunAsync(null, "run", s_session, "billing", "production", "GET", "/x", 200, 1, false, null);
        }

        // A resource in each mode, and one with traffic off (still an access line each).
        await traffic.RecordRunAsync(TrafficMode.Each, "proxy", s_ana, "ledger", "production", "GET", "/x", 200, 1, false, null);
        await traffic.RecordRunAsync(TrafficMode.Off, "proxy", s_ana, "weather", "production", "GET", "/x", 200, 1, false, null);
        await traffic.RecordRunAsync(TrafficMode.Off, "run", s_session, "weather", "production", "GET", "/x", 200, 1, false, null);

        // The session's runs are written one by one (and, in each mode, the audit log writes their access lines).
        Assert.Equal(5, audit.Entries.Count(e => e.Action == AuditEntries.RunAction && e.Actor == s_session));
        Assert.Single(audit.Entries, e => e.Action == AuditEntries.RunAction && e.Resource == "ledger");
        Assert.Equal(6, audit.Entries.Count);
        await access.DrainAsync(CancellationToken.None);
        Assert.Equal(5, loggers.Count);

        Assert.Equal(1, await rollup.CloseAsync(null, CancellationToken.None));
        var rolled = Assert.Single(audit.Entries, e => e.Action == TrafficRollup.Action);
        Assert.Equal(4L, DetailOf(rolled)["count"]);
        Assert.Equal("billing", rolled.Resource);
        Assert.Same(s_ana, rolled.Actor);
    }

    [Theory]
    [InlineData("bearer")]
    [InlineData("basic")]
    [InlineData("apiKey")]
    public void Off_is_refused_for_a_resource_with_credential_bearing_auth(string type)
    {
        var auth = type switch
        {
            "bearer" => new AuthDefinition { Type = type, Token = "{{ environment.variables.TOKEN }}" },
            "basic" => new AuthDefinition { Type = type, Username = "u", Password = "{{ environment.variables.PASSWORD }}" },
            _ => new AuthDefinition { Type = type, In = "header", Name = "X-Key", Value = "{{ environment.variables.KEY }}" },
        };
        var e = Assert.Throws<ResourceValidationException>(() => ResourceCompiler.Compile("r", 1, new ResourceDefinition
        {
            BaseUrl = "https://api.example.com",
            Auth = auth,
            Audit = new ResourceAuditDefinition { Traffic = "off" },
        }));
        var error = Assert.Single(e.Errors);
        Assert.Equal("audit.traffic", error.Field);
        Assert.Contains("sends no secret", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Off_is_refused_for_templates_that_read_every_variable_and_accepted_for_a_plain_resource()
    {
        var all = Assert.Throws<ResourceValidationException>(() => ResourceCompiler.Compile("r", 1, new ResourceDefinition
        {
            BaseUrl = "https://api.example.com",
            Headers = new() { ["X-All"] = "{{ environment.variables }}" },
            Audit = new ResourceAuditDefinition { Traffic = "off" },
        }));
        Assert.Equal("audit.traffic", Assert.Single(all.Errors).Field);

        var plain = ResourceCompiler.Compile("r", 1, new ResourceDefinition
        {
            BaseUrl = "https://api.example.com",
            Headers = new() { ["X-Region"] = "{{ environment.variables.REGION }}" },
            Audit = new ResourceAuditDefinition { Traffic = "off" },
        });
        Assert.Equal(TrafficMode.Off, plain.Traffic);
        Assert.Equal(TrafficMode.Each, ResourceCompiler.Compile("r", 1, new ResourceDefinition
        {
            BaseUrl = "https://api.example.com",
            Audit = new ResourceAuditDefinition { Traffic = "each" },
        }).Traffic);
        Assert.Null(ResourceCompiler.Compile("r", 1, new ResourceDefinition { BaseUrl = "https://api.example.com" }).Traffic);
    }

    [Theory]
    [InlineData("sometimes")]
    [InlineData("EACH")]
    [InlineData("")]
    public void An_unknown_traffic_mode_is_a_field_error(string value)
    {
        var e = Assert.Throws<ResourceValidationException>(() => ResourceCompiler.Compile("r", 1, new ResourceDefinition
        {
            BaseUrl = "https://api.example.com",
            Audit = new ResourceAuditDefinition { Traffic = value },
        }));
        Assert.Equal("audit.traffic", Assert.Single(e.Errors).Field);
    }

    [Theory]
    [InlineData(null, null, "Rollup", 60)]
    [InlineData("each", "5s", "Each", 5)]
    [InlineData(" Rollup ", "2m", "Rollup", 120)]
    [InlineData("rollup", "1h", "Rollup", 3600)]
    public void The_server_settings_are_read_from_the_environment(string? mode, string? interval, string expected, int seconds)
    {
        var options = TrafficOptions.FromEnvironment(name => name switch
        {
            "KEYWAY_AUDIT_TRAFFIC" => mode,
            "KEYWAY_AUDIT_ROLLUP_INTERVAL" => interval,
            _ => null,
        });
        Assert.Equal(expected, options.Mode.ToString());
        Assert.Equal(TimeSpan.FromSeconds(seconds), options.Interval);
    }

    [Theory]
    [InlineData("KEYWAY_AUDIT_TRAFFIC", "off")]
    [InlineData("KEYWAY_AUDIT_TRAFFIC", "sometimes")]
    [InlineData("KEYWAY_AUDIT_ROLLUP_INTERVAL", "0s")]
    [InlineData("KEYWAY_AUDIT_ROLLUP_INTERVAL", "2h")]
    [InlineData("KEYWAY_AUDIT_ROLLUP_INTERVAL", "1.5s")]
    [InlineData("KEYWAY_AUDIT_ROLLUP_INTERVAL", "soon")]
    public void An_invalid_setting_stops_startup_naming_it(string name, string value)
    {
        var e = Assert.Throws<StartupException>(() => TrafficOptions.FromEnvironment(n => n == name ? value : null));
        Assert.Contains(name, e.Message, StringComparison.Ordinal);
        Assert.Contains(value, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Rollup_events_are_traffic_for_retention()
    {
        Assert.True(AuditRetention.IsTraffic(TrafficRollup.Action));
        Assert.True(AuditRetention.IsTraffic(AuditEntries.RunAction));
    }

    private static string Format(object? value) =>
        Assert.IsType<DateTimeOffset>(value).UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Counts the access lines logged.</summary>
    private sealed class CountingLoggers : ILoggerFactory, ILogger
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public ILogger CreateLogger(string categoryName) => this;

        public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException();

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Interlocked.Increment(ref _count);

        public void Dispose()
        {
        }
    }
}

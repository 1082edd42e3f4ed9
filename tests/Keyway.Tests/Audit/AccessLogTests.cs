using Keyway.Access;
using Keyway.Audit;
using Keyway.Hosting;
using Keyway.Secrets;
using Microsoft.Extensions.Logging;

namespace Keyway.Tests.Audit;

public sealed class AccessLogTests
{
    private const string Planted = "planted-9d2e41-value";

    private static readonly Caller KeyCaller = new("user-1", "ana", Caller.MemberRole, "key-7", null);

    private static AuditEntry RunEntry(string path, long? bytesOut = 12) =>
        AuditEntries.Run("proxy", KeyCaller, "billing", "production", "GET", path, 200, 34, true, null, bytesOut: bytesOut, bytesIn: 5);

    [Fact]
    public async Task A_run_becomes_one_line_with_its_fields_and_the_path_redacted()
    {
        var loggers = new CapturingLoggers();
        var access = new AccessLog(new AccessLogOptions(), _ => Task.FromResult(new Redactor([Planted])), loggers);

        access.Write(RunEntry($"/v1/items?token=abc123&q={Planted}&page=2"), 1_700_000_000_000);
        access.Write(new AuditEntry("resource.put") { Actor = KeyCaller, Resource = "billing" }, 1_700_000_000_000);
        await access.DrainAsync(CancellationToken.None);

        var line = Assert.Single(loggers.Lines);
        Assert.Equal(AccessLog.Category, line.Category);
        var state = line.State;
        Assert.Equal("key-7", state["Caller"]);
        Assert.Equal("billing", state["Resource"]);
        Assert.Equal("production", state["Environment"]);
        Assert.Equal("proxy", state["Kind"]);
        Assert.Equal("GET", state["Method"]);
        Assert.Equal(200, state["Status"]);
        Assert.Equal(34L, state["DurationMs"]);
        Assert.Equal(true, state["Refreshed"]);
        Assert.Null(state["Error"]);
        Assert.Equal(12L, state["BytesOut"]);
        Assert.Equal(5L, state["BytesIn"]);
        Assert.Equal("2023-11-14T22:13:20.000Z", state["Time"]);
        Assert.Equal($"/v1/items?token={Secret.Redacted}&q={Secret.Redacted}&page=2", state["Path"]);
        Assert.DoesNotContain(Planted, line.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("abc123", line.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_session_caller_is_named_by_user_id()
    {
        var loggers = new CapturingLoggers();
        var access = new AccessLog(new AccessLogOptions(), _ => Task.FromResult(Redactor.None), loggers);
        access.Write(AuditEntries.Run("run", new Caller("user-9", "bo", Caller.AdminRole, null, null), "r", "e", "POST", "/x", null, 1, false, "upstream_timeout"), 0);
        await access.DrainAsync(CancellationToken.None);

        var state = Assert.Single(loggers.Lines).State;
        Assert.Equal("user-9", state["Caller"]);
        Assert.Equal("upstream_timeout", state["Error"]);
        Assert.Null(state["BytesOut"]);
    }

    [Fact]
    public async Task A_full_queue_drops_and_counts_without_waiting()
    {
        var loggers = new CapturingLoggers();
        var access = new AccessLog(new AccessLogOptions { QueueCapacity = 2 }, _ => Task.FromResult(Redactor.None), loggers);
        for (var i = 0; i < 5; i++)
        {
            access.Write(RunEntry("/n/" + i), i);
        }

        Assert.Equal(3, access.Dropped);
        await access.DrainAsync(CancellationToken.None);
        Assert.Equal(["/n/0", "/n/1"], loggers.Lines.Select(l => (string?)l.State["Path"]));

        // Room again once drained.
        access.Write(RunEntry("/n/5"), 5);
        await access.DrainAsync(CancellationToken.None);
        Assert.Equal(3, loggers.Lines.Count);
        Assert.Equal(3, access.Dropped);
    }

    [Fact]
    public async Task When_known_secrets_cannot_be_read_the_query_is_not_written()
    {
        var loggers = new CapturingLoggers();
        var access = new AccessLog(new AccessLogOptions(), _ => Task.FromException<Redactor>(new InvalidOperationException("store down")), loggers);
        access.Write(RunEntry($"/v1?q={Planted}"), 0);
        await access.DrainAsync(CancellationToken.None);

        Assert.Equal($"/v1?{Secret.Redacted}", Assert.Single(loggers.Lines).State["Path"]);
    }

    [Fact]
    public async Task Off_writes_nothing()
    {
        var loggers = new CapturingLoggers();
        var access = new AccessLog(AccessLogOptions.FromEnvironment(name => name == "KEYWAY_ACCESS_LOG" ? "off" : null),
            _ => Task.FromResult(Redactor.None), loggers);
        access.Write(RunEntry("/x"), 0);
        await access.DrainAsync(CancellationToken.None);

        Assert.Empty(loggers.Lines);
        Assert.Equal(0, access.Dropped);
    }

    [Fact]
    public async Task The_service_drains_while_running_and_on_stop()
    {
        var loggers = new CapturingLoggers();
        using var access = new AccessLog(new AccessLogOptions(), _ => Task.FromResult(Redactor.None), loggers);
        await access.StartAsync(CancellationToken.None);
        access.Write(RunEntry("/a"), 0);
        await Infrastructure.Poll.UntilAsync(() => loggers.Lines.Count == 1, TimeSpan.FromSeconds(10), "the first line");
        await access.StopAsync(CancellationToken.None);

        Assert.Equal("/a", Assert.Single(loggers.Lines).State["Path"]);
    }

    [Theory]
    [InlineData("KEYWAY_ACCESS_LOG", "maybe")]
    [InlineData("KEYWAY_ACCESS_LOG_QUEUE", "0")]
    [InlineData("KEYWAY_ACCESS_LOG_QUEUE", "lots")]
    public void An_invalid_setting_stops_startup(string name, string value)
    {
        var e = Assert.Throws<StartupException>(() => AccessLogOptions.FromEnvironment(n => n == name ? value : null));
        Assert.Contains(name, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_defaults_are_on_with_ten_thousand_lines()
    {
        var options = AccessLogOptions.FromEnvironment(n => n == "KEYWAY_ACCESS_LOG" ? "ON" : null);
        Assert.True(options.Enabled);
        Assert.Equal(10_000, options.QueueCapacity);
        Assert.Equal(1, AccessLogOptions.FromEnvironment(n => n == "KEYWAY_ACCESS_LOG_QUEUE" ? "1" : null).QueueCapacity);
    }

    private sealed record CapturedLine(string Category, string Message, IReadOnlyDictionary<string, object?> State);

    private sealed class CapturingLoggers : ILoggerFactory
    {
        private readonly List<CapturedLine> _lines = [];

        public IReadOnlyList<CapturedLine> Lines
        {
            get
            {
                lock (_lines)
                    return [.. _lines];
            }
        }

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void AddProvider(ILoggerProvider provider) => throw new NotSupportedException();

        public void Dispose()
        {
        }

        private sealed class Logger(CapturingLoggers owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var fields = state is IEnumerable<KeyValuePair<string, object?>> pairs
                    ? pairs.ToDictionary(p => p.Key, p => p.Value)
                    : [];
                lock (owner._lines)
                    owner._lines.Add(new CapturedLine(category, formatter(state, exception), fields));
            }
        }
    }
}

using Keyway.Access;
using Keyway.Alerts;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Config;
using Keyway.Credentials;
using Keyway.Environments;
using Keyway.Outbound;
using Keyway.Proxy;
using Keyway.Queries;
using Keyway.Resources;
using Keyway.Rotations;
using Keyway.Runs;
using Keyway.Schedules;
using Keyway.Secrets;
using Keyway.SignIn;
using Keyway.Storage;
using Keyway.WebConsole;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Scalar.AspNetCore;

namespace Keyway.Hosting;

/// <summary><c>keyway serve</c>: opens the store and the keys, then serves the API and the proxy.</summary>
internal static partial class KeywayServer
{
    public static async Task<int> RunAsync(ServeOptions options, CancellationToken cancellationToken)
    {
        var time = TimeProvider.System;
        ListenUrls.Check(options.Urls, "--urls");
        if (options.ProxyUrls is not null)
        {
            ListenUrls.Check(options.ProxyUrls, "--proxy-urls");
        }

        Directory.CreateDirectory(options.DataDirectory);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(options.DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        var databaseUrl = options.DatabaseUrl ?? Environment.GetEnvironmentVariable("KEYWAY_DATABASE_URL");
        await using var database = string.IsNullOrEmpty(databaseUrl)
            ? Database.Sqlite(Path.Combine(options.DataDirectory, "keyway.db"))
            : Database.Postgres(databaseUrl);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseKestrelHttpsConfiguration();
        var proxyPorts = options.ProxyUrls is null ? null : ProxyListener.Ports(options.ProxyUrls, options.Urls);
        builder.WebHost.UseUrls(options.ProxyUrls is null ? options.Urls : options.Urls + ";" + options.ProxyUrls);
        builder.WebHost.ConfigureKestrel(k => k.AddServerHeader = false);
        builder.Host.ConfigureHostOptions(h => h.ShutdownTimeout = TimeSpan.FromSeconds(20));
        builder.Logging.ClearProviders();
        AddConsole(builder.Logging);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        // Off entirely: while this category is enabled at any level, ASP.NET Core starts an
        // Activity per request (for log scopes), and HttpClient then starts a child and injects
        // trace headers upstream; about 1.7 KB and a few microseconds per proxied request. It only
        // logs request starts and ends; errors are logged by the exception handler.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);
        builder.Logging.AddFilter("Yarp", LogLevel.Warning);
        builder.Logging.AddFilter("System.Net.Http.HttpClient", LogLevel.Warning);

        // What is logged before the host is built (migrations, the store and keys opened) goes out in the
        // same format and under the same levels as everything after it: one JSON object a line stays so.
        using var startupLoggers = LoggerFactory.Create(l => AddConsole(l.AddConfiguration(builder.Configuration.GetSection("Logging"))));
        var startupLog = startupLoggers.CreateLogger("Keyway.Startup");
        var signIn = SignInSettings.FromEnvironment(Environment.GetEnvironmentVariable);
        var metrics = MetricsSelections.Parse(Environment.GetEnvironmentVariable("KEYWAY_METRICS"));
        var staleness = SignInSettings.ParseDuration(Environment.GetEnvironmentVariable(StoreOutage.StalenessSetting), StoreOutage.StalenessSetting)
            ?? StoreOutage.DefaultStaleness;

        // The store and the keys are opened before the server listens: a wrong key or an unreachable
        // database is a clear error at start, never a half-working server.
        await new Migrator(database, time, startupLoggers.CreateLogger<Migrator>()).ApplyAsync(cancellationToken);
        var master = MasterKeyRing.Load(Environment.GetEnvironmentVariable, options.DataDirectory);
        var keyRing = await KeyRing.OpenAsync(master, new DataKeyStore(database), time, cancellationToken);
        Log.StoreOpened(startupLog, database.Description, keyRing.ActiveKeyId);
        if (Environment.GetEnvironmentVariable(RuntimeTuning.Gen0SizeVariable) is { Length: > 0 } gen0)
        {
            Log.Gen0Budget(startupLog, gen0, RuntimeTuning.Gen0SizeVariable);
        }

        var services = builder.Services;
        services.AddSingleton(time);
        services.AddSingleton(database);
        services.AddSingleton(master);
        services.AddSingleton(keyRing);
        services.AddSingleton(options);
        services.AddSingleton(new StoreOutage(time, staleness));
        services.AddSingleton<Readiness>();
        // On PostgreSQL other replicas may share the store: changes are relayed with LISTEN/NOTIFY.
        var replicated = database.Kind == StoreKind.Postgres;
        services.AddSingleton(new ChangeFeed(replicated));
        if (replicated)
        {
            services.AddHostedService<ChangeRelay>();
        }

        // Alerts are queued in the store for the webhook endpoints that take them, and sent in the background.
        services.AddSingleton(WebhookOptions.FromEnvironment());
        services.AddSingleton<WebhookStore>();
        services.AddSingleton<WebhookQueue>();
        services.AddSingleton<WebhookAlerts>();
        services.AddSingleton<IAlertSink>(sp => sp.GetRequiredService<WebhookAlerts>());
        services.AddSingleton<WebhookSender>();
        services.AddHostedService(sp => sp.GetRequiredService<WebhookSender>());
        services.AddSingleton<CredentialAlerts>();
        services.AddSingleton(VariableOptions.FromEnvironment());
        services.AddSingleton<VariableService>();
        services.AddHostedService<SecretExpirySweep>();
        services.AddSingleton<Attention>();
        services.AddSingleton<CredentialHealth>();
        services.AddSingleton<ResourceService>();
        services.AddSingleton<ResourceAuthoring>();
        services.AddSingleton<ResourceResolver>();
        services.AddSingleton<QueryService>();
        services.AddSingleton<ApiKeyService>();
        services.AddSingleton<UserStore>();
        services.AddSingleton(AuditOptions.FromEnvironment());
        services.AddSingleton(sp => sp.GetRequiredService<VariableService>().Known);
        services.AddSingleton(new AuditSeal(master));
        services.AddSingleton(sp => new AuditLog(sp.GetRequiredService<Database>(), sp.GetRequiredService<AuditSeal>(), sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<KnownSecrets>().GetAsync, sp.GetRequiredService<AuditOptions>(), sp.GetRequiredService<ILogger<AuditLog>>(),
            sp.GetRequiredService<StoreOutage>(), sp.GetRequiredService<AccessLog>()));
        services.AddSingleton(sp => new AccessLog(AccessLogOptions.FromEnvironment(), sp.GetRequiredService<KnownSecrets>().GetAsync,
            sp.GetRequiredService<ILoggerFactory>()));
        services.AddHostedService(sp => sp.GetRequiredService<AccessLog>());
        services.AddSingleton<IAuditLog>(sp => sp.GetRequiredService<AuditLog>());
        services.AddHostedService(sp => sp.GetRequiredService<AuditLog>());
        // Registered after the audit log: hosted services stop in reverse order, so the open rollup interval
        // is recorded before the audit log stops and flushes its queue.
        services.AddSingleton(TrafficOptions.FromEnvironment());
        services.AddSingleton<TrafficRollup>();
        services.AddHostedService(sp => sp.GetRequiredService<TrafficRollup>());
        services.AddSingleton(sp => new TrafficAudit(sp.GetRequiredService<IAuditLog>(), sp.GetRequiredService<TrafficRollup>(),
            sp.GetRequiredService<TrafficOptions>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<AccessLog>(), sp.GetRequiredService<AuditLog>()));
        services.AddSingleton<AuditStore>();
        services.AddSingleton<AuditVerifier>();
        services.AddSingleton(AuditRetention.FromEnvironment());
        services.AddSingleton<AuditPruner>();
        services.AddHostedService<AuditPruneService>();
        services.AddSingleton<CredentialAudit>();
        services.AddSingleton<GrantStore>();
        services.AddSingleton<RightStore>();
        services.AddSingleton(sp => new AccessPolicy(
            sp.GetRequiredService<GrantStore>(), sp.GetRequiredService<ChangeFeed>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<AccessPolicy>>()));
        services.AddSingleton<RunExecutor>();
        services.AddSingleton<CredentialDebugger>();
        services.AddSingleton<CredentialStore>();
        services.AddSingleton<ClusterLock>();
        services.AddSingleton<CredentialEvents>();
        services.AddSingleton(CredentialOptions.FromEnvironment());
        services.AddSingleton(sp => new CredentialJournal(options.DataDirectory, sp.GetRequiredService<KeyRing>(), sp.GetRequiredService<ILogger<CredentialJournal>>()));
        services.AddSingleton<ReplicaHeartbeat>();
        services.AddHostedService(sp => sp.GetRequiredService<ReplicaHeartbeat>());
        services.AddSingleton<CredentialEngine>();
        services.AddSingleton<DPoPKeyStore>();
        services.AddSingleton<DPoPNonces>();
        services.AddSingleton<OAuth2Client>();
        services.AddSingleton(sp => new CustomFlowClient(sp.GetRequiredService<OutboundClient>().Client, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton(sp => new GitHubAppClient(sp.GetRequiredService<OutboundClient>().Client, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton(sp => new AwsStsClient(sp.GetRequiredService<OutboundClient>().Client, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<CredentialService>();
        services.AddSingleton<CredentialMetrics>();
        services.AddHostedService<CredentialRefresher>();
        services.AddSingleton<QueryRunner>();
        services.AddSingleton<ScheduleStore>();
        services.AddSingleton<Config.ConfigExport>();
        services.AddSingleton<ScheduleTargets>();
        services.AddSingleton<IScheduleActions, ScheduleActionRunner>();
        services.AddSingleton(sp => new ScheduleRunner(sp.GetRequiredService<ScheduleStore>(), sp.GetRequiredService<IScheduleActions>(),
            sp.GetRequiredService<IAuditLog>(), sp.GetRequiredService<IAlertSink>(), sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ReplicaHeartbeat>().InstanceId, sp.GetRequiredService<ILogger<ScheduleRunner>>()));
        services.AddHostedService<ScheduleService>();
        services.AddSingleton(sp => new RotationStore(sp.GetRequiredService<Database>(), sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ReplicaHeartbeat>().InstanceId));
        services.AddSingleton<IRotationSteps, ResourceRotationSteps>();
        services.AddSingleton(RotationOptions.FromEnvironment());
        services.AddSingleton<RotationEngine>();
        services.AddHostedService<RotationService>();
        services.AddSingleton<Bootstrap>();
        services.AddSingleton<RekeyJob>();
        services.AddHostedService(sp => sp.GetRequiredService<RekeyJob>());
        services.AddSingleton(new DestinationPolicy(new DestinationPolicyOptions
        {
            Deny = SplitList(Environment.GetEnvironmentVariable(DestinationPolicyOptions.DenySetting)),
            Allow = SplitList(Environment.GetEnvironmentVariable(DestinationPolicyOptions.AllowSetting)),
        }));
        services.AddSingleton(sp => new OutboundClient(sp.GetRequiredService<DestinationPolicy>(), new OutboundHandlerOptions(), sp.GetRequiredService<TimeProvider>()));
        services.AddHttpForwarder();
        services.AddProblemDetails();
        // A body that cannot be bound (malformed JSON, invalid UTF-8, too deep, a wrong content type)
        // throws, so that KeywayExceptionHandler answers problem+json rather than an empty 400.
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        services.AddExceptionHandler<KeywayExceptionHandler>();
        services.AddOpenApi("v1", o => o.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "Keyway API";
            document.Info.Description = "Resources, environments, variables and runs. Errors are RFC 9457 problem+json with a stable 'code'.";
            return Task.CompletedTask;
        }).AddKeywaySecurity());
        services.AddAuthentication(Sessions.DefaultScheme)
            .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null)
            .AddKeywaySignIn(signIn, options);
        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("keyway"))
            .WithMetrics(m =>
            {
                if (metrics == MetricsSelection.All)
                {
                    m.AddAspNetCoreInstrumentation().AddHttpClientInstrumentation();
                }

                if (metrics != MetricsSelection.None)
                {
                    m.AddMeter(KeywayMetrics.MeterName);
                }

                m.AddPrometheusExporter();
            });
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT")))
        {
            // Traces and metrics to a collector, configured by the standard OTEL_* variables. Tracing
            // is only wired when something receives the spans: an instrumentation listener makes
            // ASP.NET Core and HttpClient create two activities per proxied request even with no exporter.
            telemetry.WithTracing(t => t.AddAspNetCoreInstrumentation(o => o.Filter = http => !http.Request.Path.StartsWithSegments("/metrics"))
                .AddHttpClientInstrumentation().AddSource(KeywayMetrics.MeterName));
            telemetry.UseOtlpExporter();
        }

        var app = builder.Build();
        // The proxy first, then routing (called here, or WebApplication would put it ahead of everything).
        app.UseProxy(proxyPorts);
        app.UseApiIdentity();
        app.UseRouting();
        app.UseExceptionHandler();
        app.UseEmptyErrorProblems();
        if (proxyPorts is not null)
        {
            app.UseProxyListener(proxyPorts);
        }

        app.UseKeywayAuthentication();
        app.UseKeywaySignIn();

        app.MapGet("/healthz", () => TypedResults.Text("ok")).ExcludeFromDescription();
        app.MapGet("/readyz", (Readiness readiness, HttpContext context) => readiness.AnswerAsync(context)).ExcludeFromDescription();
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapOpenApi("/openapi/{documentName}.json");
        app.MapConfigSchema();
        // The reference page for this product only: no AI chat, MCP, SDK or deployment offers, no telemetry to the vendor.
        app.MapScalarApiReference("/api/reference", o => o.WithTitle("Keyway API").WithOpenApiRoutePattern("/openapi/{documentName}.json")
            .DisableAgent().DisableMcp().HideDeveloperTools().DisableTelemetry().WithDotNetFlag(false)
            .AddPreferredSecuritySchemes(OpenApiSecurity.ApiKey));

        // One filter instance over the singleton policy: AddEndpointFilter<T> would build its factory
        // by compiling an expression, and loading System.Linq.Expressions for that cost 3.7 MB of RSS.
        var api = app.MapGroup("/api/v1").AddEndpointFilter(new AccessFilter(app.Services.GetRequiredService<AccessPolicy>()));
        api.MapEnvironments();
        api.MapRotations();
        api.MapResources();
        api.MapQueries();
        api.MapSchedules();
        api.MapCredentials();
        api.MapKeys();
        api.MapOperator();
        api.MapAudit();
        api.MapUsers();
        api.MapPermissions();
        api.MapRights();
        api.MapWebhooks();
        api.MapConfig();
        api.MapRouteList();
        api.MapStatus();
        api.MapCredentialHealth();
        api.MapSignIn();
        app.MapProxy();
        app.MapOAuthCallback();
        app.MapSingleSignOn(signIn.Oidc is not null);
        app.MapConsole(signIn.Oidc is not null);

        var variables = app.Services.GetRequiredService<VariableService>();
        variables.Subscribe();
        app.Services.GetRequiredService<ResourceService>().Subscribe();
        app.Services.GetRequiredService<OutboundClient>().Subscribe(app.Services.GetRequiredService<ChangeFeed>());
        app.Services.GetRequiredService<QueryService>().Subscribe();
        var engine = app.Services.GetRequiredService<CredentialEngine>();
        engine.Subscribe();
        app.Services.GetRequiredService<DPoPKeyStore>().Subscribe(app.Services.GetRequiredService<ChangeFeed>());
        // Token answers a previous run got and could not store go to the store before anything is served.
        await engine.ReplayJournalAsync(cancellationToken);
        app.Services.GetRequiredService<CredentialMetrics>();
        app.Services.GetRequiredService<ApiKeyService>().Subscribe();
        app.Services.GetRequiredService<CredentialAudit>().Subscribe();
        app.Services.GetRequiredService<CredentialAlerts>().Subscribe();
        app.Services.GetRequiredService<WebhookAlerts>().Queued = app.Services.GetRequiredService<WebhookSender>().Wake;
        app.Services.GetRequiredService<KnownSecrets>().Subscribe();
        var access = app.Services.GetRequiredService<AccessPolicy>();
        access.Subscribe();
        await access.ReloadAsync(cancellationToken);
        await app.Services.GetRequiredService<SessionRevocations>().ReloadAsync(cancellationToken);
        await variables.EnsureProductionAsync(cancellationToken);
        await app.Services.GetRequiredService<AuditLog>().SealAtStartAsync(app.Services.GetRequiredService<AuditStore>(), cancellationToken);
        await app.Services.GetRequiredService<Bootstrap>().RunAsync(
            Environment.GetEnvironmentVariable("KEYWAY_ADMIN_PASSWORD"), Environment.GetEnvironmentVariable("KEYWAY_ADMIN_TOKEN"),
            Console.Out, cancellationToken, Environment.GetEnvironmentVariable(Bootstrap.CredentialsFileVariable));

        // Keyway never connects to itself: the configured URLs from the start, the bound ones (port 0 resolved) once listening.
        var destinations = app.Services.GetRequiredService<DestinationPolicy>();
        destinations.SetOwnListeners(options.Urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            if (app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>() is { Addresses.Count: > 0 } bound)
            {
                destinations.SetOwnListeners(bound.Addresses);
            }
        });

        await app.RunAsync(cancellationToken);
        return 0;
    }

    /// <summary>
    /// The console: <c>KEYWAY_LOG_FORMAT=json</c> writes one JSON object a line with an ISO 8601 UTC
    /// <c>Timestamp</c>, otherwise plain single lines stamped with the UTC time of day.
    /// </summary>
    private static ILoggingBuilder AddConsole(ILoggingBuilder logging) =>
        string.Equals(Environment.GetEnvironmentVariable("KEYWAY_LOG_FORMAT"), "json", StringComparison.OrdinalIgnoreCase)
            ? logging.AddJsonConsole(o =>
            {
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                o.UseUtcTimestamp = true;
            })
            : logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
                o.UseUtcTimestamp = true;
            });

    private static string[] SplitList(string? value) =>
        value?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Store {Store} opened; active data key {KeyId}")]
        public static partial void StoreOpened(ILogger logger, string store, string keyId);

        [LoggerMessage(2, LogLevel.Information, "Garbage collector: generation-0 budget {Budget} ({Variable}; 0 means .NET's default)")]
        public static partial void Gen0Budget(ILogger logger, string budget, string variable);
    }
}

/// <summary>Turns exceptions into problem+json. Unexpected ones say nothing but a trace id: their text may hold anything.</summary>
internal sealed partial class KeywayExceptionHandler(
    ILogger<KeywayExceptionHandler> logger, IAuditLog audit, KnownSecrets? known = null, StoreOutage? outage = null, TimeProvider? time = null) : IExceptionHandler
{
    // During an outage every request that needs the store lands here: one log line a second says so, with how many.
    private static readonly TimeSpan LogEvery = TimeSpan.FromSeconds(1);
    private long _lastLogged = long.MinValue;
    private long _unlogged;

    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is KeywayException { Status: StatusCodes.Status403Forbidden, Code: "forbidden" } denied && Caller.From(httpContext.User) is { } caller)
        {
            if (audit.IsStalled)
            {
                // Every refusal is recorded, and this one could not be until the store is back: try again then.
                exception = StoreFailure.Unavailable();
            }
            else
            {
                // AccessPolicy.Demand threw: every refusal is in the audit log (queued; the writer retries while the store is down).
                await audit.RecordDurableOrQueuedAsync(AuditEntries.Denied(caller, httpContext, denied), CancellationToken.None);
            }
        }

        // A store that cannot be reached is an outage, not a bug: 503 with Retry-After, never 500.
        var keyway = exception as KeywayException;
        if (keyway is null && StoreFailure.IsUnavailable(exception))
        {
            LogStoreUnavailable(exception.GetType().Name, httpContext.TraceIdentifier);
            outage?.Observe(exception);
            keyway = StoreFailure.Unavailable();
        }

        Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult? result = null;
        if (keyway is not null)
        {
            try
            {
                result = known is null || keyway.Code == "store_unavailable"
                    ? Problems.From(keyway)
                    : Problems.From(keyway, await known.GetAsync(CancellationToken.None));
            }
            catch (Exception e) when (StoreFailure.IsUnavailable(e))
            {
                // The redactor could not be loaded, so the message cannot be shown safely: say only that the store is down.
                Log.UnredactableWhileUnavailable(logger, keyway.Code, httpContext.TraceIdentifier);
                outage?.Observe(e);
                keyway = StoreFailure.Unavailable();
                result = Problems.From(keyway);
            }

            Problems.SetRetryAfter(httpContext.Response, keyway);
        }
        else if (exception is BadHttpRequestException bad)
        {
            result = ErrorProblems.ForBadRequest(bad, httpContext.Request);
        }

        if (result is null)
        {
            Log.Unhandled(logger, exception.GetType().FullName ?? "?", httpContext.TraceIdentifier, exception.StackTrace ?? "");
            result = Problems.Create(StatusCodes.Status500InternalServerError, "internal_error",
                $"Keyway failed unexpectedly. The server log has the details under trace id {httpContext.TraceIdentifier}.");
        }

        await result.ExecuteAsync(httpContext);
        return true;
    }

    private void LogStoreUnavailable(string exceptionType, string traceId)
    {
        var clock = time ?? TimeProvider.System;
        var now = clock.GetTimestamp();
        var last = Interlocked.Read(ref _lastLogged);
        if ((last != long.MinValue && clock.GetElapsedTime(last, now) < LogEvery) || Interlocked.CompareExchange(ref _lastLogged, now, last) != last)
        {
            Interlocked.Increment(ref _unlogged);
            return;
        }

        Log.StoreUnavailable(logger, exceptionType, traceId, Interlocked.Exchange(ref _unlogged, 0));
    }

    private static partial class Log
    {
        // The exception's type and stack only: its message may quote a value Keyway must not log.
        [LoggerMessage(2, LogLevel.Error, "Unhandled {ExceptionType} in request {TraceId} at {StackTrace}")]
        public static partial void Unhandled(ILogger logger, string exceptionType, string traceId, string stackTrace);

        [LoggerMessage(3, LogLevel.Warning, "The store could not be reached ({ExceptionType}) in request {TraceId}: answered 503 store_unavailable (and {Others} other requests since the last such line)")]
        public static partial void StoreUnavailable(ILogger logger, string exceptionType, string traceId, long others);

        [LoggerMessage(4, LogLevel.Warning, "Request {TraceId} failed with {Code}, and the store could not be reached to redact its message: answered 503 store_unavailable")]
        public static partial void UnredactableWhileUnavailable(ILogger logger, string code, string traceId);
    }
}

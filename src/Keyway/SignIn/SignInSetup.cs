using System.Globalization;
using Keyway.Access;
using Keyway.Api;
using Keyway.Hosting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.XmlEncryption;

namespace Keyway.SignIn;

/// <summary>What sign-in is configured with, from <c>KEYWAY_SESSION_*</c>, <c>KEYWAY_SIGNIN_*</c> and <c>KEYWAY_OIDC_*</c>.</summary>
internal sealed record SignInSettings
{
    public static readonly TimeSpan DefaultSessionLifetime = TimeSpan.FromHours(8);

    /// <summary>How long a session lasts without use (sliding).</summary>
    public TimeSpan SessionLifetime { get; init; } = DefaultSessionLifetime;

    public SignInLimits Limits { get; init; } = new();

    /// <summary>Single sign-on; null when off.</summary>
    public OidcSettings? Oidc { get; init; }

    /// <exception cref="StartupException">A variable is malformed.</exception>
    public static SignInSettings FromEnvironment(Func<string, string?> variable) => new()
    {
        SessionLifetime = ParseDuration(variable("KEYWAY_SESSION_LIFETIME"), "KEYWAY_SESSION_LIFETIME") ?? DefaultSessionLifetime,
        Limits = new SignInLimits
        {
            PerClientPerMinute = ParseCount(variable("KEYWAY_SIGNIN_RATE_PER_CLIENT"), "KEYWAY_SIGNIN_RATE_PER_CLIENT") ?? new SignInLimits().PerClientPerMinute,
            PerUserPerMinute = ParseCount(variable("KEYWAY_SIGNIN_RATE_PER_USER"), "KEYWAY_SIGNIN_RATE_PER_USER") ?? new SignInLimits().PerUserPerMinute,
        },
        Oidc = OidcSettings.FromEnvironment(variable),
    };

    /// <summary><c>90s</c>, <c>30m</c>, <c>8h</c>, <c>7d</c>, or a .NET time span (<c>08:00:00</c>).</summary>
    internal static TimeSpan? ParseDuration(string? value, string name)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        value = value.Trim();
        var unit = value[^1];
        TimeSpan? parsed = unit switch
        {
            's' or 'm' or 'h' or 'd' when double.TryParse(value[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n > 0 => unit switch
            {
                's' => TimeSpan.FromSeconds(n),
                'm' => TimeSpan.FromMinutes(n),
                'h' => TimeSpan.FromHours(n),
                _ => TimeSpan.FromDays(n),
            },
            _ when TimeSpan.TryParse(value, CultureInfo.InvariantCulture, out var span) && span > TimeSpan.Zero => span,
            _ => null,
        };
        return parsed ?? throw new StartupException($"{name} must be a duration such as 30m, 8h or 7d; '{value}' is not.");
    }

    private static int? ParseCount(string? value, string name)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        return int.TryParse(value.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var count) && count > 0
            ? count
            : throw new StartupException($"{name} must be a whole number of attempts per minute, at least 1; '{value}' is not.");
    }
}

internal static class SignInSetup
{
    /// <summary>
    /// Console sessions beside API keys: the default scheme picks the API key when the request carries
    /// one, else the session cookie; single sign-on when configured; Data Protection keys in the store.
    /// </summary>
    public static AuthenticationBuilder AddKeywaySignIn(this AuthenticationBuilder builder, SignInSettings settings, ServeOptions serve)
    {
        var services = builder.Services;
        services.AddSingleton(settings);
        services.AddSingleton(settings.Limits);
        services.AddSingleton<SignInThrottle>();
        services.AddSingleton<PasswordSignIn>();
        services.AddSingleton<SessionValidator>();
        services.AddSingleton<SessionRevocations>();
        services.AddSingleton<StoreXmlRepository>();
        services.AddDataProtection().SetApplicationName("keyway");
        // Data Protection reads its key ring (XML) at start from a hosted service, which maps
        // System.Private.Xml into every process; the proxy and the API never need it.
        // Without that service the key ring is read, and a first key made, when a console session or
        // an antiforgery token first needs one: a process that only proxies holds 4 to 6 MB less at
        // peak (docs/benchmarks.md, "What the audit costs in place, and bigger batches").
        var eager = services.FirstOrDefault(d => d.ServiceType == typeof(IHostedService)
            && d.ImplementationType?.FullName == "Microsoft.AspNetCore.DataProtection.Internal.DataProtectionHostedService");
        if (eager is not null)
        {
            services.Remove(eager);
        }
        services.AddOptions<KeyManagementOptions>().Configure<StoreXmlRepository, IServiceProvider>((o, repository, provider) =>
        {
            o.XmlRepository = repository;
            // The repository encrypts each key's whole document with the key ring (so a rekey moves it
            // too); a second, per-element encryption would add nothing. Saying so explicitly keeps
            // Data Protection from warning that keys may be stored unencrypted, which they are not.
            o.XmlEncryptor = new NullXmlEncryptor(provider);
        });
        // The null encryptor says, at each new key, that it protects nothing; the key ring does.
        services.Configure<LoggerFilterOptions>(o => o.AddFilter(typeof(NullXmlEncryptor).FullName, LogLevel.Error));

        builder.AddPolicyScheme(Sessions.DefaultScheme, "API key or console session", o =>
            o.ForwardDefaultSelector = http => Sessions.HasApiKey(http.Request.Headers) ? ApiKeyAuthenticationHandler.SchemeName : Sessions.SchemeName);
        builder.AddCookie(Sessions.SchemeName, o => Sessions.Configure(o, settings.SessionLifetime));
        if (settings.Oidc is { } oidc)
        {
            builder.AddOpenIdConnect(SingleSignOn.SchemeName, "Single sign-on", o => SingleSignOn.Configure(o, oidc, serve.PublicUrl));
        }

        return builder;
    }

    /// <summary>Starts the session cache's invalidation and puts the antiforgery check after authentication.</summary>
    public static void UseKeywaySignIn(this WebApplication app)
    {
        app.Services.GetRequiredService<SessionValidator>().Subscribe();
        app.Services.GetRequiredService<SessionRevocations>().Subscribe();
        app.Use(RequireCsrfAsync);
    }

    /// <summary>
    /// A cookie travels with every request the browser makes, a cross-site one included; the
    /// antiforgery token does not. So an unsafe request authenticated by the session cookie must
    /// echo the session's token in <c>X-Keyway-CSRF</c>. API keys are not ambient: exempt.
    /// </summary>
    private static Task RequireCsrfAsync(HttpContext http, RequestDelegate next)
    {
        // Not async: a request that passes (every API-key request does) costs no state machine here.
        var method = http.Request.Method;
        if (!HttpMethods.IsGet(method) && !HttpMethods.IsHead(method) && !HttpMethods.IsOptions(method) && !HttpMethods.IsTrace(method)
            && Sessions.IsSession(http)
            && (http.Request.Path.StartsWithSegments("/api/v1") || http.Request.Path.StartsWithSegments("/proxy"))
            && http.GetEndpoint()?.Metadata.GetMetadata<AnonymousAccess>() is null
            && !(Sessions.CsrfToken(http) is { } expected && SignInEndpoints.CsrfMatches(expected, http.Request.Headers[Sessions.CsrfHeader].ToString())))
        {
            return Problems.Create(StatusCodes.Status403Forbidden, "csrf_failed",
                $"A request signed in with the session cookie that changes something must echo the antiforgery token: send the value of the '{Sessions.CsrfCookie}' cookie (also returned as csrfToken by sign-in) in the '{Sessions.CsrfHeader}' header. Scripts should use an API key instead.")
                .ExecuteAsync(http);
        }

        return next(http);
    }
}

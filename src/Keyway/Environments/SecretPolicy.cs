using System.Globalization;
using System.Xml;
using Keyway.Api;
using Keyway.Hosting;
using Microsoft.IdentityModel.JsonWebTokens;

namespace Keyway.Environments;

/// <summary>What happens to a request whose resolution needs a secret past its expiry.</summary>
internal static class ExpiredPolicy
{
    /// <summary>The default: the secret is used, flagged in lists and <c>keyway status</c>, and alerted once.</summary>
    public const string Warn = "warn";

    /// <summary>Runs and proxy requests that need the secret are refused with <c>409 secret_expired</c>.</summary>
    public const string Block = "block";

    public static string Parse(string value) => value.Trim().ToLowerInvariant() switch
    {
        Warn => Warn,
        Block => Block,
        _ => throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request",
            $"expiredPolicy is 'warn' (an expired secret is used and flagged) or 'block' (it is refused); '{value}' is neither."),
    };
}

/// <summary>
/// How expiry is tracked: durations for <c>rotateEvery</c> (<c>30d</c>-style or ISO 8601 <c>P30D</c>),
/// and the expiry a JWT states about itself.
/// </summary>
internal static class SecretPolicy
{
    /// <summary>Parses <c>90d</c>, <c>12h</c>, <c>30m</c>, <c>45s</c> or an ISO 8601 duration (<c>P90D</c>, <c>PT12H</c>); at least a minute.</summary>
    public static TimeSpan ParseRotateEvery(string value)
    {
        var text = value.Trim();
        TimeSpan? parsed = null;
        if (text.StartsWith('P') || text.StartsWith('p'))
        {
            try
            {
                parsed = XmlConvert.ToTimeSpan(text.ToUpperInvariant());
            }
            catch (FormatException)
            {
            }
        }
        else if (text.Length > 1)
        {
            try
            {
                parsed = SignIn.SignInSettings.ParseDuration(text, "rotateEvery");
            }
            catch (StartupException)
            {
            }
        }

        return parsed is { } span && span >= TimeSpan.FromMinutes(1)
            ? span
            : throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request",
                $"rotateEvery is a duration of at least a minute, such as 90d, 12h or P90D; '{value}' is not.");
    }

    /// <summary>A duration as <c>rotateEvery</c> shows it: the largest whole unit (<c>90d</c>, <c>36h</c>, <c>90m</c>, <c>61s</c>).</summary>
    public static string Format(TimeSpan span) =>
        span.Ticks % TimeSpan.TicksPerDay == 0 ? $"{span.Ticks / TimeSpan.TicksPerDay}d"
        : span.Ticks % TimeSpan.TicksPerHour == 0 ? $"{span.Ticks / TimeSpan.TicksPerHour}h"
        : span.Ticks % TimeSpan.TicksPerMinute == 0 ? $"{span.Ticks / TimeSpan.TicksPerMinute}m"
        : ((long)span.TotalSeconds).ToString(CultureInfo.InvariantCulture) + "s";

    /// <summary>
    /// The <c>exp</c> claim of a value that is a JWT (JWS compact form), read without validating anything;
    /// null for anything else. The value is never logged nor put in an exception: a malformed token is
    /// simply not a JWT here.
    /// </summary>
    public static DateTimeOffset? JwtExpiry(string value)
    {
        // Cheap shape check first: three base64url segments, a JSON header ("eyJ" is "{\"" encoded).
        var text = value.Trim();
        if (text.Length < 10 || !text.StartsWith("eyJ", StringComparison.Ordinal) || text.Count(c => c == '.') != 2)
        {
            return null;
        }

        try
        {
            var token = new JsonWebToken(text);
            return token.TryGetPayloadValue<long>("exp", out var exp) && exp > 0 && exp < 253402300799
                ? DateTimeOffset.FromUnixTimeSeconds(exp)
                : null;
        }
        catch (Exception e) when (e is ArgumentException or FormatException or InvalidOperationException or System.Text.Json.JsonException)
        {
            return null;
        }
    }
}

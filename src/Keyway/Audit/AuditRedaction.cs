using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Keyway.Secrets;

namespace Keyway.Audit;

/// <summary>
/// Turns an entry's detail into the JSON text that is stored and hashed, with nothing secret left in
/// it: the values of secret-bearing query parameters in a <c>path</c> are replaced by name, and every
/// known secret value (any environment's secret variables) is replaced wherever it appears.
/// </summary>
internal static class AuditRedaction
{
    /// <summary>The detail key that holds a request path with its query string.</summary>
    public const string PathKey = "path";

    // Query parameter names whose values are credentials by convention (compared case-insensitively).
    private static readonly string[] s_secretNames =
        ["key", "code", "sig", "pwd", "jwt", "auth", "session", "sessionid", "assertion", "state", "nonce"];

    private static readonly string[] s_secretFragments =
        ["token", "secret", "password", "passwd", "apikey", "api_key", "api-key", "access_key", "accesskey", "private_key",
         "signature", "credential", "authorization", "client_assertion"];

    // A run's detail keys, pre-encoded: runs are recorded on every proxied request.
    private static readonly JsonEncodedText s_kind = JsonEncodedText.Encode("kind");
    private static readonly JsonEncodedText s_method = JsonEncodedText.Encode("method");
    private static readonly JsonEncodedText s_path = JsonEncodedText.Encode(PathKey);
    private static readonly JsonEncodedText s_status = JsonEncodedText.Encode("status");
    private static readonly JsonEncodedText s_durationMs = JsonEncodedText.Encode("durationMs");
    private static readonly JsonEncodedText s_refreshed = JsonEncodedText.Encode("refreshed");
    private static readonly JsonEncodedText s_error = JsonEncodedText.Encode("error");

    public static bool IsSecretParameter(string name)
    {
        foreach (var exact in s_secretNames)
        {
            if (name.Equals(exact, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        foreach (var fragment in s_secretFragments)
        {
            if (name.Contains(fragment, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }

        return name.EndsWith("_key", StringComparison.OrdinalIgnoreCase) || name.EndsWith("-key", StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// <c>/x?token=abc&amp;page=2</c> → <c>/x?token=[REDACTED]&amp;page=2</c>. Only the query's values
    /// are touched; a path without a query comes back as it is.
    /// </summary>
    public static string RedactPath(string pathAndQuery)
    {
        var q = pathAndQuery.IndexOf('?', StringComparison.Ordinal);
        if (q < 0 || q == pathAndQuery.Length - 1)
        {
            return pathAndQuery;
        }

        var builder = new StringBuilder(pathAndQuery.Length);
        builder.Append(pathAndQuery, 0, q + 1);
        var first = true;
        foreach (var pair in pathAndQuery[(q + 1)..].Split('&'))
        {
            if (!first)
            {
                builder.Append('&');
            }

            first = false;
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            var name = eq < 0 ? pair : pair[..eq];
            string decoded;
            try
            {
                decoded = Uri.UnescapeDataString(name.Replace('+', ' '));
            }
            catch (UriFormatException)
            {
                decoded = name;
            }

            if (eq >= 0 && IsSecretParameter(decoded))
            {
                builder.Append(name).Append('=').Append(Secret.Redacted);
            }
            else
            {
                builder.Append(pair);
            }
        }

        return builder.ToString();
    }

    /// <summary>A path and its query parameters as one string, as the audit log records it.</summary>
    public static string PathWithQuery(string? path, IEnumerable<KeyValuePair<string, string?>>? query)
    {
        var builder = new StringBuilder(path is null or "" ? "/" : path[0] == '/' ? path : "/" + path);
        var separator = '?';
        foreach (var (name, value) in query ?? [])
        {
            builder.Append(separator).Append(Uri.EscapeDataString(name));
            if (value is not null)
            {
                builder.Append('=').Append(Uri.EscapeDataString(value));
            }

            separator = '&';
        }

        return builder.ToString();
    }

    /// <summary>The stored form of a detail: compact JSON, redacted; null when there is none.</summary>
    public static string? Serialize(IReadOnlyDictionary<string, object?>? detail, Redactor redactor)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using var writer = new Utf8JsonWriter(buffer);
        return Write(writer, detail) ? Redact(buffer.WrittenSpan, redactor, out _) : null;
    }

    /// <summary>The stored form of a run's detail: the same text as the dictionary form with the same keys, in order.</summary>
    public static string Serialize(in RunDetail run, Redactor redactor)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using var writer = new Utf8JsonWriter(buffer);
        Write(writer, run);
        return Redact(buffer.WrittenSpan, redactor, out _);
    }

    /// <summary>
    /// Writes an entry's detail (its <see cref="AuditEntry.Run"/>, else its <see cref="AuditEntry.Detail"/>) to
    /// <paramref name="writer"/> and flushes it; false, writing nothing, when the entry has none.
    /// </summary>
    internal static bool Write(Utf8JsonWriter writer, AuditEntry entry)
    {
        if (entry.Run is { } run)
        {
            Write(writer, run);
            return true;
        }

        return Write(writer, entry.Detail);
    }

    /// <summary>
    /// The stored text of detail JSON written by <see cref="Write(Utf8JsonWriter, AuditEntry)"/>, with every known
    /// secret value replaced. <paramref name="unchanged"/> says the text is exactly <paramref name="json"/> (nothing
    /// was redacted), so those bytes can stand for it.
    /// </summary>
    internal static string Redact(ReadOnlySpan<byte> json, Redactor redactor, out bool unchanged)
    {
        // The writer's escaping encoder leaves only ASCII, so this is a plain widening.
        var text = Encoding.UTF8.GetString(json);
        // Redacting the JSON text catches a secret in any value, as written or JSON-escaped.
        var redacted = redactor.Redact(text);
        unchanged = ReferenceEquals(redacted, text);
        return redacted;
    }

    private static bool Write(Utf8JsonWriter writer, IReadOnlyDictionary<string, object?>? detail)
    {
        if (detail is null || detail.Count == 0)
        {
            return false;
        }

        writer.WriteStartObject();
        foreach (var (name, value) in detail)
        {
            writer.WritePropertyName(name);
            WriteValue(writer, name == PathKey && value is string path ? RedactPath(path) : value);
        }

        writer.WriteEndObject();
        writer.Flush();
        return true;
    }

    private static void Write(Utf8JsonWriter writer, in RunDetail run)
    {
        writer.WriteStartObject();
        writer.WriteString(s_kind, run.Kind);
        writer.WriteString(s_method, run.Method);
        writer.WriteString(s_path, RedactPath(run.Path));
        if (run.Status is { } status)
        {
            writer.WriteNumber(s_status, status);
        }
        else
        {
            writer.WriteNull(s_status);
        }

        writer.WriteNumber(s_durationMs, run.DurationMs);
        writer.WriteBoolean(s_refreshed, run.Refreshed);
        if (run.Error is { } error)
        {
            writer.WriteString(s_error, error);
        }
        else
        {
            writer.WriteNull(s_error);
        }

        writer.WriteEndObject();
        writer.Flush();
    }

    private static void WriteValue(Utf8JsonWriter writer, object? value)
    {
        switch (value)
        {
            case null:
                writer.WriteNullValue();
                break;
            case string s:
                writer.WriteStringValue(s);
                break;
            case bool b:
                writer.WriteBooleanValue(b);
                break;
            case int i:
                writer.WriteNumberValue(i);
                break;
            case long l:
                writer.WriteNumberValue(l);
                break;
            case double d:
                writer.WriteNumberValue(d);
                break;
            case DateTimeOffset t:
                writer.WriteStringValue(t.UtcDateTime.ToString("O", CultureInfo.InvariantCulture));
                break;
            case Secret:
                // Never the value, even if a caller passed one by mistake.
                writer.WriteStringValue(Secret.Redacted);
                break;
            case IEnumerable<KeyValuePair<string, long>> counts:
                // Counts by name, such as a rollup's errors by code.
                writer.WriteStartObject();
                foreach (var (name, count) in counts)
                {
                    writer.WriteNumber(name, count);
                }

                writer.WriteEndObject();
                break;
            case IEnumerable<string> list:
                writer.WriteStartArray();
                foreach (var item in list)
                {
                    writer.WriteStringValue(item);
                }

                writer.WriteEndArray();
                break;
            case IFormattable f:
                writer.WriteStringValue(f.ToString(null, CultureInfo.InvariantCulture));
                break;
            default:
                writer.WriteStringValue(value.ToString());
                break;
        }
    }
}

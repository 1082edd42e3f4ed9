using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Keyway.Cli;

/// <summary>The CLI's HTTP client: <c>KEYWAY_ADDR</c> and <c>KEYWAY_TOKEN</c>, as Vault's CLI does.</summary>
internal sealed class KeywayClient : IDisposable
{
    public const string DefaultAddress = "http://127.0.0.1:7510";

    private readonly HttpClient _http;

    public KeywayClient(string? address, string? token)
    {
        Address = (string.IsNullOrWhiteSpace(address) ? DefaultAddress : address.Trim()).TrimEnd('/');
        if (!Uri.TryCreate(Address, UriKind.Absolute, out var baseUri))
        {
            throw new CliException(ExitCodes.Usage, $"KEYWAY_ADDR '{Address}' is not a URL (expected e.g. {DefaultAddress}).");
        }

        _http = new HttpClient { BaseAddress = baseUri, Timeout = TimeSpan.FromSeconds(100) };
        if (!string.IsNullOrWhiteSpace(token))
        {
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token.Trim());
        }

        HasToken = !string.IsNullOrWhiteSpace(token);
    }

    public string Address { get; }

    public bool HasToken { get; }

    public static KeywayClient FromEnvironment() =>
        new(Environment.GetEnvironmentVariable("KEYWAY_ADDR"), Environment.GetEnvironmentVariable("KEYWAY_TOKEN"));

    public Task<JsonNode?> GetAsync(string path, CancellationToken ct) => SendAsync(HttpMethod.Get, path, null, ct);

    public Task<JsonNode?> PutAsync(string path, object? body, CancellationToken ct) => SendAsync(HttpMethod.Put, path, body, ct);

    public Task<JsonNode?> PostAsync(string path, object? body, CancellationToken ct) => SendAsync(HttpMethod.Post, path, body, ct);

    public Task<JsonNode?> DeleteAsync(string path, CancellationToken ct) => SendAsync(HttpMethod.Delete, path, null, ct);

    /// <summary>A GET whose answer is read as it arrives (an export); a failure is a <see cref="CliException"/> as for the others.</summary>
    public async Task<HttpResponseMessage> GetStreamAsync(string path, string accept, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path.TrimStart('/'));
        request.Headers.Accept.ParseAdd(accept);
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        }
        catch (HttpRequestException e)
        {
            throw new CliException(ExitCodes.Unreachable,
                $"Cannot reach Keyway at {Address}: {e.Message} Is 'keyway serve' running? Set KEYWAY_ADDR to its address.");
        }

        if (response.IsSuccessStatusCode && IsKeyway(response))
        {
            return response;
        }

        using (response)
        {
            JsonNode? json = null;
            try
            {
                json = JsonNode.Parse(await response.Content.ReadAsStringAsync(ct));
            }
            catch (JsonException)
            {
            }

            EnsureKeyway(response);
            var detail = json?["detail"]?.GetValue<string>() ?? response.ReasonPhrase ?? "";
            if ((int)response.StatusCode == 401 && !HasToken)
            {
                detail = "No API key: set KEYWAY_TOKEN (the admin key is printed when Keyway first starts).";
            }

            throw new CliException(ExitCodes.ForStatus((int)response.StatusCode), detail, json?["code"]?.GetValue<string>() ?? "http_" + (int)response.StatusCode);
        }
    }

    public async Task<JsonNode?> SendAsync(HttpMethod method, string path, object? body, CancellationToken ct, string? accept = null)
    {
        using var request = new HttpRequestMessage(method, path.TrimStart('/'));
        if (accept is not null)
        {
            request.Headers.Accept.ParseAdd(accept);
        }

        if (body is not null)
        {
            request.Content = body is JsonNode node
                ? new StringContent(node.ToJsonString(), System.Text.Encoding.UTF8, "application/json")
                : JsonContent.Create(body, options: CliJson.Options);
        }

        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, ct);
        }
        catch (HttpRequestException e)
        {
            throw new CliException(ExitCodes.Unreachable,
                $"Cannot reach Keyway at {Address}: {e.Message} Is 'keyway serve' running? Set KEYWAY_ADDR to its address.");
        }
        catch (TaskCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new CliException(ExitCodes.Unreachable, $"Keyway at {Address} did not answer in time.");
        }

        using (response)
        {
            EnsureKeyway(response);
            var text = await response.Content.ReadAsStringAsync(ct);
            JsonNode? json = null;
            if (text.Length > 0)
            {
                try
                {
                    json = JsonNode.Parse(text);
                }
                catch (JsonException)
                {
                    json = JsonValue.Create(text);
                }
            }

            if (response.IsSuccessStatusCode)
            {
                return json;
            }

            var code = json?["code"]?.GetValue<string>() ?? "http_" + (int)response.StatusCode;
            var detail = json?["detail"]?.GetValue<string>() ?? json?["title"]?.GetValue<string>() ?? response.ReasonPhrase ?? "";
            if ((int)response.StatusCode == 401 && !HasToken)
            {
                detail = "No API key: set KEYWAY_TOKEN (the admin key is printed when Keyway first starts).";
            }

            var errors = json?["errors"] as JsonArray;
            throw new CliException(ExitCodes.ForStatus((int)response.StatusCode), detail, code, errors);
        }
    }

    public void Dispose() => _http.Dispose();

    private static bool IsKeyway(HttpResponseMessage response) =>
        response.Headers.TryGetValues(Api.ApiIdentity.Header, out var values) && values.Contains(Api.ApiIdentity.Version);

    /// <summary>
    /// Another server at KEYWAY_ADDR may answer 200 with something that reads as an empty list: every
    /// Keyway answer under /api/v1 carries <c>Keyway-Api: v1</c>, so one without it is refused.
    /// </summary>
    private void EnsureKeyway(HttpResponseMessage response)
    {
        if (!IsKeyway(response))
        {
            throw new CliException(ExitCodes.Unreachable,
                $"The server at {Address} answered {(int)response.StatusCode} without the {Api.ApiIdentity.Header} header: it is not Keyway " +
                $"(or a proxy in front of Keyway answered for it). Set KEYWAY_ADDR to Keyway's address (e.g. {DefaultAddress}).", "not_keyway");
        }
    }
}

/// <summary>Exit codes scripts can rely on (docs/cli.md lists them).</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;
    public const int NotFound = 3;
    public const int Denied = 4;
    public const int Invalid = 5;
    public const int Unreachable = 6;
    public const int Conflict = 7;

    /// <summary><c>keyway audit verify</c> found a broken chain.</summary>
    public const int Tampered = 8;

    public static int ForStatus(int status) => status switch
    {
        400 or 422 => Invalid,
        401 or 403 => Denied,
        404 => NotFound,
        409 => Conflict,
        _ => Failure,
    };
}

/// <summary>A failure the CLI reports in one clear message, with an exit code.</summary>
internal sealed class CliException(int exitCode, string message, string? code = null, JsonArray? errors = null) : Exception(message)
{
    public int ExitCode { get; } = exitCode;

    public string? Code { get; } = code;

    public JsonArray? Errors { get; } = errors;
}

internal static class CliJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>
    /// What <c>--json</c> prints. The relaxed encoder writes '+', '&lt;' and non-ASCII as they are and a
    /// quote in a string as \", where the default escapes them (\u002B, \u0022): the output is read by
    /// people and jq, never embedded in HTML.
    /// </summary>
    public static readonly JsonSerializerOptions Indented = new(JsonSerializerDefaults.Web) { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>One line, relaxed as <see cref="Indented"/> (JSON lines, table cells).</summary>
    public static readonly JsonSerializerOptions Compact = new(JsonSerializerDefaults.Web) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
}

using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Keyway.Resources;
using Keyway.Runs;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Credentials;

/// <summary>The body of <c>POST …/test</c> (all optional): the request to end with, and whether to run the exchange anew.</summary>
internal sealed record TestRequest
{
    public string? Method { get; init; }

    /// <summary>Relative to the base URL (the <c>path</c> query parameter says the same).</summary>
    public string? Path { get; init; }

    public Dictionary<string, string?>? Query { get; init; }

    public Dictionary<string, string>? Headers { get; init; }

    public JsonElement? Body { get; init; }

    /// <summary>Run the login flow or token request again (a refresh, through the engine) rather than use the credential in hand.</summary>
    public bool Fresh { get; init; }
}

/// <summary>What <c>POST …/test</c> reports: each step in order, redacted; the first that failed, and how to fix it where Keyway knows.</summary>
internal sealed record TestReport(bool Ok, IReadOnlyList<TestStep> Steps)
{
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? FailedStep { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Fix { get; init; }
}

/// <summary>One step: a check, a custom flow step, discovery, a token request, or the final request; with its exchange when it made one.</summary>
internal sealed record TestStep(string Step, bool Ok, string Detail)
{
    /// <summary><c>configuration</c>, <c>flow</c>, <c>discovery</c>, <c>token</c>, <c>credential</c> or <c>request</c>.</summary>
    public string Kind { get; init; } = "configuration";

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? DurationMs { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public OutboundRequest? Request { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public TestResponse? Response { get; init; }

    /// <summary>The names of the variables the step extracted (never their values).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Extracted { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Fix { get; init; }
}

/// <summary>An answer as received, redacted; the body cut to <see cref="OutboundRequest.MaxBodyChars"/>.</summary>
internal sealed record TestResponse(int Status, Dictionary<string, string> Headers, string? Body);

/// <summary>
/// Turns what an <see cref="AuthTrace"/> recorded into report steps: every string through the redactor (all
/// known secrets, the credential's tokens, everything the trace learnt is secret), and beyond it, by name, the
/// values no auth step may show whatever their form: credential headers, cookies, the secret parameters of a
/// token request, the tokens of a token answer.
/// </summary>
internal static class AuthTraceSteps
{
    private static readonly HashSet<string> SecretParameters = new(StringComparer.OrdinalIgnoreCase)
    {
        "client_secret", "client_assertion", "assertion", "password", "refresh_token", "access_token", "id_token", "code", "code_verifier",
        "subject_token", "actor_token", "token",
    };

    public static bool IsSecretParameter(string name) => SecretParameters.Contains(name);

    public static TestStep Render(TracedStep step, Redactor redactor, string definitionText, IReadOnlyList<string> tainted, bool full)
    {
        var shown = Render(step, redactor, definitionText, tainted);
        return full ? shown : shown with
        {
            Request = shown.Request is { } r ? r with { Body = r.Body is null ? null : AnswerStructure.Of(r.Body) } : null,
            Response = shown.Response is { } a
                ? a with
                {
                    Headers = a.Headers.ToDictionary(h => h.Key, h => AnswerStructure.Length(h.Value), StringComparer.OrdinalIgnoreCase),
                    Body = a.Body is null ? null : AnswerStructure.Of(a.Body),
                }
                : null,
        };
    }

    private static TestStep Render(TracedStep step, Redactor redactor, string definitionText, IReadOnlyList<string> tainted)
    {
        var ok = !step.Failed && step.Error is null && step.Status is null or < 400;
        var request = step.Method is null
            ? null
            : OutboundRequest.From(step.Method, ShownUrl(step, tainted), step.RequestHeaders.Select(h => ShownHeader(step, Withheld(h, request: true), tainted)), null, redactor) with
            {
                Body = ShownBody(step, tainted) is { } sent ? RedactBody(FormWithheld(sent, tainted)!, redactor) : null,
            };
        var response = step.Status is { } status
            ? new TestResponse(status, OutboundRequest.RedactHeaders(step.ResponseHeaders.Select(h => Withheld(h, request: false)), redactor),
                step.ResponseBody is null ? null : RedactBody(step.ResponseBody, redactor))
            : null;
        var detail = step.Error is { } error ? ShownError(step, error, redactor, tainted)
            : step.Method is not null ? $"{step.Method} answered {step.Status} in {step.DurationMs} ms"
            : step.Extracted.Count > 0 ? "extracted " + string.Join(", ", Shown(step.Extracted, definitionText))
            : "done";
        return new TestStep(step.Name, ok, detail)
        {
            Kind = step.Kind,
            DurationMs = step.DurationMs,
            Request = request,
            Response = response,
            Extracted = step.Extracted.Count == 0 ? null : Shown(step.Extracted, definitionText),
            Fix = ok ? null : DebugFixes.ForStep(step, redactor),
        };
    }

    /// <summary>
    /// A javascript step's variable names are computed by its code, which may read a secret: a name is shown only
    /// when the resource's definition spells it (auth.apply reads it), otherwise counted.
    /// </summary>
    private static List<string> Shown(List<string> names, string definitionText)
    {
        var shown = names.Where(n => definitionText.Contains(n, StringComparison.Ordinal)).Distinct().ToList();
        var hidden = names.Count - names.Count(n => definitionText.Contains(n, StringComparison.Ordinal));
        if (hidden > 0)
        {
            shown.Add($"({hidden} more, named by the step's code)");
        }

        return shown;
    }

    /// <summary>A flow step's URL as sent when its template reads nothing secret, else its template; any URL holding a tainted value withheld.</summary>
    /// <summary>
    /// A step's error. Connection errors name the host (<c>Name or service not known (a1b2.example.com:443)</c>) and a refused
    /// destination names it too: when the URL is withheld, or the error holds a value rendered from a secret, only its kind is shown.
    /// </summary>
    private static string ShownError(TracedStep step, string error, Redactor redactor, IReadOnlyList<string> tainted)
    {
        var urlWithheld = step.Templates is { UrlWithheld: not null } || (step.Url is { } url && (Holds(url, tainted) || Holds(Uri.UnescapeDataString(url), tainted)));
        if (!urlWithheld && !Holds(error, tainted))
        {
            return redactor.Redact(error);
        }

        return error.StartsWith("no answer in time", StringComparison.Ordinal)
            ? error
            : "the request failed before an answer (not shown: the error names the host, and the URL is withheld).";
    }

    private static string ShownUrl(TracedStep step, IReadOnlyList<string> tainted)
    {
        if (step.Templates is { UrlWithheld: { } reason } templates)
        {
            return TemplateProvenance.Marker(reason) + " " + templates.Url;
        }

        var url = step.Url ?? "";
        return Holds(url, tainted) || Holds(Uri.UnescapeDataString(url), tainted)
            ? TemplateProvenance.Marker("the URL holds a value rendered from a secret")
            : url;
    }

    /// <summary>
    /// A flow step's header: as sent when its template reads nothing secret or flow-obtained, else its template.
    /// What the step's definition does not set is shown only when it says nothing of a secret (the body's type and
    /// length, the identity encoding asked for); any value holding a tainted value is withheld.
    /// </summary>
    private static KeyValuePair<string, string> ShownHeader(TracedStep step, KeyValuePair<string, string> header, IReadOnlyList<string> tainted)
    {
        var (name, value) = header;
        if (step.Templates is { } templates)
        {
            var template = templates.Headers.LastOrDefault(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase));
            if (template.Name is not null)
            {
                return template.Withheld is { } reason ? new(name, TemplateProvenance.Marker(reason) + " " + template.Source) : header;
            }

            if (!(name.Equals("Content-Type", StringComparison.OrdinalIgnoreCase) || name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) ||
                  (name.Equals("Accept-Encoding", StringComparison.OrdinalIgnoreCase) && value == Outbound.ResponseDecoding.Identity)))
            {
                return new(name, TemplateProvenance.Marker("not set by the step's definition"));
            }
        }

        return Holds(value, tainted) ? new(name, TemplateProvenance.Marker("holds a value rendered from a secret")) : header;
    }

    /// <summary>A flow step's body as sent when its template reads nothing secret or flow-obtained, else its template.</summary>
    private static string? ShownBody(TracedStep step, IReadOnlyList<string> tainted)
    {
        if (step.Templates is { BodyWithheld: { } reason } templates)
        {
            return TemplateProvenance.Marker(reason) + "\n" + templates.Body;
        }

        var body = step.RequestBody;
        // A form body is judged parameter by parameter (FormWithheld); anything else as a whole.
        return body is not null && (body.TrimStart().StartsWith('{') || body.TrimStart().StartsWith('[')) && Holds(body, tainted)
            ? TemplateProvenance.Marker("holds a value rendered from a secret")
            : body;
    }

    private static bool Holds(string text, IReadOnlyList<string> tainted) => tainted.Any(t => text.Contains(t, StringComparison.Ordinal));

    private static KeyValuePair<string, string> Withheld(KeyValuePair<string, string> header, bool request)
    {
        var (name, value) = header;
        if (request ? name.Equals("Cookie", StringComparison.OrdinalIgnoreCase) : name.Equals("Set-Cookie", StringComparison.OrdinalIgnoreCase))
        {
            // Cookie names help a person see which session went where; the values are sessions.
            var separator = request ? ';' : ',';
            return new(name, string.Join(separator + " ", value.Split(separator).Select(CookieWithheld)));
        }

        return header;
    }

    private static string CookieWithheld(string cookie)
    {
        var parts = cookie.Trim().Split(';', 2);
        var equals = parts[0].IndexOf('=', StringComparison.Ordinal);
        var pair = equals > 0 ? parts[0][..(equals + 1)] + Secret.Redacted : parts[0];
        return parts.Length == 2 ? pair + ";" + parts[1] : pair;
    }

    /// <summary>A form body (a token request's) with the values of its secret parameters, and of any holding a tainted value, withheld.</summary>
    private static string? FormWithheld(string? body, IReadOnlyList<string> tainted)
    {
        if (body is null || body.Length == 0 || body.TrimStart().StartsWith('{') || body.TrimStart().StartsWith('[') || body.StartsWith('«'))
        {
            return body;
        }

        return string.Join('&', body.Split('&').Select(pair =>
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            var name = equals > 0 ? Uri.UnescapeDataString(pair[..equals].Replace('+', ' ')) : null;
            if (name is not null && SecretParameters.Contains(name))
            {
                return pair[..(equals + 1)] + Secret.Redacted;
            }

            return Holds(pair, tainted) || Holds(Uri.UnescapeDataString(pair.Replace('+', ' ')), tainted)
                ? (equals > 0 ? pair[..(equals + 1)] : "") + TemplateProvenance.Marker("rendered from a secret")
                : pair;
        }));
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// A body, redacted. JSON is redacted as its reader sees it (decoded, <see cref="JsonRedaction"/>), with the values of
    /// token fields withheld at any depth; any other text through the redactor. Redacted before it is cut.
    /// </summary>
    public static string RedactBody(string body, Redactor redactor)
    {
        var trimmed = body.TrimStart();
        if (trimmed.Length > 0 && trimmed[0] is '{' or '[')
        {
            try
            {
                var node = JsonNode.Parse(body);
                if (node is not null)
                {
                    Withhold(node);
                    var element = JsonSerializer.SerializeToElement(node);
                    return OutboundRequest.Excerpt(redactor.Redact(JsonSerializer.Serialize(JsonRedaction.Redact(element, redactor), Indented)));
                }
            }
            catch (JsonException)
            {
                // Not JSON after all: redacted as text.
            }
        }

        return OutboundRequest.Excerpt(redactor.Redact(body));
    }

    private static void Withhold(JsonNode node)
    {
        if (node is JsonObject obj)
        {
            foreach (var name in obj.Select(p => p.Key).ToList())
            {
                if (SecretParameters.Contains(name) && obj[name] is JsonValue)
                {
                    obj[name] = Secret.Redacted;
                }
                else if (obj[name] is { } child)
                {
                    Withhold(child);
                }
            }
        }
        else if (node is JsonArray array)
        {
            foreach (var item in array)
            {
                if (item is not null)
                {
                    Withhold(item);
                }
            }
        }
    }

    /// <summary>What the definition says, for telling names it spells from names a script computed.</summary>
    public static string DefinitionText(CompiledResource resource) => JsonSerializer.Serialize(resource.Definition.Auth);
}

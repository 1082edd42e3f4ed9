using System.Text;
using Keyway.Outbound;
using Keyway.Resources;
using Keyway.Secrets;

namespace Keyway.Credentials;

/// <summary>
/// An observer of the credential path for the resource test (the debugger): which calls the engine made to
/// the provider, each step of a custom flow and each HTTP exchange (the request as sent, the answer as
/// received, the time it took), what each step extracted, and where it failed.
/// </summary>
/// <remarks>
/// A provider is traced by giving the engine a traced copy of it (<see cref="ITokenProvider.WithTrace"/>), so
/// the debugger goes through the engine's single flight, cluster lock, journal and compare-and-swap writes like
/// any other caller: a debug run never spends a refresh token around them. Exchanges are recorded raw, in memory,
/// and redacted once when the report is made (<see cref="AuthTraceSteps"/>): a value is known to be secret only
/// once a later step has extracted it, so everything the trace learns is secret (<see cref="Protect"/>) is
/// redacted from every step, earlier ones included. Nothing here is logged or stored.
/// </remarks>
internal sealed class AuthTrace
{
    /// <summary>The largest answer body the trace keeps (as much as a custom flow step reads).</summary>
    public const int MaxBodyBytes = CustomFlowProvider.MaxResponseBytes;

    private readonly object _gate = new();
    private readonly List<TracedStep> _steps = [];
    private readonly List<Secret> _secrets = [];
    private readonly List<string> _calls = [];
    private readonly List<string> _tainted = [];
    private readonly TimeProvider _time;
    private readonly Func<string, bool> _isSecret;
    private TracedStep? _current;
    private bool _closed;

    // isSecret: whether a variable is secret in the environment under test; a template that reads one is withheld.
    public AuthTrace(OutboundClient outbound, TimeProvider time, Func<string, bool> isSecret)
    {
        _time = time;
        _isSecret = isSecret;
        // The same connection pool and destination policy as every outbound request, with this trace in front.
        // Never disposed: disposing a delegating handler would dispose the shared pool behind it.
        Http = new HttpClient(new TracingHandler(this) { InnerHandler = outbound.Handler }, disposeHandler: false) { Timeout = Timeout.InfiniteTimeSpan };
        Http.DefaultRequestHeaders.TryAddWithoutValidation("Accept-Encoding", ResponseDecoding.Identity);
    }

    /// <summary>What traced providers send with.</summary>
    public HttpClient Http { get; }

    // A property like Http: never disposed (disposing it would dispose the pool behind it).
    private HttpClient? TlsHttp { get; set; }

    /// <summary>What traced token requests that present the resource's client certificate send with: its pool, with this trace in front.</summary>
    public HttpClient HttpOver(OutboundPool pool)
    {
        lock (_gate)
        {
            if (TlsHttp is null)
            {
                // Never disposed, as Http: disposing it would dispose the pool behind it.
                TlsHttp = new HttpClient(new TracingHandler(this) { InnerHandler = pool.Handler }, disposeHandler: false) { Timeout = Timeout.InfiniteTimeSpan };
                TlsHttp.DefaultRequestHeaders.TryAddWithoutValidation("Accept-Encoding", ResponseDecoding.Identity);
            }

            return TlsHttp;
        }
    }

    /// <summary>Which calls the engine made to the provider: <c>acquire</c> (a login, a grant) or <c>refresh</c>.</summary>
    public IReadOnlyList<string> Calls
    {
        get
        {
            lock (_gate)
            {
                return [.. _calls];
            }
        }
    }

    /// <summary>The engine called the provider (<paramref name="how"/>: acquire or refresh).</summary>
    public void Called(string how)
    {
        lock (_gate)
        {
            if (!_closed)
            {
                _calls.Add(how);
            }
        }
    }

    /// <summary>A step begins: a custom flow step (by its name), discovery or a token request. The next exchange belongs to it.</summary>
    public void Begin(string name, string kind)
    {
        lock (_gate)
        {
            if (_closed)
            {
                return;
            }

            _current = new TracedStep(name, kind);
            _steps.Add(_current);
        }
    }

    /// <summary>
    /// A custom flow's request step is about to be sent: what its URL, headers and body are rendered from, so that a
    /// value whose template reads a secret or the flow's own values is shown as its template, never as sent.
    /// </summary>
    public void Sending(RequestStep step)
    {
        lock (_gate)
        {
            if (!_closed && _current is not null)
            {
                _current.Templates = StepTemplates.Of(step, _isSecret);
            }
        }
    }

    /// <summary>
    /// Values rendered from templates that read a secret (an OAuth setting such as a scope built from one): any
    /// string the trace would show that holds one is withheld, whatever its length.
    /// </summary>
    public void Taint(IEnumerable<string> values)
    {
        lock (_gate)
        {
            _tainted.AddRange(values.Where(v => v.Length > 0));
        }
    }

    /// <summary>The current step extracted a variable: its name is reported, its value only ever redacted.</summary>
    public void Extracted(string name, Secret value)
    {
        lock (_gate)
        {
            if (_closed)
            {
                return;
            }

            _secrets.Add(value);
            _current?.Extracted.Add(name);
        }
    }

    /// <summary>Values the trace must never show: the tokens a step is sent with or receives, a flow's stored variables.</summary>
    public void Protect(IEnumerable<Secret?> values)
    {
        lock (_gate)
        {
            _secrets.AddRange(values.OfType<Secret>());
        }
    }

    /// <summary>The provider answered: the tokens are protected, a failure is put on the step it happened in.</summary>
    public void Completed(TokenResult result)
    {
        if (result.Tokens is { } tokens)
        {
            Protect([tokens.AccessToken, tokens.RefreshToken, .. tokens.Extras.Values]);
            return;
        }

        lock (_gate)
        {
            if (_closed)
            {
                return;
            }

            if (_current is null)
            {
                _current = new TracedStep("token provider", "token");
                _steps.Add(_current);
            }

            _current.Failed = true;
            _current.Error = result.Error;
            _current.Failure = result.Failure;
        }
    }

    /// <summary>Stops recording (a refresh started in the background may still run) and hands over what was recorded.</summary>
    public (IReadOnlyList<TracedStep> Steps, IReadOnlyList<Secret> Secrets, IReadOnlyList<string> Tainted) Close()
    {
        lock (_gate)
        {
            _closed = true;
            return ([.. _steps], [.. _secrets], [.. _tainted]);
        }
    }

    /// <summary>What was recorded so far, the trace still open (the request phase adds the steps of a refresh after a rejection).</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _steps.Count;
            }
        }
    }

    /// <summary>
    /// The credentials a request carries in the form it carries them: an <c>Authorization</c> value (a client's
    /// Basic credentials are URL-encoded before base64, a form the redactor does not derive) and the secret
    /// parameters of a form body, encoded and decoded. An answer that echoes them is redacted of them.
    /// </summary>
    private void ProtectSent(TracedStep step)
    {
        var sent = new List<Secret>();
        foreach (var (name, value) in step.RequestHeaders)
        {
            if (Runs.OutboundRequest.IsCredentialHeader(name))
            {
                sent.Add(new Secret(value));
                if (value.IndexOf(' ', StringComparison.Ordinal) is > 0 and var space && value.Length - space > Redactor.MinimumLength)
                {
                    sent.Add(new Secret(value[(space + 1)..]));
                }
            }
        }

        foreach (var pair in (step.RequestBody ?? "").Split('&'))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0 && AuthTraceSteps.IsSecretParameter(Uri.UnescapeDataString(pair[..equals].Replace('+', ' '))) && pair.Length - equals > Redactor.MinimumLength)
            {
                var encoded = pair[(equals + 1)..];
                sent.Add(new Secret(encoded));
                sent.Add(new Secret(Uri.UnescapeDataString(encoded.Replace('+', ' '))));
            }
        }

        Protect(sent);
    }

    private TracedStep? ForExchange()
    {
        lock (_gate)
        {
            if (_closed)
            {
                return null;
            }

            if (_current is null || _current.Method is not null)
            {
                // An exchange nobody announced (discovery reads its document, then its keys): a step of its own, numbered.
                var name = _current?.Name ?? "request";
                var number = _steps.Count(s => s.Name == name || s.Name.StartsWith(name + " (", StringComparison.Ordinal)) + 1;
                _current = new TracedStep(number == 1 ? name : $"{name} ({number})", _current?.Kind ?? "request");
                _steps.Add(_current);
            }

            return _current;
        }
    }

    /// <summary>Records each exchange as sent and as answered, then passes the answer on (buffered, within <see cref="MaxBodyBytes"/>).</summary>
    private sealed class TracingHandler(AuthTrace trace) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var step = trace.ForExchange();
            if (step is null)
            {
                return await base.SendAsync(request, cancellationToken);
            }

            step.Method = request.Method.Method;
            step.Url = request.RequestUri?.AbsoluteUri;
            step.RequestHeaders = Pairs(request.Headers, request.Content?.Headers);
            if (request.Content is { } content)
            {
                // Token requests and flow steps send buffered contents (form, string): reading them does not consume them.
                step.RequestBody = await content.ReadAsStringAsync(cancellationToken);
            }

            trace.ProtectSent(step);

            var started = trace._time.GetTimestamp();
            try
            {
                var response = await base.SendAsync(request, cancellationToken);
                step.Status = (int)response.StatusCode;
                step.ResponseHeaders = Pairs(response.Headers, response.Content.Headers);
                if (response.Content.Headers.ContentLength is not > MaxBodyBytes)
                {
                    await response.Content.LoadIntoBufferAsync(MaxBodyBytes, cancellationToken);
                    var bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken);
                    step.ResponseBody = ResponseDecoding.IsEncoded(response.Content.Headers.ContentEncoding)
                        ? $"({bytes.Length} bytes encoded as {string.Join(", ", response.Content.Headers.ContentEncoding)}; not shown)"
                        : Text(bytes);
                }
                else
                {
                    step.ResponseBody = $"({response.Content.Headers.ContentLength} bytes; larger than the trace keeps)";
                }

                step.DurationMs = (long)trace._time.GetElapsedTime(started).TotalMilliseconds;
                return response;
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
            {
                step.DurationMs = (long)trace._time.GetElapsedTime(started).TotalMilliseconds;
                step.Error = e is OperationCanceledException ? "no answer in time." : e.InnerException is OutboundRequestException denied ? denied.Message : e.Message;
                throw;
            }
        }

        private static List<KeyValuePair<string, string>> Pairs(System.Net.Http.Headers.HttpHeaders headers, System.Net.Http.Headers.HttpHeaders? more)
        {
            var pairs = new List<KeyValuePair<string, string>>();
            foreach (var (name, values) in more is null ? headers : headers.Concat(more))
            {
                pairs.Add(new(name, string.Join(", ", values)));
            }

            return pairs;
        }

        private static string Text(byte[] bytes)
        {
            if (bytes.AsSpan().Contains((byte)0))
            {
                return $"({bytes.Length} bytes of binary data; not shown)";
            }

            try
            {
                return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                return $"({bytes.Length} bytes that are not UTF-8 text; not shown)";
            }
        }
    }
}

/// <summary>One step as recorded, raw: only <see cref="AuthTraceSteps"/> turns it into something shown, redacted.</summary>
internal sealed class TracedStep(string name, string kind)
{
    public string Name { get; } = name;

    /// <summary><c>flow</c>, <c>discovery</c>, <c>token</c> or <c>request</c>.</summary>
    public string Kind { get; } = kind;

    public string? Method { get; set; }

    public string? Url { get; set; }

    public List<KeyValuePair<string, string>> RequestHeaders { get; set; } = [];

    public string? RequestBody { get; set; }

    public int? Status { get; set; }

    public List<KeyValuePair<string, string>> ResponseHeaders { get; set; } = [];

    public string? ResponseBody { get; set; }

    public long? DurationMs { get; set; }

    public List<string> Extracted { get; } = [];

    public bool Failed { get; set; }

    public string? Error { get; set; }

    public FailureKind? Failure { get; set; }

    /// <summary>What a custom flow step's request was rendered from (null for discovery and token requests).</summary>
    public StepTemplates? Templates { get; set; }
}

/// <summary>
/// A custom flow request step's templates and, for each, why its rendered value is withheld (null: it reads
/// nothing secret and nothing the flow obtained, so the value as sent is shown).
/// </summary>
internal sealed record StepTemplates(
    string Url, string? UrlWithheld, IReadOnlyList<(string Name, string Source, string? Withheld)> Headers, string? Body, string? BodyWithheld)
{
    public static StepTemplates Of(RequestStep step, Func<string, bool> isSecret) => new(
        step.Url.Source,
        Templates.TemplateProvenance.WithheldBecause(step.Url, isSecret),
        [.. step.Headers.Select(h => (h.Key, h.Value.Source, Templates.TemplateProvenance.WithheldBecause(h.Value, isSecret)))],
        step.Body?.Source,
        step.Body is { } body ? Templates.TemplateProvenance.WithheldBecause(body, isSecret) : null);
}

using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Keyway.Outbound;
using Keyway.Resources;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Credentials;

/// <summary>
/// What custom login flows send their requests with: Keyway's outbound pool (the destination policy
/// applies, redirects are never followed, no cookie jar) and the clock that dates their answers.
/// </summary>
internal sealed class CustomFlowClient(HttpClient http, TimeProvider time)
{
    public HttpClient Http { get; } = http;

    public TimeProvider Time { get; } = time;
}

/// <summary>
/// The <c>custom</c> auth method as the engine sees it: runs a resource's login steps in order and
/// turns their variables into a <see cref="TokenSet"/>.
/// </summary>
/// <remarks>
/// <para>
/// Every variable is kept in <see cref="TokenSet.Extras"/> (as a <see cref="Secret"/>, persisted
/// encrypted) because <c>apply</c> may use any of them. <see cref="TokenSet.AccessToken"/> is a
/// SHA-256 digest of all of them (name and value, sorted by name), not "the first variable used in
/// apply": apply may use several variables, or use them inside script expressions whose roots cannot
/// all be told apart statically, and the engine compares access tokens to decide whether a rejection
/// concerns the current session. A digest changes when any variable changes (a refresh that renews
/// only a CSRF token is still a new credential), is the same on every replica, and is never sent
/// anywhere.
/// </para>
/// <para>
/// When the flow has <c>refreshSteps</c>, the token set carries the digest as its refresh token too,
/// which is how the engine knows to call <see cref="RefreshAsync"/> (with the stored variables)
/// rather than <see cref="AcquireAsync"/>. Should the refresh steps fail for any reason but a
/// transient one (the session is gone), the whole flow runs instead: a login can always be redone.
/// </para>
/// </remarks>
internal sealed class CustomFlowProvider(
    CustomFlowClient client, CompiledCustomFlow flow, TemplateScope resourceScope, Redactor environmentRedactor, string parametersHash,
    SecretBindings? bindings = null, AuthTrace? trace = null) : ITokenProvider
{
    private readonly SecretBindings _bindings = bindings ?? SecretBindings.None;

    /// <summary>How long one request step may take.</summary>
    public static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(30);

    /// <summary>The largest response a request step reads.</summary>
    public const int MaxResponseBytes = 1024 * 1024;

    public CompiledCustomFlow Flow { get; } = flow;

    public bool CanAcquire => true;

    public string ParametersHash { get; } = parametersHash;

    public TimeSpan? DefaultLifetime => Flow.Lifetime;

    public DateTimeOffset? NextScheduledRefresh(DateTimeOffset after) =>
        Flow.RefreshSchedule?.GetNextOccurrence(after.UtcDateTime, TimeZoneInfo.Utc) is { } next ? new DateTimeOffset(next, TimeSpan.Zero) : null;

    /// <summary>
    /// The flow's shape, the environment, the values of the plain variables the flow reads, and the
    /// versions of the secret ones: a session minted against another login URL or user name is not
    /// reused, and a new password (or a rollback) logs in again with it. A secret counts by its
    /// version (<paramref name="versions"/>), never its value, which is not hashed into the store.
    /// </summary>
    public static string HashParameters(
        CompiledCustomFlow flow, string environment, IReadOnlyDictionary<string, object?> variables, IReadOnlyDictionary<string, long>? versions = null)
    {
        var text = new StringBuilder("custom\n").Append(flow.ShapeHash).Append('\n').Append(environment);
        foreach (var name in flow.FlowVariables.Order(StringComparer.Ordinal))
        {
            text.Append('\n').Append(name).Append('=');
            if (variables.TryGetValue(name, out var value) && value is string plain)
            {
                text.Append(plain);
            }
            else if (versions is not null && versions.TryGetValue(name, out var version))
            {
                text.Append('#').Append(version);
            }
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..32];
    }

    public ITokenProvider WithTrace(AuthTrace trace) =>
        new CustomFlowProvider(new CustomFlowClient(trace.Http, client.Time), Flow, resourceScope, environmentRedactor, ParametersHash, _bindings, trace);

    public async Task<TokenResult> AcquireAsync(CredentialKey key, CancellationToken cancellationToken)
    {
        trace?.Called("acquire");
        return Traced(await RunAsync(Flow.Steps, null, cancellationToken));
    }

    public async Task<TokenResult> RefreshAsync(CredentialKey key, TokenSet current, CancellationToken cancellationToken)
    {
        if (Flow.RefreshSteps is not { } refreshSteps)
        {
            return await AcquireAsync(key, cancellationToken);
        }

        trace?.Called("refresh");
        trace?.Protect([current.AccessToken, current.RefreshToken, .. current.Extras.Values]);
        var refreshed = Traced(await RunAsync(refreshSteps, current.Extras, cancellationToken));
        return refreshed.Succeeded || refreshed.Failure == FailureKind.Transient
            ? refreshed
            : await AcquireAsync(key, cancellationToken);
    }

    private TokenResult Traced(TokenResult result)
    {
        trace?.Completed(result);
        return result;
    }

    /// <summary>The digest that stands for a set of variables (see the remarks on the class).</summary>
    public static Secret Digest(IReadOnlyDictionary<string, Secret> variables)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, value) in variables.OrderBy(v => v.Key, StringComparer.Ordinal))
        {
            hash.AppendData(Encoding.UTF8.GetBytes(name));
            hash.AppendData([0]);
            hash.AppendData(Encoding.UTF8.GetBytes(value.Reveal()));
            hash.AppendData([0]);
        }

        return new Secret("custom:" + Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    private async Task<TokenResult> RunAsync(IReadOnlyList<CustomStep> steps, IReadOnlyDictionary<string, Secret>? previous, CancellationToken cancellationToken)
    {
        var time = client.Time;
        var scope = resourceScope.Clone();
        var variables = new Dictionary<string, Secret>(StringComparer.Ordinal);
        foreach (var (name, value) in previous ?? new Dictionary<string, Secret>())
        {
            variables[name] = value;
            scope.With(name, value);
        }

        var receivedAt = time.GetUtcNow();
        foreach (var step in steps)
        {
            trace?.Begin(step.Name, "flow");
            try
            {
                switch (step)
                {
                    case RequestStep request:
                        {
                            var (response, failure) = await SendAsync(request, scope, variables, cancellationToken);
                            if (failure is not null)
                            {
                                return failure;
                            }

                            receivedAt = time.GetUtcNow();
                            scope.With(request.Name, response);
                            break;
                        }

                    case VariableStep variable:
                        {
                            var value = new Secret(variable.Value.Render(scope));
                            trace?.Extracted(variable.Name, value);
                            variables[variable.Name] = value;
                            scope.With(variable.Name, value);
                            break;
                        }

                    case JavascriptStep javascript:
                        {
                            if (javascript.Code.Invoke(scope) is not JsonObject result)
                            {
                                return Fail(FailureKind.Misconfigured, javascript, "the code must return an object, e.g. return { CSRF: login.headers['x-csrf'] };", variables, scope);
                            }

                            var position = 0;
                            foreach (var (name, node) in result)
                            {
                                position++;
                                if (!IsVariableName(name))
                                {
                                    // Not quoted: a returned name is computed by the script and could spell out a secret.
                                    return Fail(FailureKind.Misconfigured, javascript,
                                        $"returned property number {position} is not a usable variable name (an identifier, not environment, current_user or response).", variables, scope);
                                }

                                var value = new Secret(node switch
                                {
                                    null => "",
                                    JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
                                    _ => node.ToJsonString(),
                                });
                                trace?.Extracted(name, value);
                                variables[name] = value;
                                scope.With(name, value);
                            }

                            break;
                        }
                }
            }
            catch (TemplateException e)
            {
                return Fail(FailureKind.Misconfigured, step, e.Message, variables, scope);
            }
        }

        if (variables.Count == 0)
        {
            return TokenResult.Fail(FailureKind.Misconfigured, "The custom flow produced no variables: add a variable step (or a javascript step) for auth.apply to use.");
        }

        DateTimeOffset? expiresAt;
        try
        {
            expiresAt = ExpiresAt(scope, receivedAt);
        }
        catch (TemplateException e) when (previous is null)
        {
            return TokenResult.Fail(FailureKind.Misconfigured, Redact($"auth.expiresIn/auth.jwt failed: {e.Message}", variables));
        }
        catch (TemplateException)
        {
            // Refresh steps need not produce what the login's expiry template reads: the fallbacks decide.
            expiresAt = Flow.Lifetime is { } lifetime ? receivedAt + lifetime : null;
        }
        catch (FormatException e)
        {
            return TokenResult.Fail(FailureKind.Misconfigured, e.Message);
        }

        var digest = Digest(variables);
        return TokenResult.Success(new TokenSet
        {
            AccessToken = digest,
            RefreshToken = Flow.RefreshSteps is null ? null : digest,
            TokenType = "custom",
            ObtainedAt = receivedAt,
            ExpiresAt = expiresAt,
            Extras = variables,
        });
    }

    /// <summary><c>expiresIn</c> (seconds from receipt), else the <c>jwt</c>'s <c>exp</c>, else <c>lifetimeSeconds</c>, else none.</summary>
    private DateTimeOffset? ExpiresAt(TemplateScope scope, DateTimeOffset receivedAt)
    {
        if (Flow.ExpiresIn is { } expiresIn)
        {
            var value = expiresIn.Evaluate(scope);
            double? seconds = value switch
            {
                long l => l,
                double d => d,
                string s when s.Length == 0 => null,
                string s when double.TryParse(s, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var parsed) => parsed,
                null => null,
                _ => throw new FormatException("auth.expiresIn must give a number of seconds; it gave something else."),
            };
            if (seconds is > 0 and < 10L * 365 * 24 * 3600)
            {
                return receivedAt.AddSeconds(seconds.Value);
            }
        }

        if (Flow.Jwt is { } jwt && TokenExpiry.JwtExpiry(jwt.Render(scope)) is { } exp)
        {
            return exp;
        }

        return Flow.Lifetime is { } lifetime ? receivedAt + lifetime : null;
    }

    private async Task<(Dictionary<string, object?> Response, TokenResult? Failure)> SendAsync(
        RequestStep step, TemplateScope scope, Dictionary<string, Secret> variables, CancellationToken cancellationToken)
    {
        var url = step.Url.Render(scope);
        if (ResourceCompiler.CheckBaseUrl(url) is not null)
        {
            return ([], Fail(FailureKind.Misconfigured, step, "its url does not evaluate to an absolute http:// or https:// URL without user info.", variables, scope));
        }

        // Any step may carry a value derived from any secret the flow reads.
        if (_bindings.FirstRefusing(new Uri(url)) is { } refusing)
        {
            return ([], Fail(FailureKind.Misconfigured, step, SecretBindings.Refused(refusing, new Uri(url), "it").Message, variables, scope));
        }

        trace?.Sending(step);
        using var request = new HttpRequestMessage(step.Method, new Uri(url)) { Version = System.Net.HttpVersion.Version11 };
        if (step.Body is { } bodyTemplate)
        {
            var body = bodyTemplate.Render(scope);
            request.Content = new StringContent(body, Encoding.UTF8);
            request.Content.Headers.ContentType = new MediaTypeHeaderValue(LooksLikeJson(body) ? "application/json" : "text/plain") { CharSet = "utf-8" };
        }

        foreach (var (name, template) in step.Headers)
        {
            var value = template.Render(scope);
            if (!HeaderRules.IsValidValue(value))
            {
                return ([], Fail(FailureKind.Misconfigured, step, $"its header '{name}' evaluates to a value with line breaks or control characters.", variables, scope));
            }

            // A Content-Type header replaces the guessed one (Set puts it on the content).
            HeaderRules.Set(request, name, value);
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StepTimeout);
        HttpResponseMessage response;
        try
        {
            response = await client.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return ([], Fail(FailureKind.Transient, step, $"no answer within {StepTimeout.TotalSeconds:0} s.", variables, scope));
        }
        catch (HttpRequestException e)
        {
            return e.InnerException is OutboundRequestException denied
                ? ([], Fail(FailureKind.Misconfigured, step, denied.Message, variables, scope))
                : ([], Fail(FailureKind.Transient, step, $"could not be reached: {e.Message}", variables, scope));
        }

        using (response)
        {
            string text;
            try
            {
                text = await ReadAsync(response, timeout.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                return ([], Fail(FailureKind.Transient, step, $"no complete answer within {StepTimeout.TotalSeconds:0} s.", variables, scope));
            }
            catch (InvalidDataException e)
            {
                return ([], Fail(FailureKind.Misconfigured, step, e.Message, variables, scope));
            }
            catch (HttpRequestException e)
            {
                return ([], Fail(FailureKind.Transient, step, $"the answer was cut short: {e.Message}", variables, scope));
            }

            var status = (int)response.StatusCode;
            if (status >= 400)
            {
                var transient = status is 408 or 429 or >= 500;
                TimeSpan? retryAfter = null;
                if (transient && response.Headers.RetryAfter is { } header)
                {
                    retryAfter = header.Delta ?? (header.Date is { } date ? date - client.Time.GetUtcNow() : null);
                }

                var snippet = Regex.Replace(Redact(text, variables, scope), @"\s+", " ").Trim();
                var why = $"answered {status}{(snippet.Length == 0 ? "" : ": " + Truncate(snippet))}";
                return ([], Fail(transient ? FailureKind.Transient : FailureKind.Misconfigured, step, why, variables, scope, retryAfter));
            }

            var headers = new Dictionary<string, object?>(StringComparer.Ordinal);
            var cookies = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
            {
                headers[name.ToLowerInvariant()] = string.Join(", ", values);
                if (name.Equals("Set-Cookie", StringComparison.OrdinalIgnoreCase))
                {
                    foreach (var cookie in values)
                    {
                        var pair = cookie.Split(';', 2)[0];
                        var equals = pair.IndexOf('=', StringComparison.Ordinal);
                        if (equals > 0)
                        {
                            cookies[pair[..equals].Trim()] = pair[(equals + 1)..].Trim();
                        }
                    }
                }
            }

            object? parsedBody = text;
            if (text.Length > 0)
            {
                try
                {
                    using var document = JsonDocument.Parse(text);
                    parsedBody = document.RootElement.Clone();
                }
                catch (JsonException)
                {
                    // Not JSON: the body is the text.
                }
            }

            return (new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["status"] = (long)status,
                ["headers"] = headers,
                ["cookies"] = cookies,
                ["body"] = parsedBody,
            }, null);
        }
    }

    private static async Task<string> ReadAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        var tooLarge = $"its answer is larger than {MaxResponseBytes} bytes.";
        if (response.Content.Headers.ContentLength is > MaxResponseBytes)
        {
            throw new InvalidDataException(tooLarge);
        }

        // Identity was asked for; an answer compressed anyway is decoded (within the limit) so that its error text can be redacted.
        var encoding = response.Content.Headers.ContentEncoding;
        if (ResponseDecoding.FindUnsupported(encoding) is { } unsupported)
        {
            throw new InvalidDataException($"its answer is encoded as '{unsupported}', which Keyway cannot decode (it asks for 'Accept-Encoding: identity').");
        }

        await using var raw = await response.Content.ReadAsStreamAsync(cancellationToken);
        await using var stream = ResponseDecoding.IsEncoded(encoding) ? ResponseDecoding.Decode(raw, encoding, MaxResponseBytes) : raw;
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        try
        {
            while ((read = await stream.ReadAsync(chunk, cancellationToken)) > 0)
            {
                if (buffer.Length + read > MaxResponseBytes)
                {
                    throw new InvalidDataException(tooLarge);
                }

                buffer.Write(chunk, 0, read);
            }
        }
        catch (DecodedTooLargeException)
        {
            throw new InvalidDataException(tooLarge);
        }

        return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length);
    }

    private TokenResult Fail(
        FailureKind kind, CustomStep step, string why, Dictionary<string, Secret> variables, TemplateScope scope, TimeSpan? retryAfter = null) =>
        TokenResult.Fail(kind, Redact($"Step '{step.Name}' ({step.Field}{(step is RequestStep r ? ", " + r.Method : "")}) failed: {why}", variables, scope), retryAfter);

    /// <summary>
    /// Also removes every string the flow has seen so far (earlier steps' answers, a session one of them
    /// obtained): an error that quotes one back must not give it away.
    /// </summary>
    private string Redact(string text, Dictionary<string, Secret> variables, TemplateScope scope) =>
        new Redactor(scope.CollectStrings(minimumLength: 8)).Redact(Redact(text, variables));

    /// <summary>Removes the environment's secrets and every variable the flow has produced so far.</summary>
    private string Redact(string text, Dictionary<string, Secret> variables) =>
        environmentRedactor.Combine(Redactor.For(variables.Values)).Redact(text);

    private static bool IsVariableName(string name) =>
        name.Length > 0 && (char.IsAsciiLetter(name[0]) || name[0] == '_') && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_') &&
        name is not ("environment" or "current_user" or "response" or "inputs");

    private static bool LooksLikeJson(string body)
    {
        var trimmed = body.AsSpan().TrimStart();
        if (trimmed.Length == 0 || (trimmed[0] != '{' && trimmed[0] != '['))
        {
            return false;
        }

        try
        {
            using var _ = JsonDocument.Parse(body);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static string Truncate(string text) => text.Length <= 200 ? text : text[..200] + "…";
}

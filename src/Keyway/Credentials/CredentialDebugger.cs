using Keyway.Access;
using Keyway.Api;
using Keyway.Outbound;
using Keyway.Resources;
using Keyway.Runs;
using Keyway.Secrets;

namespace Keyway.Credentials;

/// <summary>
/// The resource test as a debugger (<c>POST /api/v1/resources/{name}/test</c>): resolves the resource, obtains
/// its credential through the engine with a traced provider (each custom-flow step, discovery and token
/// request as sent and as answered, timed, with what each extracted), then sends the request the person
/// chose and reports it as sent. The first failed step carries the fix where Keyway knows it.
/// </summary>
/// <remarks>
/// The credential in hand is used as it is unless <see cref="TestRequest.Fresh"/> asks for a refresh: even then
/// it is the engine's refresh (its single flight, cluster lock, journal and compare-and-swap write), so a
/// debug run never spends a refresh token the engine does not store, and never races it. A refresh already
/// under way is joined, not traced. Every string in the report passes through the resource's redactor plus
/// the credential's tokens and everything the flow extracted.
/// </remarks>
internal sealed class CredentialDebugger(
    ResourceService resources, ResourceResolver resolver, CredentialEngine engine, RunExecutor executor, OutboundClient outbound, TimeProvider time)
{
    /// <summary>
    /// Runs the test. <paramref name="full"/>: whether the caller may see the bodies of the login and token exchanges
    /// (owners and admins); otherwise their structure only: field names, types and lengths, with status and timing.
    /// </summary>
    public async Task<TestReport> RunAsync(string name, string environment, TestRequest request, Caller caller, bool full, CancellationToken ct)
    {
        // A malformed request is the caller's error (400), not a step.
        var call = RunCalls.FromRequest(new RunRequest
        {
            Method = request.Method ?? "GET",
            Path = request.Path,
            Query = request.Query,
            Headers = request.Headers,
            Body = request.Body,
        });
        var steps = new List<TestStep>();
        ResolvedResource resolved;
        var started = time.GetTimestamp();
        try
        {
            var compiled = await resources.GetCompiledAsync(name, ct);
            resolved = await resolver.ResolveAsync(compiled, environment, caller, ct);
            var baseUrl = resolved.Shown.BaseUrlWithheld is { } withheld
                ? Templates.TemplateProvenance.Marker("the base URL " + withheld)
                : resolved.Redactor.Redact(resolved.BaseUrl.ToString());
            steps.Add(new TestStep("configuration", true, $"base URL {baseUrl}") { DurationMs = Ms(started) });
            if (resolved.Tls?.Tls is { Certificate: { } certificate, NotAfter: { } notAfter })
            {
                // The certificate's subject and expiry: public, and the first thing to check when a handshake is refused.
                var expired = notAfter <= time.GetUtcNow();
                steps.Add(new TestStep("client certificate", !expired,
                    $"{certificate.Subject}, valid until {notAfter:yyyy-MM-dd HH:mm}Z{(expired ? " (expired)" : "")}")
                {
                    Fix = expired ? "Renew the client certificate and set the variables tls reads to the new one." : null,
                });
            }
        }
        catch (KeywayException e)
        {
            steps.Add(new TestStep("configuration", false, e.Message) { Fix = "Fix the resource's definition or the variables it reads in this environment." });
            return Report(steps);
        }

        var definition = AuthTraceSteps.DefinitionText(resolved.Resource);
        var binding = resolved.Credential;
        if (binding is null)
        {
            steps.Add(new TestStep("credential", true, $"static auth ({resolved.Resource.Definition.Auth?.Type ?? "none"})") { Kind = "credential" });
            await RequestAsync(resolved, call, caller, resolved.Redactor, null, null, steps, ct);
            return Report(steps);
        }

        var trace = new AuthTrace(outbound, time, resolved.Values.IsSecret);
        var traced = binding.WithTrace(trace);
        var key = binding.KeyFor(caller);
        Credential? credential = null;
        KeywayException? failure = null;
        started = time.GetTimestamp();
        try
        {
            credential = request.Fresh
                ? await engine.RefreshAsync(key, traced.Provider, ct)
                : await engine.GetAsync(key, traced.Provider, ct);
        }
        catch (KeywayException e)
        {
            failure = e;
        }

        var elapsed = Ms(started);
        var calls = trace.Calls;
        var authSteps = trace.Count;
        var redactor = credential is null ? resolved.Redactor : binding.RedactorFor(resolved.Redactor, credential);
        TestStep credentialStep;
        if (failure is not null)
        {
            credentialStep = new TestStep("credential", false, $"{failure.Code}: {failure.Message}") { Kind = "credential", DurationMs = elapsed, Fix = DebugFixes.ForCredential(failure) };
        }
        else
        {
            credentialStep = new TestStep("credential", true, Describe(credential!, calls, request.Fresh)) { Kind = "credential", DurationMs = elapsed };
        }

        var tail = new List<TestStep>();
        if (credential is not null)
        {
            await RequestAsync(resolved.WithCredential(traced), call, caller, redactor, binding, credential, tail, ct);
        }

        var (recorded, secrets, tainted) = trace.Close();
        // Redacted now that the whole run is known: a value a later step extracted is withheld from earlier steps too.
        var all = redactor.Combine(Redactor.For(secrets));
        foreach (var step in recorded.Take(authSteps))
        {
            steps.Add(AuthTraceSteps.Render(step, all, definition, tainted, full));
        }

        steps.Add(credentialStep with { Detail = all.Redact(credentialStep.Detail) });
        // Steps recorded during the request: the refresh after the upstream rejected the token.
        foreach (var step in recorded.Skip(authSteps))
        {
            var shown = AuthTraceSteps.Render(step, all, definition, tainted, full);
            steps.Add(shown with { Step = shown.Step + " (after the upstream rejected the token)" });
        }

        steps.AddRange(tail.Select(s => s with
        {
            Detail = all.Redact(s.Detail),
            Request = s.Request is { } r ? OutboundRequest.From(r.Method, r.Url, r.Headers, r.Body, all) : null,
            Response = s.Response is { } a ? a with { Headers = OutboundRequest.RedactHeaders(a.Headers, all), Body = a.Body is null ? null : AuthTraceSteps.RedactBody(a.Body, all) } : null,
        }));
        return Report(steps);
    }

    /// <summary>The request the person chose, through the run executor (so a rejected token is refreshed once, as for any run).</summary>
    private async Task RequestAsync(
        ResolvedResource resolved, OutboundCall call, Caller caller, Redactor redactor, CredentialBinding? binding, Credential? credential, List<TestStep> steps, CancellationToken ct)
    {
        var what = $"{call.Method} {call.Path ?? "/"}";
        try
        {
            var result = await executor.ExecuteAsync(resolved, call, caller, ct);
            var ok = result.Status < 400;
            var body = result.Body is not { } element ? null
                : element.ValueKind == System.Text.Json.JsonValueKind.String && result.BodyEncoding is null ? element.GetString()
                : result.BodyEncoding == "base64" ? "(binary data; not shown)"
                : element.GetRawText();
            steps.Add(new TestStep("request", ok, $"{what} answered {result.Status} in {result.DurationMs} ms" + (result.Refreshed ? " (after one refresh)" : ""))
            {
                Kind = "request",
                DurationMs = result.DurationMs,
                Request = result.Outbound,
                Response = new TestResponse(result.Status, result.Headers, body),
                Fix = ok ? null : DebugFixes.ForAnswer(result.Status, result.Refreshed, binding is not null),
            });
        }
        catch (KeywayException e)
        {
            steps.Add(new TestStep("request", false, $"{what}: {e.Code}: {redactor.Redact(e.Message)}") { Kind = "request", Fix = DebugFixes.ForRequestError(e) });
        }
    }

    private static string Describe(Credential credential, IReadOnlyList<string> calls, bool fresh)
    {
        var tokens = credential.Tokens;
        var valid = tokens.ExpiresAt is { } at ? $"valid until {at:u}" : "without a known expiry";
        if (calls.Count == 0)
        {
            return fresh
                ? $"a refresh already under way (or just stored by another replica) was used; its steps are not traced. Token {valid}."
                : $"the credential in hand was used (obtained {tokens.ObtainedAt:u}, token {valid}); no token request was made. Test with a fresh run to run the exchange again.";
        }

        var how = calls[^1] == "refresh" ? "refreshed" : "obtained";
        return $"{how} (token {valid})";
    }

    private long Ms(long started) => (long)time.GetElapsedTime(started).TotalMilliseconds;

    private static TestReport Report(List<TestStep> steps)
    {
        var failed = steps.FirstOrDefault(s => !s.Ok && s.Kind is "configuration" or "credential" or "request")
            ?? steps.FirstOrDefault(s => !s.Ok);
        var ok = steps.Count > 0 && steps.Where(s => s.Kind is "configuration" or "credential" or "request").All(s => s.Ok) && steps.Any(s => s.Kind == "request");
        // The step that failed first in time is where to look: a failed flow or token step comes before the credential step it failed.
        var first = steps.FirstOrDefault(s => !s.Ok);
        var blamed = ok ? null : first ?? failed;
        return new TestReport(ok, steps)
        {
            FailedStep = blamed?.Step,
            Fix = blamed?.Fix ?? failed?.Fix,
        };
    }
}

using System.Text.Json;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Environments;
using Keyway.Outbound;
using Keyway.Resources;
using Keyway.Runs;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Rotations;

/// <summary>
/// One rotation request to send: a step, its templates' scope, for verify the pending value to use, and who started the
/// rotation (null for a schedule's or a recovery's), whom the request's audit event names.
/// </summary>
internal sealed record RotationRequest(
    CompiledRotationStep Step, string Environment, string Variable, TemplateScope Scope, PendingValue? Pending = null, Access.Caller? Actor = null);

/// <summary>A minted value not yet committed, to resolve the verify resource with in place of the current one.</summary>
internal sealed record PendingValue(Secret Value, long Version);

/// <summary>An answer: its status, and what later templates see (<c>status</c>, <c>headers</c>, <c>body</c>).</summary>
internal sealed record RotationAnswer(int Status, IReadOnlyDictionary<string, object?> Response);

/// <summary>
/// Sends a rotation's requests. The one implementation sends them through resources; the state
/// machine's tests give it a fake provider.
/// </summary>
internal interface IRotationSteps
{
    /// <summary>Sends the request; Keyway's own failures (origin refused, unreachable, timeout) are <see cref="KeywayException"/>s.</summary>
    Task<RotationAnswer> SendAsync(RotationRequest request, CancellationToken cancellationToken);
}

/// <summary>
/// Rotation requests through resources: the step's resource is resolved in the rotation's
/// environment (for verify, with the pending value in place of the variable's current one, never
/// cached), and the request goes through <see cref="RunExecutor"/>, so the resource's base URL,
/// headers, credential, timeouts, destination policy and origin bindings all apply. On top of them,
/// the rotated variable must be bound to origins (<c>rotation_needs_binding</c> otherwise, nothing
/// sent), and every rotation request must go to one of them: a
/// mint step's answer (the new secret) could be carried by a later step's template, and a minted
/// value may reach only where the variable may be sent.
/// Every request sent is audited like other upstream traffic (<see cref="TrafficAudit.RecordRotationAsync"/>): kind
/// <c>rotation.mint</c>, <c>rotation.verify</c> or <c>rotation.revoke</c>, the resource, method, path and status, never a
/// body; so is one refused after its URL was built (an origin not allowed, an unreachable provider), with its code.
/// </summary>
internal sealed class ResourceRotationSteps(
    ResourceService resources, ResourceResolver resolver, VariableService variables, RunExecutor executor, TrafficAudit traffic, TimeProvider time) : IRotationSteps
{
    public async Task<RotationAnswer> SendAsync(RotationRequest request, CancellationToken cancellationToken)
    {
        var step = request.Step;
        var values = await variables.GetValuesAsync(request.Environment, cancellationToken);
        if (!values.Origins.TryGetValue(request.Variable, out var origins) || origins.Count == 0)
        {
            // Checked before anything is resolved or sent: the binding may have been removed after the flow was saved.
            throw new KeywayException(StatusCodes.Status409Conflict, "rotation_needs_binding",
                $"'{request.Variable}' in '{request.Environment}' is no longer bound to origins, so no rotation request is sent. Bind it again: keyway var bind {request.Variable} ORIGIN --env {request.Environment}");
        }

        var compiled = await resources.GetCompiledAsync(step.Resource, cancellationToken);
        if (request.Pending is not null && !compiled.ReadsAllVariables && !compiled.Variables.Contains(request.Variable))
        {
            // Checked on save too, but the resource may have changed since: a verify that does not send the new value proves nothing.
            throw new KeywayException(StatusCodes.Status409Conflict, "rotation_verify_not_reading_variable",
                $"Resource '{step.Resource}' no longer reads {request.Variable}, so verify would not test the new value; nothing was committed. Verify through a resource whose templates use {{{{ environment.variables.{request.Variable} }}}}.");
        }

        var resolved = request.Pending is { } pending
            ? await resolver.ResolveWithAsync(compiled, request.Environment, request.Variable, pending.Value, pending.Version, cancellationToken)
            : await resolver.ResolveAsync(compiled, request.Environment, null, cancellationToken);
        var scope = request.Scope;
        string Render(Template template)
        {
            try
            {
                return template.Render(scope);
            }
            catch (TemplateException e)
            {
                throw new KeywayException(StatusCodes.Status400BadRequest, "template_error", $"A template of rotation step '{step.Name}' ({step.Field}) failed: {e.Message}");
            }
        }

        var query = step.Query.Select(q => new KeyValuePair<string, string?>(q.Key, Render(q.Value))).ToList();
        var headers = RunCalls.CallerHeaders(step.Headers.ToDictionary(h => h.Key, h => Render(h.Value), StringComparer.OrdinalIgnoreCase));
        JsonElement? body = null;
        if (step.Body is { } bodyTemplate)
        {
            var text = Render(bodyTemplate);
            body = LooksLikeJson(text) ? JsonDocument.Parse(text).RootElement.Clone() : JsonSerializer.SerializeToElement(text);
        }

        var path = Render(step.Path);
        var kind = "rotation." + (step.Field.StartsWith("mint", StringComparison.Ordinal) ? "mint" : step.Field);
        var audited = AuditRedaction.PathWithQuery(path, query);
        var started = time.GetTimestamp();
        RunResult result;
        try
        {
            var url = RunExecutor.BuildUrl(resolved, path, query);
            new SecretBindings([new SecretBinding(request.Variable, request.Environment, origins)]).Demand(url, $"rotation step '{step.Name}' (resource '{step.Resource}')");

            var content = RunExecutor.ContentFor(body, headers, out var replayable);
            var call = new OutboundCall(step.Method, path, query,
                headers.Where(h => !h.Key.Equals("Content-Type", StringComparison.OrdinalIgnoreCase) || content is null).ToList(), content, replayable);
            result = await executor.ExecuteAsync(resolved, call, null, cancellationToken);
        }
        catch (KeywayException e)
        {
            await traffic.RecordRotationAsync(kind, request.Actor, request.Variable, step.Resource, request.Environment, step.Method.Method, audited,
                null, (long)time.GetElapsedTime(started).TotalMilliseconds, false, e.Code);
            throw;
        }

        await traffic.RecordRotationAsync(kind, request.Actor, request.Variable, step.Resource, request.Environment, step.Method.Method, audited,
            result.Status, result.DurationMs, result.Refreshed, null);
        var responseHeaders = result.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => (object?)h.Value, StringComparer.Ordinal);
        return new RotationAnswer(result.Status, new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["status"] = (long)result.Status,
            ["headers"] = responseHeaders,
            ["body"] = result.Body is { } b ? b : null,
        });
    }

    private static bool LooksLikeJson(string text)
    {
        var trimmed = text.AsSpan().TrimStart();
        if (trimmed.Length == 0 || (trimmed[0] != '{' && trimmed[0] != '['))
        {
            return false;
        }

        try
        {
            using var _ = JsonDocument.Parse(text);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }
}

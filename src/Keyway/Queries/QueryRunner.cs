using System.Text.Json;
using Keyway.Access;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Resources;
using Keyway.Runs;
using Keyway.Storage;

namespace Keyway.Queries;

/// <summary>
/// Runs a saved query as a caller: the one path <c>POST /queries/{name}/run</c> and scheduled
/// <c>run</c> actions take. The caller's <c>use</c> on the query's resource in the environment is
/// demanded here, so no path runs a query its caller may not.
/// </summary>
internal sealed class QueryRunner(
    QueryService queries, ResourceResolver resolver, RunExecutor executor, AccessPolicy access, TrafficAudit traffic, TimeProvider time)
{
    public async Task<RunResult> RunAsync(string name, string environment, JsonElement? inputs, Caller caller, CancellationToken ct)
    {
        var (query, resource) = await queries.GetCompiledAsync(name, ct);
        access.Demand(caller, Permission.Use, resource.Name, environment);
        if (traffic.IsStalled)
        {
            // A run is recorded, and the record could not be queued until the store is back.
            throw StoreFailure.Unavailable();
        }

        var started = time.GetTimestamp();
        OutboundCall? built = null;
        TrafficMode? mode = null;
        try
        {
            var resolved = await resolver.ResolveAsync(resource, environment, caller, ct);
            mode = resolved.TrafficMode;
            foreach (var variable in query.Variables)
            {
                if (resolved.Values.IsSecret(variable))
                {
                    throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                        $"The query '{name}' reads the secret variable '{variable}'. Secret variables can only be used in resource configuration (headers, auth); move it there.");
                }
            }

            var scope = Scopes.ForQuery(resolved.Values, caller, inputs);
            OutboundCall call;
            try
            {
                call = query.Build(scope);
            }
            catch (Templates.TemplateException e)
            {
                throw new KeywayException(StatusCodes.Status400BadRequest, "template_error", $"A template of query '{name}' failed: {resolved.Redactor.Redact(e.Message)}");
            }

            built = call;
            var result = await executor.ExecuteAsync(resolved, call, caller, ct);
            await traffic.RecordRunAsync(mode, "query", caller, resource.Name, environment, call.Method.Method,
                AuditRedaction.PathWithQuery(call.Path, call.Query), result.Status, result.DurationMs, result.Refreshed, null, name,
                bytesOut: AccessLog.BodyBytes(result));
            return result;
        }
        catch (KeywayException e)
        {
            await traffic.RecordRunAsync(mode, "query", caller, resource.Name, environment, built?.Method.Method ?? "-",
                built is null ? "-" : AuditRedaction.PathWithQuery(built.Path, built.Query), null,
                (long)time.GetElapsedTime(started).TotalMilliseconds, false, e.Code, name);
            throw;
        }
    }
}

using Keyway.Access;
using Keyway.Api;
using Keyway.Credentials;
using Keyway.Environments;
using Keyway.Secrets;
using Keyway.Storage;

namespace Keyway.Audit;

/// <summary>Builds the entries Keyway records for runs, denials and credential transitions.</summary>
internal static class AuditEntries
{
    /// <summary>
    /// The action of every run. Schema 8's action index leaves these events out (they are nearly all
    /// of the log, and a filter on them finds a page among the newest), so a query for this action
    /// walks <c>seq</c>, and a query for any other says <c>action &lt;&gt; 'run'</c> to use the index.
    /// </summary>
    public const string RunAction = "run";

    /// <summary>
    /// A run: an ad-hoc <c>/run</c>, a saved query's run or a proxied request. <paramref name="path"/>
    /// holds the query string; the writer redacts secret-bearing values in it.
    /// </summary>
    public static AuditEntry Run(
        string kind, Caller? caller, string resource, string environment, string method, string path,
        int? status, long durationMs, bool refreshed, string? errorCode, string? queryName = null, long? bytesOut = null, long? bytesIn = null) =>
        new(RunAction, errorCode is null ? AuditOutcome.Success : AuditOutcome.Failure)
        {
            Actor = caller,
            Resource = resource,
            Environment = environment,
            Target = queryName,
            Run = new RunDetail(kind, method, path, status, durationMs, refreshed, errorCode),
            BytesOut = bytesOut,
            BytesIn = bytesIn,
        };

    /// <summary>A 403: who was refused what, where.</summary>
    public static AuditEntry Denied(Caller caller, HttpContext http, KeywayException e)
    {
        // What Demand refused names the resource and environment; route values are gone by the time the exception handler runs.
        var refused = e as AccessDeniedException;
        var routes = http.Request.RouteValues;
        var resource = refused?.Resource ?? routes["resource"] as string
                       ?? (http.Request.Path.StartsWithSegments("/api/v1/resources") ? routes["name"] as string : null);
        var environment = refused?.Environment ?? http.Request.Query["environment"].FirstOrDefault()
                          ?? http.Request.Headers[Proxy.ProxyEndpoints.EnvironmentHeader].FirstOrDefault();
        return new AuditEntry("access.denied", AuditOutcome.Denied)
        {
            Actor = caller,
            Resource = resource,
            Environment = environment,
            Detail = new Dictionary<string, object?>(StringComparer.Ordinal)
            {
                ["method"] = http.Request.Method,
                [AuditRedaction.PathKey] = http.Request.Path.Value + http.Request.QueryString.Value,
                ["code"] = e.Code,
                ["reason"] = e.Message,
            },
        };
    }

    public static AuditEntry Credential(CredentialEvent e)
    {
        var (name, outcome) = e.Kind switch
        {
            CredentialEventKind.Connected => ("connected", AuditOutcome.Success),
            CredentialEventKind.Refreshed => ("refreshed", AuditOutcome.Success),
            CredentialEventKind.RefreshFailed => ("refresh_failed", AuditOutcome.Failure),
            CredentialEventKind.Recovered => ("recovered", AuditOutcome.Success),
            CredentialEventKind.ReconnectRequired => ("reconnect_required", AuditOutcome.Failure),
            CredentialEventKind.Failed => ("failed", AuditOutcome.Failure),
            _ => ("disconnected", AuditOutcome.Success),
        };
        var detail = new Dictionary<string, object?>(StringComparer.Ordinal) { ["owner"] = e.Key.Owner };
        if (e.Detail is not null)
        {
            detail["error"] = e.Detail;
        }

        if (e.Duration is { } duration)
        {
            detail["durationMs"] = (long)duration.TotalMilliseconds;
        }

        return new AuditEntry("credential." + name, outcome)
        {
            Resource = e.Key.Resource,
            Environment = e.Key.Environment,
            Target = e.Key.Owner,
            Detail = detail,
        };
    }
}

/// <summary>
/// Stages credential transitions in the transaction that stores them (<see cref="CredentialEvents.Stage"/>);
/// while the store is unreachable, queues them instead. A failure to queue is logged, never thrown into the refresh path.
/// </summary>
internal sealed partial class CredentialAudit(CredentialEvents events, IAuditLog audit, ILogger<CredentialAudit> logger)
{
    public void Subscribe()
    {
        events.Stage = (e, transaction) => audit.StageAsync(transaction, AuditEntries.Credential(e), CancellationToken.None);
        events.Staged = audit.NotifyStaged;
        events.RecordLater = e =>
        {
            var pending = audit.RecordAsync(AuditEntries.Credential(e));
            if (!pending.IsCompletedSuccessfully)
            {
                _ = WaitAsync(pending);
            }
        };
    }

    private async Task WaitAsync(ValueTask pending)
    {
        try
        {
            await pending;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Log.NotRecorded(logger, e.GetType().Name);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Error, "A credential event could not be recorded in the audit log ({Error})")]
        public static partial void NotRecorded(ILogger logger, string error);
    }
}

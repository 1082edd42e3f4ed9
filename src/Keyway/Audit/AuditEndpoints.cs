using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Keyway.Access;
using Keyway.Api;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Audit;

/// <summary>An event as the API shows it.</summary>
internal sealed record AuditEventView(
    long Seq, string Id, DateTimeOffset At, AuditActorView Actor, string Action, string Outcome,
    string? Resource, string? Environment, string? Target, JsonElement? Detail, string PrevHash, string Hash)
{
    public static AuditEventView From(AuditEvent e) => new(
        e.Seq, e.Id, DateTimeOffset.FromUnixTimeMilliseconds(e.At), new AuditActorView(e.ActorId, e.ActorName, e.ActorKind, e.KeyId),
        e.Action, e.Outcome, e.Resource, e.Environment, e.Target, ParseDetail(e.Detail), e.PrevHash, e.Hash);

    private static JsonElement? ParseDetail(string? detail)
    {
        if (detail is null)
        {
            return null;
        }

        try
        {
            using var document = JsonDocument.Parse(detail);
            return document.RootElement.Clone();
        }
        catch (JsonException)
        {
            // A row edited by hand into something that is not JSON: show it as text (verify reports it).
            return JsonSerializer.SerializeToElement(detail);
        }
    }
}

internal sealed record AuditActorView(string Id, string Name, string Kind, string? KeyId);

internal sealed record AuditPage(IReadOnlyList<AuditEventView> Events, long? Next);

internal sealed record AuditVerifyResult(bool Ok, long Checked, AuditHeadView Head, BrokenEvent? FirstBroken, AuditCheckpointView? Checkpoint = null);

internal sealed record AuditHeadView(long Seq, string? Id, string Hash, string? SealKey);

/// <summary>A retention checkpoint as the API shows it (docs/audit.md, "Retention and checkpoints").</summary>
internal sealed record AuditCheckpointView(
    long Number, long Seq, string? Id, string Hash, DateTimeOffset At, DateTimeOffset MadeAt, DateTimeOffset TrafficBefore, DateTimeOffset ChangesBefore,
    long Pruned, long Kept, string? Archive, string? SealKey)
{
    public static AuditCheckpointView? From(AuditCheckpoint? c) => c is null ? null : new(
        c.Number, c.Seq, c.EventId, c.Hash, DateTimeOffset.FromUnixTimeMilliseconds(c.At), DateTimeOffset.FromUnixTimeMilliseconds(c.MadeAt),
        DateTimeOffset.FromUnixTimeMilliseconds(c.TrafficBefore), DateTimeOffset.FromUnixTimeMilliseconds(c.ChangesBefore), c.Pruned, c.Kept, c.Archive, c.SealKey);
}

internal sealed record AuditPruneView(
    bool DryRun, long Pruned, long Traffic, long Changes, long Kept, long? CutSeq, DateTimeOffset? TrafficBefore, DateTimeOffset? ChangesBefore,
    AuditCheckpointView? Checkpoint, string? Archive);

internal static class AuditEndpoints
{
    public const string NdjsonContentType = "application/x-ndjson";

    public static RouteGroupBuilder MapAudit(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/audit").WithTags("Audit");

        group.MapGet("/", async Task<Results<Ok<AuditPage>, ProblemHttpResult>> (HttpRequest request, AuditStore store, CancellationToken ct) =>
            {
                var query = ParseQuery(request);
                var events = await store.QueryAsync(query, ct);
                return TypedResults.Ok(new AuditPage(events.Select(AuditEventView.From).ToList(), events.Count > 0 ? events[^1].Seq : query.After));
            })
            .Requires(Permission.Admin)
            .WithSummary("Audit events, oldest first: the newest 'limit' (default 100, at most 1000), those after the cursor 'after', or the newest before 'before' (paging back). " +
                         "Filters: actor (user id, user name or key id), resource, action (exact, or a prefix ending in '.'), since and until (ISO 8601).");

        group.MapGet("/export", async (HttpContext http, AuditStore store, CancellationToken ct) =>
            {
                var query = ParseQuery(http.Request) with { Limit = AuditStore.MaxLimit };
                var after = query.After ?? 0;
                http.Response.ContentType = NdjsonContentType;
                var body = http.Response.BodyWriter;
                while (true)
                {
                    var page = await store.QueryAsync(query with { After = after }, ct);
                    if (page.Count == 0)
                    {
                        break;
                    }

                    foreach (var e in page)
                    {
                        body.Write(JsonSerializer.SerializeToUtf8Bytes(AuditEventView.From(e), JsonSerializerOptions.Web));
                        body.Write("\n"u8);
                    }

                    // One page at a time reaches the client: an export of millions of events never sits in memory.
                    after = page[^1].Seq;
                    await body.FlushAsync(ct);
                }
            })
            .Requires(Permission.Admin)
            .Produces(StatusCodes.Status200OK, contentType: NdjsonContentType)
            .WithSummary("Every audit event (after the cursor 'after', with the list's filters) as JSON lines, streamed, for a SIEM.");

        group.MapPost("/verify", async (AuditVerifier verifier, CancellationToken ct) =>
            {
                var result = await verifier.VerifyAsync(ct);
                return TypedResults.Ok(new AuditVerifyResult(result.Ok, result.Checked,
                    new AuditHeadView(result.Head.Seq, result.Head.EventId, result.Head.Hash, result.Head.SealKey), result.FirstBroken,
                    AuditCheckpointView.From(result.Checkpoint)));
            })
            .Requires(Permission.Admin)
            .WithSummary("Walk the hash chain from the newest retention checkpoint and report the first broken event (edited, deleted, reordered or inserted) by seq and id.");

        group.MapPost("/prune", async (HttpContext http, AuditPruner pruner, CancellationToken ct) =>
            {
                var dryRun = http.Request.Query["dryRun"] is { Count: > 0 } flag && (flag[0] is "" or "true" or "1");
                var result = await pruner.PruneAsync(dryRun, Caller.From(http.User), ct)
                             ?? throw new KeywayException(StatusCodes.Status409Conflict, "conflict",
                                 "Another prune of the audit log is running (on this server or another replica); try again when it has finished.");
                return TypedResults.Ok(new AuditPruneView(result.DryRun, result.Pruned, result.TrafficPruned, result.ChangesPruned, result.Kept, result.CutSeq,
                    result.TrafficBefore, result.ChangesBefore, AuditCheckpointView.From(result.Checkpoint), result.Archive));
            })
            .Requires(Permission.Admin)
            .WithSummary("Delete the audit events past their retention, after a sealed checkpoint (and, with KEYWAY_AUDIT_ARCHIVE_DIR, an NDJSON archive of them). " +
                         "With dryRun=true, only count what would go.");

        return api;
    }

    private static AuditQuery ParseQuery(HttpRequest request)
    {
        var q = request.Query;
        return new AuditQuery
        {
            Actor = Text(q["actor"]),
            Resource = Text(q["resource"]),
            Action = Text(q["action"]),
            Since = When(q["since"], "since"),
            Until = When(q["until"], "until"),
            After = Number(q["after"], "after"),
            Before = Number(q["before"], "before"),
            Limit = (int)(Number(q["limit"], "limit") ?? 100),
        };
    }

    private static string? Text(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static DateTimeOffset? When(string? value, string name)
    {
        if (Text(value) is not { } text)
        {
            return null;
        }

        return DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var when)
            ? when
            : throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request", $"'{name}' must be an ISO 8601 time such as 2026-01-31T12:00:00Z.");
    }

    private static long? Number(string? value, string name)
    {
        if (Text(value) is not { } text)
        {
            return null;
        }

        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var number) && number >= 0
            ? number
            : throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request", $"'{name}' must be a whole number of zero or more.");
    }
}

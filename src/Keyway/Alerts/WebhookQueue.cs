using System.Data.Common;
using System.Security.Cryptography;
using System.Text.Json;
using Keyway.Storage;

namespace Keyway.Alerts;

/// <summary>One delivery as the API shows it. <c>Payload</c> is the JSON body sent: names and states only.</summary>
internal sealed record WebhookDeliveryInfo(
    string Id, string Endpoint, string EventType, string Status, int Attempts, DateTimeOffset? NextAttemptAt,
    int? LastStatusCode, string? LastError, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, DateTimeOffset? DeliveredAt,
    JsonElement Payload);

/// <summary>A delivery claimed by a sender: what to send where, and the lease it holds it under.</summary>
internal sealed record ClaimedDelivery(string Id, string Endpoint, string Url, bool Enabled, string Payload, int Attempts, string Claim);

/// <summary>
/// The durable delivery queue, <c>webhook_deliveries</c>: one row per alert per endpoint, kept
/// across restarts until it is sent or given up (then as history, until <see cref="PruneAsync"/>).
/// A sender claims due rows with a lease in one statement (on PostgreSQL the candidates are
/// picked <c>FOR UPDATE SKIP LOCKED</c>), so each delivery is sent by one replica at a time; a
/// replica that dies mid-send leaves a lease that expires, and the row is sent again.
/// </summary>
internal sealed class WebhookQueue(Database database, TimeProvider time)
{
    public const string Pending = "pending";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";

    /// <summary>
    /// The waits after each failed attempt (the Standard Webhooks spec's suggestion): 5 s, 5 min,
    /// 30 min, 2 h, 5 h, 10 h, 10 h, each plus up to 20% jitter. After the last one fails, the delivery is given up.
    /// </summary>
    public static readonly IReadOnlyList<TimeSpan> Backoff =
    [
        TimeSpan.FromSeconds(5), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(30), TimeSpan.FromHours(2),
        TimeSpan.FromHours(5), TimeSpan.FromHours(10), TimeSpan.FromHours(10),
    ];

    private const string InfoColumns =
        "id, endpoint, event_type, status, attempts, next_attempt_at, last_status, last_error, created_at, updated_at, delivered_at, payload";

    /// <summary>For tests: a number in [0, 1) that picks the jitter.</summary>
    internal Func<double> Random { get; init; } = System.Random.Shared.NextDouble;

    public static string NewId() => "msg_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <summary>Queues <paramref name="payload"/> for <paramref name="endpoint"/>, due now.</summary>
    public async Task<string> EnqueueAsync(DbConnection connection, DbTransaction? transaction, string endpoint, string eventType, string payload)
    {
        var id = NewId();
        var now = time.GetUtcNow().ToStore();
        await connection.ExecuteAsync(
            """
            INSERT INTO webhook_deliveries (id, endpoint, event_type, payload, status, attempts, next_attempt_at, created_at, updated_at)
            VALUES (@id, @endpoint, @eventType, @payload, @status, 0, @now, @now, @now)
            """,
            new { id, endpoint, eventType, payload, status = Pending, now }, transaction);
        return id;
    }

    /// <summary>
    /// Claims up to <paramref name="limit"/> due deliveries for <paramref name="lease"/>: no other
    /// sender takes them until the lease ends or the attempt is recorded.
    /// </summary>
    public async Task<IReadOnlyList<ClaimedDelivery>> ClaimAsync(int limit, TimeSpan lease, CancellationToken ct)
    {
        var now = time.GetUtcNow().ToStore();
        var claim = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var until = (time.GetUtcNow() + lease).ToStore();
        var skipLocked = database.Kind == StoreKind.Postgres ? " FOR UPDATE SKIP LOCKED" : "";
        await using var connection = await database.OpenAsync(ct);
        var ids = await connection.QueryAsync<string>(
            $"""
            UPDATE webhook_deliveries SET claim = @claim, lease_until = @until
            WHERE id IN (SELECT id FROM webhook_deliveries
                         WHERE status = @pending AND next_attempt_at <= @now AND (lease_until IS NULL OR lease_until <= @now)
                         ORDER BY next_attempt_at LIMIT @limit{skipLocked})
              AND (lease_until IS NULL OR lease_until <= @now)
            RETURNING id
            """,
            new { claim, until, pending = Pending, now, limit });
        if (ids.Count == 0)
        {
            return [];
        }

        var claimed = new List<ClaimedDelivery>(ids.Count);
        foreach (var id in ids)
        {
            var row = await connection.QuerySingleOrDefaultAsync<ClaimRow>(
                """
                SELECT d.id, d.endpoint, e.url, e.enabled, d.payload, d.attempts
                FROM webhook_deliveries d LEFT JOIN webhook_endpoints e ON e.name = d.endpoint WHERE d.id = @id
                """,
                new { id });
            if (row is not null)
            {
                claimed.Add(new ClaimedDelivery(row.Id, row.Endpoint, row.Url ?? "", row.Enabled == 1, row.Payload, (int)row.Attempts, claim));
            }
        }

        return claimed;
    }

    /// <summary>Records a delivery's attempt: sent, retried after the backoff, or given up after the last wait.</summary>
    public async Task RecordAsync(ClaimedDelivery delivery, bool delivered, int? statusCode, string? error, bool giveUp = false)
    {
        var now = time.GetUtcNow();
        var attempts = delivery.Attempts + 1;
        string status;
        DateTimeOffset? next = null;
        if (delivered)
        {
            status = Succeeded;
        }
        else if (giveUp || attempts > Backoff.Count)
        {
            status = Failed;
        }
        else
        {
            status = Pending;
            next = now + Jittered(Backoff[attempts - 1]);
        }

        await using var connection = await database.OpenAsync(CancellationToken.None);
        await connection.ExecuteAsync(
            """
            UPDATE webhook_deliveries SET status = @status, attempts = @attempts, next_attempt_at = @next, claim = NULL, lease_until = NULL,
                last_status = @statusCode, last_error = @error, updated_at = @now, delivered_at = @deliveredAt
            WHERE id = @id AND claim = @claim
            """,
            new
            {
                id = delivery.Id,
                claim = delivery.Claim,
                status,
                attempts,
                next = next.ToStore(),
                statusCode,
                error,
                now = now.ToStore(),
                deliveredAt = delivered ? now.ToStore() : (long?)null,
            });
    }

    private TimeSpan Jittered(TimeSpan wait) => wait * (1 + (0.2 * Random()));

    public async Task<IReadOnlyList<WebhookDeliveryInfo>> ListAsync(string endpoint, string? status, int limit, CancellationToken ct)
    {
        await using var connection = await database.OpenAsync(ct);
        var rows = await connection.QueryAsync<InfoRow>(
            $"SELECT {InfoColumns} FROM webhook_deliveries WHERE endpoint = @endpoint AND (@status IS NULL OR status = @status) ORDER BY created_at DESC, id LIMIT @limit",
            new { endpoint, status, limit });
        return rows.Select(r => r.ToInfo()).ToList();
    }

    public async Task<WebhookDeliveryInfo?> GetAsync(string endpoint, string id, CancellationToken ct)
    {
        await using var connection = await database.OpenAsync(ct);
        return (await connection.QuerySingleOrDefaultAsync<InfoRow>(
            $"SELECT {InfoColumns} FROM webhook_deliveries WHERE endpoint = @endpoint AND id = @id", new { endpoint, id }))?.ToInfo();
    }

    /// <summary>Queues the payload of delivery <paramref name="id"/> again, as a new delivery with an id of its own; null when there is no such delivery.</summary>
    public async Task<WebhookDeliveryInfo?> RedeliverAsync(string endpoint, string id, CancellationToken ct, Func<DbTransaction, string, Task>? audit = null)
    {
        string newId;
        await using (var connection = await database.OpenAsync(ct))
        {
            await using var transaction = await connection.BeginTransactionAsync(ct);
            var original = await connection.QuerySingleOrDefaultAsync<InfoRow>(
                $"SELECT {InfoColumns} FROM webhook_deliveries WHERE endpoint = @endpoint AND id = @id", new { endpoint, id }, transaction);
            if (original is null)
            {
                return null;
            }

            newId = await EnqueueAsync(connection, transaction, endpoint, original.EventType, original.Payload);
            if (audit is not null)
            {
                await audit(transaction, newId);
            }

            await transaction.CommitAsync(ct);
        }

        return await GetAsync(endpoint, newId, ct);
    }

    /// <summary>
    /// Drops finished deliveries (sent or given up) older than <paramref name="retention"/>, and
    /// beyond the newest <paramref name="keepPerEndpoint"/> of each endpoint: history stays bounded.
    /// </summary>
    public async Task<int> PruneAsync(TimeSpan retention, int keepPerEndpoint, CancellationToken ct)
    {
        await using var connection = await database.OpenAsync(ct);
        var pruned = await connection.ExecuteAsync(
            "DELETE FROM webhook_deliveries WHERE status <> @pending AND updated_at < @cut",
            new { pending = Pending, cut = (time.GetUtcNow() - retention).ToStore() });
        foreach (var endpoint in await connection.QueryAsync<string>("SELECT name FROM webhook_endpoints"))
        {
            pruned += await connection.ExecuteAsync(
                """
                DELETE FROM webhook_deliveries WHERE endpoint = @endpoint AND status <> @pending AND created_at <
                    (SELECT created_at FROM webhook_deliveries WHERE endpoint = @endpoint ORDER BY created_at DESC LIMIT 1 OFFSET @keep)
                """,
                new { endpoint, pending = Pending, keep = keepPerEndpoint });
        }

        return pruned;
    }

    private sealed class ClaimRow
    {
        public string Id { get; init; } = "";
        public string Endpoint { get; init; } = "";
        public string? Url { get; init; }
        public long? Enabled { get; init; }
        public string Payload { get; init; } = "";
        public long Attempts { get; init; }
    }

    private sealed class InfoRow
    {
        public string Id { get; init; } = "";
        public string Endpoint { get; init; } = "";
        public string EventType { get; init; } = "";
        public string Status { get; init; } = "";
        public long Attempts { get; init; }
        public long? NextAttemptAt { get; init; }
        public long? LastStatus { get; init; }
        public string? LastError { get; init; }
        public long CreatedAt { get; init; }
        public long UpdatedAt { get; init; }
        public long? DeliveredAt { get; init; }
        public string Payload { get; init; } = "{}";

        public WebhookDeliveryInfo ToInfo()
        {
            using var document = JsonDocument.Parse(Payload);
            return new(Id, Endpoint, EventType, Status, (int)Attempts, Time.From(NextAttemptAt), (int?)LastStatus, LastError,
                Time.From(CreatedAt), Time.From(UpdatedAt), Time.From(DeliveredAt), document.RootElement.Clone());
        }
    }
}

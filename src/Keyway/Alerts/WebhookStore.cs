using System.Data.Common;
using System.Security.Cryptography;
using System.Text.Json;
using Keyway.Api;
using Keyway.Environments;
using Keyway.Secrets;
using Keyway.Storage;

namespace Keyway.Alerts;

/// <summary>A webhook endpoint as the API shows it: never its signing secret.</summary>
/// <remarks><c>Events</c>: the alert types it receives; null for all of them.</remarks>
internal sealed record WebhookInfo(
    string Name, string Url, IReadOnlyList<string>? Events, bool Enabled, string? Description,
    DateTimeOffset? PreviousSecretUntil, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt);

/// <summary>What an endpoint's fields become; null leaves a field as it is on update.</summary>
internal sealed record WebhookChange(string? Url, IReadOnlyList<string>? Events, bool AllEvents, bool? Enabled, string? Description);

/// <summary>
/// Webhook endpoints: where alerts are sent, and the secret each is signed with. The secret is
/// generated here (<c>whsec_</c> and the base64 of 32 random bytes, as the Standard Webhooks
/// spec has it), returned once by <see cref="CreateAsync"/> and <see cref="RotateSecretAsync"/>,
/// and stored encrypted with the key ring, its AAD bound to the endpoint and the field.
/// </summary>
internal sealed class WebhookStore(Database database, KeyRing keys, TimeProvider time, ChangeFeed changes)
{
    /// <summary>The change kind that tells <see cref="KnownSecrets"/> the set of signing secrets changed.</summary>
    public const string ChangeKind = "webhooks";

    public const string SecretPrefix = "whsec_";

    /// <summary>How long the secret a rotation replaced still signs, unless the request says otherwise.</summary>
    public static readonly TimeSpan DefaultGrace = TimeSpan.FromHours(24);

    private const string Columns = "name, url, events, enabled, description, previous_until, created_at, updated_at";

    /// <summary>The associated data binding a signing secret's ciphertext to its endpoint and field (<c>secret</c> or <c>previous_secret</c>).</summary>
    public static string AssociatedData(string name, string field) => $"webhook_endpoints:{name}:{field}";

    public static string NewSecret() => SecretPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    /// <summary>Checks an endpoint's URL and event types; the per-field errors, empty when both are fine.</summary>
    public static List<FieldError> Check(string? url, IReadOnlyList<string>? events, bool urlRequired)
    {
        var errors = new List<FieldError>();
        if (url is null)
        {
            if (urlRequired)
            {
                errors.Add(new FieldError("url", "Give the URL alerts are POSTed to, e.g. https://hooks.example.com/keyway."));
            }
        }
        else if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("https" or "http") || string.IsNullOrEmpty(uri.Host))
        {
            errors.Add(new FieldError("url", $"'{url}' is not an absolute http(s) URL, e.g. https://hooks.example.com/keyway."));
        }
        else if (!string.IsNullOrEmpty(uri.UserInfo))
        {
            errors.Add(new FieldError("url", "The URL carries a user name or password; the signature is what authenticates Keyway to the receiver."));
        }

        for (var i = 0; i < (events?.Count ?? 0); i++)
        {
            if (!AlertTypes.All.Contains(events![i]))
            {
                errors.Add(new FieldError($"events[{i}]", $"'{events[i]}' is not an alert type. Choose from: {string.Join(", ", AlertTypes.All)} (or leave out 'events' for all)."));
            }
        }

        return errors;
    }

    public async Task<IReadOnlyList<WebhookInfo>> ListAsync(CancellationToken ct)
    {
        await using var connection = await database.OpenAsync(ct);
        return (await connection.QueryAsync<Row>($"SELECT {Columns} FROM webhook_endpoints ORDER BY name")).Select(r => r.ToInfo()).ToList();
    }

    public async Task<WebhookInfo?> GetAsync(string name, CancellationToken ct)
    {
        await using var connection = await database.OpenAsync(ct);
        return (await connection.QuerySingleOrDefaultAsync<Row>($"SELECT {Columns} FROM webhook_endpoints WHERE name = @name", new { name }))?.ToInfo();
    }

    /// <summary>Creates an endpoint and returns it with its new secret (shown once); null when the name is taken.</summary>
    public async Task<(WebhookInfo Info, string Secret)?> CreateAsync(
        string name, WebhookChange fields, CancellationToken ct, Func<DbTransaction, Task>? audit = null)
    {
        Names.Require("webhook", name);
        var secret = NewSecret();
        var now = time.GetUtcNow().ToStore();
        await using var connection = await database.OpenAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        var inserted = await connection.ExecuteAsync(
            """
            INSERT INTO webhook_endpoints (name, url, events, enabled, description, secret, created_at, updated_at)
            VALUES (@name, @url, @events, @enabled, @description, @ciphertext, @now, @now) ON CONFLICT (name) DO NOTHING
            """,
            new
            {
                name,
                url = fields.Url,
                events = EventsJson(fields.AllEvents ? null : fields.Events),
                enabled = fields.Enabled == false ? 0 : 1,
                description = fields.Description,
                ciphertext = keys.Encrypt(new Secret(secret), AssociatedData(name, "secret")),
                now,
            }, transaction);
        if (inserted == 0)
        {
            return null;
        }

        if (audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(ct);
        changes.Publish(new Change(ChangeKind, name));
        return ((await GetAsync(name, ct))!, secret);
    }

    public async Task<WebhookInfo?> UpdateAsync(string name, WebhookChange fields, CancellationToken ct, Func<DbTransaction, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        var updated = await connection.ExecuteAsync(
            """
            UPDATE webhook_endpoints SET url = COALESCE(@url, url), enabled = COALESCE(@enabled, enabled),
                description = COALESCE(@description, description),
                events = CASE WHEN @setEvents = 1 THEN @events ELSE events END, updated_at = @now
            WHERE name = @name
            """,
            new
            {
                name,
                url = fields.Url,
                enabled = fields.Enabled is { } e ? (e ? 1 : 0) : (int?)null,
                description = fields.Description,
                setEvents = fields.AllEvents || fields.Events is not null ? 1 : 0,
                events = EventsJson(fields.AllEvents ? null : fields.Events),
                now = time.GetUtcNow().ToStore(),
            }, transaction);
        if (updated == 0)
        {
            return null;
        }

        if (audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(ct);
        return await GetAsync(name, ct);
    }

    /// <summary>Deletes an endpoint and its delivery history.</summary>
    public async Task<bool> DeleteAsync(string name, CancellationToken ct, Func<DbTransaction, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        await connection.ExecuteAsync("DELETE FROM webhook_deliveries WHERE endpoint = @name", new { name }, transaction);
        if (await connection.ExecuteAsync("DELETE FROM webhook_endpoints WHERE name = @name", new { name }, transaction) == 0)
        {
            return false;
        }

        if (audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(ct);
        changes.Publish(new Change(ChangeKind, name));
        return true;
    }

    /// <summary>
    /// Gives an endpoint a new secret (returned once); the one it replaces keeps signing, beside
    /// the new one, for <paramref name="grace"/>, so a receiver can switch without dropping a delivery.
    /// </summary>
    public async Task<(WebhookInfo Info, string Secret)?> RotateSecretAsync(string name, TimeSpan grace, CancellationToken ct, Func<DbTransaction, Task>? audit = null)
    {
        var secret = NewSecret();
        var now = time.GetUtcNow();
        await using (var connection = await database.OpenAsync(ct))
        {
            await using var transaction = await connection.BeginTransactionAsync(ct);
            var current = await connection.ExecuteScalarAsync<byte[]>("SELECT secret FROM webhook_endpoints WHERE name = @name", new { name }, transaction);
            if (current is null)
            {
                return null;
            }

            var previous = grace > TimeSpan.Zero
                ? keys.Encrypt(Decrypt(current, AssociatedData(name, "secret")), AssociatedData(name, "previous_secret"))
                : null;
            await connection.ExecuteAsync(
                """
                UPDATE webhook_endpoints SET secret = @ciphertext, previous_secret = @previous, previous_until = @until, updated_at = @now
                WHERE name = @name
                """,
                new
                {
                    name,
                    ciphertext = keys.Encrypt(new Secret(secret), AssociatedData(name, "secret")),
                    previous,
                    until = previous is null ? (long?)null : (now + grace).ToStore(),
                    now = now.ToStore(),
                }, transaction);
            if (audit is not null)
            {
                await audit(transaction);
            }

            await transaction.CommitAsync(ct);
        }

        changes.Publish(new Change(ChangeKind, name));
        return ((await GetAsync(name, ct))!, secret);
    }

    /// <summary>The secrets an endpoint's deliveries are signed with now: the current one, and the previous one within its grace period.</summary>
    public async Task<IReadOnlyList<Secret>> SigningSecretsAsync(DbConnection connection, string name, CancellationToken ct)
    {
        var row = await connection.QuerySingleOrDefaultAsync<SecretRow>(
            "SELECT secret, previous_secret, previous_until FROM webhook_endpoints WHERE name = @name", new { name });
        if (row?.Secret is null)
        {
            return [];
        }

        var secrets = new List<Secret> { await DecryptAsync(row.Secret, AssociatedData(name, "secret"), ct) };
        if (row.PreviousSecret is not null && row.PreviousUntil is { } until && time.GetUtcNow().ToStore() < until)
        {
            secrets.Add(await DecryptAsync(row.PreviousSecret, AssociatedData(name, "previous_secret"), ct));
        }

        return secrets;
    }

    /// <summary>Every signing secret held (current and previous), for <see cref="KnownSecrets"/>: none of them may reach a log or an answer.</summary>
    public static async Task<IReadOnlyList<string>> AllSecretsAsync(DbConnection connection, KeyRing keys, CancellationToken ct)
    {
        var values = new List<string>();
        foreach (var row in await connection.QueryAsync<SecretRow>("SELECT name, secret, previous_secret FROM webhook_endpoints"))
        {
            values.Add(keys.DecryptSecret(row.Secret!, AssociatedData(row.Name, "secret")).Reveal());
            if (row.PreviousSecret is not null)
            {
                values.Add(keys.DecryptSecret(row.PreviousSecret, AssociatedData(row.Name, "previous_secret")).Reveal());
            }
        }

        return values;
    }

    private Secret Decrypt(byte[] ciphertext, string associatedData) => keys.DecryptSecret(ciphertext, associatedData);

    private async Task<Secret> DecryptAsync(byte[] ciphertext, string associatedData, CancellationToken ct)
    {
        try
        {
            return keys.DecryptSecret(ciphertext, associatedData);
        }
        catch (DecryptionException e) when (e.Reason == DecryptionFailure.UnknownDataKey)
        {
            // Another replica rotated the data key (a rekey): load it and try once more.
            await keys.ReloadAsync(ct);
            return keys.DecryptSecret(ciphertext, associatedData);
        }
    }

    private static string? EventsJson(IReadOnlyList<string>? events) =>
        events is null ? null : JsonSerializer.Serialize(events.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray());

    internal sealed class Row
    {
        public string Name { get; init; } = "";
        public string Url { get; init; } = "";
        public string? Events { get; init; }
        public long Enabled { get; init; }
        public string? Description { get; init; }
        public long? PreviousUntil { get; init; }
        public long CreatedAt { get; init; }
        public long UpdatedAt { get; init; }

        public WebhookInfo ToInfo() => new(
            Name, Url, Events is null ? null : JsonSerializer.Deserialize<string[]>(Events), Enabled != 0, Description,
            Time.From(PreviousUntil), Time.From(CreatedAt), Time.From(UpdatedAt));
    }

    private sealed class SecretRow
    {
        public string Name { get; init; } = "";
        public byte[]? Secret { get; init; }
        public byte[]? PreviousSecret { get; init; }
        public long? PreviousUntil { get; init; }
    }
}

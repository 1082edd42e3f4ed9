using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Keyway.Access;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Credentials;
using Keyway.Environments;
using Keyway.Storage;

namespace Keyway.Secrets;

/// <summary>Where a rekey is, as <c>GET /api/v1/operator/rekey</c> shows it. Never holds key material or values.</summary>
internal sealed record RekeyStatus
{
    public const string Idle = "idle";
    public const string Running = "running";
    public const string Completed = "completed";
    public const string Failed = "failed";

    public static readonly RekeyStatus Never = new() { State = Idle };

    /// <summary><c>idle</c> (never ran), <c>running</c>, <c>completed</c> or <c>failed</c>.</summary>
    public required string State { get; init; }

    /// <summary>Encrypted values in the store when the job counted them.</summary>
    public long Total { get; init; }

    /// <summary>Encrypted values checked so far (already current, or re-encrypted).</summary>
    public long Done { get; init; }

    /// <summary>Of <see cref="Done"/>, the values this run re-encrypted.</summary>
    public long Reencrypted { get; init; }

    /// <summary>The data key every value is being moved to (an id, not a key).</summary>
    public string? DataKeyId { get; init; }

    public DateTimeOffset? StartedAt { get; init; }

    public DateTimeOffset? FinishedAt { get; init; }

    /// <summary>Last progress; a running job refreshes it after every batch.</summary>
    public DateTimeOffset? UpdatedAt { get; init; }

    /// <summary>Why it failed. Names rows and key ids at most, never a value.</summary>
    public string? Error { get; init; }
}

/// <summary>
/// A column whose values are encrypted with the <see cref="KeyRing"/>, as the rekey job sees it:
/// the table, its primary-key columns (in key order), the ciphertext column (NULL means "no value")
/// and how to rebuild a row's associated data from its key values, in the order of
/// <paramref name="KeyColumns"/> (strings, or <see cref="long"/> for integer columns).
/// </summary>
internal sealed record EncryptedColumn(string Table, IReadOnlyList<string> KeyColumns, string Column, Func<IReadOnlyList<object>, string> AssociatedData)
{
    /// <summary><c>table.column</c>, for logs and errors.</summary>
    public override string ToString() => $"{Table}.{Column}";
}

/// <summary>
/// <c>keyway operator rekey</c>: re-wraps every data key under the primary master key, rotates to
/// a fresh data key and re-encrypts every stored secret and credential token under it (every column
/// in <see cref="Columns"/>), in small transactions, while the server keeps serving (older data keys
/// stay in the ring, so values not yet moved still decrypt).
/// </summary>
/// <remarks>
/// Resumable: the job's state is kept in the <c>meta</c> table. A run that finds an unfinished
/// run (<c>running</c> or <c>failed</c>) whose target data key is still the active one continues
/// it without rotating again: it scans every column again, skipping rows already under the active
/// key (cheap: no decryption). Each row is replaced only if its ciphertext is still the one that
/// was read (compare-and-swap), so a concurrent write is never overwritten. One job per process at a time.
/// </remarks>
internal sealed partial class RekeyJob(Database database, KeyRing keys, TimeProvider time, IAuditLog audit, ILogger<RekeyJob> logger) : IHostedService, IDisposable
{
    public const int DefaultBatchSize = 200;

    /// <summary>
    /// Every column encrypted with the key ring. A new encrypted column is one entry here, with the
    /// same associated data its writer uses; a test checks that every BLOB column in the schema is
    /// listed (but <c>data_keys.wrapped_key</c>, which the master key wraps).
    /// </summary>
    /// <remarks>
    /// Credentials are re-encrypted without bumping their <c>version</c>: the plaintext does not
    /// change, so an engine that read the row before keeps a valid compare-and-swap.
    /// </remarks>
    internal static readonly IReadOnlyList<EncryptedColumn> Columns =
    [
        new("variable_versions", ["environment", "name", "version"], "ciphertext",
            key => VariableService.AssociatedData((string)key[0], (string)key[1], Convert.ToInt64(key[2], CultureInfo.InvariantCulture))),
        CredentialColumn("access_token"),
        CredentialColumn("refresh_token"),
        CredentialColumn("extras"),
        new("dpop_keys", ["resource", "environment", "owner"], "private_key",
            key => DPoPKeyStore.AssociatedData(new CredentialKey((string)key[0], (string)key[1], (string)key[2]))),
        new("oauth_pending", ["state"], "code_verifier", key => CredentialService.PendingAssociatedData((string)key[0])),
        new("dataprotection_keys", ["name"], "xml", key => SignIn.StoreXmlRepository.AssociatedData((string)key[0])),
        new("webhook_endpoints", ["name"], "secret", key => Alerts.WebhookStore.AssociatedData((string)key[0], "secret")),
        new("webhook_endpoints", ["name"], "previous_secret", key => Alerts.WebhookStore.AssociatedData((string)key[0], "previous_secret")),
    ];

    private const string MetaKey = "rekey";

    // Another replica's job that has not reported progress for this long is taken to be dead.
    private static readonly TimeSpan s_staleAfter = TimeSpan.FromSeconds(30);

    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);

    private readonly Lock _lock = new();
    private readonly string _owner = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
    private readonly CancellationTokenSource _stopping = new();
    private RekeyStatus? _status;
    private Caller? _actor;
    private Task _job = Task.CompletedTask;

    /// <summary>Rows per transaction.</summary>
    public int BatchSize { get; init; } = DefaultBatchSize;

    /// <summary>The running or last job of this process; else what the store says (another replica's, or an earlier run).</summary>
    public async Task<RekeyStatus> GetStatusAsync(CancellationToken ct)
    {
        lock (_lock)
        {
            if (_status is not null)
            {
                return _status;
            }
        }

        var stored = await ReadStateAsync(ct);
        return stored is null ? RekeyStatus.Never : Describe(stored);
    }

    /// <summary>
    /// Starts the job in the background and returns its first status. The <c>operator.rekey</c> event of
    /// <paramref name="actor"/> is in the store before the job changes anything; its outcome
    /// (<c>operator.rekey.complete</c> or <c>operator.rekey.fail</c>) commits with the job's final state.
    /// </summary>
    /// <exception cref="KeywayException">409 <c>conflict</c>: a rekey is already running.</exception>
    public async Task<RekeyStatus> StartAsync(Caller? actor, CancellationToken ct)
    {
        lock (_lock)
        {
            if (_status?.State == RekeyStatus.Running)
            {
                throw AlreadyRunning(_status);
            }

            // Claimed before the first await, so two requests cannot both start one.
            _status = new RekeyStatus { State = RekeyStatus.Running, StartedAt = time.GetUtcNow(), UpdatedAt = time.GetUtcNow() };
        }

        try
        {
            if (await ReadStateAsync(ct) is { } stored && stored.Owner != _owner && Describe(stored).State == RekeyStatus.Running)
            {
                throw AlreadyRunning(stored.Status);
            }

            await audit.RecordDurableAsync(new AuditEntry("operator.rekey") { Actor = actor }, ct);
        }
        catch
        {
            lock (_lock)
            {
                _status = null;
            }

            throw;
        }

        lock (_lock)
        {
            _actor = actor;
            _job = Task.Run(() => RunAsync(_stopping.Token), CancellationToken.None);
            return _status!;
        }
    }

    /// <summary>The whole job, to completion or failure; never throws but for cancellation of <paramref name="ct"/> before it starts.</summary>
    internal async Task<RekeyStatus> RunAsync(CancellationToken ct)
    {
        var startedAt = time.GetUtcNow();
        try
        {
            var status = await BeginAsync(ct);
            foreach (var column in Columns)
            {
                var (done, reencrypted) = (status.Done, status.Reencrypted);
                IReadOnlyList<object>? after = null;
                do
                {
                    (after, status) = await RunBatchAsync(column, after, status, ct);
                }
                while (after is not null);

                Log.ColumnDone(logger, column.ToString(), status.Done - done, status.Reencrypted - reencrypted);
            }

            status = status with
            {
                State = RekeyStatus.Completed,
                Total = Math.Max(status.Total, status.Done),
                FinishedAt = time.GetUtcNow(),
                UpdatedAt = time.GetUtcNow(),
            };
            await WriteOutcomeAsync(status, ct);
            Publish(status);
            Log.Completed(logger, status.Done, status.Reencrypted, status.DataKeyId ?? "?");
            return status;
        }
        catch (Exception e)
        {
            var error = e is OperationCanceledException && _stopping.IsCancellationRequested
                ? "The server stopped before the rekey finished. Run 'keyway operator rekey' again: it resumes where it stopped."
                : Describe(e);
            Log.Failed(logger, e.GetType().Name, error);
            RekeyStatus current;
            lock (_lock)
            {
                current = _status ?? new RekeyStatus { State = RekeyStatus.Running, StartedAt = startedAt };
            }

            var failed = current with { State = RekeyStatus.Failed, Error = error, FinishedAt = time.GetUtcNow(), UpdatedAt = time.GetUtcNow() };
            Publish(failed);
            try
            {
                await WriteOutcomeAsync(failed, CancellationToken.None);
            }
            catch (Exception inner) when (inner is DbException or InvalidOperationException)
            {
                // The store may be what failed; the next run resumes from the "running" state alike.
                Log.StateNotSaved(logger, inner.GetType().Name);
            }

            return failed;
        }
    }

    /// <summary>
    /// Re-wraps the data keys under the primary master key, then rotates to a fresh data key unless
    /// an unfinished run already did (it is then resumed), counts the encrypted rows and records the
    /// job as running.
    /// </summary>
    internal async Task<RekeyStatus> BeginAsync(CancellationToken ct)
    {
        var previous = await ReadStateAsync(ct);
        var rewrapped = await keys.RewrapAsync(ct);
        Log.Rewrapped(logger, rewrapped);

        string dataKeyId;
        if (previous?.Status is { State: RekeyStatus.Running or RekeyStatus.Failed, DataKeyId: { } target } && target == keys.ActiveKeyId)
        {
            dataKeyId = target;
            Log.Resuming(logger, dataKeyId);
        }
        else
        {
            dataKeyId = await keys.RotateDataKeyAsync(ct);
            Log.Rotated(logger, dataKeyId);
        }

        long total = 0;
        await using (var connection = await database.OpenAsync(ct))
        {
            foreach (var column in Columns)
            {
                total += await connection.ExecuteScalarAsync<long>(
                    new SqlStatement($"SELECT COUNT(*) FROM {column.Table} WHERE {column.Column} IS NOT NULL", cancellationToken: ct));
            }
        }

        var now = time.GetUtcNow();
        var status = new RekeyStatus
        {
            State = RekeyStatus.Running,
            Total = total,
            DataKeyId = dataKeyId,
            StartedAt = now,
            UpdatedAt = now,
        };
        await WriteStateAsync(status, ct);
        Publish(status);
        return status;
    }

    /// <summary>
    /// Checks the next <see cref="BatchSize"/> values of <paramref name="column"/> after the row
    /// whose key is <paramref name="after"/> (null: from the first row) and re-encrypts those not
    /// under the active data key, in one transaction that also records the progress. <c>Next</c>
    /// is the key of the last row checked, or null when the column has no rows left.
    /// </summary>
    internal async Task<(IReadOnlyList<object>? Next, RekeyStatus Status)> RunBatchAsync(
        EncryptedColumn column, IReadOnlyList<object>? after, RekeyStatus status, CancellationToken ct)
    {
        await using var connection = await database.OpenAsync(ct);
        var rows = await ReadBatchAsync(connection, column, after, ct);
        if (rows.Count == 0)
        {
            return (null, status);
        }

        await using var transaction = await connection.BeginTransactionAsync(ct);
        var replaced = await ReplaceAsync(connection, transaction, column, rows, ct);
        status = status with
        {
            Done = status.Done + rows.Count,
            Reencrypted = status.Reencrypted + replaced,
            UpdatedAt = time.GetUtcNow(),
        };
        await WriteStateAsync(connection, transaction, status);
        await transaction.CommitAsync(ct);
        Publish(status);
        return (rows[^1].Key, status);
    }

    /// <summary>
    /// Re-encrypts the rows not under the active data key, each only if its ciphertext is still
    /// the one read (a row changed or emptied meanwhile is left alone). Returns how many were replaced.
    /// </summary>
    internal async Task<int> ReplaceAsync(DbConnection connection, DbTransaction transaction, EncryptedColumn column, IReadOnlyList<EncryptedRow> rows, CancellationToken ct)
    {
        // Names from the registry, never from input. Parameters are named apart from every column
        // and from each other: Npgsql matches parameter names without regard to case.
        var sql = $"UPDATE {column.Table} SET {column.Column} = @replacement WHERE {KeyEquals(column)} AND {column.Column} = @expected";
        var replaced = 0;
        foreach (var row in rows)
        {
            ct.ThrowIfCancellationRequested();
            if (keys.IsCurrent(row.Ciphertext))
            {
                continue;
            }

            var associatedData = column.AssociatedData(row.Key);
            var plaintext = keys.Decrypt(row.Ciphertext, associatedData);
            byte[] ciphertext;
            try
            {
                ciphertext = keys.Encrypt(plaintext, associatedData);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(plaintext);
            }

            var parameters = KeyParameters("key", row.Key);
            parameters.Add("replacement", ciphertext);
            parameters.Add("expected", row.Ciphertext);
            replaced += await connection.ExecuteAsync(new SqlStatement(sql, parameters, transaction, ct));
        }

        return replaced;
    }

    /// <summary>The next <see cref="BatchSize"/> non-null values of <paramref name="column"/> after <paramref name="after"/>, in primary-key order.</summary>
    private async Task<List<EncryptedRow>> ReadBatchAsync(DbConnection connection, EncryptedColumn column, IReadOnlyList<object>? after, CancellationToken ct)
    {
        var keyList = string.Join(", ", column.KeyColumns);
        var parameters = after is null ? new SqlParameters() : KeyParameters("after", after);
        parameters.Add("limit", BatchSize);
        // A row-value comparison walks a composite primary key in order on both SQLite and PostgreSQL.
        var from = after is null
            ? ""
            : $" AND ({keyList}) > ({string.Join(", ", column.KeyColumns.Select((_, i) => "@after" + i.ToString(CultureInfo.InvariantCulture)))})";
        var sql = $"SELECT {keyList}, {column.Column} FROM {column.Table} WHERE {column.Column} IS NOT NULL{from} ORDER BY {keyList} LIMIT @limit";

        var rows = new List<EncryptedRow>();
        await using var command = connection.CreateCommand(sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(ct);
        var width = column.KeyColumns.Count;
        while (await reader.ReadAsync(ct))
        {
            var key = new object[width];
            for (var i = 0; i < width; i++)
            {
                key[i] = reader.GetValue(i);
            }

            rows.Add(new EncryptedRow(key, (byte[])reader.GetValue(width)));
        }

        return rows;
    }

    private static string KeyEquals(EncryptedColumn column) =>
        string.Join(" AND ", column.KeyColumns.Select((name, i) => $"{name} = @key{i.ToString(CultureInfo.InvariantCulture)}"));

    private static SqlParameters KeyParameters(string prefix, IReadOnlyList<object> key)
    {
        var parameters = new SqlParameters();
        for (var i = 0; i < key.Count; i++)
        {
            parameters.Add(prefix + i.ToString(CultureInfo.InvariantCulture), key[i]);
        }

        return parameters;
    }

    private static EncryptedColumn CredentialColumn(string field) =>
        new("credentials", ["resource", "environment", "owner"], field,
            key => CredentialStore.AssociatedData(new CredentialKey((string)key[0], (string)key[1], (string)key[2]), field));

    Task IHostedService.StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    async Task IHostedService.StopAsync(CancellationToken cancellationToken)
    {
        // A job cut short by shutdown records itself as failed; the next run resumes it.
        await _stopping.CancelAsync();
        await _job.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    public void Dispose() => _stopping.Dispose();

    private static KeywayException AlreadyRunning(RekeyStatus status) =>
        new(StatusCodes.Status409Conflict, "conflict",
            $"A rekey is already running ({status.Done} of {status.Total} values checked). Follow it with 'GET /api/v1/operator/rekey' or 'keyway operator rekey'.",
            new Dictionary<string, object?> { ["status"] = status });

    /// <summary>A failure's text for the status: only messages known to carry no value; others by type.</summary>
    private static string Describe(Exception e) => e switch
    {
        MasterKeyException or DecryptionException or KeywayException => e.Message,
        DbException => $"The store failed ({e.GetType().Name}: {e.Message}). Run 'keyway operator rekey' again: it resumes where it stopped.",
        _ => $"Unexpected {e.GetType().Name}; the server log has the details. Run 'keyway operator rekey' again: it resumes where it stopped.",
    };

    /// <summary>A stored state as the API shows it: a "running" job of a process that stopped reporting is shown as failed.</summary>
    private RekeyStatus Describe(StoredState stored)
    {
        var status = stored.Status;
        if (status.State != RekeyStatus.Running)
        {
            return status;
        }

        // On SQLite only this process uses the store, so a job it is not running is dead.
        var dead = database.Kind == StoreKind.Sqlite
            || stored.Owner == _owner
            || status.UpdatedAt is not { } updated
            || time.GetUtcNow() - updated > s_staleAfter;
        return dead
            ? status with
            {
                State = RekeyStatus.Failed,
                Error = "The rekey was interrupted (the server stopped before it finished). Run 'keyway operator rekey' again: it resumes where it stopped.",
            }
            : status;
    }

    private void Publish(RekeyStatus status)
    {
        lock (_lock)
        {
            _status = status;
        }
    }

    private async Task<StoredState?> ReadStateAsync(CancellationToken ct)
    {
        await using var connection = await database.OpenAsync(ct);
        var json = await connection.ExecuteScalarAsync<string?>("SELECT value FROM meta WHERE key = @key", new { key = MetaKey });
        return json is null ? null : JsonSerializer.Deserialize<StoredState>(json, s_json);
    }

    private async Task WriteStateAsync(RekeyStatus status, CancellationToken ct)
    {
        await using var connection = await database.OpenAsync(ct);
        await WriteStateAsync(connection, null, status);
    }

    /// <summary>Writes the job's final state and its outcome's audit event in one transaction.</summary>
    private async Task WriteOutcomeAsync(RekeyStatus status, CancellationToken ct)
    {
        var completed = status.State == RekeyStatus.Completed;
        var entry = new AuditEntry(completed ? "operator.rekey.complete" : "operator.rekey.fail", completed ? AuditOutcome.Success : AuditOutcome.Failure)
        {
            Actor = _actor,
            Detail = new Dictionary<string, object?>
            {
                ["total"] = status.Total,
                ["done"] = status.Done,
                ["reencrypted"] = status.Reencrypted,
                ["dataKey"] = status.DataKeyId,
                ["error"] = status.Error,
            },
        };
        await using var connection = await database.OpenAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        await WriteStateAsync(connection, transaction, status);
        await audit.StageAsync(transaction, entry, ct);
        await transaction.CommitAsync(ct);
        audit.NotifyStaged();
    }

    private Task<int> WriteStateAsync(DbConnection connection, DbTransaction? transaction, RekeyStatus status) =>
        connection.ExecuteAsync(
            "INSERT INTO meta (key, value) VALUES (@key, @value) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            new { key = MetaKey, value = JsonSerializer.Serialize(new StoredState(status, _owner), s_json) },
            transaction);

    /// <summary>The job's state in <c>meta</c>; <c>Owner</c> is a random id per process.</summary>
    private sealed record StoredState(RekeyStatus Status, string Owner);

    /// <summary>One stored value: its row's primary-key values (see <see cref="EncryptedColumn"/>) and its ciphertext as read.</summary>
    internal sealed record EncryptedRow(IReadOnlyList<object> Key, byte[] Ciphertext);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Rekey: {Count} data keys re-wrapped under the primary master key")]
        public static partial void Rewrapped(ILogger logger, int count);

        [LoggerMessage(2, LogLevel.Information, "Rekey: rotated to data key {KeyId}")]
        public static partial void Rotated(ILogger logger, string keyId);

        [LoggerMessage(3, LogLevel.Information, "Rekey: resuming an unfinished run towards data key {KeyId}")]
        public static partial void Resuming(ILogger logger, string keyId);

        [LoggerMessage(4, LogLevel.Information, "Rekey completed: {Checked} values checked, {Reencrypted} re-encrypted under data key {KeyId}")]
        public static partial void Completed(ILogger logger, long @checked, long reencrypted, string keyId);

        [LoggerMessage(5, LogLevel.Error, "Rekey failed ({ExceptionType}): {Error}")]
        public static partial void Failed(ILogger logger, string exceptionType, string error);

        [LoggerMessage(6, LogLevel.Warning, "Rekey: could not record the failure in the store ({ExceptionType})")]
        public static partial void StateNotSaved(ILogger logger, string exceptionType);

        [LoggerMessage(7, LogLevel.Information, "Rekey: {Column} done, {Checked} values checked, {Reencrypted} re-encrypted")]
        public static partial void ColumnDone(ILogger logger, string column, long @checked, long reencrypted);
    }
}

using System.Collections.Concurrent;
using System.Data.Common;
using System.Text.Json;
using Keyway.Api;
using Keyway.Outbound;
using Keyway.Secrets;
using Keyway.Storage;

namespace Keyway.Environments;

/// <summary>An environment as the API shows it.</summary>
internal sealed record EnvironmentInfo(string Name, string? Description, DateTimeOffset CreatedAt);

/// <summary>A configuration variable as the API shows it: a secret's <c>Value</c> is always null.</summary>
/// <remarks>
/// <c>Origins</c>: where a secret's value may be sent; null when it is not bound. <c>Version</c> is the
/// current version. <c>ExpiresFrom</c>: <c>set</c> (given with the value) or <c>jwt</c> (the value's
/// <c>exp</c> claim). <c>RotateBy</c>: when the value was first set plus <c>RotateEvery</c>.
/// <c>Attention</c>: <c>expired</c>, <c>rotate_overdue</c> or null.
/// </remarks>
internal sealed record VariableInfo(
    string Environment, string Name, bool Secret, string? Value, long Version,
    DateTimeOffset? ExpiresAt, DateTimeOffset CreatedAt, DateTimeOffset UpdatedAt, IReadOnlyList<string>? Origins = null)
{
    public string? ExpiresFrom { get; init; }

    public string? RotateEvery { get; init; }

    public DateTimeOffset? RotateBy { get; init; }

    public string ExpiredPolicy { get; init; } = Environments.ExpiredPolicy.Warn;

    public int KeepVersions { get; init; }

    public string? Attention { get; init; }
}

/// <summary>
/// The current values of one environment's variables: plain values as strings, secret values as
/// <see cref="Secret"/>. Built once per change and shared by every request.
/// </summary>
internal sealed class EnvironmentValues(
    string environment, IReadOnlyDictionary<string, object?> values, IReadOnlyDictionary<string, IReadOnlyList<OriginPattern>>? origins = null,
    IReadOnlyDictionary<string, long>? versions = null, IReadOnlyDictionary<string, DateTimeOffset>? blockedAfter = null)
{
    public string Environment { get; } = environment;

    /// <summary>Every variable, secrets included: the scope of resource configuration.</summary>
    public IReadOnlyDictionary<string, object?> All { get; } = values;

    /// <summary>Only plain variables: the scope of query templates, which resource users write.</summary>
    public IReadOnlyDictionary<string, object?> Plain { get; } =
        values.Where(kv => kv.Value is string).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);

    /// <summary>The secret values, for redacting anything Keyway returns.</summary>
    public IReadOnlyList<Secret> Secrets { get; } = values.Values.OfType<Secret>().ToList();

    /// <summary>A redactor of <see cref="Secrets"/>, built once per change rather than per request.</summary>
    public Redactor Redactor => _redactor ??= Redactor.For(Secrets);

    private Redactor? _redactor;

    public bool IsSecret(string name) => All.TryGetValue(name, out var v) && v is Secret;

    /// <summary>The current version of each secret: what dependent credentials are keyed by, never the value.</summary>
    public IReadOnlyDictionary<string, long> Versions { get; } = versions ?? new Dictionary<string, long>(StringComparer.Ordinal);

    /// <summary>The secrets whose expired policy is <c>block</c>, with their expiry: refused once it has passed.</summary>
    public IReadOnlyDictionary<string, DateTimeOffset> BlockedAfter { get; } = blockedAfter ?? new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);

    /// <summary>The versions of those of <paramref name="names"/> that are secrets here, as <c>NAME#3</c> sorted.</summary>
    public string VersionsOf(IEnumerable<string> names) =>
        string.Join(',', names.Where(Versions.ContainsKey).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Select(n => n + "#" + Versions[n]));

    /// <summary>The origins each bound secret may be sent to (unbound secrets are absent).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<OriginPattern>> Origins { get; } =
        origins ?? new Dictionary<string, IReadOnlyList<OriginPattern>>(StringComparer.Ordinal);

    /// <summary>
    /// These values with <paramref name="name"/> (a secret) holding <paramref name="value"/> as <paramref name="version"/>:
    /// a rotation's pending value, for its verify request alone. Its expired policy does not apply (it has not expired).
    /// </summary>
    public EnvironmentValues With(string name, Secret value, long version)
    {
        var all = new Dictionary<string, object?>(All, StringComparer.Ordinal) { [name] = value };
        var versions = new Dictionary<string, long>(Versions, StringComparer.Ordinal) { [name] = version };
        var blocked = BlockedAfter.Where(b => b.Key != name).ToDictionary(b => b.Key, b => b.Value, StringComparer.Ordinal);
        return new EnvironmentValues(Environment, all, Origins, versions, blocked);
    }

    /// <summary>The bindings of those of <paramref name="names"/> that are bound secrets here.</summary>
    public SecretBindings BindingsOf(IEnumerable<string> names)
    {
        List<SecretBinding>? bindings = null;
        foreach (var name in names)
        {
            if (Origins.TryGetValue(name, out var patterns))
            {
                (bindings ??= []).Add(new SecretBinding(name, Environment, patterns));
            }
        }

        return bindings is null ? SecretBindings.None : new SecretBindings(bindings);
    }
}

/// <summary>Environments and their configuration variables. Secret values are encrypted at rest and write-only.</summary>
internal sealed partial class VariableService(Database database, KeyRing keys, TimeProvider time, ChangeFeed changes, VariableOptions? options = null)
{
    private readonly VariableOptions _options = options ?? new VariableOptions();

    /// <summary>How many versions a variable keeps when it says nothing (<c>KEYWAY_VARIABLE_KEEP_VERSIONS</c>).</summary>
    public int DefaultKeepVersions => _options.KeepVersions;

    public const string Production = "production";

    private readonly ConcurrentDictionary<string, Task<EnvironmentValues>> _values = new(StringComparer.Ordinal);

    /// <summary>Every secret value held, all versions, all environments: what answers are redacted of.</summary>
    public KnownSecrets Known { get; } = new(database, keys, changes);

    public void Subscribe() => changes.Changed += change =>
    {
        if (change.IsAll)
        {
            _values.Clear();
        }
        else if (change.Kind == "variables")
        {
            _values.TryRemove(change.Name, out _);
        }
    };

    /// <summary>The associated data that binds a secret's ciphertext to its row and field.</summary>
    public static string AssociatedData(string environment, string name, long version) =>
        $"variable_versions:{environment}:{name}:{version}:ciphertext";

    public async Task EnsureProductionAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await connection.ExecuteAsync(
            "INSERT INTO environments (name, description, created_at) VALUES (@name, @description, @now) ON CONFLICT (name) DO NOTHING",
            new { name = Production, description = "The default environment.", now = time.GetUtcNow().ToStore() });
    }

    /// <summary>Creates an environment or updates its description; <paramref name="audit"/> runs in the same transaction, told whether it was created.</summary>
    public async Task<(EnvironmentInfo Environment, bool Created)> PutEnvironmentAsync(
        string name, string? description, CancellationToken cancellationToken, Func<DbTransaction, bool, Task>? audit = null)
    {
        Names.Require("environment", name);
        bool existed;
        await using (var connection = await database.OpenAsync(cancellationToken))
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            existed = await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM environments WHERE name = @name", new { name }, transaction) > 0;
            await connection.ExecuteAsync(
                """
                INSERT INTO environments (name, description, created_at) VALUES (@name, @description, @now)
                ON CONFLICT (name) DO UPDATE SET description = COALESCE(excluded.description, environments.description)
                """,
                new { name, description, now = time.GetUtcNow().ToStore() }, transaction);
            if (audit is not null)
            {
                await audit(transaction, !existed);
            }

            await transaction.CommitAsync(cancellationToken);
        }

        var info = await GetEnvironmentAsync(name, cancellationToken) ?? throw new InvalidOperationException("The environment vanished.");
        return (info, !existed);
    }

    public async Task<EnvironmentInfo?> GetEnvironmentAsync(string name, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var row = await connection.QuerySingleOrDefaultAsync<EnvironmentRow>(
            "SELECT name, description, created_at FROM environments WHERE name = @name", new { name });
        return row?.ToInfo();
    }

    public async Task<IReadOnlyList<EnvironmentInfo>> ListEnvironmentsAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<EnvironmentRow>("SELECT name, description, created_at FROM environments ORDER BY name");
        return rows.Select(r => r.ToInfo()).ToList();
    }

    /// <summary>Deletes an environment and its credentials; <paramref name="audit"/> runs in the same transaction when one was deleted.</summary>
    public async Task<bool> DeleteEnvironmentAsync(string name, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        if (name == Production)
        {
            throw new KeywayException(StatusCodes.Status409Conflict, "conflict", "The 'production' environment always exists and cannot be deleted.");
        }

        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await connection.ExecuteAsync("DELETE FROM credentials WHERE environment = @name", new { name }, transaction);
        await Credentials.DPoPKeyStore.DeleteAsync(connection, transaction, "environment = @name", new { name });
        var deleted = await connection.ExecuteAsync("DELETE FROM environments WHERE name = @name", new { name }, transaction) > 0;
        if (deleted && audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(cancellationToken);
        changes.Publish(new Change("variables", name));
        return deleted;
    }

    /// <summary>
    /// Sets a variable: a new current version each time (older ones retired, and pruned past the
    /// variable's keep count in the same transaction). A secret's value is encrypted before it is stored.
    /// Its expiry is <paramref name="expiresAt"/> if given, else the value's own when it is a JWT.
    /// <paramref name="policy"/>'s null members keep what the variable had. <paramref name="audit"/> runs
    /// in the same transaction, given the variable as written.
    /// </summary>
    public async Task<VariableInfo> SetAsync(
        string environment, string name, string value, bool secret, DateTimeOffset? expiresAt, CancellationToken cancellationToken,
        IReadOnlyList<string>? origins = null, Func<DbTransaction, VariableInfo, Task>? audit = null, VariablePolicy? policy = null, VersionAuthor author = default)
    {
        Names.RequireVariable(name);
        var originsJson = origins is null ? null : OriginsJson(origins, secret);
        var (keep, rotateEvery, expiredPolicy) = CheckPolicy(policy);
        var (expiry, expiresFrom) = expiresAt is { } given ? (given, "set") : SecretPolicy.JwtExpiry(value) is { } exp ? (exp, "jwt") : ((DateTimeOffset?)null, (string?)null);
        var now = time.GetUtcNow().ToStore();
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        if (await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM environments WHERE name = @environment", new { environment }, transaction) == 0)
        {
            throw new KeywayException(StatusCodes.Status404NotFound, "not_found",
                $"The environment '{environment}' does not exist. Create it first: keyway env create {environment}");
        }

        await LockVariableAsync(connection, transaction, environment, name);
        var version = await NextVersionAsync(connection, transaction, environment, name);
        await connection.ExecuteAsync(
            """
            INSERT INTO variables (environment, name, secret, version, expires_at, created_at, updated_at, origins, keep_versions, rotate_every, expired_policy)
            VALUES (@environment, @name, @secret, @version, @expiresAt, @now, @now, @originsJson, @keep, @rotateEvery, @expiredPolicy)
            ON CONFLICT (environment, name) DO UPDATE SET secret = excluded.secret, version = excluded.version,
                expires_at = excluded.expires_at, updated_at = excluded.updated_at,
                origins = CASE WHEN @keepOrigins = 1 AND excluded.secret = 1 THEN variables.origins ELSE excluded.origins END,
                keep_versions = CASE WHEN @setKeep = 1 THEN excluded.keep_versions ELSE variables.keep_versions END,
                rotate_every = CASE WHEN @setRotate = 1 THEN excluded.rotate_every ELSE variables.rotate_every END,
                expired_policy = CASE WHEN @setPolicy = 1 THEN excluded.expired_policy ELSE variables.expired_policy END
            """,
            new
            {
                environment,
                name,
                secret = secret ? 1 : 0,
                version,
                expiresAt = expiry.ToStore(),
                now,
                originsJson,
                keepOrigins = origins is null ? 1 : 0,
                keep,
                rotateEvery,
                expiredPolicy,
                setKeep = policy?.KeepVersions is null ? 0 : 1,
                setRotate = policy?.RotateEvery is null ? 0 : 1,
                setPolicy = policy?.ExpiredPolicy is null ? 0 : 1,
            },
            transaction);
        await InsertVersionAsync(connection, transaction, new NewVersion(environment, name, version, secret, value, expiry, expiresFrom, now, null, author), now);
        var info = (await QueryAsync(connection, transaction, environment, name))[0];
        if (audit is not null)
        {
            await audit(transaction, info);
        }

        await transaction.CommitAsync(cancellationToken);
        changes.Publish(new Change("variables", environment));
        return info;
    }

    /// <summary>The names of the variables that are secret in some environment.</summary>
    public async Task<IReadOnlySet<string>> SecretNamesAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return (await connection.QueryAsync<string>("SELECT DISTINCT name FROM variables WHERE secret = 1")).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>Checks origin patterns and writes them canonically, as JSON; null for an empty list (unbound).</summary>
    private static string? OriginsJson(IReadOnlyList<string> origins, bool secret)
    {
        if (origins.Count == 0)
        {
            return null;
        }

        if (!secret)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request",
                "Only a secret variable is bound to origins: a plain value is not kept from anyone. Set it with \"secret\": true.");
        }

        var canonical = new List<string>(origins.Count);
        foreach (var origin in origins)
        {
            if (!OriginPattern.TryParse(origin, out var pattern, out var error))
            {
                throw new KeywayException(StatusCodes.Status400BadRequest, "bad_request", error!);
            }

            canonical.Add(pattern!.ToString());
        }

        return JsonSerializer.Serialize(canonical.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray());
    }

    private static string[]? ReadOrigins(string? json) =>
        json is null ? null : JsonSerializer.Deserialize<string[]>(json);

    public async Task<VariableInfo?> GetAsync(string environment, string name, CancellationToken cancellationToken) =>
        await QueryAsync(environment, name, cancellationToken) is [var variable, ..] ? variable : null;

    public Task<IReadOnlyList<VariableInfo>> ListAsync(string environment, CancellationToken cancellationToken) =>
        QueryAsync(environment, null, cancellationToken);

    /// <summary>Deletes a variable and its versions; <paramref name="audit"/> runs in the same transaction when one was deleted.</summary>
    public async Task<bool> DeleteAsync(string environment, string name, CancellationToken cancellationToken, Func<DbTransaction, Task>? audit = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        await connection.ExecuteAsync("DELETE FROM variable_versions WHERE environment = @environment AND name = @name", new { environment, name }, transaction);
        var deleted = await connection.ExecuteAsync("DELETE FROM variables WHERE environment = @environment AND name = @name", new { environment, name }, transaction) > 0;
        if (deleted && audit is not null)
        {
            await audit(transaction);
        }

        await transaction.CommitAsync(cancellationToken);
        changes.Publish(new Change("variables", environment));
        return deleted;
    }

    /// <summary>The current values of an environment's variables, decrypted once and cached until they change.</summary>
    public Task<EnvironmentValues> GetValuesAsync(string environment, CancellationToken cancellationToken)
    {
        var task = _values.GetOrAdd(environment, env => LoadValuesAsync(env, CancellationToken.None));
        if (task.IsFaulted || task.IsCanceled)
        {
            // Never cache a failure.
            _values.TryRemove(new KeyValuePair<string, Task<EnvironmentValues>>(environment, task));
        }

        return task.WaitAsync(cancellationToken);
    }

    private async Task<EnvironmentValues> LoadValuesAsync(string environment, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<ValueRow>(
            """
            SELECT v.name, v.secret, v.version, v.origins, v.expires_at, v.expired_policy, vv.value, vv.ciphertext
            FROM variables v JOIN variable_versions vv
              ON vv.environment = v.environment AND vv.name = v.name AND vv.version = v.version
            WHERE v.environment = @environment
            """,
            new { environment });
        var values = new Dictionary<string, object?>(StringComparer.Ordinal);
        var origins = new Dictionary<string, IReadOnlyList<OriginPattern>>(StringComparer.Ordinal);
        var versions = new Dictionary<string, long>(StringComparer.Ordinal);
        var blocked = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        foreach (var row in rows)
        {
            if (row.Secret != 0)
            {
                versions[row.Name] = row.Version;
                if (row.ExpiredPolicy == ExpiredPolicy.Block && row.ExpiresAt is { } expires)
                {
                    blocked[row.Name] = Time.From(expires);
                }
            }

            if (row.Secret != 0 && ReadOrigins(row.Origins) is { } bound)
            {
                origins[row.Name] = bound.Select(o => OriginPattern.TryParse(o, out var p, out _) ? p! : throw new InvalidDataException($"The stored origin of '{row.Name}' is not valid.")).ToArray();
            }

            values[row.Name] = row.Secret != 0
                ? await DecryptAsync(row.Ciphertext!, AssociatedData(environment, row.Name, row.Version), cancellationToken)
                : row.Value ?? "";
        }

        return new EnvironmentValues(environment, values, origins, versions, blocked);
    }

    /// <summary>
    /// Decrypts a secret. A value under a data key this process does not hold yet (another replica
    /// rotated it, e.g. during <c>keyway operator rekey</c>) reloads the key ring and tries once more.
    /// </summary>
    private async Task<Secret> DecryptAsync(byte[] ciphertext, string associatedData, CancellationToken cancellationToken)
    {
        try
        {
            return keys.DecryptSecret(ciphertext, associatedData);
        }
        catch (DecryptionException e) when (e.Reason == DecryptionFailure.UnknownDataKey)
        {
            await keys.ReloadAsync(cancellationToken);
            return keys.DecryptSecret(ciphertext, associatedData);
        }
    }

    private async Task<IReadOnlyList<VariableInfo>> QueryAsync(string environment, string? name, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        return await QueryAsync(connection, null, environment, name);
    }

    private async Task<IReadOnlyList<VariableInfo>> QueryAsync(DbConnection connection, DbTransaction? transaction, string environment, string? name)
    {
        var rows = await connection.QueryAsync<VariableRow>(
            """
            SELECT v.environment, v.name, v.secret, v.version, v.expires_at, v.created_at, v.updated_at, v.origins, vv.value,
                   v.keep_versions, v.rotate_every, v.expired_policy, vv.expires_from, vv.value_set_at
            FROM variables v JOIN variable_versions vv
              ON vv.environment = v.environment AND vv.name = v.name AND vv.version = v.version
            WHERE v.environment = @environment AND (@name IS NULL OR v.name = @name)
            ORDER BY v.name
            """,
            new { environment, name }, transaction);
        var now = time.GetUtcNow();
        return rows.Select(r =>
        {
            var rotateBy = r.RotateEvery is { } every ? Time.From(r.ValueSetAt ?? r.UpdatedAt) + TimeSpan.FromSeconds(every) : (DateTimeOffset?)null;
            var expiresAt = Time.From(r.ExpiresAt);
            return new VariableInfo(
                r.Environment, r.Name, r.Secret != 0, r.Secret != 0 ? null : r.Value, r.Version,
                expiresAt, Time.From(r.CreatedAt), Time.From(r.UpdatedAt), r.Secret != 0 ? ReadOrigins(r.Origins) : null)
            {
                ExpiresFrom = r.ExpiresAt is null ? null : r.ExpiresFrom ?? "set",
                RotateEvery = r.RotateEvery is { } e ? SecretPolicy.Format(TimeSpan.FromSeconds(e)) : null,
                RotateBy = rotateBy,
                ExpiredPolicy = r.ExpiredPolicy ?? ExpiredPolicy.Warn,
                KeepVersions = (int)(r.KeepVersions ?? _options.KeepVersions),
                Attention = expiresAt <= now ? "expired" : rotateBy <= now ? "rotate_overdue" : null,
            };
        }).ToList();
    }

    private sealed class EnvironmentRow
    {
        public string Name { get; init; } = "";
        public string? Description { get; init; }
        public long CreatedAt { get; init; }

        public EnvironmentInfo ToInfo() => new(Name, Description, Time.From(CreatedAt));
    }

    private sealed class VariableRow
    {
        public string Environment { get; init; } = "";
        public string Name { get; init; } = "";
        public long Secret { get; init; }
        public long Version { get; init; }
        public long? ExpiresAt { get; init; }
        public long CreatedAt { get; init; }
        public long UpdatedAt { get; init; }
        public string? Origins { get; init; }
        public string? Value { get; init; }
        public long? KeepVersions { get; init; }
        public long? RotateEvery { get; init; }
        public string? ExpiredPolicy { get; init; }
        public string? ExpiresFrom { get; init; }
        public long? ValueSetAt { get; init; }
    }

    private sealed class ValueRow
    {
        public string Name { get; init; } = "";
        public long Secret { get; init; }
        public long Version { get; init; }
        public long? ExpiresAt { get; init; }
        public string? ExpiredPolicy { get; init; }
        public string? Origins { get; init; }
        public string? Value { get; init; }
        public byte[]? Ciphertext { get; init; }
    }
}

using System.Collections.Concurrent;
using System.Data.Common;
using System.Security.Cryptography;
using Keyway.Secrets;
using Keyway.Storage;

namespace Keyway.Credentials;

/// <summary>
/// The <c>dpop_keys</c> table and its cache: one DPoP key pair per credential, generated on first use, stored
/// encrypted with the key ring, and loaded once per process (no key is parsed per request). Creation is an
/// insert that does nothing when the row exists, then a read: replicas that race both use the winner's key,
/// so the tokens one obtains work for all. A key goes with its credential (<see cref="DeleteAsync"/>, in the
/// transaction that deletes the credential): the next token is bound to a new key.
/// </summary>
internal sealed partial class DPoPKeyStore(Database database, KeyRing keys, TimeProvider time, ILogger<DPoPKeyStore> logger)
{
    private readonly ConcurrentDictionary<CredentialKey, DPoPKey> _cache = new();
    private readonly ConcurrentDictionary<CredentialKey, Task<DPoPKey>> _loading = new();

    /// <summary>The associated data that binds an encrypted key to its row (RekeyJob's registry uses the same).</summary>
    public static string AssociatedData(CredentialKey key) => $"dpop_keys:{key.Resource}:{key.Environment}:{key.Owner}:private_key";

    /// <summary>The key of <paramref name="key"/>'s credential for <paramref name="algorithm"/>: from memory, else the store, else a new one.</summary>
    public ValueTask<DPoPKey> GetAsync(CredentialKey key, string algorithm, CancellationToken cancellationToken)
    {
        if (_cache.TryGetValue(key, out var cached) && cached.Algorithm == algorithm)
        {
            return ValueTask.FromResult(cached);
        }

        return new ValueTask<DPoPKey>(LoadSharedAsync(key, algorithm, cancellationToken));
    }

    /// <summary>One load per credential however many requests wait on it; it runs to its end for all of them.</summary>
    private async Task<DPoPKey> LoadSharedAsync(CredentialKey key, string algorithm, CancellationToken cancellationToken)
    {
        while (true)
        {
            var created = false;
            var loading = _loading.GetOrAdd(key, k =>
            {
                created = true;
                return LoadAsync(k, algorithm);
            });
            if (loading.IsCompleted && !created)
            {
                // A finished load nobody took out (its waiters left): what it read may be stale (an eviction since). Load again.
                _loading.TryRemove(KeyValuePair.Create(key, loading));
                continue;
            }

            try
            {
                var loaded = await loading.WaitAsync(cancellationToken);
                if (loaded.Algorithm == algorithm)
                {
                    return loaded;
                }
            }
            finally
            {
                // Only this load's entry: a load started since stays.
                if (loading.IsCompleted)
                {
                    _loading.TryRemove(KeyValuePair.Create(key, loading));
                }
            }

            // The load under way was for another algorithm (the resource's changed meanwhile): one for this one.
        }
    }

    /// <summary>Forgets the key held in memory (its credential changed here or on another replica).</summary>
    public void Evict(CredentialKey key) => _cache.TryRemove(key, out _);

    /// <summary>Evicts keys whose credential another replica (or this one) disconnected or replaced.</summary>
    public void Subscribe(Environments.ChangeFeed changes) => changes.Changed += change =>
    {
        if (change.IsAll)
        {
            _cache.Clear();
        }
        else if (change.Kind == CredentialEngine.ChangeKind && change.Name.Split('/') is [var resource, var environment, var owner])
        {
            _cache.TryRemove(new CredentialKey(resource, environment, owner), out _);
        }
        else if (change.Kind is "resources" or "variables")
        {
            foreach (var key in _cache.Keys)
            {
                if (key.Resource == change.Name || key.Environment == change.Name)
                {
                    _cache.TryRemove(key, out _);
                }
            }
        }
    };

    /// <summary>Deletes the key of a credential within <paramref name="transaction"/> (the one that deletes the credential).</summary>
    public static Task DeleteAsync(DbConnection connection, DbTransaction transaction, string where, object parameters) =>
        connection.ExecuteAsync($"DELETE FROM dpop_keys WHERE {where}", parameters, transaction);

    private async Task<DPoPKey> LoadAsync(CredentialKey key, string algorithm)
    {
        for (var attempt = 0; ; attempt++)
        {
            var row = await ReadAsync(key);
            if (row is not null && row.Algorithm == algorithm)
            {
                var loaded = await ImportAsync(key, row);
                _cache[key] = loaded;
                return loaded;
            }

            if (attempt == 3)
            {
                throw new InvalidOperationException("The DPoP key of this credential kept changing while it was being created.");
            }

            // None yet, or one for another algorithm (the resource's changed): a new key. Its tokens were minted
            // under other parameters (the algorithm is in them), so none of them is used with the new key.
            using var generated = DPoPKey.Generate(algorithm);
            var pkcs8 = generated.ExportForStore();
            byte[] sealedKey;
            try
            {
                sealedKey = keys.Encrypt(pkcs8, AssociatedData(key));
            }
            finally
            {
                CryptographicOperations.ZeroMemory(pkcs8);
            }

            var values = new
            {
                key.Resource,
                key.Environment,
                key.Owner,
                algorithm,
                privateKey = sealedKey,
                thumbprint = generated.Thumbprint,
                now = time.GetUtcNow().ToStore(),
                previous = row?.Algorithm,
            };
            await using var connection = await database.OpenAsync(CancellationToken.None);
            if (row is null)
            {
                await connection.ExecuteAsync(
                    """
                    INSERT INTO dpop_keys (resource, environment, owner, algorithm, private_key, thumbprint, created_at)
                    VALUES (@Resource, @Environment, @Owner, @algorithm, @privateKey, @thumbprint, @now)
                    ON CONFLICT (resource, environment, owner) DO NOTHING
                    """, values);
            }
            else
            {
                await connection.ExecuteAsync(
                    """
                    UPDATE dpop_keys SET algorithm = @algorithm, private_key = @privateKey, thumbprint = @thumbprint, created_at = @now
                    WHERE resource = @Resource AND environment = @Environment AND owner = @Owner AND algorithm = @previous
                    """, values);
            }

            Log.Created(logger, key.ToString(), algorithm);
        }
    }

    private async Task<Row?> ReadAsync(CredentialKey key)
    {
        await using var connection = await database.OpenAsync(CancellationToken.None);
        return await connection.QuerySingleOrDefaultAsync<Row>(
            "SELECT algorithm, private_key, thumbprint FROM dpop_keys WHERE resource = @Resource AND environment = @Environment AND owner = @Owner", key);
    }

    private async Task<DPoPKey> ImportAsync(CredentialKey key, Row row)
    {
        byte[] pkcs8;
        try
        {
            pkcs8 = keys.Decrypt(row.PrivateKey, AssociatedData(key));
        }
        catch (DecryptionException e) when (e.Reason == DecryptionFailure.UnknownDataKey)
        {
            // Written under a data key this process does not hold yet (another replica rotated it).
            await keys.ReloadAsync(CancellationToken.None);
            pkcs8 = keys.Decrypt(row.PrivateKey, AssociatedData(key));
        }

        try
        {
            return DPoPKey.Import(pkcs8, row.Algorithm);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pkcs8);
        }
    }

    private sealed class Row
    {
        public string Algorithm { get; init; } = "";

        public byte[] PrivateKey { get; init; } = [];

        public string Thumbprint { get; init; } = "";
    }

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Created a DPoP key ({Algorithm}) for credential {Credential}")]
        public static partial void Created(ILogger logger, string credential, string algorithm);
    }
}

/// <summary>
/// The latest <c>DPoP-Nonce</c> each server gave (RFC 9449, sections 8 and 9), by origin: authorization and resource
/// servers alike. Sent in every later proof to that origin, so a server that demands nonces is asked once, not per request.
/// </summary>
internal sealed class DPoPNonces
{
    private const int Capacity = 1024;
    private readonly ConcurrentDictionary<string, string> _nonces = new(StringComparer.OrdinalIgnoreCase);

    public string? For(Uri url) => _nonces.IsEmpty ? null : _nonces.GetValueOrDefault(Origin(url));

    /// <summary>Remembers the nonce an answer from <paramref name="url"/> carries, if any; true when it carried one.</summary>
    public bool Remember(Uri url, HttpResponseMessage response) =>
        response.Headers.TryGetValues(DPoPHeaders.Nonce, out var values) && Remember(url, values.FirstOrDefault());

    public bool Remember(Uri url, string? nonce)
    {
        // A nonce is an opaque token of visible ASCII (NQCHAR): anything else is not sent back.
        if (string.IsNullOrEmpty(nonce) || nonce.Length > 512 || !nonce.All(c => c is >= '!' and <= '~'))
        {
            return false;
        }

        if (_nonces.Count >= Capacity)
        {
            _nonces.Clear();
        }

        _nonces[Origin(url)] = nonce;
        return true;
    }

    private static string Origin(Uri url) => url.GetLeftPart(UriPartial.Authority);
}

/// <summary>The header names and challenge of RFC 9449.</summary>
internal static class DPoPHeaders
{
    public const string Proof = "DPoP";
    public const string Nonce = "DPoP-Nonce";
    public const string Scheme = "DPoP";
    public const string UseNonce = "use_dpop_nonce";

    /// <summary>A resource server's 401 that asks for a nonce: <c>WWW-Authenticate: DPoP error="use_dpop_nonce"</c> and a <c>DPoP-Nonce</c>.</summary>
    public static bool AsksForNonce(HttpResponseMessage response)
    {
        if (response.StatusCode != System.Net.HttpStatusCode.Unauthorized || !response.Headers.Contains(Nonce))
        {
            return false;
        }

        // Read as sent: a challenge's parameters hold commas, and the value is only looked at, never parsed into parts.
        if (response.Headers.NonValidated.TryGetValues("WWW-Authenticate", out var challenges))
        {
            foreach (var challenge in challenges)
            {
                if (challenge.StartsWith(Scheme + " ", StringComparison.OrdinalIgnoreCase) && challenge.Contains(UseNonce, StringComparison.Ordinal))
                {
                    return true;
                }
            }
        }

        return false;
    }
}

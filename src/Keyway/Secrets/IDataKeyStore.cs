namespace Keyway.Secrets;

/// <summary>
/// Where wrapped data keys persist (a table in SQLite or PostgreSQL). The key ring only ever adds
/// keys and re-wraps them; it never deletes one, so no stored ciphertext loses its key.
/// </summary>
internal interface IDataKeyStore
{
    Task<IReadOnlyList<DataKeyRecord>> LoadAllAsync(CancellationToken ct);

    /// <summary>
    /// Adds a data key. When <see cref="DataKeyRecord.Active"/> is true the store clears the flag
    /// on every other key in the same transaction, so exactly one key is active.
    /// </summary>
    Task InsertAsync(DataKeyRecord key, CancellationToken ct);

    /// <summary>Replaces a key's wrapping (after a master key rotation); the key itself is unchanged.</summary>
    Task UpdateWrappingAsync(string id, string masterKeyId, byte[] wrappedKey, CancellationToken ct);
}

/// <summary>
/// A data key as stored: <paramref name="WrappedKey"/> is the 32-byte key encrypted under the
/// master key <paramref name="MasterKeyId"/> (see <see cref="MasterKeyRing"/> for the format).
/// </summary>
internal sealed record DataKeyRecord(string Id, string MasterKeyId, byte[] WrappedKey, DateTimeOffset CreatedAt, bool Active);

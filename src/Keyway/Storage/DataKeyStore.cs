using Keyway.Secrets;

namespace Keyway.Storage;

/// <summary>The key ring's wrapped data keys, in the <c>data_keys</c> table.</summary>
internal sealed class DataKeyStore(Database database) : IDataKeyStore
{
    public async Task<IReadOnlyList<DataKeyRecord>> LoadAllAsync(CancellationToken ct)
    {
        await using var connection = await database.OpenAsync(ct);
        var rows = await connection.QueryAsync<Row>("SELECT id, master_key_id, wrapped_key, created_at, active FROM data_keys");
        return rows.Select(r => new DataKeyRecord(r.Id, r.MasterKeyId, r.WrappedKey, Time.From(r.CreatedAt), r.Active != 0)).ToList();
    }

    public async Task InsertAsync(DataKeyRecord key, CancellationToken ct)
    {
        await using var connection = await database.OpenAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        if (key.Active)
        {
            await connection.ExecuteAsync("UPDATE data_keys SET active = 0 WHERE active <> 0", transaction: transaction);
        }

        await connection.ExecuteAsync(
            "INSERT INTO data_keys (id, master_key_id, wrapped_key, created_at, active) VALUES (@Id, @MasterKeyId, @WrappedKey, @created, @active)",
            new { key.Id, key.MasterKeyId, key.WrappedKey, created = key.CreatedAt.ToStore(), active = key.Active ? 1 : 0 },
            transaction);
        await transaction.CommitAsync(ct);
    }

    public async Task UpdateWrappingAsync(string id, string masterKeyId, byte[] wrappedKey, CancellationToken ct)
    {
        await using var connection = await database.OpenAsync(ct);
        await connection.ExecuteAsync(
            "UPDATE data_keys SET master_key_id = @masterKeyId, wrapped_key = @wrappedKey WHERE id = @id",
            new { id, masterKeyId, wrappedKey });
    }

    private sealed class Row
    {
        public string Id { get; init; } = "";
        public string MasterKeyId { get; init; } = "";
        public byte[] WrappedKey { get; init; } = [];
        public long CreatedAt { get; init; }
        public long Active { get; init; }
    }
}

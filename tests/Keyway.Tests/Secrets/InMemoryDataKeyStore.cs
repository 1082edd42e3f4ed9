using Keyway.Secrets;

namespace Keyway.Tests.Secrets;

/// <summary>
/// A data key store in memory, with the contract of the real ones: inserting an active key
/// deactivates the others. Records are copied in and out so a test can compare snapshots.
/// </summary>
internal sealed class InMemoryDataKeyStore : IDataKeyStore
{
    private readonly Lock _lock = new();
    private readonly List<DataKeyRecord> _records = [];

    public int Writes { get; private set; }

    public IReadOnlyList<DataKeyRecord> Snapshot()
    {
        lock (_lock)
        {
            return [.. _records.Select(Copy)];
        }
    }

    /// <summary>Replaces the stored records as they are (to simulate damage or another replica).</summary>
    public void Replace(IEnumerable<DataKeyRecord> records)
    {
        lock (_lock)
        {
            _records.Clear();
            _records.AddRange(records.Select(Copy));
        }
    }

    public Task<IReadOnlyList<DataKeyRecord>> LoadAllAsync(CancellationToken ct) => Task.FromResult(Snapshot());

    public Task InsertAsync(DataKeyRecord key, CancellationToken ct)
    {
        lock (_lock)
        {
            if (_records.Exists(existing => existing.Id == key.Id))
            {
                throw new InvalidOperationException($"Duplicate data key id {key.Id}.");
            }

            if (key.Active)
            {
                for (var i = 0; i < _records.Count; i++)
                {
                    _records[i] = _records[i] with { Active = false };
                }
            }

            _records.Add(Copy(key));
            Writes++;
        }

        return Task.CompletedTask;
    }

    public Task UpdateWrappingAsync(string id, string masterKeyId, byte[] wrappedKey, CancellationToken ct)
    {
        lock (_lock)
        {
            var index = _records.FindIndex(existing => existing.Id == id);
            if (index < 0)
            {
                throw new InvalidOperationException($"No data key {id}.");
            }

            _records[index] = _records[index] with { MasterKeyId = masterKeyId, WrappedKey = (byte[])wrappedKey.Clone() };
            Writes++;
        }

        return Task.CompletedTask;
    }

    private static DataKeyRecord Copy(DataKeyRecord record) => record with { WrappedKey = (byte[])record.WrappedKey.Clone() };
}

using Keyway.Secrets;

namespace Keyway.Benchmarks;

/// <summary>
/// A data key store in memory with the real stores' contract (inserting an active key
/// deactivates the others). A copy of the test project's, so the benchmarks do not depend on
/// the tests.
/// </summary>
internal sealed class InMemoryDataKeyStore : IDataKeyStore
{
    private readonly Lock _lock = new();
    private readonly List<DataKeyRecord> _records = [];

    public Task<IReadOnlyList<DataKeyRecord>> LoadAllAsync(CancellationToken ct)
    {
        lock (_lock)
        {
            return Task.FromResult<IReadOnlyList<DataKeyRecord>>([.. _records.Select(Copy)]);
        }
    }

    public Task InsertAsync(DataKeyRecord key, CancellationToken ct)
    {
        lock (_lock)
        {
            if (key.Active)
            {
                for (var i = 0; i < _records.Count; i++)
                {
                    _records[i] = _records[i] with { Active = false };
                }
            }

            _records.Add(Copy(key));
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
        }

        return Task.CompletedTask;
    }

    private static DataKeyRecord Copy(DataKeyRecord record) => record with { WrappedKey = (byte[])record.WrappedKey.Clone() };
}

using Keyway.Secrets;
using Keyway.Storage;

namespace Keyway.Environments;

/// <summary>
/// Every secret value Keyway holds, as one redactor: each secret variable's current and previous
/// versions in every environment, and every webhook signing secret. A resource's answers, its errors and the audit log are redacted
/// with it, so an upstream that echoes an old version, or another environment's value, gets nothing
/// back. It reads the store itself rather than <see cref="VariableService"/>'s per-environment cache
/// (which holds current values only), and keeps the result until a variable changes: a change bumps
/// the generation, and a redactor built under an older one is rebuilt (once, however many callers
/// wait) before it is used again.
/// </summary>
internal sealed class KnownSecrets(Database database, KeyRing keys, ChangeFeed changes)
{
    private readonly Lock _lock = new();
    private long _generation;
    // One reference, so a reader never sees one generation's number with another's redactor.
    private volatile Entry? _cached;

    public void Subscribe() => changes.Changed += change =>
    {
        if (change.IsAll || change.Kind is "variables" or Alerts.WebhookStore.ChangeKind)
        {
            Interlocked.Increment(ref _generation);
        }
    };

    public Task<Redactor> GetAsync(CancellationToken cancellationToken)
    {
        var generation = Volatile.Read(ref _generation);
        if (_cached is { } hit && hit.Generation == generation && !hit.Redactor.IsFaulted && !hit.Redactor.IsCanceled)
        {
            return hit.Redactor;
        }

        lock (_lock)
        {
            var current = _cached;
            if (current is null || current.Generation != generation || current.Redactor.IsFaulted || current.Redactor.IsCanceled)
            {
                // Cached under the generation read before the store is: a change meanwhile rebuilds it next time.
                current = new Entry(generation, LoadAsync(CancellationToken.None));
                _cached = current;
            }

            return current.Redactor.WaitAsync(cancellationToken);
        }
    }

    private sealed record Entry(long Generation, Task<Redactor> Redactor);

    private async Task<Redactor> LoadAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        var rows = await connection.QueryAsync<SecretRow>(
            "SELECT environment, name, version, ciphertext FROM variable_versions WHERE ciphertext IS NOT NULL");
        var values = new List<string>();
        foreach (var row in rows)
        {
            var associatedData = VariableService.AssociatedData(row.Environment, row.Name, row.Version);
            try
            {
                values.Add(keys.DecryptSecret(row.Ciphertext!, associatedData).Reveal());
            }
            catch (DecryptionException e) when (e.Reason == DecryptionFailure.UnknownDataKey)
            {
                // Another replica rotated the data key (a rekey): load it and try once more.
                await keys.ReloadAsync(cancellationToken);
                values.Add(keys.DecryptSecret(row.Ciphertext!, associatedData).Reveal());
            }
        }

        // Webhook signing secrets too: shown once and never again, they must not reach an answer or a log either.
        try
        {
            values.AddRange(await Alerts.WebhookStore.AllSecretsAsync(connection, keys, cancellationToken));
        }
        catch (DecryptionException e) when (e.Reason == DecryptionFailure.UnknownDataKey)
        {
            await keys.ReloadAsync(cancellationToken);
            values.AddRange(await Alerts.WebhookStore.AllSecretsAsync(connection, keys, cancellationToken));
        }
        return new Redactor(values);
    }

    private sealed class SecretRow
    {
        public string Environment { get; init; } = "";
        public string Name { get; init; } = "";
        public long Version { get; init; }
        public byte[]? Ciphertext { get; init; }
    }
}

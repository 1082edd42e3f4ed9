using System.Data.Common;
using System.Reflection;

namespace Keyway.Storage;

/// <summary>
/// Applies the versioned SQL scripts under <c>Storage/Migrations/{sqlite,postgres}</c> in order,
/// each in its own transaction, and records them in <c>schema_migrations</c>. On PostgreSQL an
/// advisory lock keeps replicas that start together from migrating twice.
/// </summary>
internal sealed partial class Migrator(Database database, TimeProvider time, ILogger<Migrator> logger)
{
    // An arbitrary constant: the advisory lock id that guards migrations.
    private const long MigrationLockId = 0x4b65_7977_6179_0001;

    /// <summary>Applies the migrations not yet applied, up to and including <paramref name="through"/> (tests stop early to upgrade old data).</summary>
    public async Task<int> ApplyAsync(CancellationToken cancellationToken, long through = long.MaxValue)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        if (database.Kind == StoreKind.Sqlite)
        {
            // WAL lets readers run alongside the single writer; it persists in the file.
            await connection.ExecuteAsync("PRAGMA journal_mode=WAL;");
        }
        else
        {
            await connection.ExecuteAsync("SELECT pg_advisory_lock(@id)", new { id = MigrationLockId });
        }

        try
        {
            await connection.ExecuteAsync(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)");
            var applied = (await connection.QueryAsync<long>("SELECT version FROM schema_migrations")).ToHashSet();
            var count = 0;
            foreach (var migration in Load(database.Kind))
            {
                if (applied.Contains(migration.Version) || migration.Version > through)
                {
                    continue;
                }

                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                await connection.ExecuteAsync(migration.Sql, transaction: transaction);
                await connection.ExecuteAsync(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (@Version, @Name, @now)",
                    new { migration.Version, migration.Name, now = time.GetUtcNow().ToUnixTimeMilliseconds() },
                    transaction);
                await transaction.CommitAsync(cancellationToken);
                Log.Applied(logger, migration.Version, migration.Name);
                count++;
            }

            var newest = Load(database.Kind).Max(m => m.Version);
            var stored = applied.Count == 0 ? 0 : applied.Max();
            if (stored > newest)
            {
                // A newer release migrated the store. Its migrations since may only have added, which this release can run on
                // (a rolling upgrade, or a replica of it restarted meanwhile); schema_compatibility says.
                var oldestReader = await connection.ExecuteScalarAsync<long>("SELECT oldest_reader FROM schema_compatibility WHERE id = 1");
                if (oldestReader > newest)
                {
                    throw new InvalidOperationException(
                        $"The database schema is at version {stored}, newer than this Keyway knows ({newest}), and runs only with a Keyway that knows version {oldestReader} or later. Run that release or a newer one.");
                }

                Log.NewerCompatibleSchema(logger, stored, newest, oldestReader);
            }

            return count;
        }
        finally
        {
            if (database.Kind == StoreKind.Postgres)
            {
                await connection.ExecuteAsync("SELECT pg_advisory_unlock(@id)", new { id = MigrationLockId });
            }
        }
    }

    internal static IReadOnlyList<Migration> Load(StoreKind kind)
    {
        var folder = kind == StoreKind.Sqlite ? ".sqlite." : ".postgres.";
        var assembly = Assembly.GetExecutingAssembly();
        return assembly.GetManifestResourceNames()
            .Where(n => n.Contains(".Migrations" + folder, StringComparison.Ordinal) && n.EndsWith(".sql", StringComparison.Ordinal))
            .Select(n =>
            {
                var file = n[(n.IndexOf(folder, StringComparison.Ordinal) + folder.Length)..^4];
                using var stream = assembly.GetManifestResourceStream(n)!;
                using var reader = new StreamReader(stream);
                return new Migration(long.Parse(file[..4]), file, reader.ReadToEnd());
            })
            .OrderBy(m => m.Version)
            .ToList();
    }

    internal sealed record Migration(long Version, string Name, string Sql);

    private static partial class Log
    {
        [LoggerMessage(1, LogLevel.Information, "Applied schema migration {Version} ({Name})")]
        public static partial void Applied(ILogger logger, long version, string name);

        [LoggerMessage(2, LogLevel.Warning, "The store's schema is at version {Stored}, newer than this Keyway knows ({Newest}); it stays readable by releases that know version {OldestReader}, so this one runs on it. Finish the upgrade: every replica should run the release that migrated it")]
        public static partial void NewerCompatibleSchema(ILogger logger, long stored, long newest, long oldestReader);
    }
}

using Microsoft.Data.Sqlite;

namespace Keyway.Storage;

/// <summary>
/// Online backup and restore of the embedded SQLite store (<c>keyway.db</c> in the data directory).
/// A backup is <c>VACUUM INTO</c>: one read transaction, so it is a consistent snapshot taken while
/// Keyway keeps serving and writing (WAL lets the writer go on). The copy holds secrets encrypted under
/// the master key and never the key itself, which is backed up separately.
/// </summary>
internal static class SqliteBackup
{
    public const string StoreFileName = "keyway.db";

    /// <summary>What a backup file holds, read back from it after it is written or before it is restored.</summary>
    internal sealed record Summary(long SchemaVersion, long Bytes, long Resources, long Variables, long AuditEvents);

    /// <summary>Writes a consistent copy of <paramref name="dataDirectory"/>'s store to <paramref name="target"/> (a new file, mode 0600) and checks it.</summary>
    /// <exception cref="BackupException">No store, the target exists, or the copy does not check out.</exception>
    public static async Task<Summary> BackupAsync(string dataDirectory, string target, CancellationToken cancellationToken)
    {
        var source = StorePath(dataDirectory);
        if (!File.Exists(source))
        {
            throw new BackupException($"There is no Keyway store at {source}. Give the data directory Keyway serves from with --data-dir (or KEYWAY_DATA_DIR).");
        }

        target = Path.GetFullPath(target);
        if (File.Exists(target) || Directory.Exists(target))
        {
            throw new BackupException($"{target} already exists. Name a new file: a backup never overwrites one.");
        }

        // SQLite reopens the target by name: in a directory others may write to (and rename in), the file could be swapped first.
        if (!OperatingSystem.IsWindows() && Path.GetDirectoryName(target) is { } parent && Directory.Exists(parent))
        {
            var mode = File.GetUnixFileMode(parent);
            if ((mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0 && (mode & UnixFileMode.StickyBit) == 0)
            {
                throw new BackupException($"{parent} is writable by other users, who could swap the backup file while it is written. Write it to a directory only you can write to.");
            }
        }

        // VACUUM INTO writes into an empty file; creating it first sets its mode at open(2), so the copy is never readable by others.
        CreateOwnerOnly(target);
        try
        {
            await using (var connection = new SqliteConnection(ConnectionString(source, SqliteOpenMode.ReadWrite)))
            {
                await connection.OpenAsync(cancellationToken);
                await using var command = connection.CreateCommand();
                command.CommandText = "VACUUM INTO @target";
                command.Parameters.AddWithValue("@target", target);
                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            return await InspectAsync(target, cancellationToken);
        }
        catch (Exception e) when (e is SqliteException or BackupException or IOException)
        {
            File.Delete(target);
            throw e as BackupException ?? new BackupException($"The backup failed and nothing was kept: {e.Message}", e);
        }
    }

    /// <summary>
    /// Puts <paramref name="backup"/> in place as <paramref name="dataDirectory"/>'s store. An existing store is
    /// moved aside to <c>keyway.db.before-restore-{time}</c> (never deleted) and only with <paramref name="replace"/>.
    /// Keyway must not be running on that directory.
    /// </summary>
    public static async Task<(Summary Summary, string? SetAside)> RestoreAsync(string dataDirectory, string backup, bool replace, TimeProvider time, CancellationToken cancellationToken)
    {
        backup = Path.GetFullPath(backup);
        if (!File.Exists(backup))
        {
            throw new BackupException($"{backup} does not exist.");
        }

        var summary = await InspectAsync(backup, cancellationToken);
        var store = StorePath(dataDirectory);
        if (File.Exists(store) && !replace)
        {
            throw new BackupException(
                $"{store} already holds a store. Stop Keyway on that data directory, then run again with --replace: the current store is kept beside it as keyway.db.before-restore-<time>.");
        }

        Directory.CreateDirectory(dataDirectory);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(dataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        // Copied next to the store first, flushed, then renamed over: a crash leaves the old store or the new one, never half of one.
        var staging = Path.Combine(dataDirectory, $".{StoreFileName}.restore.{Guid.NewGuid():N}");
        CreateOwnerOnly(staging);
        try
        {
            await using (var from = new FileStream(backup, FileMode.Open, FileAccess.Read, FileShare.Read))
            await using (var to = new FileStream(staging, FileMode.Truncate, FileAccess.Write, FileShare.None))
            {
                await from.CopyToAsync(to, cancellationToken);
                to.Flush(flushToDisk: true);
            }

            string? setAside = null;
            if (File.Exists(store))
            {
                setAside = $"{store}.before-restore-{time.GetUtcNow():yyyyMMddTHHmmssZ}";
                File.Move(store, setAside);
                foreach (var suffix in (string[])["-wal", "-shm"])
                {
                    // The write-ahead log belongs to the store set aside: replayed into the restored one it would corrupt it.
                    if (File.Exists(store + suffix))
                    {
                        File.Move(store + suffix, setAside + suffix);
                    }
                }
            }

            File.Move(staging, store);
            return (summary, setAside);
        }
        finally
        {
            File.Delete(staging);
        }
    }

    /// <summary>Checks that <paramref name="path"/> is a whole Keyway store this binary can open, and counts what it holds.</summary>
    public static async Task<Summary> InspectAsync(string path, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = new SqliteConnection(ConnectionString(path, SqliteOpenMode.ReadOnly));
            await connection.OpenAsync(cancellationToken);
            var integrity = await connection.ExecuteScalarAsync<string>("PRAGMA integrity_check");
            if (integrity != "ok")
            {
                throw new BackupException($"{path} is damaged (integrity check: {integrity}).");
            }

            var isStore = await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'");
            if (isStore == 0)
            {
                throw new BackupException($"{path} is a SQLite file but not a Keyway store (it has no schema_migrations table).");
            }

            var version = await connection.ExecuteScalarAsync<long>("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
            var newest = Migrator.Load(StoreKind.Sqlite).Max(m => m.Version);
            if (version > newest)
            {
                throw new BackupException($"{path} is at schema version {version}, newer than this Keyway knows ({newest}). Restore it with that Keyway or a newer one.");
            }

            return new Summary(version, new FileInfo(path).Length,
                await CountAsync(connection, "resources"), await CountAsync(connection, "variables"), await CountAsync(connection, "audit_events"));
        }
        catch (SqliteException e)
        {
            throw new BackupException($"{path} cannot be read as a Keyway store: {e.Message}", e);
        }
    }

    private static async Task<long> CountAsync(SqliteConnection connection, string table) =>
        await connection.ExecuteScalarAsync<long>($"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'") == 0
            ? 0
            : await connection.ExecuteScalarAsync<long>($"SELECT COUNT(*) FROM {table}");

    private static string StorePath(string dataDirectory) => Path.Combine(Path.GetFullPath(dataDirectory), StoreFileName);

    private static string ConnectionString(string path, SqliteOpenMode mode) =>
        new SqliteConnectionStringBuilder { DataSource = path, Mode = mode, Pooling = false, DefaultTimeout = 30 }.ToString();

    private static void CreateOwnerOnly(string path)
    {
        try
        {
            using var _ = Secrets.OwnerOnlyFile.Create(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BackupException($"Cannot create {path}: {e.Message}", e);
        }
    }
}

/// <summary>A backup or restore that cannot go ahead: the message says why and what to do.</summary>
internal sealed class BackupException(string message, Exception? inner = null) : Exception(message, inner);

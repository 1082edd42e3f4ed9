using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Keyway.Hosting;
using Keyway.Storage;

namespace Keyway.Cli;

/// <summary>
/// <c>keyway operator backup|restore</c>: the embedded SQLite store, on the machine that holds the data
/// directory (no server call). A backup is taken while Keyway serves; a restore needs it stopped.
/// PostgreSQL stores are backed up with <c>pg_dump</c> (docs/deploy.md).
/// </summary>
internal static class BackupCommands
{
    private const string PostgresAdvice =
        "This Keyway's store is PostgreSQL (KEYWAY_DATABASE_URL): back it up with pg_dump --format=custom and restore with pg_restore (docs/deploy.md, Backup and restore). " +
        "These commands are for the embedded SQLite store.";

    public static Command Backup(CliIo io)
    {
        var dataDir = DataDirOption();
        var target = new Argument<string>("file") { Description = "The backup file to write (must not exist; written with mode 0600)." };
        var command = new Command("backup",
            "Write a consistent copy of the embedded SQLite store to a new file, while Keyway keeps serving. " +
            "The copy holds secrets encrypted, never the master key: back the key up separately.")
        { dataDir, target };
        command.SetAction(async (parse, ct) =>
        {
            var output = io.For(parse);
            if (PostgresStore())
            {
                await io.Error.WriteLineAsync("error: " + PostgresAdvice);
                return ExitCodes.Usage;
            }

            try
            {
                var summary = await SqliteBackup.BackupAsync(parse.GetValue(dataDir)!, parse.GetValue(target)!, ct);
                var path = Path.GetFullPath(parse.GetValue(target)!);
                output.Success(
                    $"Backed up {Describe(summary)} to {path}. It does not hold the master key: keep a copy of master.key (or KEYWAY_MASTER_KEY) " +
                    "apart from it; without that key the secrets in it cannot be read.",
                    Document(summary, path));
                return ExitCodes.Ok;
            }
            catch (BackupException e)
            {
                await io.Error.WriteLineAsync("error: " + e.Message);
                return ExitCodes.Failure;
            }
        });
        return command;
    }

    public static Command Restore(CliIo io)
    {
        var dataDir = DataDirOption();
        var source = new Argument<string>("file") { Description = "A file written by 'keyway operator backup'." };
        var replace = new Option<bool>("--replace") { Description = "Replace the store already in the data directory (kept beside it as keyway.db.before-restore-<time>). Stop Keyway first." };
        var command = new Command("restore",
            "Put a backup in place as the data directory's store, after checking it is whole and a store this Keyway can open. " +
            "Keyway must be stopped; start it again with the master key the backup was made under, then run 'keyway audit verify'.")
        { dataDir, source, replace };
        command.SetAction(async (parse, ct) =>
        {
            var output = io.For(parse);
            if (PostgresStore())
            {
                await io.Error.WriteLineAsync("error: " + PostgresAdvice);
                return ExitCodes.Usage;
            }

            try
            {
                var directory = Path.GetFullPath(parse.GetValue(dataDir)!);
                var (summary, setAside) = await SqliteBackup.RestoreAsync(directory, parse.GetValue(source)!, parse.GetValue(replace), TimeProvider.System, ct);
                var document = Document(summary, Path.Combine(directory, SqliteBackup.StoreFileName));
                document["setAside"] = setAside;
                output.Success(
                    $"Restored {Describe(summary)} into {directory}." + (setAside is null ? "" : $" The store it replaced is kept as {setAside}.") +
                    " Start Keyway with the master key the backup was made under, then run: keyway audit verify",
                    document);
                return ExitCodes.Ok;
            }
            catch (BackupException e)
            {
                await io.Error.WriteLineAsync("error: " + e.Message);
                return ExitCodes.Failure;
            }
        });
        return command;
    }

    private static Option<string> DataDirOption() => new("--data-dir")
    {
        Description = "The data directory Keyway serves from (or KEYWAY_DATA_DIR).",
        DefaultValueFactory = _ => ServeOptions.DataDirectoryFromEnvironment(),
    };

    private static bool PostgresStore() => Environment.GetEnvironmentVariable("KEYWAY_DATABASE_URL") is { Length: > 0 };

    private static string Describe(SqliteBackup.Summary s) => string.Create(CultureInfo.InvariantCulture,
        $"{s.Resources} resources, {s.Variables} variables and {s.AuditEvents} audit events (schema version {s.SchemaVersion}, {s.Bytes / 1024.0 / 1024.0:0.0} MB)");

    private static JsonObject Document(SqliteBackup.Summary s, string path) => new()
    {
        ["path"] = path,
        ["schemaVersion"] = s.SchemaVersion,
        ["bytes"] = s.Bytes,
        ["resources"] = s.Resources,
        ["variables"] = s.Variables,
        ["auditEvents"] = s.AuditEvents,
    };
}

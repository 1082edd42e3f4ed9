using System.Security.Cryptography;
using Keyway.Access;
using Keyway.Storage;
using Microsoft.AspNetCore.Identity;

namespace Keyway.Hosting;

/// <summary>
/// First start on an empty store: creates the <c>admin</c> user with a password and an API key,
/// from <c>KEYWAY_ADMIN_PASSWORD</c> / <c>KEYWAY_ADMIN_TOKEN</c> or generated. Generated values are
/// printed once to the terminal (never to the log), or, when <c>KEYWAY_ADMIN_CREDENTIALS_FILE</c> names a file,
/// written there (a new file, mode 0600) so a service's journal never holds them; later starts ignore all three.
/// </summary>
internal sealed partial class Bootstrap(Database database, ApiKeyService keys, TimeProvider time, ILogger<Bootstrap> logger)
{
    public const string CredentialsFileVariable = "KEYWAY_ADMIN_CREDENTIALS_FILE";

    public async Task RunAsync(string? adminPassword, string? adminToken, TextWriter terminal, CancellationToken cancellationToken, string? credentialsFile = null)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        if (await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM users") > 0)
        {
            return;
        }

        var generatedPassword = string.IsNullOrEmpty(adminPassword);
        var generatedToken = string.IsNullOrEmpty(adminToken);
        var password = generatedPassword ? ApiKeyService.Base64Url(RandomNumberGenerator.GetBytes(18)) : adminPassword!;
        var userId = "usr_" + ApiKeyService.Base64Url(RandomNumberGenerator.GetBytes(9));
        var hash = new PasswordHasher<string>().HashPassword("admin", password);

        // The file is opened before the user exists: if it cannot be written, nothing is created and the next start tries again.
        var path = (generatedPassword || generatedToken) && !string.IsNullOrEmpty(credentialsFile) ? Path.GetFullPath(credentialsFile) : null;
        await using var file = path is null ? null : OpenNewOwnerOnly(path);
        var inserted = await connection.ExecuteAsync(
            "INSERT INTO users (id, name, role, password_hash, created_at) VALUES (@userId, 'admin', @role, @hash, @now) ON CONFLICT (name) DO NOTHING",
            new { userId, role = Caller.AdminRole, hash, now = time.GetUtcNow().ToStore() });
        if (inserted == 0)
        {
            // Another replica bootstrapped at the same moment.
            if (file is not null)
            {
                await file.DisposeAsync();
                File.Delete(path!);
            }

            return;
        }

        var (_, token) = await keys.CreateAsync(userId, "bootstrap", null, generatedToken ? null : adminToken, cancellationToken);
        Log.AdminCreated(logger);
        if (file is not null)
        {
            await WriteCredentialsAsync(file, generatedPassword ? password : null, generatedToken ? token : null, cancellationToken);
            Log.CredentialsWritten(logger, path!);
            await terminal.WriteLineAsync($"Keyway created the user 'admin'; its generated credentials are in {path} (mode 0600). Read them, then delete the file.");
        }
        else if (generatedPassword || generatedToken)
        {
            await WriteCredentialsAsync(terminal, generatedPassword ? password : null, generatedToken ? token : null, cancellationToken);
        }
    }

    private static async Task WriteCredentialsAsync(TextWriter terminal, string? password, string? token, CancellationToken cancellationToken)
    {
        await terminal.WriteLineAsync();
        await terminal.WriteLineAsync("Keyway created the user 'admin'. These are shown once; keep them safe:");
        if (password is not null)
        {
            await terminal.WriteLineAsync($"  admin password: {password}");
        }

        if (token is not null)
        {
            await terminal.WriteLineAsync($"  admin API key:  {token}");
            await terminal.WriteLineAsync($"  export KEYWAY_TOKEN={token}");
        }

        await terminal.WriteLineAsync();
        await terminal.FlushAsync(cancellationToken);
    }

    /// <summary>A new file readable by its owner only from the moment it exists; an existing one is never overwritten.</summary>
    private static StreamWriter OpenNewOwnerOnly(string path)
    {
        try
        {
            return new StreamWriter(Secrets.OwnerOnlyFile.Create(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new StartupException(
                $"Cannot write the generated admin credentials to {path} ({CredentialsFileVariable}): {e.Message} Remove the old file or name another; nothing was created, and the next start tries again.");
        }
    }

    private static partial class Log
    {
        [LoggerMessage(11, LogLevel.Warning, "The generated admin credentials were written to {Path} (mode 0600): read them, then delete the file")]
        public static partial void CredentialsWritten(ILogger logger, string path);

        [LoggerMessage(10, LogLevel.Information, "Created the admin user on an empty store")]
        public static partial void AdminCreated(ILogger logger);
    }
}

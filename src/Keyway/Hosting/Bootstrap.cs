using System.Security.Cryptography;
using Keyway.Access;
using Keyway.Storage;
using Microsoft.AspNetCore.Identity;

namespace Keyway.Hosting;

/// <summary>
/// First start on an empty store: creates the <c>admin</c> user with a password and an API key,
/// from <c>KEYWAY_ADMIN_PASSWORD</c> / <c>KEYWAY_ADMIN_TOKEN</c> or generated. Generated values are
/// printed once to the terminal (never to the log); later starts ignore both variables.
/// </summary>
internal sealed partial class Bootstrap(Database database, ApiKeyService keys, TimeProvider time, ILogger<Bootstrap> logger)
{
    public async Task RunAsync(string? adminPassword, string? adminToken, TextWriter terminal, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken);
        if (await connection.ExecuteScalarAsync<long>("SELECT COUNT(*) FROM users") > 0)
        {
            return;
        }

        var generatedPassword = string.IsNullOrEmpty(adminPassword);
        var password = generatedPassword ? ApiKeyService.Base64Url(RandomNumberGenerator.GetBytes(18)) : adminPassword!;
        var userId = "usr_" + ApiKeyService.Base64Url(RandomNumberGenerator.GetBytes(9));
        var hash = new PasswordHasher<string>().HashPassword("admin", password);
        var inserted = await connection.ExecuteAsync(
            "INSERT INTO users (id, name, role, password_hash, created_at) VALUES (@userId, 'admin', @role, @hash, @now) ON CONFLICT (name) DO NOTHING",
            new { userId, role = Caller.AdminRole, hash, now = time.GetUtcNow().ToStore() });
        if (inserted == 0)
        {
            // Another replica bootstrapped at the same moment.
            return;
        }

        var (_, token) = await keys.CreateAsync(userId, "bootstrap", null, string.IsNullOrEmpty(adminToken) ? null : adminToken, cancellationToken);
        Log.AdminCreated(logger);
        if (generatedPassword || string.IsNullOrEmpty(adminToken))
        {
            await terminal.WriteLineAsync();
            await terminal.WriteLineAsync("Keyway created the user 'admin'. These are shown once; keep them safe:");
            if (generatedPassword)
            {
                await terminal.WriteLineAsync($"  admin password: {password}");
            }

            if (string.IsNullOrEmpty(adminToken))
            {
                await terminal.WriteLineAsync($"  admin API key:  {token}");
                await terminal.WriteLineAsync($"  export KEYWAY_TOKEN={token}");
            }

            await terminal.WriteLineAsync();
            await terminal.FlushAsync(cancellationToken);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(10, LogLevel.Information, "Created the admin user on an empty store")]
        public static partial void AdminCreated(ILogger logger);
    }
}

using System.Data.Common;
using System.Globalization;
using System.Security.Cryptography;
using Keyway.Credentials;
using Keyway.Environments;
using Keyway.Resources;
using Keyway.Secrets;
using Keyway.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace Keyway.Benchmarks;

/// <summary>
/// Fills a Keyway data directory for the harness's "how cost grows" runs (bench/harness/run.sh):
/// a secret variable <c>TOKEN</c>, <c>r0</c>…<c>r{N-1}</c> bearer resources over the upstream, and
/// stored, encrypted credentials, written with Keyway's own services and key ring, the way a
/// long-running install would hold them. The master key comes from <c>KEYWAY_MASTER_KEY</c>.
/// <code>keyway-benchmarks seed &lt;data dir&gt; &lt;upstream base URL&gt; &lt;resources&gt; &lt;credentials&gt;</code>
/// </summary>
internal static class Seeder
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length != 5)
        {
            await Console.Error.WriteLineAsync("usage: seed <data dir> <upstream base URL> <resources> <credentials>");
            return 2;
        }

        var directory = args[1];
        var upstream = args[2];
        var resourceCount = int.Parse(args[3], CultureInfo.InvariantCulture);
        var credentialCount = int.Parse(args[4], CultureInfo.InvariantCulture);
        var ct = CancellationToken.None;
        var time = TimeProvider.System;

        Directory.CreateDirectory(directory);
        await using var database = Database.Sqlite(Path.Combine(directory, "keyway.db"));
        await new Migrator(database, time, NullLogger<Migrator>.Instance).ApplyAsync(ct);
        var master = MasterKeyRing.Load(Environment.GetEnvironmentVariable("KEYWAY_MASTER_KEY"), directory);
        using var ring = await KeyRing.OpenAsync(master, new DataKeyStore(database), time, ct);
        var changes = new ChangeFeed();
        var variables = new VariableService(database, ring, time, changes);
        await variables.EnsureProductionAsync(ct);
        await variables.SetAsync(VariableService.Production, "TOKEN", "bench-upstream-token-0123456789", secret: true, null, ct);

        var resources = new ResourceService(database, time, changes);
        for (var i = 0; i < resourceCount; i++)
        {
            await resources.PutAsync(string.Create(CultureInfo.InvariantCulture, $"r{i}"), new ResourceDefinition
            {
                BaseUrl = upstream,
                Auth = new AuthDefinition { Type = "bearer", Token = "{{ environment.variables.TOKEN }}" },
            }, ct);
        }

        await SeedCredentialsAsync(database, ring, time, credentialCount, ct);
        Console.WriteLine($"seeded {resourceCount} resources and {credentialCount} credentials");
        return 0;
    }

    /// <summary>
    /// Per-user credentials of 100 resources (owner <c>usr_{i}</c>), valid for a day, so none comes
    /// due during a run. One transaction: the rows are what matters, not how they were written.
    /// </summary>
    private static async Task SeedCredentialsAsync(Database database, KeyRing ring, TimeProvider time, int count, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        await using var connection = await database.OpenAsync(ct);
        await using var transaction = await connection.BeginTransactionAsync(ct);
        for (var i = 0; i < count; i++)
        {
            var key = new CredentialKey(
                string.Create(CultureInfo.InvariantCulture, $"seeded{i % 100}"), VariableService.Production,
                string.Create(CultureInfo.InvariantCulture, $"usr_{i}"));
            var access = new Secret(Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
            var refresh = new Secret(Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
            await connection.ExecuteAsync(
                """
                INSERT INTO credentials (resource, environment, owner, params_hash, state, version, access_token, refresh_token, token_type,
                    expires_at, obtained_at, last_refreshed_at, next_refresh_at, refresh_count, failure_count, created_at, updated_at)
                VALUES (@Resource, @Environment, @Owner, 'seeded', 'valid', 1, @access, @refresh, 'Bearer',
                    @expires, @now, @now, @next, 0, 0, @now, @now)
                """,
                new
                {
                    key.Resource,
                    key.Environment,
                    key.Owner,
                    access = ring.Encrypt(access, CredentialStore.AssociatedData(key, "access_token")),
                    refresh = ring.Encrypt(refresh, CredentialStore.AssociatedData(key, "refresh_token")),
                    expires = (now + TimeSpan.FromDays(1)).ToStore(),
                    next = (now + TimeSpan.FromHours(23)).ToStore(),
                    now = now.ToStore(),
                },
                transaction);
        }

        await transaction.CommitAsync(ct);
    }
}

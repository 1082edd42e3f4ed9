using System.Security.Cryptography;
using BenchmarkDotNet.Attributes;
using Keyway.Credentials;
using Keyway.Secrets;
using Microsoft.Extensions.Logging.Abstractions;

namespace Keyway.Benchmarks;

/// <summary>
/// What the credential journal adds to every refresh: sealing a token answer, writing it to a
/// temporary file, flushing it and its directory to disk, renaming it into place; and removing it
/// once the store holds the answer. On the data directory's own disk (here: the temp directory's).
/// </summary>
[MemoryDiagnoser]
public class CredentialJournalBenchmarks
{
    private static readonly CredentialKey Key = new("github", "production", CredentialKey.Shared);
    private string _directory = null!;
    private KeyRing _ring = null!;
    private CredentialJournal _journal = null!;
    private JournalEntry _entry = null!;

    [GlobalSetup]
    public void Setup()
    {
        _directory = Path.Combine(Path.GetTempPath(), "keyway-journal-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_directory);
        var master = MasterKeyRing.FromKeys(RandomNumberGenerator.GetBytes(MasterKeyRing.KeySize));
        _ring = KeyRing.OpenAsync(master, new InMemoryDataKeyStore(), TimeProvider.System, CancellationToken.None).GetAwaiter().GetResult();
        _journal = new CredentialJournal(_directory, _ring, NullLogger<CredentialJournal>.Instance);
        var now = DateTimeOffset.UtcNow;
        var tokens = new TokenSet
        {
            // Sizes of a typical JWT access token and an opaque refresh token.
            AccessToken = new Secret(Convert.ToBase64String(RandomNumberGenerator.GetBytes(900))),
            RefreshToken = new Secret(Convert.ToHexString(RandomNumberGenerator.GetBytes(32))),
            TokenType = "Bearer",
            ObtainedAt = now,
            ExpiresAt = now.AddHours(1),
        };
        _entry = new JournalEntry(Key, 41, "params", tokens, now.AddMinutes(58), null, true);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _ring.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    /// <summary>One refresh's journal work when the store takes the answer at once: durable write, then removal.</summary>
    [Benchmark]
    public void Write_durably_then_remove()
    {
        _journal.Write(_entry);
        _journal.Remove(_entry.Key, _entry.Id);
    }
}

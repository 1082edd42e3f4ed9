using System.Buffers;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Keyway.Secrets;

namespace Keyway.Credentials;

/// <summary>
/// A token answer on its way to the store: the credential, the version its write expects (the one
/// the refresher's in-flight mark produced) and what the write sets. <see cref="Id"/> names this
/// answer (the journal removes an entry only by it). In memory only: <see cref="Spent"/>, the
/// refresh tokens this replica spent on the way to it while the store was down, and
/// <see cref="Uncertain"/>, set when a write of it (or of an earlier answer in that line) may have
/// committed although its acknowledgement was lost.
/// </summary>
internal sealed record JournalEntry(
    CredentialKey Key, long ExpectedVersion, string ParametersHash, TokenSet Tokens,
    DateTimeOffset? NextRefreshAt, DateTimeOffset? KeepAliveAt, bool CountRefresh)
{
    public string Id { get; init; } = Guid.NewGuid().ToString("N");

    public IReadOnlyList<Secret> Spent { get; init; } = [];

    public bool Uncertain { get; init; }
}

/// <summary>
/// The credential engine's write-ahead journal, in <c>DATA_DIR/credential-journal/</c>: every token
/// answer is written here, and flushed to disk, before it is used or stored, and removed once the
/// store holds it. A provider that rotates refresh tokens spends the old one when it answers; if
/// the answer then could not be stored (the store is down) and the process died, the only copy of
/// the new refresh token would be gone and the grant with it. <c>keyway serve</c> replays what it
/// finds here before it listens.
/// <para>
/// One file per credential (<c>&lt;hash of the key&gt;.entry</c>), written to a temporary name,
/// flushed, renamed over the last one and the directory flushed: an <c>.entry</c> file is always
/// whole. Tokens are sealed with the key ring (AES-256-GCM) bound to the credential and the expected
/// version, so a file copied elsewhere or edited does not open.
/// </para>
/// </summary>
internal sealed partial class CredentialJournal
{
    public const string DirectoryName = "credential-journal";
    private const string Extension = ".entry";
    private const int FormatVersion = 1;

    private readonly string _directory;
    private readonly KeyRing _keys;
    private readonly ILogger _logger;
    private readonly Lock _writing = new();
    private bool _directoryReady;

    public CredentialJournal(string dataDirectory, KeyRing keys, ILogger<CredentialJournal> logger)
    {
        _directory = Path.Combine(dataDirectory, DirectoryName);
        _keys = keys;
        _logger = logger;
    }

    /// <summary>The directory entries live in.</summary>
    public string Directory => _directory;

    /// <summary>Writes (or replaces) the entry of <paramref name="entry"/>'s credential and flushes it to disk.</summary>
    /// <exception cref="IOException">The entry could not be written durably.</exception>
    public void Write(JournalEntry entry)
    {
        var bytes = Serialize(entry);
        var path = PathOf(entry.Key);
        var temporary = path + ".tmp";
        lock (_writing)
        {
            EnsureDirectory();
            using (var file = Secrets.OwnerOnlyFile.Create(temporary, FileMode.Create))
            {
                file.Write(bytes);
                file.Flush(flushToDisk: true);
            }

            File.Move(temporary, path, overwrite: true);
            FlushDirectory();
        }
    }

    /// <summary>Removes the entry of <paramref name="key"/> if it is still the answer <paramref name="id"/> (a newer answer stays).</summary>
    public void Remove(CredentialKey key, string id)
    {
        var path = PathOf(key);
        lock (_writing)
        {
            try
            {
                if (!File.Exists(path) || ReadId(path) != id)
                {
                    return;
                }

                File.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or DecryptionException)
            {
                // Left behind, the entry is replayed at the next start and found superseded by version: harmless.
                Log.RemoveFailed(_logger, key.ToString(), e.GetType().Name);
            }
        }
    }

    /// <summary>Every entry that opens; one that does not (edited, another master key) is set aside as <c>.unreadable</c> and logged.</summary>
    public IReadOnlyList<JournalEntry> ReadAll()
    {
        if (!System.IO.Directory.Exists(_directory))
        {
            return [];
        }

        var entries = new List<JournalEntry>();
        foreach (var path in System.IO.Directory.EnumerateFiles(_directory, "*" + Extension))
        {
            try
            {
                if (Read(path) is { } entry)
                {
                    entries.Add(entry);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or DecryptionException or FormatException or KeyNotFoundException or InvalidOperationException)
            {
                Log.Unreadable(_logger, Path.GetFileName(path), e.GetType().Name);
                try
                {
                    File.Move(path, Path.ChangeExtension(path, ".unreadable"), overwrite: true);
                }
                catch (Exception move) when (move is IOException or UnauthorizedAccessException)
                {
                    // Left where it is: read again, and said again, at the next start.
                }
            }
        }

        return entries;
    }

    /// <summary>Removes whatever entry <paramref name="key"/> has: the store holds newer truth (an import, a disconnect).</summary>
    public void Forget(CredentialKey key)
    {
        lock (_writing)
        {
            try
            {
                File.Delete(PathOf(key));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log.RemoveFailed(_logger, key.ToString(), e.GetType().Name);
            }
        }
    }

    private static string? ReadId(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllBytes(path));
        return document.RootElement.TryGetProperty("id", out var id) ? id.GetString() : null;
    }

    private string PathOf(CredentialKey key)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(key.ToString()));
        return Path.Combine(_directory, Convert.ToHexStringLower(hash.AsSpan(0, 16)) + Extension);
    }

    private static string AssociatedData(CredentialKey key, long expectedVersion, string id) =>
        $"credential-journal:{key.Resource}:{key.Environment}:{key.Owner}:{expectedVersion.ToString(System.Globalization.CultureInfo.InvariantCulture)}:{id}";

    private byte[] Serialize(JournalEntry entry)
    {
        var sealedTokens = _keys.Encrypt(TokenPayload(entry.Tokens), AssociatedData(entry.Key, entry.ExpectedVersion, entry.Id));
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteNumber("format", FormatVersion);
            writer.WriteString("id", entry.Id);
            writer.WriteString("resource", entry.Key.Resource);
            writer.WriteString("environment", entry.Key.Environment);
            writer.WriteString("owner", entry.Key.Owner);
            writer.WriteNumber("expectedVersion", entry.ExpectedVersion);

            writer.WriteString("parametersHash", entry.ParametersHash);
            WriteTime(writer, "nextRefreshAt", entry.NextRefreshAt);
            WriteTime(writer, "keepAliveAt", entry.KeepAliveAt);
            writer.WriteBoolean("countRefresh", entry.CountRefresh);
            writer.WriteBase64String("tokens", sealedTokens);
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private JournalEntry? Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        using var document = JsonDocument.Parse(bytes);
        var root = document.RootElement;
        if (root.GetProperty("format").GetInt32() != FormatVersion)
        {
            throw new FormatException("An unknown journal format.");
        }

        var key = new CredentialKey(root.GetProperty("resource").GetString()!, root.GetProperty("environment").GetString()!, root.GetProperty("owner").GetString()!);
        var expected = root.GetProperty("expectedVersion").GetInt64();
        var id = root.GetProperty("id").GetString()!;
        var plaintext = _keys.Decrypt(root.GetProperty("tokens").GetBytesFromBase64(), AssociatedData(key, expected, id));
        try
        {
            return new JournalEntry(
                key, expected, root.GetProperty("parametersHash").GetString()!, ParseTokens(plaintext),
                ReadTime(root, "nextRefreshAt"), ReadTime(root, "keepAliveAt"), root.GetProperty("countRefresh").GetBoolean())
            {
                Id = id,
                // Written before its store write was known to fail or succeed: replay settles it against the store.
                Uncertain = true,
            };
        }
        finally
        {
            CryptographicOperations.ZeroMemory(plaintext);
        }
    }

    private static byte[] TokenPayload(TokenSet tokens)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("access", tokens.AccessToken.Reveal());
            if (tokens.RefreshToken is { } refresh)
            {
                writer.WriteString("refresh", refresh.Reveal());
            }

            if (tokens.TokenType is { } type)
            {
                writer.WriteString("type", type);
            }

            WriteTime(writer, "expiresAt", tokens.ExpiresAt);
            WriteTime(writer, "obtainedAt", tokens.ObtainedAt);
            writer.WriteStartObject("extras");
            foreach (var (name, value) in tokens.Extras)
            {
                writer.WriteString(name, value.Reveal());
            }

            writer.WriteEndObject();
            writer.WriteEndObject();
        }

        var bytes = buffer.WrittenSpan.ToArray();
        buffer.Clear();
        return bytes;
    }

    private static TokenSet ParseTokens(byte[] plaintext)
    {
        using var document = JsonDocument.Parse(plaintext);
        var root = document.RootElement;
        var extras = new Dictionary<string, Secret>(StringComparer.Ordinal);
        foreach (var property in root.GetProperty("extras").EnumerateObject())
        {
            extras[property.Name] = new Secret(property.Value.GetString() ?? "");
        }

        return new TokenSet
        {
            AccessToken = new Secret(root.GetProperty("access").GetString()!),
            RefreshToken = root.TryGetProperty("refresh", out var r) ? new Secret(r.GetString()!) : null,
            TokenType = root.TryGetProperty("type", out var t) ? t.GetString() : null,
            ExpiresAt = ReadTime(root, "expiresAt"),
            ObtainedAt = ReadTime(root, "obtainedAt") ?? throw new FormatException("A journal entry without obtainedAt."),
            Extras = extras,
        };
    }

    private static void WriteTime(Utf8JsonWriter writer, string name, DateTimeOffset? value)
    {
        if (value is { } at)
        {
            writer.WriteNumber(name, at.ToUnixTimeMilliseconds());
        }
    }

    private static DateTimeOffset? ReadTime(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) ? DateTimeOffset.FromUnixTimeMilliseconds(value.GetInt64()) : null;

    private void EnsureDirectory()
    {
        if (_directoryReady)
        {
            return;
        }

        if (OperatingSystem.IsWindows())
        {
            System.IO.Directory.CreateDirectory(_directory);
        }
        else
        {
            // Only this user, whoever made the directory: it holds sealed tokens.
            System.IO.Directory.CreateDirectory(_directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            File.SetUnixFileMode(_directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        _directoryReady = true;
    }

    /// <summary>A rename is durable only once its directory is flushed (POSIX); elsewhere the rename itself is the best there is.</summary>
    private void FlushDirectory()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            return;
        }

        var fd = NativeMethods.Open(_directory, 0 /* O_RDONLY */);
        if (fd < 0)
        {
            throw new IOException($"Could not open the credential journal directory to flush it (errno {Marshal.GetLastPInvokeError()}).");
        }

        try
        {
            if (NativeMethods.Fsync(fd) != 0)
            {
                throw new IOException($"Could not flush the credential journal directory (errno {Marshal.GetLastPInvokeError()}).");
            }
        }
        finally
        {
            _ = NativeMethods.Close(fd);
        }
    }

    private static partial class NativeMethods
    {
        [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        public static partial int Open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
        public static partial int Fsync(int fd);

        [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
        public static partial int Close(int fd);
    }

    private static partial class Log
    {
        [LoggerMessage(320, LogLevel.Error, "Credential journal entry {File} cannot be read ({Error}); set aside as .unreadable")]
        public static partial void Unreadable(ILogger logger, string file, string error);

        [LoggerMessage(321, LogLevel.Warning, "Credential journal entry of {Credential} could not be removed ({Error}); the next start finds it superseded")]
        public static partial void RemoveFailed(ILogger logger, string credential, string error);
    }
}

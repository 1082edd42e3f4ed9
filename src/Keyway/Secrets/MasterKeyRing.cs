using System.Security.Cryptography;
using System.Text;

namespace Keyway.Secrets;

/// <summary>
/// The master keys (key-encryption keys) in force. The first is the primary: it wraps new data
/// keys. The others only unwrap, which allows a rolling master key rotation across replicas:
/// deploy "new,old", run <c>keyway operator rekey</c>, then drop "old".
/// </summary>
/// <remarks>
/// A wrapped data key is <c>nonce (12) | tag (16) | ciphertext (32)</c>, AES-256-GCM under the
/// master key, with associated data binding the data key's id and the master key's id, so a
/// wrapped key copied onto another row does not unwrap.
/// </remarks>
internal sealed class MasterKeyRing
{
    public const string EnvironmentVariable = "KEYWAY_MASTER_KEY";

    /// <summary>A file holding the keys, one per line, primary first (a mounted secret, a file only the service reads).</summary>
    public const string FileVariable = "KEYWAY_MASTER_KEY_FILE";

    /// <summary>The systemd credential's name (<c>LoadCredential=keyway-master-key:…</c>), read from <c>$CREDENTIALS_DIRECTORY</c>.</summary>
    public const string CredentialName = "keyway-master-key";
    public const string FileName = "master.key";
    public const int KeySize = 32;

    internal const int WrappedKeySize = NonceSize + TagSize + KeySize;
    private const int NonceSize = 12;
    private const int TagSize = 16;
    private const UnixFileMode GroupOrOther =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    // The id is a hash of a fixed label and the key: stable, short, and it reveals nothing
    // about the key (the label keeps it unrelated to any other hash of the same bytes).
    private static readonly byte[] s_idLabel = "keyway master key id v1\0"u8.ToArray();

    private readonly byte[][] _keys;
    private readonly string[] _ids;

    private MasterKeyRing(byte[][] keys, string source, bool createdKeyFile)
    {
        _keys = keys;
        _ids = Array.ConvertAll(keys, ComputeId);
        Source = source;
        CreatedKeyFile = createdKeyFile;
    }

    /// <summary>The id of the key that wraps new data keys.</summary>
    public string PrimaryKeyId => _ids[0];

    /// <summary>All key ids, primary first.</summary>
    public IReadOnlyList<string> KeyIds => _ids;

    /// <summary>Where the keys came from: the variable's name or the file's path.</summary>
    public string Source { get; }

    /// <summary>True when this start generated <c>master.key</c> (worth a log line: back it up).</summary>
    public bool CreatedKeyFile { get; }

    /// <summary>
    /// Reads the keys from the first of: <c>KEYWAY_MASTER_KEY</c>; the file <c>KEYWAY_MASTER_KEY_FILE</c> names
    /// (it must exist and be readable by its owner only); the systemd credential <c>keyway-master-key</c>
    /// (<c>LoadCredential=</c>, so the key is never in the service's environment); <c>master.key</c> in
    /// <paramref name="dataDirectory"/>, created on first start.
    /// </summary>
    /// <exception cref="MasterKeyException">The keys are missing, malformed, or the file is readable by others.</exception>
    public static MasterKeyRing Load(Func<string, string?> environment, string dataDirectory)
    {
        ArgumentNullException.ThrowIfNull(environment);
        if (environment(EnvironmentVariable) is { } value)
        {
            return Load(value, dataDirectory);
        }

        if (environment(FileVariable) is { } named)
        {
            if (string.IsNullOrWhiteSpace(named))
            {
                throw new MasterKeyException($"{FileVariable} is set but empty. Set it to the path of the master key file, or unset it.");
            }

            var path = Path.GetFullPath(named);
            if (!File.Exists(path))
            {
                throw new MasterKeyException(
                    $"{FileVariable} names {path}, which does not exist. Write the key there (keyway operator new-master-key > '{path}'; chmod 600 '{path}'), or unset {FileVariable}.");
            }

            return new MasterKeyRing(ReadKeyFile(path, checkMode: true), path, createdKeyFile: false);
        }

        // systemd makes the credentials directory readable by the service alone; its files' modes are its business.
        if (environment("CREDENTIALS_DIRECTORY") is { Length: > 0 } credentials && Path.Combine(credentials, CredentialName) is var credential && File.Exists(credential))
        {
            return new MasterKeyRing(ReadKeyFile(credential, checkMode: false), $"the systemd credential {CredentialName}", createdKeyFile: false);
        }

        return Load(environmentValue: null, dataDirectory);
    }

    /// <summary>
    /// Reads the keys from <paramref name="environmentValue"/> (the value of
    /// <c>KEYWAY_MASTER_KEY</c>, comma-separated) or, when it is null, from
    /// <c>master.key</c> in <paramref name="dataDirectory"/>, creating that file on first start.
    /// </summary>
    /// <exception cref="MasterKeyException">The keys are missing, malformed, or the file is readable by others.</exception>
    public static MasterKeyRing Load(string? environmentValue, string dataDirectory)
    {
        if (environmentValue is not null)
        {
            var source = $"the {EnvironmentVariable} environment variable";
            if (string.IsNullOrWhiteSpace(environmentValue))
            {
                throw new MasterKeyException(
                    $"{source} is set but empty. Set it to a base64-encoded 32-byte key "
                    + $"(keyway operator new-master-key), or unset it to use {FileName} in the data directory.");
            }

            return new MasterKeyRing(Parse(environmentValue.Split(','), source, "entry"), EnvironmentVariable, createdKeyFile: false);
        }

        ArgumentException.ThrowIfNullOrEmpty(dataDirectory);
        var path = Path.GetFullPath(Path.Combine(dataDirectory, FileName));
        var created = !File.Exists(path) && TryCreateKeyFile(path);
        return new MasterKeyRing(ReadKeyFile(path, checkMode: true), path, created);
    }

    /// <summary>A ring over the given keys, the first primary (for tests and tools).</summary>
    public static MasterKeyRing FromKeys(params byte[][] keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        if (keys.Length == 0)
        {
            throw new ArgumentException("At least one master key is required.", nameof(keys));
        }

        var copies = new List<byte[]>(keys.Length);
        foreach (var key in keys)
        {
            if (key is not { Length: KeySize })
            {
                throw new ArgumentException($"A master key is {KeySize} bytes.", nameof(keys));
            }

            AddDistinct(copies, (byte[])key.Clone());
        }

        return new MasterKeyRing([.. copies], "keys given in code", createdKeyFile: false);
    }

    /// <summary>A new random master key, base64-encoded, as <c>KEYWAY_MASTER_KEY</c> and <c>master.key</c> hold it.</summary>
    public static string Generate()
    {
        Span<byte> key = stackalloc byte[KeySize];
        RandomNumberGenerator.Fill(key);
        var encoded = Convert.ToBase64String(key);
        CryptographicOperations.ZeroMemory(key);
        return encoded;
    }

    public bool Contains(string keyId) => Array.IndexOf(_ids, keyId) >= 0;

    /// <summary>
    /// A key for <paramref name="purpose"/> derived from each master key (HKDF-SHA256, the purpose as
    /// its info), by master key id, primary first. A derived key reveals nothing about the master key
    /// or about a key derived for another purpose.
    /// </summary>
    internal IReadOnlyList<(string KeyId, byte[] Key)> DeriveKeys(string purpose)
    {
        var info = Encoding.UTF8.GetBytes($"keyway {purpose} v1");
        return [.. _ids.Select((id, i) => (id, HKDF.DeriveKey(HashAlgorithmName.SHA256, _keys[i], KeySize, salt: [], info)))];
    }

    /// <summary>Wraps a data key under the primary master key.</summary>
    internal byte[] Wrap(ReadOnlySpan<byte> dataKey, string dataKeyId)
    {
        var wrapped = new byte[WrappedKeySize];
        var nonce = wrapped.AsSpan(0, NonceSize);
        RandomNumberGenerator.Fill(nonce);
        using var aes = new AesGcm(_keys[0], TagSize);
        aes.Encrypt(nonce, dataKey, wrapped.AsSpan(NonceSize + TagSize), wrapped.AsSpan(NonceSize, TagSize), WrapAssociatedData(dataKeyId, _ids[0]));
        return wrapped;
    }

    /// <summary>
    /// Unwraps a data key. False when <paramref name="masterKeyId"/> is not in the ring or the
    /// wrapped key does not authenticate.
    /// </summary>
    internal bool TryUnwrap(string masterKeyId, ReadOnlySpan<byte> wrapped, string dataKeyId, Span<byte> dataKey)
    {
        var index = Array.IndexOf(_ids, masterKeyId);
        if (index < 0 || wrapped.Length != WrappedKeySize || dataKey.Length != KeySize)
        {
            return false;
        }

        try
        {
            using var aes = new AesGcm(_keys[index], TagSize);
            aes.Decrypt(wrapped[..NonceSize], wrapped[(NonceSize + TagSize)..], wrapped.Slice(NonceSize, TagSize), dataKey, WrapAssociatedData(dataKeyId, masterKeyId));
            return true;
        }
        catch (CryptographicException)
        {
            CryptographicOperations.ZeroMemory(dataKey);
            return false;
        }
    }

    private static byte[] WrapAssociatedData(string dataKeyId, string masterKeyId) =>
        Encoding.UTF8.GetBytes($"keyway data key v1:{dataKeyId}:{masterKeyId}");

    private static string ComputeId(byte[] key)
    {
        Span<byte> input = stackalloc byte[s_idLabel.Length + KeySize];
        s_idLabel.CopyTo(input);
        key.CopyTo(input[s_idLabel.Length..]);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(input, hash);
        CryptographicOperations.ZeroMemory(input);
        return Convert.ToHexStringLower(hash[..8]);
    }

    /// <summary>
    /// Writes a new key to a private temporary file and links it into place, so a crash never
    /// leaves a half-written master.key and two processes starting at once agree on one key.
    /// Returns false when another process created the file first.
    /// </summary>
    private static bool TryCreateKeyFile(string path)
    {
        var directory = Path.GetDirectoryName(path)!;
        try
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(directory);
            }
            else
            {
                Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MasterKeyException($"Cannot create the data directory {directory} for {FileName}: {e.Message}", e);
        }

        var temporary = Path.Combine(directory, $".{FileName}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = OwnerOnlyFile.Create(temporary))
            {
                stream.Write(Encoding.ASCII.GetBytes(Generate() + "\n"));
                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, path, overwrite: false);
            return true;
        }
        catch (IOException) when (File.Exists(path))
        {
            return false;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MasterKeyException($"Cannot create the master key file {path}: {e.Message}", e);
        }
        finally
        {
            File.Delete(temporary);
        }
    }

    private static byte[][] ReadKeyFile(string path, bool checkMode)
    {
        if (checkMode && !OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(path);
            if ((mode & GroupOrOther) != 0)
            {
                throw new MasterKeyException(
                    $"The master key file {path} is readable or writable by other users (mode {FormatMode(mode)}); "
                    + $"it must be 0600. Run: chmod 600 '{path}'");
            }
        }

        string contents;
        try
        {
            contents = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new MasterKeyException($"Cannot read the master key file {path}: {e.Message}", e);
        }

        var source = $"the master key file {path}";
        if (string.IsNullOrWhiteSpace(contents))
        {
            throw new MasterKeyException($"{source} is empty. Restore it from a backup, or delete it to generate a new key on an empty data directory.");
        }

        var lines = contents.Split('\n').Where(line => !string.IsNullOrWhiteSpace(line)).ToArray();
        return Parse(lines, source, "line");
    }

    private static byte[][] Parse(string[] entries, string source, string entryWord)
    {
        var keys = new List<byte[]>(entries.Length);
        for (var i = 0; i < entries.Length; i++)
        {
            // Never quote the entry: a near-miss typo of a key is still most of the key.
            var where = $"{source}: {entryWord} {i + 1} of {entries.Length}";
            var text = entries[i].Trim();
            if (text.Length == 0)
            {
                throw new MasterKeyException($"{where} is empty. Separate keys with single commas, primary first.");
            }

            var buffer = new byte[text.Length];
            try
            {
                if (!Convert.TryFromBase64String(text, buffer, out var written))
                {
                    throw new MasterKeyException($"{where} is not valid base64. A master key is 32 random bytes, base64-encoded (keyway operator new-master-key).");
                }

                if (written != KeySize)
                {
                    throw new MasterKeyException($"{where} decodes to {written} bytes; a master key is exactly {KeySize} bytes.");
                }

                AddDistinct(keys, buffer[..KeySize]);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(buffer);
            }
        }

        return [.. keys];
    }

    private static void AddDistinct(List<byte[]> keys, byte[] key)
    {
        // The same key listed twice is harmless; keep the first place it appears.
        if (!keys.Exists(existing => existing.AsSpan().SequenceEqual(key)))
        {
            keys.Add(key);
        }
    }

    private static string FormatMode(UnixFileMode mode) => "0" + Convert.ToString((int)mode & 0x1FF, 8);
}

using System.Security.Cryptography;
using System.Text;
using Keyway.Secrets;

namespace Keyway.Tests.Secrets;

public sealed class MasterKeyRingTests : IDisposable
{
    private const string Canary = "CANARY7f3a9c";
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private readonly TempDirectory _dataDirectory = new();

    public void Dispose() => _dataDirectory.Dispose();

    [Fact]
    public void A_missing_master_key_file_is_created_with_mode_0600_on_first_start()
    {
        var path = _dataDirectory.Combine(MasterKeyRing.FileName);

        var first = MasterKeyRing.Load(environmentValue: null, _dataDirectory.Path);

        Assert.True(first.CreatedKeyFile);
        Assert.Equal(path, first.Source);
        Assert.Equal(32, Convert.FromBase64String(File.ReadAllText(path).Trim()).Length);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(OwnerOnly, File.GetUnixFileMode(path));
        }

        Assert.Single(Directory.GetFiles(_dataDirectory.Path));
        var second = MasterKeyRing.Load(environmentValue: null, _dataDirectory.Path);
        Assert.False(second.CreatedKeyFile);
        Assert.Equal(first.PrimaryKeyId, second.PrimaryKeyId);
    }

    [Fact]
    public void A_missing_data_directory_is_created_with_the_key_file()
    {
        var nested = _dataDirectory.Combine("nested/data");

        var ring = MasterKeyRing.Load(environmentValue: null, nested);

        Assert.True(ring.CreatedKeyFile);
        Assert.True(File.Exists(Path.Combine(nested, MasterKeyRing.FileName)));
    }

    [Fact]
    public void A_master_key_file_readable_by_others_is_refused_with_the_chmod_to_run()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        var path = _dataDirectory.Combine(MasterKeyRing.FileName);
        var key = MasterKeyRing.Generate();
        File.WriteAllText(path, key + "\n");
        File.SetUnixFileMode(path, OwnerOnly | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        var error = Assert.Throws<MasterKeyException>(() => MasterKeyRing.Load(environmentValue: null, _dataDirectory.Path));

        Assert.Contains("0644", error.Message, StringComparison.Ordinal);
        Assert.Contains($"chmod 600 '{path}'", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(key, error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void A_master_key_file_readable_only_by_its_owner_is_accepted_even_when_read_only()
    {
        var path = _dataDirectory.Combine(MasterKeyRing.FileName);
        File.WriteAllText(path, MasterKeyRing.Generate());
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead);
        }

        var ring = MasterKeyRing.Load(environmentValue: null, _dataDirectory.Path);

        Assert.Single(ring.KeyIds);
    }

    public static TheoryData<string> InvalidContents() => new()
    {
        Canary,                                                          // not base64
        $"not base64 {Canary}",
        Convert.ToBase64String(Encoding.ASCII.GetBytes(Canary)),         // valid base64, 12 bytes
        Convert.ToBase64String(Encoding.ASCII.GetBytes(Canary + new string('x', 40))), // too long
        $"{MasterKeyRing.Generate()}\n{Canary}",                         // second line bad
    };

    [Theory]
    [MemberData(nameof(InvalidContents))]
    public void An_invalid_master_key_file_gives_an_error_naming_the_file_without_its_contents(string contents)
    {
        var path = _dataDirectory.Combine(MasterKeyRing.FileName);
        WriteOwnerOnly(path, contents);

        var error = Assert.Throws<MasterKeyException>(() => MasterKeyRing.Load(environmentValue: null, _dataDirectory.Path));

        Assert.Contains(path, error.Message, StringComparison.Ordinal);
        AssertRevealsNothing(error, contents);
    }

    [Fact]
    public void An_empty_master_key_file_is_an_error_not_a_new_key()
    {
        var path = _dataDirectory.Combine(MasterKeyRing.FileName);
        WriteOwnerOnly(path, "\n");

        var error = Assert.Throws<MasterKeyException>(() => MasterKeyRing.Load(environmentValue: null, _dataDirectory.Path));

        Assert.Contains("empty", error.Message, StringComparison.Ordinal);
        Assert.Equal("\n", File.ReadAllText(path));
    }

    [Theory]
    [MemberData(nameof(InvalidContents))]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData(",")]
    public void An_invalid_environment_value_gives_an_error_naming_the_variable_without_the_value(string value)
    {
        var commaSeparated = value.Replace('\n', ',');

        var error = Assert.Throws<MasterKeyException>(() => MasterKeyRing.Load(commaSeparated, _dataDirectory.Path));

        Assert.Contains(MasterKeyRing.EnvironmentVariable, error.Message, StringComparison.Ordinal);
        AssertRevealsNothing(error, commaSeparated);
        Assert.Empty(Directory.GetFiles(_dataDirectory.Path));
    }

    [Fact]
    public void The_environment_variable_takes_precedence_and_its_first_key_is_primary()
    {
        var (newKey, oldKey) = (RandomNumberGenerator.GetBytes(32), RandomNumberGenerator.GetBytes(32));

        var ring = MasterKeyRing.Load($"{Convert.ToBase64String(newKey)}, {Convert.ToBase64String(oldKey)}", _dataDirectory.Path);

        Assert.Equal(MasterKeyRing.FromKeys(newKey, oldKey).KeyIds, ring.KeyIds);
        Assert.Equal(MasterKeyRing.FromKeys(newKey).PrimaryKeyId, ring.PrimaryKeyId);
        Assert.Equal(MasterKeyRing.EnvironmentVariable, ring.Source);
        Assert.False(File.Exists(_dataDirectory.Combine(MasterKeyRing.FileName)));
    }

    [Fact]
    public void A_master_key_file_may_hold_several_keys_one_per_line_first_primary()
    {
        var (newKey, oldKey) = (MasterKeyRing.Generate(), MasterKeyRing.Generate());
        WriteOwnerOnly(_dataDirectory.Combine(MasterKeyRing.FileName), $"{newKey}\r\n{oldKey}\n\n");

        var ring = MasterKeyRing.Load(environmentValue: null, _dataDirectory.Path);

        Assert.Equal(MasterKeyRing.Load(newKey, _dataDirectory.Path).PrimaryKeyId, ring.PrimaryKeyId);
        Assert.Equal(2, ring.KeyIds.Count);
    }

    [Fact]
    public void A_key_id_is_stable_short_hex_and_unrelated_to_the_key_bytes()
    {
        var key = RandomNumberGenerator.GetBytes(32);

        var id = MasterKeyRing.FromKeys(key).PrimaryKeyId;

        Assert.Equal(id, MasterKeyRing.FromKeys(key).PrimaryKeyId);
        Assert.Matches("^[0-9a-f]{16}$", id);
        Assert.NotEqual(Convert.ToHexStringLower(key)[..16], id);
        Assert.NotEqual(Convert.ToHexStringLower(SHA256.HashData(key))[..16], id);
        Assert.NotEqual(id, MasterKeyRing.FromKeys(RandomNumberGenerator.GetBytes(32)).PrimaryKeyId);
    }

    [Fact]
    public void Generate_returns_a_fresh_base64_key_of_32_bytes()
    {
        var key = MasterKeyRing.Generate();

        Assert.Equal(32, Convert.FromBase64String(key).Length);
        Assert.NotEqual(key, MasterKeyRing.Generate());
    }

    [Fact]
    public void FromKeys_refuses_a_key_that_is_not_32_bytes()
    {
        Assert.Throws<ArgumentException>(() => MasterKeyRing.FromKeys(new byte[16]));
        Assert.Throws<ArgumentException>(() => MasterKeyRing.FromKeys());
    }

    private static void WriteOwnerOnly(string path, string contents)
    {
        File.WriteAllText(path, contents);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, OwnerOnly);
        }
    }

    private static void AssertRevealsNothing(Exception error, string badInput)
    {
        var text = error.ToString();
        Assert.DoesNotContain(Canary, text, StringComparison.Ordinal);
        // Words such as "not" may well appear in the message; key-like parts must not.
        foreach (var part in badInput.Split([',', '\n', ' '], StringSplitOptions.TrimEntries).Where(part => part.Length >= Canary.Length))
        {
            Assert.DoesNotContain(part, text, StringComparison.Ordinal);
        }
    }
}

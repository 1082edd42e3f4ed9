using Keyway.Secrets;

namespace Keyway.Tests.Secrets;

/// <summary>
/// Where the master key comes from, in order: <c>KEYWAY_MASTER_KEY</c>, the file <c>KEYWAY_MASTER_KEY_FILE</c>
/// names, the systemd credential <c>keyway-master-key</c>, then <c>master.key</c> in the data directory.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class MasterKeySourceTests : IDisposable
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    [Fact]
    public void The_file_KEYWAY_MASTER_KEY_FILE_names_is_read_and_nothing_is_created_in_the_data_directory()
    {
        var key = MasterKeyRing.Generate();
        var file = WriteKeyFile("mounted.key", key + "\n" + MasterKeyRing.Generate() + "\n", OwnerOnly);
        var data = _directory.Combine("data");

        var ring = MasterKeyRing.Load(Environment(("KEYWAY_MASTER_KEY_FILE", file)), data);

        Assert.Equal(file, ring.Source);
        Assert.Equal(2, ring.KeyIds.Count);
        Assert.Equal(MasterKeyRing.Load(key, data).PrimaryKeyId, ring.PrimaryKeyId);
        Assert.False(Directory.Exists(data) && File.Exists(Path.Combine(data, MasterKeyRing.FileName)));
    }

    [Fact]
    public void A_named_key_file_readable_by_others_or_missing_stops_the_start_with_what_to_do()
    {
        var open = WriteKeyFile("open.key", MasterKeyRing.Generate(), OwnerOnly | UnixFileMode.GroupRead);
        var error = Assert.Throws<MasterKeyException>(() => MasterKeyRing.Load(Environment(("KEYWAY_MASTER_KEY_FILE", open)), _directory.Path));
        Assert.Contains("chmod 600", error.Message, StringComparison.Ordinal);

        var missing = _directory.Combine("nowhere.key");
        error = Assert.Throws<MasterKeyException>(() => MasterKeyRing.Load(Environment(("KEYWAY_MASTER_KEY_FILE", missing)), _directory.Path));
        Assert.Contains("does not exist", error.Message, StringComparison.Ordinal);
        Assert.Contains("KEYWAY_MASTER_KEY_FILE", error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(missing));
    }

    [Fact]
    public void The_systemd_credential_is_the_key_when_no_variable_names_one_and_a_variable_wins_over_it()
    {
        var credentials = _directory.Combine("credentials");
        Directory.CreateDirectory(credentials);
        var fromSystemd = MasterKeyRing.Generate();
        File.WriteAllText(Path.Combine(credentials, MasterKeyRing.CredentialName), fromSystemd + "\n");
        var data = _directory.Combine("data");

        var ring = MasterKeyRing.Load(Environment(("CREDENTIALS_DIRECTORY", credentials)), data);
        Assert.Contains("systemd credential", ring.Source, StringComparison.Ordinal);
        Assert.Equal(MasterKeyRing.Load(fromSystemd, data).PrimaryKeyId, ring.PrimaryKeyId);
        Assert.False(File.Exists(Path.Combine(data, MasterKeyRing.FileName)));

        var fromVariable = MasterKeyRing.Generate();
        var wins = MasterKeyRing.Load(Environment(("CREDENTIALS_DIRECTORY", credentials), ("KEYWAY_MASTER_KEY", fromVariable)), data);
        Assert.Equal(MasterKeyRing.EnvironmentVariable, wins.Source);
        Assert.Equal(MasterKeyRing.Load(fromVariable, data).PrimaryKeyId, wins.PrimaryKeyId);
    }

    [Fact]
    public void A_credentials_directory_without_Keyways_credential_falls_back_to_master_key_in_the_data_directory()
    {
        var credentials = _directory.Combine("other-credentials");
        Directory.CreateDirectory(credentials);
        var data = _directory.Combine("data");

        var ring = MasterKeyRing.Load(Environment(("CREDENTIALS_DIRECTORY", credentials)), data);

        Assert.True(ring.CreatedKeyFile);
        Assert.Equal(Path.Combine(data, MasterKeyRing.FileName), ring.Source);
    }

    private string WriteKeyFile(string name, string contents, UnixFileMode mode)
    {
        var path = _directory.Combine(name);
        File.WriteAllText(path, contents);
        File.SetUnixFileMode(path, mode);
        return path;
    }

    private static Func<string, string?> Environment(params (string Name, string Value)[] variables) =>
        name => variables.FirstOrDefault(v => v.Name == name).Value;
}

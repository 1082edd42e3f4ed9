namespace Keyway.Secrets;

/// <summary>
/// A new file readable and writable by its owner only, the mode set at <c>open(2)</c> so that it is never
/// readable by others, not even for an instant: for master keys, backups, generated credentials and journals.
/// </summary>
internal static class OwnerOnlyFile
{
    /// <summary>Opens <paramref name="path"/> for writing with mode 0600: <see cref="FileMode.CreateNew"/> (never an existing file) unless told otherwise.</summary>
    public static FileStream Create(string path, FileMode mode = FileMode.CreateNew)
    {
        var options = new FileStreamOptions { Mode = mode, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return new FileStream(path, options);
    }
}

using System.Diagnostics;

namespace Keyway.Tests.Infrastructure;

/// <summary>
/// Scratch directories for clusters, data dirs and the like. They live under
/// <c>KEYWAY_TEST_TEMP</c> when scripts/test.sh sets it (so the script removes whatever a
/// crashed run left), else under the system temp directory.
/// </summary>
public static class TestDirectories
{
    /// <summary>The directory under which every scratch directory is created.</summary>
    public static string Root
    {
        get
        {
            var root = Environment.GetEnvironmentVariable("KEYWAY_TEST_TEMP");
            return string.IsNullOrEmpty(root) ? Path.GetTempPath() : root;
        }
    }

    /// <summary>Creates a new, empty directory named <paramref name="prefix"/>-something.</summary>
    public static string Create(string prefix)
    {
        // Short names: a PostgreSQL unix socket path must stay under ~107 bytes.
        var path = Path.Combine(Root, $"{prefix}-{Guid.NewGuid().ToString("N")[..10]}");
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Deletes a directory tree, retrying briefly while a dying process still writes to it.</summary>
    public static void DeleteQuietly(string path)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if (Directory.Exists(path))
                    Directory.Delete(path, recursive: true);
                return;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                if (clock.Elapsed > TimeSpan.FromSeconds(5))
                    return; // a leftover scratch directory must not fail a test
                Thread.Yield();
            }
        }
    }
}

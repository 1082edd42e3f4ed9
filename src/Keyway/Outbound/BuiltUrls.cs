using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace Keyway.Outbound;

/// <summary>
/// The URLs <see cref="OutboundUrl.Build"/> made for a base URL and a relative path with no query, kept so
/// that a path asked for again (the same endpoint, request after request) is neither built, parsed nor checked
/// again: the <see cref="Uri"/> is immutable and shared by the requests sent to it. Only what the build
/// accepted is kept; a rejected path is rejected anew each time.
/// </summary>
/// <remarks>
/// Keyed by the base URL's identity (a resource resolved again, after any change, has a new one) and the
/// path's characters. At most <see cref="Capacity"/> URLs in all, of paths up to <see cref="MaxPathLength"/>
/// characters, whatever the number of resources and paths: when full it is emptied and fills again with the
/// paths asked for since.
/// </remarks>
internal static class BuiltUrls
{
    public const int Capacity = 4096;

    /// <summary>The longest path kept, in characters: with <see cref="Capacity"/>, at most a few megabytes in all.</summary>
    public const int MaxPathLength = 256;

    private static readonly ConcurrentDictionary<Key, Uri> Urls = new(new KeyComparer());
    private static int _added;

    /// <summary>The URL of <paramref name="relativePath"/> (no query) under <paramref name="baseUrl"/>, built once.</summary>
    /// <exception cref="OutboundRequestException">The path is not allowed (see <see cref="OutboundUrl"/>).</exception>
    public static Uri Get(Uri baseUrl, string? relativePath)
    {
        if (relativePath is { Length: > MaxPathLength })
        {
            // A long path is built each time: kept, 4,096 of them could hold hundreds of megabytes.
            return OutboundUrl.Build(baseUrl, relativePath);
        }

        var key = new Key(baseUrl, relativePath ?? "");
        if (Urls.TryGetValue(key, out var url))
        {
            return url;
        }

        url = OutboundUrl.Build(baseUrl, relativePath);
        // Counted apart: ConcurrentDictionary.Count takes every lock of the dictionary.
        if (Interlocked.Increment(ref _added) > Capacity)
        {
            Interlocked.Exchange(ref _added, 1);
            Urls.Clear();
        }

        Urls.TryAdd(key, url);
        return url;
    }

    private readonly record struct Key(Uri Base, string Path);

    private sealed class KeyComparer : IEqualityComparer<Key>
    {
        public bool Equals(Key x, Key y) => ReferenceEquals(x.Base, y.Base) && string.Equals(x.Path, y.Path, StringComparison.Ordinal);

        public int GetHashCode(Key key) => HashCode.Combine(RuntimeHelpers.GetHashCode(key.Base), string.GetHashCode(key.Path, StringComparison.Ordinal));
    }
}

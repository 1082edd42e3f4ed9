namespace Keyway.Storage;

/// <summary>The store keeps times as Unix milliseconds (the same on SQLite and PostgreSQL).</summary>
internal static class Time
{
    public static DateTimeOffset From(long value) => DateTimeOffset.FromUnixTimeMilliseconds(value);

    public static DateTimeOffset? From(long? value) => value is { } v ? DateTimeOffset.FromUnixTimeMilliseconds(v) : null;

    public static long ToStore(this DateTimeOffset value) => value.ToUnixTimeMilliseconds();

    public static long? ToStore(this DateTimeOffset? value) => value?.ToUnixTimeMilliseconds();
}

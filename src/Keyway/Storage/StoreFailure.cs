using System.Data.Common;
using System.Net.Sockets;
using Keyway.Api;

namespace Keyway.Storage;

/// <summary>
/// Tells a store that cannot be reached (PostgreSQL down or restarting, a broken connection, a pool
/// that timed out waiting for one, SQLite busy past its timeout) from a store that answered with an
/// error. The first is an outage: callers answer <c>503 store_unavailable</c> and try again later;
/// the second is a bug or a conflict and is handled where it happens.
/// </summary>
internal static class StoreFailure
{
    /// <summary>How long a caller is told to wait before trying again while the store is unreachable.</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(2);

    /// <summary>Whether <paramref name="exception"/> (or one it wraps) says the store could not be reached.</summary>
    public static bool IsUnavailable(Exception exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            switch (e)
            {
                // Npgsql marks connection failures, shutdowns and timeouts transient. Microsoft.Data.Sqlite marks
                // nothing: BUSY (5) and LOCKED (6), past the busy timeout, are matched by code.
                // Npgsql's exceptions are not matched by type: on SQLite, Npgsql's assembly is never loaded.
                case StoreOutcomeUnknownException:
                case DbException { IsTransient: true } db when IsConnectionState(db.SqlState):
                case Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 5 or 6 }:
                case SocketException:
                case EndOfStreamException:
                case TimeoutException:
                    return true;
                case DbException db when db.GetType().Name == "NpgsqlException" && db.InnerException is IOException or SocketException:
                    return true;
            }
        }

        return false;
    }

    /// <summary>
    /// A transient error that says the server cannot be reached (no SQLSTATE: the connection itself failed), a
    /// connection exception (class 08), a shutdown or start-up (57P01–57P03), or too many connections (53300).
    /// Other transient errors — a serialization failure, a deadlock, a lock not available — come from a store
    /// that answers: they are conflicts, not outages.
    /// </summary>
    private static bool IsConnectionState(string? state) =>
        state is null || state.StartsWith("08", StringComparison.Ordinal) || state is "57P01" or "57P02" or "57P03" or "53300";

    /// <summary>The problem a request gets when what it needs is only in the unreachable store.</summary>
    public static KeywayException Unavailable() =>
        new(StatusCodes.Status503ServiceUnavailable, "store_unavailable",
            "Keyway's store cannot be reached right now, and this request needs it. Try again shortly; requests that Keyway can serve from memory keep working meanwhile.",
            new Dictionary<string, object?> { ["retryAfterSeconds"] = (int)RetryAfter.TotalSeconds });
}

/// <summary>
/// A write whose command reached the store, which then became unreachable before it answered: it
/// may have committed or not. Callers that must not act twice (spend a refresh token) settle it by
/// reading the store once it answers. <see cref="StoreFailure.IsUnavailable"/> holds for it.
/// </summary>
internal sealed class StoreOutcomeUnknownException(Exception inner)
    : Exception("The store stopped answering after a write was sent; it may or may not have committed.", inner);


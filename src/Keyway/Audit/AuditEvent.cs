using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text.Json;

namespace Keyway.Audit;

/// <summary>Who an event's actor is: a person (session), an API key, or Keyway itself.</summary>
internal static class ActorKind
{
    public const string User = "user";
    public const string Key = "key";
    public const string System = "system";
}

/// <summary>
/// One stored audit event, exactly as its row holds it. <see cref="Detail"/> is the JSON text that was
/// hashed; <see cref="Hash"/> is <see cref="AuditHash.Compute"/> over every other field.
/// </summary>
internal sealed record AuditEvent
{
    public long Seq { get; init; }
    public string Id { get; init; } = "";

    /// <summary>When it happened, Unix milliseconds.</summary>
    public long At { get; init; }
    public string ActorId { get; init; } = "";
    public string ActorName { get; init; } = "";
    public string ActorKind { get; init; } = "";
    public string? KeyId { get; init; }
    public string Action { get; init; } = "";
    public string Outcome { get; init; } = "";
    public string? Resource { get; init; }
    public string? Environment { get; init; }
    public string? Target { get; init; }
    public string? Detail { get; init; }
    public string PrevHash { get; init; } = "";
    public string Hash { get; init; } = "";
}

/// <summary>
/// The chain's hash: SHA-256 over a canonical serialization of an event's fields and the previous
/// event's hash, as lowercase hex. The canonical form is a compact JSON array in a fixed order:
/// <c>["keyway.audit.v1", seq, id, at, actorId, actorName, actorKind, keyId, action, outcome,
/// resource, environment, target, detail, prevHash]</c>, absent values as <c>null</c>, <c>detail</c> as
/// the stored JSON text (a string). docs/audit.md describes it so anyone can re-check a chain.
/// </summary>
internal static class AuditHash
{
    public const string Version = "keyway.audit.v1";

    /// <summary>The previous hash of the first event.</summary>
    public static readonly string Genesis = new('0', 64);

    private static readonly JsonEncodedText s_version = JsonEncodedText.Encode(Version);

    public static string Compute(AuditEvent e)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using var writer = new Utf8JsonWriter(buffer);
        WriteCanonical(writer, e.Seq, e.Id, e.At, e.ActorId, e.ActorName, e.ActorKind, e.KeyId, e.Action, e.Outcome,
            e.Resource, e.Environment, e.Target, e.Detail, default, e.PrevHash);
        writer.Flush();
        return Hex(buffer.WrittenSpan);
    }

    /// <summary>
    /// Writes the canonical form (a caller-owned <paramref name="writer"/>, so the audit writer reuses one).
    /// <paramref name="detailString"/>, when not empty, is <paramref name="detail"/> already written as a JSON
    /// string value, quotes and escapes included (<see cref="WriteEscapedString"/>): the writer has the
    /// detail's bytes at hand and escapes them with a table instead of the general escaper.
    /// </summary>
    internal static void WriteCanonical(
        Utf8JsonWriter writer, long seq, string id, long at, string actorId, string actorName, string actorKind, string? keyId,
        string action, string outcome, string? resource, string? environment, string? target, string? detail,
        ReadOnlySpan<byte> detailString, string prevHash)
    {
        writer.WriteStartArray();
        writer.WriteStringValue(s_version);
        writer.WriteNumberValue(seq);
        writer.WriteStringValue(id);
        writer.WriteNumberValue(at);
        writer.WriteStringValue(actorId);
        writer.WriteStringValue(actorName);
        writer.WriteStringValue(actorKind);
        WriteNullable(writer, keyId);
        writer.WriteStringValue(action);
        writer.WriteStringValue(outcome);
        WriteNullable(writer, resource);
        WriteNullable(writer, environment);
        WriteNullable(writer, target);
        if (detail is not null && !detailString.IsEmpty)
        {
            writer.WriteRawValue(detailString, skipInputValidation: true);
        }
        else
        {
            WriteNullable(writer, detail);
        }

        writer.WriteStringValue(prevHash);
        writer.WriteEndArray();
    }

    // For each ASCII character, what Utf8JsonWriter's default escaping writes for it inside a string
    // (2 to 6 bytes, packed little-endian into a ulong, with its length), or a length of 0 when it writes
    // the character as it is: taken from System.Text.Json itself, so the two agree by construction
    // (AuditChainTests checks every ASCII character both ways).
    private static readonly (ulong Bytes, int Length)[] s_escapes = [.. Enumerable.Range(0, 128).Select(c =>
    {
        var escaped = JsonEncodedText.Encode([(byte)c]).EncodedUtf8Bytes;
        if (escaped is [var same] && same == c)
        {
            return (0UL, 0);
        }

        Span<byte> packed = stackalloc byte[sizeof(ulong)];
        escaped.CopyTo(packed);
        return (BinaryPrimitives.ReadUInt64LittleEndian(packed), escaped.Length);
    })];

    /// <summary>
    /// Appends <paramref name="ascii"/> to <paramref name="destination"/> as the JSON string value (quotes
    /// included) that <see cref="Utf8JsonWriter.WriteStringValue(ReadOnlySpan{byte})"/> would write for it with
    /// default options, and returns true; returns false, writing nothing, when it is not all ASCII.
    /// </summary>
    internal static bool WriteEscapedString(ReadOnlySpan<byte> ascii, ArrayBufferWriter<byte> destination)
    {
        if (!System.Text.Ascii.IsValid(ascii))
        {
            return false;
        }

        // At worst every character becomes \u00XX; an escape is written as 8 bytes (then counted for its
        // length), so 2 more are reserved. One pass, byte by byte: a detail has an escape every few bytes
        // (its quotes), so searching for the next one stops as often.
        var span = destination.GetSpan((ascii.Length * 6) + 4);
        span[0] = (byte)'"';
        var written = 1;
        var escapes = s_escapes;
        foreach (var c in ascii)
        {
            var (bytes, length) = escapes[c];
            if (length == 0)
            {
                span[written++] = c;
            }
            else
            {
                BinaryPrimitives.WriteUInt64LittleEndian(span[written..], bytes);
                written += length;
            }
        }

        span[written++] = (byte)'"';
        destination.Advance(written);
        return true;
    }

    /// <summary>SHA-256 of <paramref name="canonical"/>, as lowercase hex.</summary>
    internal static string Hex(ReadOnlySpan<byte> canonical)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(canonical, hash);
        return Convert.ToHexStringLower(hash);
    }

    /// <summary>
    /// The same, with a hash object the caller keeps: on Linux the one-shot call creates and frees an
    /// OpenSSL digest context every time, which costs more than hashing an event's few hundred bytes
    /// (950 against 760 ns per event).
    /// </summary>
    internal static string Hex(IncrementalHash sha256, ReadOnlySpan<byte> canonical)
    {
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        sha256.AppendData(canonical);
        sha256.GetHashAndReset(hash);
        return Convert.ToHexStringLower(hash);
    }

    private static void WriteNullable(Utf8JsonWriter writer, string? value)
    {
        if (value is null)
        {
            writer.WriteNullValue();
        }
        else
        {
            writer.WriteStringValue(value);
        }
    }
}

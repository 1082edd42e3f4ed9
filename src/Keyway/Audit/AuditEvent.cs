using System.Buffers;
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

    public static string Compute(AuditEvent e)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartArray();
            writer.WriteStringValue(Version);
            writer.WriteNumberValue(e.Seq);
            writer.WriteStringValue(e.Id);
            writer.WriteNumberValue(e.At);
            writer.WriteStringValue(e.ActorId);
            writer.WriteStringValue(e.ActorName);
            writer.WriteStringValue(e.ActorKind);
            WriteNullable(writer, e.KeyId);
            writer.WriteStringValue(e.Action);
            writer.WriteStringValue(e.Outcome);
            WriteNullable(writer, e.Resource);
            WriteNullable(writer, e.Environment);
            WriteNullable(writer, e.Target);
            WriteNullable(writer, e.Detail);
            writer.WriteStringValue(e.PrevHash);
            writer.WriteEndArray();
        }

        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(buffer.WrittenSpan, hash);
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

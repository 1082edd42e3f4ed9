using System.Security.Cryptography;
using System.Text;
using Keyway.Secrets;

namespace Keyway.Audit;

/// <summary>
/// Seals the chain head: an HMAC-SHA256 of its seq, event id and hash under a key derived from the
/// master key. The hash chain alone shows any change to an event, unless the one who changed it also
/// recomputed every later hash and the head; that takes only write access to the database. The seal
/// takes the master key too, which never is in the database: a rewritten chain verifies link by link,
/// but its head's seal does not. Retention's checkpoints (<see cref="AuditCheckpoint"/>) are sealed
/// under the same key, with a text of their own so a head's seal can never pass for a checkpoint's.
/// </summary>
internal sealed class AuditSeal
{
    private const string Purpose = "audit seal";
    private readonly (string KeyId, byte[] Key)[] _keys;

    public AuditSeal(MasterKeyRing master) => _keys = [.. master.DeriveKeys(Purpose)];

    /// <summary>The master key id new seals are made under (the primary).</summary>
    public string KeyId => _keys[0].KeyId;

    /// <summary>The seal of a head, under the primary master key, as lowercase hex.</summary>
    public string Seal(long seq, string? eventId, string hash) => Mac(_keys[0].Key, HeadText(seq, eventId, hash));

    /// <summary>The seal of a checkpoint (every field but the seal itself), under the primary master key.</summary>
    public string Seal(AuditCheckpoint checkpoint) => Mac(_keys[0].Key, checkpoint.SealedText());

    /// <summary>Whether <paramref name="head"/>'s seal is the one its seq, event id and hash call for.</summary>
    public SealCheck Check(AuditHead head)
    {
        return Check(HeadText(head.Seq, head.EventId, head.Hash), head.Seal, head.SealKey);
    }

    /// <summary>Whether <paramref name="checkpoint"/>'s seal is the one its fields call for.</summary>
    public SealCheck Check(AuditCheckpoint checkpoint) => Check(checkpoint.SealedText(), checkpoint.Seal, checkpoint.SealKey);

    private SealCheck Check(string text, string? seal, string? sealKey)
    {
        if (seal is null || sealKey is null)
        {
            return SealCheck.Missing;
        }

        foreach (var (keyId, key) in _keys)
        {
            if (keyId == sealKey)
            {
                return CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Mac(key, text)), Encoding.ASCII.GetBytes(seal))
                    ? SealCheck.Valid
                    : SealCheck.Mismatch;
            }
        }

        return SealCheck.UnknownKey;
    }

    private static string HeadText(long seq, string? eventId, string hash) => $"keyway audit head v1\n{seq}\n{eventId}\n{hash}";

    private static string Mac(byte[] key, string text) => Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(text)));
}

/// <summary>What <see cref="AuditSeal.Check(AuditHead)"/> found.</summary>
internal enum SealCheck
{
    /// <summary>The seal matches the head.</summary>
    Valid,

    /// <summary>The head carries no seal (a store written before seals; the next write seals it).</summary>
    Missing,

    /// <summary>Sealed under a master key this server does not hold (dropped after a rotation); the next write reseals it.</summary>
    UnknownKey,

    /// <summary>The seal does not match: the head, or the chain behind it, was rewritten without the master key.</summary>
    Mismatch,
}

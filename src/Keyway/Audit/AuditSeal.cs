using System.Security.Cryptography;
using System.Text;
using Keyway.Secrets;

namespace Keyway.Audit;

/// <summary>
/// Seals the chain head: an HMAC-SHA256 of its seq, event id and hash under a key derived from the
/// master key. The hash chain alone shows any change to an event, unless the one who changed it also
/// recomputed every later hash and the head; that takes only write access to the database. The seal
/// takes the master key too, which never is in the database: a rewritten chain verifies link by link,
/// but its head's seal does not.
/// </summary>
internal sealed class AuditSeal
{
    private const string Purpose = "audit seal";
    private readonly (string KeyId, byte[] Key)[] _keys;

    public AuditSeal(MasterKeyRing master) => _keys = [.. master.DeriveKeys(Purpose)];

    /// <summary>The master key id new seals are made under (the primary).</summary>
    public string KeyId => _keys[0].KeyId;

    /// <summary>The seal of a head, under the primary master key, as lowercase hex.</summary>
    public string Seal(long seq, string? eventId, string hash) => Mac(_keys[0].Key, seq, eventId, hash);

    /// <summary>Whether <paramref name="head"/>'s seal is the one its seq, event id and hash call for.</summary>
    public SealCheck Check(AuditHead head)
    {
        if (head.Seal is null || head.SealKey is null)
        {
            return SealCheck.Missing;
        }

        foreach (var (keyId, key) in _keys)
        {
            if (keyId == head.SealKey)
            {
                return CryptographicOperations.FixedTimeEquals(
                    Encoding.ASCII.GetBytes(Mac(key, head.Seq, head.EventId, head.Hash)), Encoding.ASCII.GetBytes(head.Seal))
                    ? SealCheck.Valid
                    : SealCheck.Mismatch;
            }
        }

        return SealCheck.UnknownKey;
    }

    private static string Mac(byte[] key, long seq, string? eventId, string hash) =>
        Convert.ToHexStringLower(HMACSHA256.HashData(key, Encoding.UTF8.GetBytes($"keyway audit head v1\n{seq}\n{eventId}\n{hash}")));
}

/// <summary>What <see cref="AuditSeal.Check"/> found.</summary>
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

using System.Security.Cryptography;
using Keyway.Audit;
using Keyway.Secrets;

namespace Keyway.Tests.Audit;

/// <summary>The audit seal of tests that write and verify a chain in process: one master key for the whole run.</summary>
internal static class TestSeal
{
    public static AuditSeal Shared { get; } = new(MasterKeyRing.FromKeys(RandomNumberGenerator.GetBytes(MasterKeyRing.KeySize)));
}

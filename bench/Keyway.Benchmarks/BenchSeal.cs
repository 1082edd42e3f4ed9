using System.Security.Cryptography;
using Keyway.Audit;
using Keyway.Secrets;

namespace Keyway.Benchmarks;

/// <summary>An audit seal under a throwaway master key, for benchmarks that write the chain.</summary>
internal static class BenchSeal
{
    public static AuditSeal New() => new(MasterKeyRing.FromKeys(RandomNumberGenerator.GetBytes(MasterKeyRing.KeySize)));
}

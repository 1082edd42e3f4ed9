using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace Keyway.Secrets;

/// <summary>
/// Finds any of a few byte strings in bytes, vectorized: the Teddy filter (from Intel's Hyperscan; the
/// one <see cref="System.Buffers.SearchValues{T}"/> of strings uses over chars), here over bytes so a
/// body is searched as it is, 64 (or 32, 16) bytes per step, with no widening.
/// </summary>
/// <remarks>
/// <para>Each target goes into one of 8 buckets (a bit). For each of the first <see cref="Fingerprint"/>
/// positions of a target there are two 16-entry tables, by low and by high nibble, of the buckets that
/// admit that nibble there; a byte's buckets are the two lookups ANDed (one shuffle each, a whole vector at
/// once). A place where the four bytes from it all admit some bucket is a candidate, and only the
/// targets of that bucket are compared there. Targets are few (a value's ten or so forms, a few values),
/// so candidates are rare in ordinary text; past <see cref="MaxTargets"/> the tables fill up and the
/// caller uses <see cref="System.Buffers.SearchValues{T}"/>'s Aho-Corasick instead.</para>
/// <para>Matches are leftmost first, the longest at a place, and do not overlap: the next is looked for
/// after the end of the last, as the char search does.</para>
/// </remarks>
internal sealed class TeddySearch
{
    /// <summary>How many leading bytes of a target the filter looks at; every target is at least this long.</summary>
    public const int Fingerprint = 4;

    /// <summary>The most targets the filter stays selective for.</summary>
    public const int MaxTargets = 48;

    private const int Buckets = 8;

    // Targets by bucket, longest first within a bucket: bucket b holds _targets[_bucketStart[b].._bucketStart[b + 1]].
    private readonly byte[][] _targets;
    private readonly int[] _bucketStart = new int[Buckets + 1];

    // Per fingerprint position: the buckets that admit a low (high) nibble there.
    private readonly Vector128<byte>[] _low = new Vector128<byte>[Fingerprint];
    private readonly Vector128<byte>[] _high = new Vector128<byte>[Fingerprint];

    // The same, per whole byte (low AND high), for the candidates' check and the last few bytes: [position * 256 + byte].
    private readonly byte[] _admits = new byte[Fingerprint * 256];

    private TeddySearch(byte[][] targets)
    {
        // Targets with alike beginnings share a bucket, so that each bucket's tables admit few nibbles.
        var sorted = targets.OrderBy(t => t, ByteOrder.Instance).ToArray();
        var buckets = Math.Min(Buckets, sorted.Length);
        var ordered = new List<byte[]>(sorted.Length);
        Span<byte> low = stackalloc byte[Fingerprint * 16];
        Span<byte> high = stackalloc byte[Fingerprint * 16];
        low.Clear();
        high.Clear();
        for (var b = 0; b < buckets; b++)
        {
            var members = sorted[(b * sorted.Length / buckets)..((b + 1) * sorted.Length / buckets)];
            _bucketStart[b] = ordered.Count;
            ordered.AddRange(members.OrderByDescending(t => t.Length));
            foreach (var target in members)
            {
                for (var k = 0; k < Fingerprint; k++)
                {
                    low[(k * 16) + (target[k] & 0xF)] |= (byte)(1 << b);
                    high[(k * 16) + (target[k] >> 4)] |= (byte)(1 << b);
                }
            }
        }

        for (var b = buckets; b <= Buckets; b++)
        {
            _bucketStart[b] = ordered.Count;
        }

        _targets = [.. ordered];
        for (var k = 0; k < Fingerprint; k++)
        {
            _low[k] = Vector128.Create(low.Slice(k * 16, 16));
            _high[k] = Vector128.Create(high.Slice(k * 16, 16));
            for (var value = 0; value < 256; value++)
            {
                _admits[(k * 256) + value] = (byte)(low[(k * 16) + (value & 0xF)] & high[(k * 16) + (value >> 4)]);
            }
        }
    }

    /// <summary>Whether this machine has the byte shuffle the filter is made of.</summary>
    public static bool IsSupported => Avx2.IsSupported || Ssse3.IsSupported || AdvSimd.Arm64.IsSupported;

    /// <summary>The search for <paramref name="targets"/>, or null when it would not be the faster one (too many, too short, no vectors).</summary>
    public static TeddySearch? TryCreate(IReadOnlyCollection<byte[]> targets) =>
        IsSupported && targets.Count is > 0 and <= MaxTargets && targets.All(t => t.Length >= Fingerprint)
            ? new TeddySearch([.. targets])
            : null;

    /// <summary>The longest target, in bytes.</summary>
    public int Longest => _targets.Max(t => t.Length);

    /// <summary>
    /// Adds every match in <paramref name="text"/> to <paramref name="found"/> (where it starts, how long);
    /// <paramref name="widestVector"/> (bits) lets the tests run the narrower paths too.
    /// </summary>
    public void FindAll(ReadOnlySpan<byte> text, ref List<(int Start, int Length)>? found, int widestVector = 512)
    {
        // Places before `next` are inside the last match.
        var next = 0;
        var from = 0;
        if (widestVector >= 512 && Vector512.IsHardwareAccelerated && Avx512BW.IsSupported && text.Length >= Vector512<byte>.Count + Fingerprint - 1)
        {
            from = Scan512(text, ref next, ref found);
        }
        else if (widestVector >= 256 && Avx2.IsSupported && text.Length >= Vector256<byte>.Count + Fingerprint - 1)
        {
            from = Scan256(text, ref next, ref found);
        }
        else if (widestVector >= 128 && (Ssse3.IsSupported || AdvSimd.Arm64.IsSupported) && text.Length >= Vector128<byte>.Count + Fingerprint - 1)
        {
            from = Scan128(text, ref next, ref found);
        }

        // The last places (fewer than a vector's worth), one by one.
        for (var at = Math.Max(from, next); at <= text.Length - Fingerprint; at++)
        {
            if (at >= next && Admitted(text, at) is not 0 and var buckets)
            {
                Verify(text, at, buckets, ref next, ref found);
            }
        }
    }

    private int Scan512(ReadOnlySpan<byte> text, ref int next, ref List<(int Start, int Length)>? found)
    {
        ref var start = ref MemoryMarshal.GetReference(text);
        var nibble = Vector512.Create((byte)0xF);
        var (low0, high0) = (Wide512(_low[0]), Wide512(_high[0]));
        var (low1, high1) = (Wide512(_low[1]), Wide512(_high[1]));
        var (low2, high2) = (Wide512(_low[2]), Wide512(_high[2]));
        var (low3, high3) = (Wide512(_low[3]), Wide512(_high[3]));
        var at = 0;
        for (var last = text.Length - Vector512<byte>.Count - (Fingerprint - 1); at <= last; at += Vector512<byte>.Count)
        {
            var offset = (nuint)at;
            var candidates =
                Classify(Vector512.LoadUnsafe(ref start, offset), low0, high0, nibble) &
                Classify(Vector512.LoadUnsafe(ref start, offset + 1), low1, high1, nibble) &
                Classify(Vector512.LoadUnsafe(ref start, offset + 2), low2, high2, nibble) &
                Classify(Vector512.LoadUnsafe(ref start, offset + 3), low3, high3, nibble);
            if (candidates != Vector512<byte>.Zero)
            {
                Candidates(text, at, ~Vector512.Equals(candidates, Vector512<byte>.Zero).ExtractMostSignificantBits(), ref next, ref found);
            }
        }

        return at;

        static Vector512<byte> Classify(Vector512<byte> bytes, Vector512<byte> low, Vector512<byte> high, Vector512<byte> nibble) =>
            Avx512BW.Shuffle(low, bytes & nibble) & Avx512BW.Shuffle(high, Vector512.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & nibble);

        static Vector512<byte> Wide512(Vector128<byte> table) => Vector512.Create(Vector256.Create(table, table), Vector256.Create(table, table));
    }

    private int Scan256(ReadOnlySpan<byte> text, ref int next, ref List<(int Start, int Length)>? found)
    {
        ref var start = ref MemoryMarshal.GetReference(text);
        var nibble = Vector256.Create((byte)0xF);
        var (low0, high0) = (Vector256.Create(_low[0], _low[0]), Vector256.Create(_high[0], _high[0]));
        var (low1, high1) = (Vector256.Create(_low[1], _low[1]), Vector256.Create(_high[1], _high[1]));
        var (low2, high2) = (Vector256.Create(_low[2], _low[2]), Vector256.Create(_high[2], _high[2]));
        var (low3, high3) = (Vector256.Create(_low[3], _low[3]), Vector256.Create(_high[3], _high[3]));
        var at = 0;
        for (var last = text.Length - Vector256<byte>.Count - (Fingerprint - 1); at <= last; at += Vector256<byte>.Count)
        {
            var offset = (nuint)at;
            var candidates =
                Classify(Vector256.LoadUnsafe(ref start, offset), low0, high0, nibble) &
                Classify(Vector256.LoadUnsafe(ref start, offset + 1), low1, high1, nibble) &
                Classify(Vector256.LoadUnsafe(ref start, offset + 2), low2, high2, nibble) &
                Classify(Vector256.LoadUnsafe(ref start, offset + 3), low3, high3, nibble);
            if (candidates != Vector256<byte>.Zero)
            {
                Candidates(text, at, ~Vector256.Equals(candidates, Vector256<byte>.Zero).ExtractMostSignificantBits(), ref next, ref found);
            }
        }

        return at;

        // (The shuffle looks up within each 16-byte lane: the tables are repeated in both.)
        static Vector256<byte> Classify(Vector256<byte> bytes, Vector256<byte> low, Vector256<byte> high, Vector256<byte> nibble) =>
            Avx2.Shuffle(low, bytes & nibble) & Avx2.Shuffle(high, Vector256.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & nibble);
    }

    private int Scan128(ReadOnlySpan<byte> text, ref int next, ref List<(int Start, int Length)>? found)
    {
        ref var start = ref MemoryMarshal.GetReference(text);
        var nibble = Vector128.Create((byte)0xF);
        var at = 0;
        for (var last = text.Length - Vector128<byte>.Count - (Fingerprint - 1); at <= last; at += Vector128<byte>.Count)
        {
            var offset = (nuint)at;
            var candidates =
                Classify(Vector128.LoadUnsafe(ref start, offset), _low[0], _high[0], nibble) &
                Classify(Vector128.LoadUnsafe(ref start, offset + 1), _low[1], _high[1], nibble) &
                Classify(Vector128.LoadUnsafe(ref start, offset + 2), _low[2], _high[2], nibble) &
                Classify(Vector128.LoadUnsafe(ref start, offset + 3), _low[3], _high[3], nibble);
            if (candidates != Vector128<byte>.Zero)
            {
                Candidates(text, at, ~Vector128.Equals(candidates, Vector128<byte>.Zero).ExtractMostSignificantBits() & 0xFFFF, ref next, ref found);
            }
        }

        return at;

        // The indices are nibbles (0 to 15): PSHUFB and TBL agree on them.
        static Vector128<byte> Classify(Vector128<byte> bytes, Vector128<byte> low, Vector128<byte> high, Vector128<byte> nibble) =>
            Vector128.ShuffleNative(low, bytes & nibble) & Vector128.ShuffleNative(high, Vector128.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & nibble);
    }

    /// <summary>Checks the candidate places of one vector (a bit each, from <paramref name="at"/>).</summary>
    private void Candidates(ReadOnlySpan<byte> text, int at, ulong places, ref int next, ref List<(int Start, int Length)>? found)
    {
        while (places != 0)
        {
            var place = at + BitOperations.TrailingZeroCount(places);
            places &= places - 1;
            if (place >= next)
            {
                Verify(text, place, Admitted(text, place), ref next, ref found);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int Admitted(ReadOnlySpan<byte> text, int at) =>
        _admits[text[at]] & _admits[256 + text[at + 1]] & _admits[512 + text[at + 2]] & _admits[768 + text[at + 3]];

    /// <summary>Compares the targets of <paramref name="buckets"/> at <paramref name="at"/>; records the longest that matches.</summary>
    private void Verify(ReadOnlySpan<byte> text, int at, int buckets, ref int next, ref List<(int Start, int Length)>? found)
    {
        var rest = text[at..];
        var longest = 0;
        while (buckets != 0)
        {
            var bucket = BitOperations.TrailingZeroCount(buckets);
            buckets &= buckets - 1;
            for (var i = _bucketStart[bucket]; i < _bucketStart[bucket + 1]; i++)
            {
                var target = _targets[i];
                if (target.Length <= longest)
                {
                    break;
                }

                if (rest.StartsWith(target))
                {
                    longest = target.Length;
                    break;
                }
            }
        }

        if (longest > 0)
        {
            (found ??= []).Add((at, longest));
            next = at + longest;
        }
    }

    private sealed class ByteOrder : IComparer<byte[]>
    {
        public static readonly ByteOrder Instance = new();

        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }
}

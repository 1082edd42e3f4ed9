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

    // Per fingerprint position, the buckets that admit each byte there exactly: [position * 256 + byte]. For
    // the candidates' check and the last few bytes; and, folded to 128 entries, for a whole-byte lookup
    // (VPERMI2B, AVX-512 VBMI), one instruction per position and fewer false candidates than the nibbles.
    private readonly byte[] _admits = new byte[Fingerprint * 256];
    private readonly Vector512<byte>[] _byteLower = new Vector512<byte>[Fingerprint];
    private readonly Vector512<byte>[] _byteUpper = new Vector512<byte>[Fingerprint];

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
                    _admits[(k * 256) + target[k]] |= (byte)(1 << b);
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

            // The byte-wide lookup reads 7 bits: a byte and the byte 128 away share an entry.
            var wide = new byte[128];
            for (var value = 0; value < 128; value++)
            {
                wide[value] = (byte)(_admits[(k * 256) + value] | _admits[(k * 256) + value + 128]);
            }

            _byteLower[k] = Vector512.Create(wide.AsSpan(0, 64));
            _byteUpper[k] = Vector512.Create(wide.AsSpan(64, 64));
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
        if (widestVector >= 512 && Vector512.IsHardwareAccelerated && Avx512Vbmi.IsSupported && text.Length >= Vector512<byte>.Count + Fingerprint - 1)
        {
            from = ScanBytes512(text, ref next, ref found);
        }
        else if (widestVector >= 512 && Vector512.IsHardwareAccelerated && Avx512BW.IsSupported && text.Length >= Vector512<byte>.Count + Fingerprint - 1)
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

    // Each scan runs a loop with no call in it (so the tables stay in registers) to the next vector with a
    // candidate, and returns there for the candidates to be checked. That loop is compiled fully optimized
    // at once: called once per write with a thousand vectors each, it otherwise stays in its on-stack-
    // replacement form for a long while, three to four times slower.
    private int ScanBytes512(ReadOnlySpan<byte> text, ref int next, ref List<(int Start, int Length)>? found)
    {
        var tables = new ByteTables512(_byteLower, _byteUpper);
        var last = text.Length - Vector512<byte>.Count - (Fingerprint - 1);
        var at = 0;
        while (at <= last)
        {
            var places = tables.Next(ref MemoryMarshal.GetReference(text), ref at, last);
            if (places != 0)
            {
                Candidates(text, at, places, ref next, ref found);
                at += Vector512<byte>.Count;
            }
        }

        // The last places, fewer than a vector's worth: one more vector, ending at the text's end, of which
        // only the places not yet looked at count.
        if (last >= 0 && at <= text.Length - Fingerprint)
        {
            var back = last;
            var places = tables.Next(ref MemoryMarshal.GetReference(text), ref back, last) & (ulong.MaxValue << (at - last));
            if (places != 0)
            {
                Candidates(text, last, places, ref next, ref found);
            }

            at = text.Length;
        }

        return at;
    }

    private int Scan512(ReadOnlySpan<byte> text, ref int next, ref List<(int Start, int Length)>? found)
    {
        var tables = new Tables512(_low, _high);
        var last = text.Length - Vector512<byte>.Count - (Fingerprint - 1);
        var at = 0;
        while (at <= last)
        {
            var places = tables.Next(ref MemoryMarshal.GetReference(text), ref at, last);
            if (places != 0)
            {
                Candidates(text, at, places, ref next, ref found);
                at += Vector512<byte>.Count;
            }
        }

        // The last places, fewer than a vector's worth: one more vector, ending at the text's end, of which
        // only the places not yet looked at count.
        if (last >= 0 && at <= text.Length - Fingerprint)
        {
            var back = last;
            var places = tables.Next(ref MemoryMarshal.GetReference(text), ref back, last) & (ulong.MaxValue << (at - last));
            if (places != 0)
            {
                Candidates(text, last, places, ref next, ref found);
            }

            at = text.Length;
        }

        return at;
    }

    private int Scan256(ReadOnlySpan<byte> text, ref int next, ref List<(int Start, int Length)>? found)
    {
        var tables = new Tables256(_low, _high);
        var last = text.Length - Vector256<byte>.Count - (Fingerprint - 1);
        var at = 0;
        while (at <= last)
        {
            var places = tables.Next(ref MemoryMarshal.GetReference(text), ref at, last);
            if (places != 0)
            {
                Candidates(text, at, places, ref next, ref found);
                at += Vector256<byte>.Count;
            }
        }

        // The last places, fewer than a vector's worth: one more vector, ending at the text's end, of which
        // only the places not yet looked at count.
        if (last >= 0 && at <= text.Length - Fingerprint)
        {
            var back = last;
            var places = tables.Next(ref MemoryMarshal.GetReference(text), ref back, last) & (ulong.MaxValue << (at - last));
            if (places != 0)
            {
                Candidates(text, last, places, ref next, ref found);
            }

            at = text.Length;
        }

        return at;
    }

    private int Scan128(ReadOnlySpan<byte> text, ref int next, ref List<(int Start, int Length)>? found)
    {
        var tables = new Tables128(_low, _high);
        var last = text.Length - Vector128<byte>.Count - (Fingerprint - 1);
        var at = 0;
        while (at <= last)
        {
            var places = tables.Next(ref MemoryMarshal.GetReference(text), ref at, last);
            if (places != 0)
            {
                Candidates(text, at, places, ref next, ref found);
                at += Vector128<byte>.Count;
            }
        }

        // The last places, fewer than a vector's worth: one more vector, ending at the text's end, of which
        // only the places not yet looked at count.
        if (last >= 0 && at <= text.Length - Fingerprint)
        {
            var back = last;
            var places = tables.Next(ref MemoryMarshal.GetReference(text), ref back, last) & (ulong.MaxValue << (at - last));
            if (places != 0)
            {
                Candidates(text, last, places, ref next, ref found);
            }

            at = text.Length;
        }

        return at;
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

    /// <summary>The whole-byte tables (128 entries each, in two vectors) of the four positions.</summary>
    private readonly struct ByteTables512(Vector512<byte>[] lower, Vector512<byte>[] upper)
    {
        private readonly Vector512<byte> _lower0 = lower[0], _lower1 = lower[1], _lower2 = lower[2], _lower3 = lower[3];
        private readonly Vector512<byte> _upper0 = upper[0], _upper1 = upper[1], _upper2 = upper[2], _upper3 = upper[3];

        /// <summary>From <paramref name="at"/> on, the first vector with a candidate: its places (a bit each), 0 past <paramref name="last"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public ulong Next(ref byte text, ref int at, int last)
        {
            var (lower0, lower1, lower2, lower3, upper0, upper1, upper2, upper3) = (_lower0, _lower1, _lower2, _lower3, _upper0, _upper1, _upper2, _upper3);
            for (var i = at; i <= last; i += Vector512<byte>.Count)
            {
                var offset = (nuint)i;
                var candidates =
                    Avx512Vbmi.PermuteVar64x8x2(lower0, Vector512.LoadUnsafe(ref text, offset), upper0) &
                    Avx512Vbmi.PermuteVar64x8x2(lower1, Vector512.LoadUnsafe(ref text, offset + 1), upper1) &
                    Avx512Vbmi.PermuteVar64x8x2(lower2, Vector512.LoadUnsafe(ref text, offset + 2), upper2) &
                    Avx512Vbmi.PermuteVar64x8x2(lower3, Vector512.LoadUnsafe(ref text, offset + 3), upper3);
                if (candidates != Vector512<byte>.Zero)
                {
                    at = i;
                    return ~Vector512.Equals(candidates, Vector512<byte>.Zero).ExtractMostSignificantBits();
                }
            }

            at = last + 1;
            return 0;
        }
    }

    /// <summary>The nibble tables repeated in each 16-byte lane of a 512-bit vector (the shuffle looks up within a lane).</summary>
    private readonly struct Tables512(Vector128<byte>[] low, Vector128<byte>[] high)
    {
        private readonly Vector512<byte> _low0 = Wide(low[0]), _low1 = Wide(low[1]), _low2 = Wide(low[2]), _low3 = Wide(low[3]);
        private readonly Vector512<byte> _high0 = Wide(high[0]), _high1 = Wide(high[1]), _high2 = Wide(high[2]), _high3 = Wide(high[3]);

        /// <summary>From <paramref name="at"/> on, the first vector with a candidate: its places (a bit each), 0 past <paramref name="last"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public ulong Next(ref byte text, ref int at, int last)
        {
            var nibble = Vector512.Create((byte)0xF);
            var (low0, low1, low2, low3, high0, high1, high2, high3) = (_low0, _low1, _low2, _low3, _high0, _high1, _high2, _high3);
            for (var i = at; i <= last; i += Vector512<byte>.Count)
            {
                var offset = (nuint)i;
                var candidates =
                    Classify(Vector512.LoadUnsafe(ref text, offset), low0, high0, nibble) &
                    Classify(Vector512.LoadUnsafe(ref text, offset + 1), low1, high1, nibble) &
                    Classify(Vector512.LoadUnsafe(ref text, offset + 2), low2, high2, nibble) &
                    Classify(Vector512.LoadUnsafe(ref text, offset + 3), low3, high3, nibble);
                if (candidates != Vector512<byte>.Zero)
                {
                    at = i;
                    return ~Vector512.Equals(candidates, Vector512<byte>.Zero).ExtractMostSignificantBits();
                }
            }

            at = last + 1;
            return 0;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<byte> Classify(Vector512<byte> bytes, Vector512<byte> low, Vector512<byte> high, Vector512<byte> nibble) =>
            Avx512BW.Shuffle(low, bytes & nibble) & Avx512BW.Shuffle(high, Vector512.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & nibble);

        private static Vector512<byte> Wide(Vector128<byte> table) => Vector512.Create(Vector256.Create(table, table), Vector256.Create(table, table));
    }

    private readonly struct Tables256(Vector128<byte>[] low, Vector128<byte>[] high)
    {
        private readonly Vector256<byte> _low0 = Wide(low[0]), _low1 = Wide(low[1]), _low2 = Wide(low[2]), _low3 = Wide(low[3]);
        private readonly Vector256<byte> _high0 = Wide(high[0]), _high1 = Wide(high[1]), _high2 = Wide(high[2]), _high3 = Wide(high[3]);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public ulong Next(ref byte text, ref int at, int last)
        {
            var nibble = Vector256.Create((byte)0xF);
            var (low0, low1, low2, low3, high0, high1, high2, high3) = (_low0, _low1, _low2, _low3, _high0, _high1, _high2, _high3);
            for (var i = at; i <= last; i += Vector256<byte>.Count)
            {
                var offset = (nuint)i;
                var candidates =
                    Classify(Vector256.LoadUnsafe(ref text, offset), low0, high0, nibble) &
                    Classify(Vector256.LoadUnsafe(ref text, offset + 1), low1, high1, nibble) &
                    Classify(Vector256.LoadUnsafe(ref text, offset + 2), low2, high2, nibble) &
                    Classify(Vector256.LoadUnsafe(ref text, offset + 3), low3, high3, nibble);
                if (candidates != Vector256<byte>.Zero)
                {
                    at = i;
                    return ~Vector256.Equals(candidates, Vector256<byte>.Zero).ExtractMostSignificantBits();
                }
            }

            at = last + 1;
            return 0;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector256<byte> Classify(Vector256<byte> bytes, Vector256<byte> low, Vector256<byte> high, Vector256<byte> nibble) =>
            Avx2.Shuffle(low, bytes & nibble) & Avx2.Shuffle(high, Vector256.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & nibble);

        private static Vector256<byte> Wide(Vector128<byte> table) => Vector256.Create(table, table);
    }

    private readonly struct Tables128(Vector128<byte>[] low, Vector128<byte>[] high)
    {
        private readonly Vector128<byte> _low0 = low[0], _low1 = low[1], _low2 = low[2], _low3 = low[3];
        private readonly Vector128<byte> _high0 = high[0], _high1 = high[1], _high2 = high[2], _high3 = high[3];

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public ulong Next(ref byte text, ref int at, int last)
        {
            var nibble = Vector128.Create((byte)0xF);
            var (low0, low1, low2, low3, high0, high1, high2, high3) = (_low0, _low1, _low2, _low3, _high0, _high1, _high2, _high3);
            for (var i = at; i <= last; i += Vector128<byte>.Count)
            {
                var offset = (nuint)i;
                var candidates =
                    Classify(Vector128.LoadUnsafe(ref text, offset), low0, high0, nibble) &
                    Classify(Vector128.LoadUnsafe(ref text, offset + 1), low1, high1, nibble) &
                    Classify(Vector128.LoadUnsafe(ref text, offset + 2), low2, high2, nibble) &
                    Classify(Vector128.LoadUnsafe(ref text, offset + 3), low3, high3, nibble);
                if (candidates != Vector128<byte>.Zero)
                {
                    at = i;
                    return ~Vector128.Equals(candidates, Vector128<byte>.Zero).ExtractMostSignificantBits() & 0xFFFF;
                }
            }

            at = last + 1;
            return 0;
        }

        // The indices are nibbles (0 to 15): PSHUFB and TBL agree on them.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector128<byte> Classify(Vector128<byte> bytes, Vector128<byte> low, Vector128<byte> high, Vector128<byte> nibble) =>
            Vector128.ShuffleNative(low, bytes & nibble) & Vector128.ShuffleNative(high, Vector128.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & nibble);
    }

    private sealed class ByteOrder : IComparer<byte[]>
    {
        public static readonly ByteOrder Instance = new();

        public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    }
}

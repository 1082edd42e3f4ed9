using Keyway.Secrets;

namespace Keyway.Tests.Secrets;

/// <summary>The vectorized byte search finds exactly what comparing every target at every place finds.</summary>
public sealed class TeddySearchTests
{
    public static TheoryData<int> Widths() => [512, 256, 128, 0];

    [Theory]
    [MemberData(nameof(Widths))]
    public void Random_targets_in_random_text_are_found_as_a_plain_comparison_finds_them(int widestVector)
    {
        var random = new Random(20261207 + widestVector);
        for (var round = 0; round < 400; round++)
        {
            // Bytes from a small alphabet (so targets share beginnings and overlap) or any byte (NUL and non-ASCII too).
            var alphabet = round % 3 == 0 ? 256 : 4 + (round % 5);
            byte Next() => (byte)(alphabet == 256 ? random.Next(256) : 'a' + random.Next(alphabet));
            var targets = Enumerable.Range(0, 1 + random.Next(TeddySearch.MaxTargets))
                .Select(_ => Enumerable.Range(0, TeddySearch.Fingerprint + random.Next(round % 2 == 0 ? 4 : 40)).Select(_ => Next()).ToArray())
                .ToArray();
            var text = Enumerable.Range(0, random.Next(round % 4 == 0 ? 5000 : 200)).Select(_ => Next()).ToArray();
            // Planted whole, at the text's start and end and anywhere (overlapping one another too).
            for (var k = 0; k < 6 && text.Length > 0; k++)
            {
                var target = targets[random.Next(targets.Length)];
                var at = k switch { 0 => 0, 1 => text.Length - target.Length, _ => random.Next(text.Length) };
                if (at >= 0 && at + target.Length <= text.Length)
                {
                    target.CopyTo(text, at);
                }
            }

            var search = TeddySearch.TryCreate(targets)!;
            List<(int Start, int Length)>? found = null;
            search.FindAll(text, ref found, widestVector);

            Assert.Equal(Expected(targets, text), found ?? []);
        }
    }

    [Fact]
    public void Too_many_or_too_short_targets_are_left_to_the_char_search()
    {
        Assert.Null(TeddySearch.TryCreate([.. Enumerable.Range(0, TeddySearch.MaxTargets + 1).Select(i => BitConverter.GetBytes(i + 1000))]));
        Assert.Null(TeddySearch.TryCreate([[1, 2, 3]]));
        Assert.Null(TeddySearch.TryCreate([]));
    }

    /// <summary>Leftmost first, the longest at a place, the next after it: every target compared at every place.</summary>
    private static List<(int Start, int Length)> Expected(byte[][] targets, byte[] text)
    {
        var expected = new List<(int Start, int Length)>();
        for (var at = 0; at < text.Length;)
        {
            var longest = targets.Where(t => text.AsSpan(at).StartsWith(t)).Select(t => t.Length).DefaultIfEmpty(0).Max();
            if (longest > 0)
            {
                expected.Add((at, longest));
                at += longest;
            }
            else
            {
                at++;
            }
        }

        return expected;
    }
}

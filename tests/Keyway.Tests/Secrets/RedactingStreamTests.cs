using System.Text;
using Keyway.Secrets;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Secrets;

/// <summary>
/// However an answer is cut into writes, the redacting stream sends what redacting it whole sends: no
/// form of a value leaks at a write's edge, and every other byte goes out unchanged.
/// </summary>
public sealed class RedactingStreamTests
{
    private const string Value = "Canary/7f3a 9c1e+ö&secret";
    private const string NonAscii = "pässwörd-ключ-秘密-42";

    /// <summary>Every form of an ASCII-and-Latin value and of a value of multibyte characters, by name.</summary>
    public static TheoryData<string, string> Forms()
    {
        var data = new TheoryData<string, string>();
        foreach (var value in new[] { Value, NonAscii })
        {
            foreach (var form in SecretForms.Of(value).Keys)
            {
                data.Add(value, form);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Forms))]
    public async Task A_form_cut_at_every_place_at_odd_and_even_offsets_at_either_end_is_redacted(string value, string form)
    {
        // As the proxy's redactor holds them: the value, a credential made of it, another secret.
        var redactor = new Redactor([value, "Bearer " + value, "other-secret-0123456789"]);
        var encoded = Bytes(form, SecretForms.Of(value)[form]);
        foreach (var before in new[] { 0, 1, 2, 3, 2000, 2001 })
        {
            foreach (var after in new[] { 0, 1, 2000 })
            {
                byte[] body = [.. Filler(before), .. encoded, .. Filler(after)];
                var whole = Whole(redactor, body);
                Assert.Equal(-1, whole.AsSpan().IndexOf(encoded));
                Assert.Equal(Filler(before), whole[..before]);
                Assert.Equal(Filler(after), whole[^after..]);

                for (var cut = Math.Max(1, before - 2); cut < Math.Min(body.Length, before + encoded.Length + 2); cut++)
                {
                    Assert.Equal(whole, await StreamedAsync(redactor, body, cut));
                    Assert.Equal(whole, await StreamedAsync(redactor, body, cut, before + (encoded.Length / 2)));
                }
            }
        }
    }

    [Fact]
    public async Task Of_two_values_where_one_begins_the_other_the_longer_is_redacted_whole_when_a_write_ends_between()
    {
        var redactor = new Redactor(["abcd-secret", "abcd-secret-and-more"]);
        var body = Encoding.UTF8.GetBytes(new string('x', 3000) + "abcd-secret-and-more abcd-secret abcd-secretabcd-secret-and-more" + new string('y', 3000));
        var whole = Whole(redactor, body);
        Assert.Equal(new string('x', 3000) + "[REDACTED] [REDACTED] [REDACTED][REDACTED]" + new string('y', 3000), Encoding.UTF8.GetString(whole));

        for (var cut = 2990; cut < 3070; cut++)
        {
            Assert.Equal(whole, await StreamedAsync(redactor, body, cut));
            Assert.Equal(whole, await StreamedAsync(redactor, body, cut, cut + 7));
        }

        // A value that ends the answer, inside the held-back window, is redacted at completion.
        Assert.Equal("x[REDACTED]", Encoding.UTF8.GetString(await StreamedAsync(redactor, Encoding.UTF8.GetBytes("xabcd-secret"))));
    }

    [Fact]
    public async Task Many_values_are_redacted_in_any_form_however_the_answer_is_cut()
    {
        // 50 values: hundreds of forms, past the vectorized byte filter (Aho-Corasick over chars).
        var values = Enumerable.Range(0, 50).Select(i => $"sk_live_{i}_4f9a1c2b7d8e4a6f9b0c").ToArray();
        await RandomCutsAsync(new Redactor(values), values, seed: 50);
    }

    [Fact]
    public async Task A_few_values_are_redacted_in_any_form_however_the_answer_is_cut()
    {
        string[] values = ["bench-upstream-token-0123456789", "Bearer bench-upstream-token-0123456789", NonAscii, Value];
        await RandomCutsAsync(new Redactor(values), values, seed: 3);
    }

    /// <summary>
    /// Fuzz: answers of filler with forms of the values planted (back to back, too), cut into writes of
    /// random sizes; the stream sends what redacting the whole answer sends, and that holds no planted form.
    /// </summary>
    private static async Task RandomCutsAsync(Redactor redactor, string[] values, int seed)
    {
        var random = new Random(seed);
        var forms = values.SelectMany(v => SecretForms.Of(v).Select(f => Bytes(f.Key, f.Value))).ToArray();
        for (var round = 0; round < 30; round++)
        {
            var body = new List<byte>();
            var planted = new List<byte[]>();
            while (body.Count < 200_000)
            {
                body.AddRange(Filler(random.Next(3) == 0 ? 0 : random.Next(round % 2 == 0 ? 100 : 20_000)));
                var form = forms[random.Next(forms.Length)];
                planted.Add(form);
                body.AddRange(form);
            }

            var bytes = body.ToArray();
            var whole = Whole(redactor, bytes);
            foreach (var form in planted)
            {
                Assert.Equal(-1, whole.AsSpan().IndexOf(form));
            }

            var cuts = new List<int>();
            for (var at = 0; at < bytes.Length; at += 1 + random.Next(random.Next(4) switch { 0 => 16, 1 => 1_000, _ => 70_000 }))
            {
                cuts.Add(at);
            }

            Assert.Equal(whole, await StreamedAsync(redactor, bytes, [.. cuts.Skip(1)]));
        }
    }

    /// <summary>JSON-like text with no escape introducer and nothing a form could be read into.</summary>
    private static byte[] Filler(int length)
    {
        var text = new StringBuilder(length + 32);
        for (var i = 0; text.Length < length; i++)
        {
            text.Append("{\"id\":").Append(i % 10).Append(",\"name\":\"item\"},");
        }

        return Encoding.UTF8.GetBytes(text.ToString(0, length));
    }

    private static byte[] Bytes(string form, string encoded) =>
        form.StartsWith("utf-16", StringComparison.Ordinal) ? Encoding.Latin1.GetBytes(encoded) : Encoding.UTF8.GetBytes(encoded);

    /// <summary>The answer redacted in one piece.</summary>
    private static byte[] Whole(Redactor redactor, byte[] body)
    {
        var redacted = new byte[redactor.RedactedLength(body)];
        redactor.Redact(body, redacted);
        return redacted;
    }

    /// <summary>The answer written to a redacting stream in pieces cut at <paramref name="cuts"/>.</summary>
    private static async Task<byte[]> StreamedAsync(Redactor redactor, byte[] body, params int[] cuts)
    {
        using var sink = new MemoryStream();
        var stream = new RedactingStream(sink, redactor);
        var from = 0;
        foreach (var cut in cuts.Where(c => c > 0 && c < body.Length).Order().Append(body.Length))
        {
            await stream.WriteAsync(body.AsMemory(from, cut - from));
            from = cut;
        }

        await stream.CompleteAsync(CancellationToken.None);
        return sink.ToArray();
    }
}

using System.Globalization;
using System.Text;
using System.Text.Json;
using Keyway.Secrets;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Secrets;

/// <summary>Every form in which an answer may carry a secret value is redacted, in text and in a stream split anywhere.</summary>
public sealed class RedactionFormTests
{
    private const string Value = "Canary/7f3a 9c1e+ö&secret";

    /// <summary>The forms an upstream may echo the value in, by name.</summary>
    public static TheoryData<string> FormNames() => [.. SecretForms.Of(Value).Keys];

    [Theory]
    [MemberData(nameof(FormNames))]
    public void Every_form_of_a_value_is_redacted_in_text(string form)
    {
        var redactor = new Redactor([Value]);
        var encoded = SecretForms.Of(Value)[form];
        if (form.StartsWith("utf-16", StringComparison.Ordinal))
        {
            // Bytes, not text: found in a body (a /run answer is withheld, the proxy's stream redacted).
            Assert.True(redactor.ContainsUtf8(Encoding.Latin1.GetBytes("before " + encoded + " after")));
            return;
        }

        var redacted = redactor.Redact("{\"echo\":\"before " + encoded + " after\"}");

        Assert.Contains(Secret.Redacted, redacted);
        Assert.DoesNotContain(encoded, redacted);
        Assert.StartsWith("{\"echo\":\"before ", redacted);
        Assert.EndsWith(" after\"}", redacted);
        Assert.DoesNotContain("7f3a", SecretForms.Decoded(redacted));
    }

    [Theory]
    [MemberData(nameof(FormNames))]
    public async Task Every_form_of_a_value_is_redacted_in_a_stream_however_it_is_split(string form)
    {
        var redactor = new Redactor([Value]);
        var encoded = SecretForms.Of(Value)[form];
        var body = form.StartsWith("utf-16", StringComparison.Ordinal)
            ? Encoding.Latin1.GetBytes("xx" + encoded + "yy")
            : Encoding.UTF8.GetBytes("{\"a\":\"" + encoded + "\",\"b\":\"" + encoded + "\"}");

        foreach (var chunk in new[] { 1, 2, 3, 5, 7, 13, 64, 4096 })
        {
            using var sink = new MemoryStream();
            var stream = new RedactingStream(sink, redactor);
            for (var i = 0; i < body.Length; i += chunk)
            {
                await stream.WriteAsync(body.AsMemory(i, Math.Min(chunk, body.Length - i)));
            }

            await stream.CompleteAsync(CancellationToken.None);
            var output = Encoding.Latin1.GetString(sink.ToArray());
            Assert.DoesNotContain(encoded, output);
            Assert.Contains(Secret.Redacted, output);
            Assert.DoesNotContain("7f3a", SecretForms.Decoded(output));
        }
    }

    [Fact]
    public void A_value_with_a_character_outside_the_basic_plane_is_found_as_a_json_surrogate_pair()
    {
        var value = "key-😀-canary";
        var redactor = new Redactor([value]);
        var escaped = string.Concat(value.Select(c => "\\u" + ((int)c).ToString("X4", CultureInfo.InvariantCulture)));

        Assert.Equal("x" + Secret.Redacted + "y", redactor.Redact("x" + escaped + "y"));
        Assert.Equal("x" + Secret.Redacted + "y", redactor.Redact("x" + value + "y"));
        Assert.Equal("x" + Secret.Redacted + "y", redactor.Redact("x" + Uri.EscapeDataString(value) + "y"));
    }

    [Fact]
    public void A_literal_backslash_in_a_value_is_found_raw_and_json_escaped()
    {
        var value = @"dom\user-pass";
        var redactor = new Redactor([value]);

        Assert.Equal("[" + Secret.Redacted + "]", redactor.Redact("[" + value + "]"));
        Assert.Equal("[" + Secret.Redacted + "]", redactor.Redact("[" + value.Replace("\\", "\\\\", StringComparison.Ordinal) + "]"));
        Assert.Equal("[" + Secret.Redacted + "]", redactor.Redact("[dom%5Cuser-pass]"));
    }

    [Fact]
    public void Text_with_escapes_but_no_value_is_returned_as_it_is()
    {
        var redactor = new Redactor([Value]);
        var text = "{\"a\":\"line\\nbreak \\u0041 %41 &amp; a+b \\/ &#99;\"}";

        Assert.Same(text, redactor.Redact(text));
        Assert.False(redactor.Contains(text));
    }

    [Fact]
    public void A_json_document_is_redacted_once_decoded_in_strings_property_names_and_numbers()
    {
        var redactor = new Redactor(["canary-value", "12345678"]);
        // A form only decoding reveals: percent-encoding written with JSON escapes.
        using var document = JsonDocument.Parse("""
            {"a":"\u0063anary-value","canary\u002dvalue":1,"canary-value":{"n":12345678,"s":"x"},"deep":["\u0025\u0036\u0033anary-value"]}
            """);

        var redacted = JsonRedaction.Redact(document.RootElement, redactor);
        var text = redacted.GetRawText();

        Assert.DoesNotContain("canary", text);
        Assert.DoesNotContain("12345678", text);
        Assert.Equal(Secret.Redacted, redacted.GetProperty("a").GetString());
        Assert.Equal(Secret.Redacted, redacted.GetProperty(Secret.Redacted).GetProperty("n").GetString());
        Assert.Equal(Secret.Redacted, redacted.GetProperty("deep")[0].GetString());
    }

    [Fact]
    public void Redactors_of_the_same_values_share_their_compiled_forms()
    {
        var one = new Redactor(["value-one", "value-two"]);
        var other = new Redactor(["value-two", "value-one", "value-one"]);

        Assert.Same(one.Forms, other.Forms);
        Assert.Same(one.Forms, one.Combine(new Redactor(["value-two"])).Forms);
    }

    [Fact]
    public async Task The_stream_holds_back_no_more_than_the_longest_form_and_sends_the_rest_at_once()
    {
        var redactor = new Redactor(["short-secret"]);
        using var sink = new MemoryStream();
        var stream = new RedactingStream(sink, redactor);
        var body = new byte[100_000];
        body.AsSpan().Fill((byte)'x');

        await stream.WriteAsync(body);

        Assert.Equal(body.Length - (redactor.Forms.MaxEncodedLength - 1), sink.Length);
    }
}

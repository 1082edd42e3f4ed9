using System.Globalization;
using System.Text;
using System.Text.Json;
using Keyway.Secrets;

namespace Keyway.Tests.Secrets;

/// <summary>Every form in which an answer may carry a secret value is redacted, in text and in a stream split anywhere.</summary>
public sealed class RedactionFormTests
{
    private const string Value = "Canary/7f3a 9c1e+ö&secret";

    /// <summary>The forms an upstream may echo the value in, by name.</summary>
    public static TheoryData<string> FormNames() => [.. Forms(Value).Keys];

    internal static Dictionary<string, string> Forms(string value)
    {
        var utf8 = Encoding.UTF8.GetBytes(value);
        string Base64At(int offset) => Convert.ToBase64String([.. Enumerable.Repeat((byte)'x', offset), .. utf8]);
        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["raw"] = value,
            ["json, short escapes"] = value.Replace("/", "\\/", StringComparison.Ordinal),
            ["json, every char as \\u lower"] = string.Concat(value.Select(c => "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture))),
            ["json, every char as \\u upper"] = string.Concat(value.Select(c => "\\u" + ((int)c).ToString("X4", CultureInfo.InvariantCulture))),
            ["json, mixed"] = string.Concat(value.Select((c, i) => i % 2 == 0 ? "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture) : c == '/' ? "\\/" : c.ToString())),
            ["json, System.Text.Json default"] = JsonEncodedText.Encode(value).ToString(),
            ["percent, upper"] = Uri.EscapeDataString(value),
            ["percent, lower"] = string.Concat(utf8.Select(b => "%" + b.ToString("x2", CultureInfo.InvariantCulture))),
            ["percent, + for space"] = Uri.EscapeDataString(value).Replace("%20", "+", StringComparison.Ordinal),
            ["percent, mixed"] = value.Replace("/", "%2f", StringComparison.Ordinal).Replace(" ", "+", StringComparison.Ordinal).Replace("ö", "%C3%b6", StringComparison.Ordinal),
            ["base64"] = Convert.ToBase64String(utf8),
            ["base64, no padding"] = Convert.ToBase64String(utf8).TrimEnd('='),
            ["base64url"] = Convert.ToBase64String(utf8).Replace('+', '-').Replace('/', '_').TrimEnd('='),
            ["base64 of user:secret"] = Convert.ToBase64String(Encoding.UTF8.GetBytes("svc:" + value)),
            ["base64 of any user:secret"] = Convert.ToBase64String(Encoding.UTF8.GetBytes("mallory-the-great:" + value)),
            ["base64 at offset 1"] = Base64At(1),
            ["base64 at offset 2"] = Base64At(2),
            ["base64url at offset 1"] = Base64At(1).Replace('+', '-').Replace('/', '_'),
            ["base64 in json with \\/"] = Base64At(2).Replace("/", "\\/", StringComparison.Ordinal),
            ["html decimal"] = string.Concat(value.Select(c => "&#" + (int)c + ";")),
            ["html hex"] = string.Concat(value.Select(c => "&#x" + ((int)c).ToString("x", CultureInfo.InvariantCulture) + ";")),
            ["html named"] = System.Net.WebUtility.HtmlEncode(value),
            ["html mixed, no semicolons"] = value.Replace("C", "&#67", StringComparison.Ordinal).Replace("&s", "&amp;s", StringComparison.Ordinal).Replace("/", "&sol;", StringComparison.Ordinal),
            ["utf-16 le"] = Encoding.Latin1.GetString(Encoding.Unicode.GetBytes(value)),
            ["utf-16 be"] = Encoding.Latin1.GetString(Encoding.BigEndianUnicode.GetBytes(value)),
        };
    }

    [Theory]
    [MemberData(nameof(FormNames))]
    public void Every_form_of_a_value_is_redacted_in_text(string form)
    {
        var redactor = new Redactor([Value]);
        var encoded = Forms(Value)[form];
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
        Assert.DoesNotContain("7f3a", Decoded(redacted));
    }

    [Theory]
    [MemberData(nameof(FormNames))]
    public async Task Every_form_of_a_value_is_redacted_in_a_stream_however_it_is_split(string form)
    {
        var redactor = new Redactor([Value]);
        var encoded = Forms(Value)[form];
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
            Assert.DoesNotContain("7f3a", Decoded(output));
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

    /// <summary>The text as a reader would decode it, every way at once: JSON, percent, HTML, base64 runs, UTF-16.</summary>
    private static string Decoded(string text)
    {
        var views = new List<string> { text };
        try
        {
            views.Add(JsonSerializer.Deserialize<string>("\"" + text.Replace("\"", "\\\"", StringComparison.Ordinal) + "\"") ?? "");
        }
        catch (JsonException)
        {
        }

        try
        {
            views.Add(Uri.UnescapeDataString(text.Replace('+', ' ')));
        }
        catch (UriFormatException)
        {
        }

        views.Add(System.Net.WebUtility.HtmlDecode(text));
        var bytes = Encoding.Latin1.GetBytes(text);
        views.Add(Encoding.Unicode.GetString(bytes));
        views.Add(Encoding.BigEndianUnicode.GetString(bytes));
        foreach (System.Text.RegularExpressions.Match run in System.Text.RegularExpressions.Regex.Matches(text.Replace("\\/", "/", StringComparison.Ordinal), "[A-Za-z0-9+/_-]{8,}={0,2}"))
        {
            for (var skip = 0; skip < 4; skip++)
            {
                var candidate = run.Value[skip..].TrimEnd('=').Replace('-', '+').Replace('_', '/');
                candidate = candidate[..(candidate.Length / 4 * 4)];
                try
                {
                    views.Add(Encoding.UTF8.GetString(Convert.FromBase64String(candidate)));
                }
                catch (FormatException)
                {
                }
            }
        }

        return string.Join("\n", views);
    }
}

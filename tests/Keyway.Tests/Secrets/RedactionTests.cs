using System.Text;
using Keyway.Secrets;

namespace Keyway.Tests.Secrets;

public sealed class RedactionTests
{
    [Fact]
    public void Known_values_are_replaced_longest_first()
    {
        var redactor = new Redactor(["abcd", "abcdefgh"]);

        Assert.Equal("x [REDACTED] y [REDACTED]", redactor.Redact("x abcdefgh y abcd"));
    }

    [Fact]
    public void A_value_echoed_escaped_in_json_or_a_url_is_redacted_too()
    {
        var redactor = new Redactor(["p\"ss/wörd+1"]);

        Assert.DoesNotContain("ss", redactor.Redact("{\"a\":\"p\\\"ss/w\\u00f6rd+1\"}"));
        Assert.DoesNotContain("ss", redactor.Redact("{\"a\":\"p\\u0022ss/w\\u00F6rd\\u002B1\"}"));
        Assert.DoesNotContain("ss", redactor.Redact("{\"a\":\"p\\\"ss/wörd+1\"}"));
        Assert.DoesNotContain("ss", redactor.Redact("/x?key=" + Uri.EscapeDataString("p\"ss/wörd+1")));
    }

    [Fact]
    public void Short_values_are_not_searched_for()
    {
        var redactor = new Redactor(["a", "xyz"]);

        Assert.True(redactor.IsEmpty);
        Assert.Equal("a xyz", redactor.Redact("a xyz"));
    }

    [Fact]
    public void Text_without_a_secret_is_returned_as_it_is()
    {
        var redactor = new Redactor(["secret-1"]);
        var text = "nothing to see";

        Assert.Same(text, redactor.Redact(text));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(7)]
    [InlineData(1000)]
    public async Task A_stream_redacts_values_split_across_writes(int chunk)
    {
        var redactor = new Redactor(["token-123456", "tok-9"]);
        var body = "{\"a\":\"token-123456\",\"b\":\"tok-9tok-9\",\"c\":\"token-12345\",\"d\":\"end token-123456\"}";
        using var sink = new MemoryStream();
        var stream = new RedactingStream(sink, redactor);
        var bytes = Encoding.UTF8.GetBytes(body);

        for (var i = 0; i < bytes.Length; i += chunk)
        {
            await stream.WriteAsync(bytes.AsMemory(i, Math.Min(chunk, bytes.Length - i)));
        }

        await stream.CompleteAsync(CancellationToken.None);

        Assert.Equal(redactor.Redact(body), Encoding.UTF8.GetString(sink.ToArray()));
        Assert.Equal(4, stream.Redactions);
    }

    [Fact]
    public async Task A_stream_without_a_match_passes_every_byte_through()
    {
        var bytes = new byte[100_000];
        Random.Shared.NextBytes(bytes);
        bytes.AsSpan().Replace((byte)'s', (byte)'x');
        using var sink = new MemoryStream();
        var stream = new RedactingStream(sink, new Redactor(["secret-value"]));

        await stream.WriteAsync(bytes.AsMemory(0, 50_000));
        await stream.WriteAsync(bytes.AsMemory(50_000));
        await stream.CompleteAsync(CancellationToken.None);

        Assert.Equal(bytes, sink.ToArray());
    }

    [Fact]
    public void A_secret_is_redacted_wherever_it_is_printed_and_never_serialized()
    {
        var secret = new Secret("canary-value");

        Assert.Equal("[REDACTED]", secret.ToString());
        Assert.Equal("[REDACTED]", $"{secret}");
        Assert.Throws<InvalidOperationException>(() => System.Text.Json.JsonSerializer.Serialize(new { secret }));
        Assert.Equal("canary-value", secret.Reveal());
    }
}

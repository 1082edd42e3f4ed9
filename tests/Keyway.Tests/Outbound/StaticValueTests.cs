using Keyway.Outbound;

namespace Keyway.Tests.Outbound;

public sealed class StaticValueTests
{
    [Theory]
    [InlineData("a\r\nX-Injected: 1")]
    [InlineData("a\nb")]
    [InlineData("a\rb")]
    [InlineData("a\0b")]
    [InlineData("Bearer {{ environment.variables.TOKEN }}\r\nX-Injected: 1")]
    [InlineData("\n{{ x }}")]
    public void A_line_break_or_NUL_written_outside_a_template_is_refused(string value) =>
        Assert.NotNull(HeaderRules.StaticValueError(value));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("plain value\twith a tab")]
    [InlineData("Bearer {{ environment.variables.TOKEN }}")]
    [InlineData("{{ a\n  ? b\n  : c }}")]
    [InlineData("{{ '}' }} x")]
    public void Written_text_without_line_breaks_and_line_breaks_inside_a_template_pass(string? value) =>
        Assert.Null(HeaderRules.StaticValueError(value));
}

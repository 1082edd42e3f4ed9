using System.Diagnostics;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Tests.Templates;

public sealed class SandboxTests
{
    private static readonly TemplateScope Scope = new TemplateScope()
        .With("inputs", new Dictionary<string, object?> { ["a"] = 1 });

    private static TemplateEvaluationException Fails(string text, TemplateLimits? limits = null) =>
        Assert.Throws<TemplateEvaluationException>(() =>
            Template.Parse(text, limits is null ? TemplateSandbox.Default : new TemplateSandbox(limits)).Render(Scope));

    [Fact]
    public void The_default_limits_are_100ms_10000_statements_4MB_and_depth_64()
    {
        var limits = TemplateLimits.Default;

        Assert.Equal(TimeSpan.FromMilliseconds(100), limits.Timeout);
        Assert.Equal(10_000, limits.MaxStatements);
        Assert.Equal(4 * 1024 * 1024, limits.MaxMemoryBytes);
        Assert.Equal(64, limits.MaxRecursionDepth);
    }

    [Fact]
    public void An_endless_loop_is_stopped_by_the_statement_limit()
    {
        var error = Fails("{{ (() => { while (true) {} })() }}");

        Assert.Equal("template_limit", error.Code);
        Assert.Equal(TemplateLimitKind.Statements, error.Limit);
        Assert.Contains("statement limit", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_endless_loop_is_stopped_by_the_time_limit_when_statements_are_unbounded()
    {
        var limits = TemplateLimits.Default with { Timeout = TimeSpan.FromMilliseconds(50), MaxStatements = int.MaxValue - 1 };
        var stopwatch = Stopwatch.StartNew();

        var error = Fails("{{ (() => { while (true) {} })() }}", limits);

        Assert.Equal(TemplateLimitKind.Time, error.Limit);
        Assert.Contains("time limit (50 ms)", error.Message, StringComparison.Ordinal);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(5), $"took {stopwatch.Elapsed}");
    }

    [Fact]
    public void A_catastrophic_regular_expression_is_stopped_by_the_time_limit()
    {
        var limits = TemplateLimits.Default with { Timeout = TimeSpan.FromMilliseconds(50) };

        var error = Fails("{{ /(a+)+$/.test('a'.repeat(40) + 'b') }}", limits);

        Assert.Equal(TemplateLimitKind.Time, error.Limit);
    }

    [Fact]
    public void Deep_recursion_is_stopped_by_the_recursion_limit()
    {
        var error = Fails("{{ (function f() { return f(); })() }}");

        Assert.Equal(TemplateLimitKind.Recursion, error.Limit);
        Assert.Contains("recursion limit (depth 64)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Recursion_without_statements_is_stopped_too()
    {
        var error = Fails("{{ (f => f(f))(f => f(f)) }}");

        Assert.Equal("template_limit", error.Code);
    }

    [Fact]
    public void A_huge_repeat_is_stopped_by_the_memory_limit_before_it_allocates()
    {
        var stopwatch = Stopwatch.StartNew();

        var error = Fails("{{ 'x'.repeat(1e9).length }}");

        Assert.Equal(TemplateLimitKind.Memory, error.Limit);
        Assert.Contains("memory limit", error.Message, StringComparison.Ordinal);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void A_repeat_just_over_the_limit_is_refused_and_script_catch_cannot_swallow_it()
    {
        var error = Fails("{{ (() => { try { return 'x'.repeat(3e6).length; } catch { return 'caught'; } })() }}");

        Assert.Equal(TemplateLimitKind.Memory, error.Limit);
    }

    [Fact]
    public void Growing_an_array_without_end_is_stopped_by_the_memory_limit()
    {
        var limits = TemplateLimits.Default with { MaxStatements = int.MaxValue - 1, Timeout = TimeSpan.FromSeconds(10) };

        var error = Fails("{{ (() => { const a = []; for (;;) { a.push('item number ' + a.length); } })() }}", limits);

        Assert.Equal(TemplateLimitKind.Memory, error.Limit);
    }

    [Fact]
    public void Doubling_a_string_is_stopped_by_the_memory_limit()
    {
        var error = Fails("{{ (() => { let s = 'x'; for (let i = 0; i < 40; i++) { s = s + s; } return s.length; })() }}");

        Assert.Equal(TemplateLimitKind.Memory, error.Limit);
    }

    [Fact]
    public void A_huge_array_is_refused()
    {
        var error = Fails("{{ new Array(1e8).fill(0).length }}");

        Assert.Equal(TemplateLimitKind.Memory, error.Limit);
    }

    [Fact]
    public void Limits_reset_for_every_evaluation()
    {
        var template = Template.Parse("{{ (() => { let n = 0; for (let i = 0; i < 3000; i++) { n++; } return n; })() }}");

        for (var i = 0; i < 5; i++)
        {
            Assert.Equal("3000", template.Render(Scope));
        }
    }

    [Theory]
    [InlineData("{{ this.constructor.constructor('return process')() }}")]
    [InlineData("{{ Function('return this')() }}")]
    [InlineData("{{ (() => {}).constructor('return globalThis')() }}")]
    [InlineData("{{ Object.getPrototypeOf(async function () {}).constructor('return 1') }}")]
    [InlineData("{{ eval('1 + 1') }}")]
    [InlineData("{{ (0, eval)('this') }}")]
    [InlineData("{{ importNamespace('System') }}")]
    [InlineData("{{ System.IO.File.ReadAllText('/etc/passwd') }}")]
    [InlineData("{{ clr.System }}")]
    [InlineData("{{ require('fs') }}")]
    [InlineData("{{ fetch('http://169.254.169.254/') }}")]
    [InlineData("{{ new ShadowRealm().evaluate('1') }}")]
    [InlineData("{{ new Uint8Array(1e9).length }}")]
    [InlineData("{{ host.getType() }}")]
    public void Escape_attempts_fail_with_a_template_error(string text)
    {
        var error = Fails(text);

        Assert.Equal("template_error", error.Code);
    }

    [Theory]
    [InlineData("{{ typeof importNamespace + typeof System + typeof clr + typeof require + typeof fetch + typeof process }}")]
    [InlineData("{{ typeof globalThis.importNamespace + typeof globalThis.System + typeof globalThis.host }}")]
    public void No_host_objects_exist_in_the_global_scope(string text)
    {
        Assert.DoesNotContain("object", Template.Parse(text).Render(Scope), StringComparison.Ordinal);
        Assert.DoesNotContain("function", Template.Parse(text).Render(Scope), StringComparison.Ordinal);
    }

    [Fact]
    public void The_global_object_is_an_ordinary_javascript_object()
    {
        var rendered = Template.Parse(
            "{{ [Object.getPrototypeOf(globalThis) === Object.prototype, globalThis.constructor === Object, typeof Function('') ] }}");

        var error = Assert.Throws<TemplateEvaluationException>(() => rendered.Render(Scope));
        Assert.Contains("String compilation", error.Message, StringComparison.Ordinal);
        Assert.Equal("true|true", Template.Parse(
            "{{ (Object.getPrototypeOf(globalThis) === Object.prototype) + '|' + (globalThis.constructor === Object) }}").Render(Scope));
    }

    [Fact]
    public void Scope_values_reach_the_script_as_plain_objects_not_host_objects()
    {
        var scope = new TemplateScope()
            .With("inputs", new Dictionary<string, object?> { ["list"] = new List<object?> { 1 } })
            .With("secret", new Secret("abcd-secret"));

        var rendered = Template.Parse(
            "{{ [Object.getPrototypeOf(inputs) === Object.prototype, Array.isArray(inputs.list), typeof secret, inputs.__proto__ === Object.prototype, typeof inputs.GetType].join('|') }}")
            .Render(scope);

        Assert.Equal("true|true|string|true|undefined", rendered);
    }

    [Fact]
    public void Pending_promise_jobs_do_not_escape_the_limits()
    {
        var limits = TemplateLimits.Default with { Timeout = TimeSpan.FromMilliseconds(50) };
        var stopwatch = Stopwatch.StartNew();

        try
        {
            Template.Parse("{{ (Promise.resolve().then(() => { for (;;) {} }), 1) }}", new TemplateSandbox(limits)).Render(Scope);
        }
        catch (TemplateEvaluationException error)
        {
            Assert.Equal("template_limit", error.Code);
        }

        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public void Invalid_limits_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TemplateSandbox(TemplateLimits.Default with { Timeout = TimeSpan.Zero }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TemplateSandbox(TemplateLimits.Default with { MaxStatements = 0 }));
    }
}

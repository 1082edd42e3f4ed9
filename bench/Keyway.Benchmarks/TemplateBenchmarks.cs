using BenchmarkDotNet.Attributes;
using Keyway.Access;
using Keyway.Environments;
using Keyway.Resources;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Benchmarks;

/// <summary>
/// <see cref="Template"/>: rendering per request (constant, member path, mixed text, script) over a
/// scope built the way Keyway builds it (<see cref="Scopes"/>), and parsing (done once, at load).
/// </summary>
[MemoryDiagnoser]
public class TemplateBenchmarks
{
    private const string MixedSource = "https://{{ environment.variables.HOST }}/v1/users/{{ inputs.id }}?team={{ current_user.name }}";
    private const string ScriptSource = "{{ inputs.id.toUpperCase() }}";

    private TemplateScope _scope = null!;
    private Template _constant = null!;
    private Template _memberPath = null!;
    private Template _mixed = null!;
    private Template _script = null!;

    [GlobalSetup]
    public void Setup()
    {
        var values = new EnvironmentValues("production", new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["HOST"] = "api.example.com",
            ["REGION"] = "eu-west-1",
            ["TOKEN"] = new Secret("sk_live_4f9a1c2b7d8e4a6f9b0c1d2e3f4a5b6c"),
            ["CLIENT_SECRET"] = new Secret("cs_0123456789abcdef0123456789abcdef"),
        });
        var caller = new Caller("usr_1", "alice", Caller.MemberRole, "key_1", "alice@example.com");
        var inputs = new Dictionary<string, object?>(StringComparer.Ordinal) { ["id"] = "ord_8f2k1m", ["limit"] = 50 };

        // The resource scope (every variable, secrets included, and current_user) plus a query's inputs.
        _scope = Scopes.ForResource(values, values.All, caller).With("inputs", inputs);

        _constant = Template.Parse("https://api.example.com/v1");
        _memberPath = Template.Parse("{{ environment.variables.TOKEN }}");
        _mixed = Template.Parse(MixedSource);
        _script = Template.Parse(ScriptSource);

        Check(_constant.Render(_scope) == "https://api.example.com/v1");
        Check(_memberPath.Render(_scope) == "sk_live_4f9a1c2b7d8e4a6f9b0c1d2e3f4a5b6c");
        Check(_mixed.Render(_scope) == "https://api.example.com/v1/users/ord_8f2k1m?team=alice");
        Check(_script.Render(_scope) == "ORD_8F2K1M");
    }

    [Benchmark(Baseline = true)]
    public string Render_constant() => _constant.Render(_scope);

    [Benchmark]
    public string Render_member_path() => _memberPath.Render(_scope);

    [Benchmark]
    public string Render_mixed() => _mixed.Render(_scope);

    [Benchmark]
    public string Render_script() => _script.Render(_scope);

    [Benchmark]
    public object Parse_mixed_member_paths() => Template.Parse(MixedSource);

    [Benchmark]
    public object Parse_script() => Template.Parse(ScriptSource);

    private static void Check(bool condition)
    {
        if (!condition)
        {
            throw new InvalidOperationException("The benchmark's setup does not render what it should.");
        }
    }
}

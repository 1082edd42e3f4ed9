using Keyway.Resources;
using Keyway.Tests.Credentials;

namespace Keyway.Tests.Resources;

/// <summary>Validation of the custom auth method: every mistake reported with its field.</summary>
public sealed class CustomFlowCompilerTests
{
    private static List<string> Errors(AuthDefinition auth)
    {
        var e = Assert.Throws<ResourceValidationException>(() => CustomFlowProviderTests.Compile(auth));
        return e.Errors.Select(x => x.Field + ": " + x.Message).ToList();
    }

    [Fact]
    public void A_valid_flow_compiles_its_templates_once_and_feeds_the_refresh_statuses()
    {
        var compiled = CustomFlowProviderTests.Compile(CustomFlowProviderTests.Flow() with
        {
            Refresh = new() { Statuses = [401, 419], BodyCondition = "{{ response.body.error == 'session expired' }}" },
        });

        Assert.Equal(2, compiled.Custom!.Steps.Count);
        Assert.Equal(new HashSet<int> { 401, 419 }, compiled.AuthFailureStatuses);
        Assert.NotNull(compiled.AuthFailureCondition);
        Assert.Contains("API_PASSWORD", compiled.Variables);
    }

    [Fact]
    public void Step_names_must_be_unique_identifiers_and_urls_absolute()
    {
        var errors = Errors(CustomFlowProviderTests.Flow() with
        {
            Steps =
            [
                CustomFlowProviderTests.Login with { Url = "/login" },
                new() { Type = "variable", Name = "login", Value = "x" },
                new() { Type = "variable", Name = "2fa", Value = "x" },
                new() { Type = "variable", Name = "TOKEN", Value = "{{ login.body.token }}", Url = "https://x" },
                new() { Type = "magic", Name = "m" },
            ],
        });

        Assert.Contains(errors, e => e.StartsWith("auth.steps[0].url:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("auth.steps[1].name: Another step", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("auth.steps[2].name: '2fa' is not an identifier", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("auth.steps[3].url: 'url' does not apply", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("auth.steps[4].type:", StringComparison.Ordinal));
    }

    [Fact]
    public void Apply_must_use_a_variable_and_never_a_step_response()
    {
        var constant = Errors(CustomFlowProviderTests.Flow() with { Apply = new() { Headers = new() { ["X-Static"] = "{{ environment.name }}" } } });
        var response = Errors(CustomFlowProviderTests.Flow() with { Apply = new() { Headers = new() { ["Authorization"] = "Bearer {{ login.body.token }}" } } });
        var missing = Errors(CustomFlowProviderTests.Flow() with { Apply = null });

        Assert.Contains(constant, e => e.StartsWith("auth.apply: auth.apply must use at least one", StringComparison.Ordinal));
        Assert.Contains(response, e => e.StartsWith("auth.apply.headers.Authorization: 'login' is a request step's response", StringComparison.Ordinal));
        Assert.Contains(missing, e => e.StartsWith("auth.apply:", StringComparison.Ordinal));
    }

    [Fact]
    public void A_step_cannot_read_a_step_that_runs_later_nor_the_caller()
    {
        var errors = Errors(CustomFlowProviderTests.Flow() with
        {
            Steps =
            [
                new() { Type = "variable", Name = "TOKEN", Value = "{{ login.body.token }}" },
                CustomFlowProviderTests.Login,
                new() { Type = "variable", Name = "WHO", Value = "{{ current_user.email }}" },
            ],
        });

        Assert.Contains(errors, e => e.StartsWith("auth.steps[0].value: 'login' is not defined yet", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("auth.steps[2].value: A custom flow's credential is shared", StringComparison.Ordinal));
    }

    [Fact]
    public void Fields_of_other_methods_are_refused_both_ways()
    {
        var onCustom = Errors(CustomFlowProviderTests.Flow() with { TokenUrl = "https://x/token", Token = "{{ environment.variables.T }}" });
        var onBearer = Errors(new AuthDefinition { Type = "bearer", Token = "{{ environment.variables.T }}", Steps = [], Apply = new() });
        var badCode = Errors(CustomFlowProviderTests.Flow(new AuthStepDefinition { Type = "javascript", Name = "js", Code = "}); while (true) {}; (function () {" }));

        Assert.Contains(onCustom, e => e.StartsWith("auth.tokenUrl:", StringComparison.Ordinal));
        Assert.Contains(onCustom, e => e.StartsWith("auth.token:", StringComparison.Ordinal));
        Assert.Contains(onBearer, e => e.StartsWith("auth.steps: 'steps' belongs to auth type 'custom'", StringComparison.Ordinal));
        Assert.Contains(onBearer, e => e.StartsWith("auth.apply:", StringComparison.Ordinal));
        Assert.Contains(badCode, e => e.StartsWith("auth.steps[2].code:", StringComparison.Ordinal));
    }
}

using Keyway.Templates;

namespace Keyway.Tests.Templates;

public sealed class VariableNamesTests
{
    [Fact]
    public void Member_paths_name_their_variables_and_paths()
    {
        var template = Template.Parse("{{ environment.variables.API_TOKEN }}:{{ environment.variables['client-id'] }}@{{ inputs.items[0].name }}");

        Assert.Equal(["API_TOKEN", "client-id"], template.VariableNames.Order(StringComparer.Ordinal));
        Assert.Equal(["environment.variables.API_TOKEN", "environment.variables['client-id']", "inputs.items[0].name"], template.ReferencedPaths);
        Assert.False(template.ReferencesAllVariables);
    }

    [Fact]
    public void Scripts_are_scanned_for_variable_names()
    {
        var template = Template.Parse("{{ 'Basic ' + btoa(environment.variables.USER + ':' + environment.variables[\"PASS\"]) + environment?.variables?.EXTRA }}");

        Assert.Equal(["EXTRA", "PASS", "USER"], template.VariableNames.Order(StringComparer.Ordinal));
        Assert.Contains("environment.variables.USER", template.ReferencedPaths);
        Assert.False(template.ReferencesAllVariables);
    }

    [Theory]
    [InlineData("{{ environment.variables }}")]
    [InlineData("{{ environment }}")]
    [InlineData("{{ JSON.stringify(environment.variables) }}")]
    [InlineData("{{ environment.variables[inputs.name] }}")]
    [InlineData("{{ (e => e.variables.X)(environment) }}")]
    [InlineData("{{ \\u0065nvironment }}")]
    [InlineData("{{ String(\\u{65}nvironment['vari' + 'ables']) }}")]
    public void Whole_or_dynamic_access_references_all_variables(string text)
    {
        Assert.True(Template.Parse(text).ReferencesAllVariables);
    }

    [Theory]
    [InlineData("{{ environment.name }}")]
    [InlineData("{{ environment.name === 'production' ? 'https://api' : 'https://staging' }}")]
    public void The_environment_name_is_not_a_variable(string text)
    {
        var template = Template.Parse(text);

        Assert.False(template.ReferencesAllVariables);
        Assert.Empty(template.VariableNames);
    }

    [Fact]
    public void A_name_written_with_unicode_escapes_is_read_as_the_engine_reads_it()
    {
        var template = Template.Parse("{{ String(\\u0065nvironment.variables.\\u0043S) + \\u{65}nvironment.variables.OTHER }}");

        Assert.Equal(["CS", "OTHER"], template.VariableNames.Order(StringComparer.Ordinal));
        Assert.False(template.ReferencesAllVariables);
    }

    [Fact]
    public void A_constant_template_references_nothing()
    {
        var template = Template.Parse("https://api.example.com");

        Assert.Empty(template.VariableNames);
        Assert.Empty(template.ReferencedPaths);
        Assert.False(template.ReferencesAllVariables);
    }

    [Fact]
    public void Similar_names_that_are_not_the_environment_root_are_ignored()
    {
        var template = Template.Parse("{{ login.environment.variables.X }}{{ myenvironment.variables.Y }}");

        Assert.Empty(template.VariableNames);
        Assert.False(template.ReferencesAllVariables);
    }
}

using System.Text;
using Keyway.Resources;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Tests.Resources;

public sealed class ResourceCompilerTests
{
    private static readonly TemplateScope Scope = new TemplateScope().With("environment", new Dictionary<string, object?>
    {
        ["variables"] = new Dictionary<string, object?>
        {
            ["TOKEN"] = new Secret("tok-123"),
            ["PASSWORD"] = new Secret("p@ss:word"),
            ["USER"] = "svc",
        },
    });

    private static CompiledResource Compile(AuthDefinition auth) =>
        ResourceCompiler.Compile("r", 1, new ResourceDefinition { BaseUrl = "https://api.example.com", Auth = auth });

    private static (Placement Where, string Name, string Value) Single(AuthDefinition auth)
    {
        var placement = Assert.Single(Compile(auth).Auth);
        return (placement.Location, placement.Name, placement.Value(Scope));
    }

    [Fact]
    public void Bearer_puts_the_token_in_the_authorization_header()
    {
        Assert.Equal((Placement.Header, "Authorization", "Bearer tok-123"),
            Single(new AuthDefinition { Type = "bearer", Token = "{{ environment.variables.TOKEN }}" }));
    }

    [Fact]
    public void Bearer_takes_another_scheme_word_or_none()
    {
        Assert.Equal("token tok-123", Single(new AuthDefinition { Type = "bearer", Prefix = "token", Token = "{{ environment.variables.TOKEN }}" }).Value);
        Assert.Equal("tok-123", Single(new AuthDefinition { Type = "bearer", Prefix = "", Token = "{{ environment.variables.TOKEN }}" }).Value);
    }

    [Fact]
    public void Basic_encodes_user_and_password_as_rfc_7617_says()
    {
        var expected = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("svc:p@ss:word"));
        Assert.Equal((Placement.Header, "Authorization", expected),
            Single(new AuthDefinition { Type = "basic", Username = "{{ environment.variables.USER }}", Password = "{{ environment.variables.PASSWORD }}" }));
    }

    [Theory]
    [InlineData("header", "Header")]
    [InlineData(null, "Header")]
    [InlineData("query", "Query")]
    [InlineData("cookie", "Cookie")]
    public void An_api_key_goes_where_it_is_configured_with_its_prefix(string? where, string expected)
    {
        Assert.Equal((Enum.Parse<Placement>(expected), "X-Api-Key", "Key tok-123"),
            Single(new AuthDefinition { Type = "apiKey", In = where, Name = "X-Api-Key", Prefix = "Key ", Value = "{{ environment.variables.TOKEN }}" }));
    }

    [Fact]
    public void No_auth_places_nothing()
    {
        Assert.Empty(Compile(new AuthDefinition { Type = "none" }).Auth);
        Assert.Empty(ResourceCompiler.Compile("r", 1, new ResourceDefinition { BaseUrl = "https://x.example" }).Auth);
    }

    [Theory]
    [InlineData("bearer", "token")]
    [InlineData("basic", "password")]
    [InlineData("apiKey", "value")]
    public void A_credential_written_in_plain_text_is_refused(string type, string field)
    {
        var auth = new AuthDefinition { Type = type, Token = "plain-secret", Username = "u", Password = "plain-secret", Name = "k", Value = "plain-secret" };

        var error = Assert.Throws<ResourceValidationException>(() => Compile(auth));

        Assert.Contains(error.Errors, e => e.Field == "auth." + field && e.Message.Contains("secret variable"));
        Assert.DoesNotContain("plain-secret", error.Message);
    }

    [Fact]
    public void Every_error_is_reported_at_once_with_its_field()
    {
        var definition = new ResourceDefinition
        {
            Kind = "soap",
            BaseUrl = "ftp://x",
            Headers = new() { ["Bad Header"] = "x", ["Connection"] = "close", ["X-Ok"] = "{{ unclosed" },
            Auth = new AuthDefinition { Type = "apiKey", In = "body" },
            Timeouts = new TimeoutDefinition { RequestMs = 0 },
            MaxResponseBytes = 0,
            FollowRedirects = "always",
        };

        var error = Assert.Throws<ResourceValidationException>(() => ResourceCompiler.Compile("bad name!", 1, definition));

        var fields = error.Errors.Select(e => e.Field).ToHashSet();
        Assert.Superset(new HashSet<string>
        {
            "name", "kind", "baseUrl", "headers.Bad Header", "headers.Connection", "headers.X-Ok", "auth.in", "auth.name", "auth.value",
            "timeouts.requestMs", "maxResponseBytes", "followRedirects",
        }, fields);
    }

    [Theory]
    [InlineData("https://user:pw@api.example.com")]
    [InlineData("https://api.example.com/#frag")]
    [InlineData("/relative")]
    [InlineData("javascript:alert(1)")]
    public void A_base_url_must_be_plain_absolute_http(string baseUrl)
    {
        var error = Assert.Throws<ResourceValidationException>(() => ResourceCompiler.Compile("r", 1, new ResourceDefinition { BaseUrl = baseUrl }));
        Assert.Contains(error.Errors, e => e.Field == "baseUrl");
    }

    [Fact]
    public void The_variables_a_resource_uses_and_whether_it_reads_the_caller_are_known_at_compile_time()
    {
        var resource = ResourceCompiler.Compile("r", 1, new ResourceDefinition
        {
            BaseUrl = "https://{{ environment.variables.HOST }}",
            Headers = new() { ["X-User"] = "{{ current_user.email }}" },
            Auth = new AuthDefinition { Type = "bearer", Token = "{{ environment.variables.TOKEN }}" },
        });

        Assert.Equal(new HashSet<string> { "HOST", "TOKEN" }, resource.Variables.ToHashSet());
        Assert.True(resource.UsesCurrentUser);
    }

    [Theory]
    [InlineData("oauth2", "client_credentials", null, "auth.scope")]
    [InlineData("oauth2", "jwt_bearer", null, "auth.assertion.subject")]
    [InlineData("oauth2", "authorization_code", null, "auth.scope")]
    [InlineData("githubApp", null, null, "auth.installationId")]
    public void A_shared_credentials_token_request_may_not_read_the_caller(string type, string? grant, bool? share, string field)
    {
        var auth = new AuthDefinition
        {
            Type = type,
            Grant = grant,
            TokenUrl = type == "oauth2" ? "https://id.example.com/token" : null,
            ClientId = type == "oauth2" ? "app" : null,
            ClientSecret = type == "oauth2" && grant != "jwt_bearer" ? "{{ environment.variables.TOKEN }}" : null,
            PrivateKey = type == "githubApp" || grant == "jwt_bearer" ? "{{ environment.variables.TOKEN }}" : null,
            Scope = field == "auth.scope" ? "read:{{ current_user.email }}" : null,
            Assertion = field == "auth.assertion.subject" ? new AuthAssertionDefinition { Issuer = "svc", Subject = "{{ current_user.email }}" } : null,
            AppId = type == "githubApp" ? "1" : null,
            InstallationId = type == "githubApp" ? "{{ current_user.claims.installation }}" : null,
        };
        var error = Assert.Throws<ResourceValidationException>(() =>
            ResourceCompiler.Compile("r", 1, new ResourceDefinition { BaseUrl = "https://api.example.com", Auth = auth, ShareCredentials = share }));
        var found = Assert.Single(error.Errors, e => e.Field == field);
        Assert.Contains("shared by everyone", found.Message);
    }

    [Fact]
    public void A_per_person_credential_and_a_shared_ones_headers_may_read_the_caller()
    {
        var perPerson = ResourceCompiler.Compile("r", 1, new ResourceDefinition
        {
            BaseUrl = "https://api.example.com",
            ShareCredentials = false,
            Auth = new AuthDefinition
            {
                Type = "oauth2",
                Grant = "authorization_code",
                TokenUrl = "https://id.example.com/token",
                AuthorizeUrl = "https://id.example.com/authorize",
                ClientId = "app",
                ClientSecret = "{{ environment.variables.TOKEN }}",
                Scope = "read:{{ current_user.email }}",
            },
        });
        Assert.True(perPerson.UsesCurrentUser);

        var shared = ResourceCompiler.Compile("r", 1, new ResourceDefinition
        {
            BaseUrl = "https://api.example.com",
            Headers = new() { ["X-On-Behalf-Of"] = "{{ current_user.email }}" },
            Auth = new AuthDefinition { Type = "oauth2", TokenUrl = "https://id.example.com/token", ClientId = "app", ClientSecret = "{{ environment.variables.TOKEN }}" },
        });
        Assert.True(shared.UsesCurrentUser);
    }

    [Theory]
    [InlineData("sts")]
    [InlineData("iam")]
    public void Services_whose_answers_mint_aws_credentials_are_never_signed_for_callers(string service)
    {
        var error = Assert.Throws<ResourceValidationException>(() => Compile(new AuthDefinition
        {
            Type = "awsSigV4",
            AccessKeyId = "AKIA0000",
            SecretAccessKey = "{{ environment.variables.TOKEN }}",
            Region = "us-east-1",
            Service = service,
        }));
        Assert.Contains("assumeRole", Assert.Single(error.Errors, e => e.Field == "auth.service").Message);
    }

    [Fact]
    public void An_assumed_roles_settings_may_not_read_the_caller_even_spelled_with_escapes()
    {
        var error = Assert.Throws<ResourceValidationException>(() => Compile(new AuthDefinition
        {
            Type = "awsSigV4",
            AccessKeyId = "AKIA0000",
            SecretAccessKey = "{{ environment.variables.TOKEN }}",
            Region = "us-east-1",
            Service = "execute-api",
            AssumeRole = new AuthAssumeRoleDefinition { RoleArn = "arn:aws:iam::123456789012:role/r", SessionName = "{{ \\u0063urrent_user.name.slice(0, 10) }}" },
        }));
        Assert.Contains("shared by everyone", Assert.Single(error.Errors, e => e.Field == "auth.assumeRole.sessionName").Message);
    }

    [Fact]
    public void Tls_settings_may_not_read_the_caller()
    {
        var error = Assert.Throws<ResourceValidationException>(() => ResourceCompiler.Compile("r", 1, new ResourceDefinition
        {
            BaseUrl = "https://api.example.com",
            Tls = new ResourceTlsDefinition { ClientCertificate = "{{ current_user.claims.cert }}", ClientKey = "{{ environment.variables.TOKEN }}" },
        }));
        Assert.Contains("current_user", Assert.Single(error.Errors, e => e.Field == "tls.clientCertificate").Message);
    }
}

using Keyway.Resources;

namespace Keyway.Tests.Resources;

/// <summary>How <c>auth.type: digest</c> and <c>oauth1</c> definitions are checked: each error with its field and what to do.</summary>
public sealed class DigestAndOAuth1CompilerTests
{
    private static CompiledResource Compile(AuthDefinition auth) =>
        ResourceCompiler.Compile("r", 1, new ResourceDefinition { BaseUrl = "https://api.example.com", Auth = auth });

    private static Dictionary<string, string> Errors(AuthDefinition auth) =>
        Assert.Throws<ResourceValidationException>(() => Compile(auth)).Errors.ToDictionary(e => e.Field, e => e.Message);

    [Fact]
    public void A_digest_resource_compiles_with_a_user_name_and_a_secret_password()
    {
        var resource = Compile(new AuthDefinition { Type = "digest", Username = "svc", Password = "{{ environment.variables.PASSWORD }}" });

        Assert.NotNull(resource.Digest);
        Assert.Empty(resource.Auth);
        Assert.Contains("PASSWORD", resource.RequestVariables);
    }

    [Fact]
    public void Digest_needs_a_user_name_and_a_password_kept_in_a_secret_variable()
    {
        var missing = Errors(new AuthDefinition { Type = "digest" });
        Assert.Equal("This field is required.", missing["auth.username"]);
        Assert.Equal("This field is required.", missing["auth.password"]);

        var plain = Errors(new AuthDefinition { Type = "digest", Username = "svc", Password = "hunter2-written-here", Token = "x" });
        Assert.Contains("secret variable", plain["auth.password"]);
        Assert.Equal("'token' does not apply to auth type 'digest'.", plain["auth.token"]);
    }

    [Fact]
    public void An_oauth1_resource_compiles_for_hmac_and_rsa()
    {
        var hmac = Compile(new AuthDefinition
        {
            Type = "oauth1",
            ConsumerKey = "ck",
            ConsumerSecret = "{{ environment.variables.CS }}",
            Token = "{{ environment.variables.T }}",
            TokenSecret = "{{ environment.variables.TS }}",
            Realm = "Photos",
        });
        Assert.Equal("HMAC-SHA1", hmac.OAuth1!.SignatureMethod);
        Assert.Superset(new HashSet<string> { "CS", "T", "TS" }, new HashSet<string>(hmac.RequestVariables));

        var rsa = Compile(new AuthDefinition { Type = "oauth1", SignatureMethod = "RSA-SHA1", ConsumerKey = "ck", PrivateKey = "{{ environment.variables.KEY }}", In = "query" });
        Assert.Equal("RSA-SHA1", rsa.OAuth1!.SignatureMethod);
        Assert.True(rsa.OAuth1.InQuery);
    }

    [Fact]
    public void Oauth1_refuses_an_unknown_signature_method_and_says_which_there_are()
    {
        var errors = Errors(new AuthDefinition { Type = "oauth1", SignatureMethod = "PLAINTEXT", ConsumerKey = "ck", ConsumerSecret = "{{ environment.variables.CS }}" });

        Assert.Equal("'PLAINTEXT' is not an OAuth 1.0a signature method Keyway signs with; use HMAC-SHA1, HMAC-SHA256 or RSA-SHA1.", errors["auth.signatureMethod"]);
    }

    [Fact]
    public void Oauth1_says_which_secret_each_signature_method_needs()
    {
        var hmac = Errors(new AuthDefinition { Type = "oauth1", Token = "t" });
        Assert.Equal("This field is required.", hmac["auth.consumerKey"]);
        Assert.Contains("HMAC-SHA1 signs with the consumer secret", hmac["auth.consumerSecret"]);
        Assert.Contains("give tokenSecret as a secret variable", hmac["auth.tokenSecret"]);

        var rsa = Errors(new AuthDefinition { Type = "oauth1", SignatureMethod = "RSA-SHA1", ConsumerKey = "ck", ConsumerSecret = "{{ environment.variables.CS }}" });
        Assert.Contains("RSA-SHA1 signs with an RSA private key", rsa["auth.privateKey"]);
        Assert.Contains("remove consumerSecret and tokenSecret", rsa["auth.consumerSecret"]);

        var plain = Errors(new AuthDefinition { Type = "oauth1", ConsumerKey = "ck", ConsumerSecret = "written-in-plain-text", In = "body" });
        Assert.Contains("secret variable", plain["auth.consumerSecret"]);
        Assert.Contains("'body' is not where OAuth 1.0a parameters go", plain["auth.in"]);
    }

    [Fact]
    public void Oauth1_fields_on_another_auth_type_are_refused_by_name()
    {
        var errors = Errors(new AuthDefinition { Type = "bearer", Token = "{{ environment.variables.T }}", ConsumerKey = "ck", SignatureMethod = "HMAC-SHA1" });

        Assert.Equal("'consumerKey' belongs to auth type 'oauth1', not 'bearer'.", errors["auth.consumerKey"]);
        Assert.Equal("'signatureMethod' belongs to auth type 'oauth1', not 'bearer'.", errors["auth.signatureMethod"]);
    }
}

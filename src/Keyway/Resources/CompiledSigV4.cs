using System.Text.RegularExpressions;
using Keyway.Api;
using Keyway.Outbound;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>
/// <c>auth.type: awsSigV4</c>: every request to the resource is signed with AWS Signature Version 4 for one
/// region and service, with an access key from the environment's variables (<see cref="AwsSigV4Signer"/>).
/// </summary>
internal sealed partial class CompiledSigV4
{
    public const string Type = "awsSigV4";

    public required Template AccessKeyId { get; init; }

    public required Template SecretAccessKey { get; init; }

    public Template? SessionToken { get; init; }

    public required string Region { get; init; }

    public required string Service { get; init; }

    public bool UnsignedPayload { get; init; }

    public static CompiledSigV4? Compile(
        AuthDefinition auth, List<FieldError> errors, Func<string, string?, bool, Template?> parse, Func<string, string?, Template?> secret)
    {
        var accessKeyId = Require(parse("auth.accessKeyId", auth.AccessKeyId, true), "auth.accessKeyId",
            "Give the access key id, e.g. {{ environment.variables.AWS_ACCESS_KEY_ID }}.", errors);
        var secretAccessKey = Require(secret("auth.secretAccessKey", auth.SecretAccessKey), "auth.secretAccessKey",
            "Give the secret access key as a secret variable: {{ environment.variables.AWS_SECRET_ACCESS_KEY }}.", errors);
        var sessionToken = auth.SessionToken is null ? null : secret("auth.sessionToken", auth.SessionToken);
        var region = Name(auth.Region, "auth.region", "the region requests are signed for, e.g. us-east-1", errors);
        var service = Name(auth.Service, "auth.service", "the service requests are signed for, e.g. s3, execute-api or sqs", errors);
        return accessKeyId is null || secretAccessKey is null || region is null || service is null
            ? null
            : new CompiledSigV4
            {
                AccessKeyId = accessKeyId,
                SecretAccessKey = secretAccessKey,
                SessionToken = sessionToken,
                Region = region,
                Service = service,
                UnsignedPayload = auth.UnsignedPayload ?? false,
            };
    }

    /// <summary>The signer for one resolution: the key read from the environment, never kept in the definition.</summary>
    public AwsSigV4Signer Render(TemplateScope scope, List<string> derived)
    {
        var accessKeyId = AccessKeyId.Render(scope);
        var secretAccessKey = SecretAccessKey.Render(scope);
        var sessionToken = SessionToken?.Render(scope);
        derived.Add(secretAccessKey);
        if (sessionToken is not null)
        {
            derived.Add(sessionToken);
        }

        if (string.IsNullOrWhiteSpace(accessKeyId) || secretAccessKey.Length == 0)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                "The AWS access key id or secret access key of this resource is empty in this environment: set the variables they read.");
        }

        return new AwsSigV4Signer(accessKeyId, new Secret(secretAccessKey), string.IsNullOrEmpty(sessionToken) ? null : new Secret(sessionToken), Region, Service);
    }

    private static Template? Require(Template? template, string field, string message, List<FieldError> errors)
    {
        if (template is null && !errors.Any(e => e.Field == field))
        {
            errors.Add(new FieldError(field, message));
        }

        return template;
    }

    private static string? Name(string? value, string field, string what, List<FieldError> errors)
    {
        if (value is not null && AwsName().IsMatch(value))
        {
            return value;
        }

        errors.Add(new FieldError(field, value is null
            ? $"Give {what}."
            : $"'{value}' is not an AWS {field[5..]} name (lowercase letters, digits and '-'): give {what}."));
        return null;
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,62}$")]
    private static partial Regex AwsName();
}

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

    /// <summary>Services whose answers mint credentials (STS, IAM access keys, SSO and Cognito role credentials): never signed for callers.</summary>
    private static readonly HashSet<string> CredentialServices = new(StringComparer.Ordinal) { "sts", "iam", "sso", "cognito-identity" };

    public required Template AccessKeyId { get; init; }

    public required Template SecretAccessKey { get; init; }

    public Template? SessionToken { get; init; }

    public required string Region { get; init; }

    public required string Service { get; init; }

    public bool UnsignedPayload { get; init; }

    /// <summary>The role to assume, or null to sign with the key itself.</summary>
    public CompiledAssumeRole? AssumeRole { get; init; }

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
        if (service is not null && CredentialServices.Contains(service))
        {
            // GetSessionToken needs no permission and answers with new credentials: a caller could take a key's rights out.
            errors.Add(new FieldError("auth.service",
                $"Keyway does not sign '{service}' requests for callers: its answers carry new AWS credentials, which Keyway has never seen and could not " +
                "redact. To sign with a role's credentials, set auth.assumeRole and Keyway obtains them itself."));
            service = null;
        }

        var assumeRole = auth.AssumeRole is null ? null : CompiledAssumeRole.Compile(auth.AssumeRole, errors, parse);
        return accessKeyId is null || secretAccessKey is null || region is null || service is null
            ? null
            : new CompiledSigV4
            {
                AssumeRole = assumeRole,
                AccessKeyId = accessKeyId,
                SecretAccessKey = secretAccessKey,
                SessionToken = sessionToken,
                Region = region,
                Service = service,
                UnsignedPayload = auth.UnsignedPayload ?? false,
            };
    }

    /// <summary>
    /// The signer for one resolution: the key read from the environment, never kept in the definition. With a role to
    /// assume, it signs the STS request (service <c>sts</c>) and the temporary credentials sign the rest.
    /// </summary>
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

        return new AwsSigV4Signer(accessKeyId, new Secret(secretAccessKey), string.IsNullOrEmpty(sessionToken) ? null : new Secret(sessionToken), Region,
            AssumeRole is null ? Service : "sts");
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

/// <summary>An awsSigV4 resource's <c>assumeRole</c>, validated, its templates parsed once.</summary>
internal sealed partial class CompiledAssumeRole
{
    public required Template RoleArn { get; init; }

    public Template? SessionName { get; init; }

    public Template? ExternalId { get; init; }

    public Template? StsUrl { get; init; }

    public required int DurationSeconds { get; init; }

    public static CompiledAssumeRole? Compile(AuthAssumeRoleDefinition role, List<FieldError> errors, Func<string, string?, bool, Template?> parse)
    {
        var roleArn = parse("auth.assumeRole.roleArn", role.RoleArn, true);
        if (role.RoleArn is { } arn && !arn.Contains("{{", StringComparison.Ordinal) && !RoleArnPattern().IsMatch(arn))
        {
            errors.Add(new FieldError("auth.assumeRole.roleArn", $"'{arn}' is not a role ARN: give arn:aws:iam::ACCOUNT:role/NAME."));
        }

        if (role.SessionName is { } name && !name.Contains("{{", StringComparison.Ordinal) && !SessionNamePattern().IsMatch(name))
        {
            errors.Add(new FieldError("auth.assumeRole.sessionName", "A role session name is 2 to 64 letters, digits and =,.@- characters."));
        }

        if (role.DurationSeconds is < 900 or > 43200)
        {
            errors.Add(new FieldError("auth.assumeRole.durationSeconds", "Must be between 900 and 43200 seconds (STS's bounds; the role's maximum session duration bounds it too)."));
        }

        if (role.StsUrl is { } url && !url.Contains("{{", StringComparison.Ordinal) && ResourceCompiler.CheckBaseUrl(url) is { } urlError)
        {
            errors.Add(new FieldError("auth.assumeRole.stsUrl", urlError));
        }

        return roleArn is null
            ? null
            : new CompiledAssumeRole
            {
                RoleArn = roleArn,
                SessionName = parse("auth.assumeRole.sessionName", role.SessionName, false),
                ExternalId = parse("auth.assumeRole.externalId", role.ExternalId, false),
                StsUrl = parse("auth.assumeRole.stsUrl", role.StsUrl, false),
                DurationSeconds = role.DurationSeconds ?? 3600,
            };
    }

    /// <summary>The STS request's settings for one environment; <paramref name="stsSigner"/> signs it with the long-term key.</summary>
    public Credentials.AssumeRoleSettings Render(TemplateScope scope, AwsSigV4Signer stsSigner, CompiledSigV4 sigV4)
    {
        var roleArn = RoleArn.Render(scope).Trim();
        var sessionName = SessionName?.Render(scope).Trim() is { Length: > 0 } n ? n : "keyway";
        var stsUrl = StsUrl?.Render(scope).Trim() is { Length: > 0 } u ? u : $"https://sts.{sigV4.Region}.amazonaws.com/";
        if (!RoleArnPattern().IsMatch(roleArn) || !SessionNamePattern().IsMatch(sessionName))
        {
            throw Invalid("auth.assumeRole.roleArn or sessionName does not give a role ARN and session name in this environment: check the variables they read.");
        }

        if (ResourceCompiler.CheckBaseUrl(stsUrl) is not null)
        {
            throw Invalid("auth.assumeRole.stsUrl does not give an absolute https:// URL in this environment: check the variables it reads.");
        }

        return new Credentials.AssumeRoleSettings
        {
            StsSigner = stsSigner,
            StsUrl = new Uri(stsUrl),
            RoleArn = roleArn,
            SessionName = sessionName,
            ExternalId = ExternalId?.Render(scope) is { Length: > 0 } externalId ? externalId : null,
            DurationSeconds = DurationSeconds,
            Region = sigV4.Region,
            Service = sigV4.Service,
        };

        static KeywayException Invalid(string message) => new(StatusCodes.Status400BadRequest, "invalid_config", message);
    }

    [GeneratedRegex(@"^arn:aws[a-z-]*:iam::\d{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$")]
    private static partial Regex RoleArnPattern();

    [GeneratedRegex(@"^[A-Za-z0-9_+=,.@-]{2,64}$")]
    private static partial Regex SessionNamePattern();
}

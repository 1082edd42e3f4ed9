using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Xml.Linq;
using Keyway.Outbound;
using Keyway.Secrets;

namespace Keyway.Credentials;

/// <summary>An <c>awsSigV4</c> resource's <c>assumeRole</c>, every template evaluated for one environment.</summary>
internal sealed record AssumeRoleSettings
{
    /// <summary>Signs the STS request with the long-term key the resource's variables hold.</summary>
    public required AwsSigV4Signer StsSigner { get; init; }

    /// <summary>The STS endpoint, <c>https://sts.REGION.amazonaws.com</c> unless set.</summary>
    public required Uri StsUrl { get; init; }

    public required string RoleArn { get; init; }

    public required string SessionName { get; init; }

    public string? ExternalId { get; init; }

    public required int DurationSeconds { get; init; }

    /// <summary>The region and service the temporary credentials sign the resource's requests for.</summary>
    public required string Region { get; init; }

    public required string Service { get; init; }

    /// <summary>The secrets bound to origins among those the settings were rendered from: checked on the STS request.</summary>
    public SecretBindings Bindings { get; init; } = SecretBindings.None;

    /// <summary>The versions of the secret variables the settings were rendered from: a new key gets new credentials.</summary>
    public string SecretVersions { get; init; } = "";

    public string ParametersHash => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join('\n',
        "assumeRole", StsUrl.AbsoluteUri, RoleArn, SessionName, ExternalId ?? "", DurationSeconds.ToString(CultureInfo.InvariantCulture), Region, Service,
        SecretVersions))))[..32];
}

/// <summary>
/// AWS STS <c>AssumeRole</c> (the Query API, <c>Version=2011-06-15</c>): a form POST signed with the resource's long-term
/// key (SigV4, service <c>sts</c>), answered with temporary credentials that the credential engine keeps like any token:
/// the session token as the access token, the access key id and secret access key beside it, refreshed before they expire.
/// </summary>
internal sealed class AwsStsClient(HttpClient http, TimeProvider time)
{
    public const string AccessKeyIdField = "accessKeyId";
    public const string SecretAccessKeyField = "secretAccessKey";

    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

    public async Task<TokenResult> AssumeRoleAsync(AssumeRoleSettings settings, CancellationToken cancellationToken)
    {
        var url = settings.StsUrl;
        if (settings.Bindings.FirstRefusing(url) is { } refusing)
        {
            return TokenResult.Fail(FailureKind.Misconfigured, SecretBindings.Refused(refusing, url, "the STS AssumeRole request").Message);
        }

        var form = new List<KeyValuePair<string, string>>
        {
            new("Action", "AssumeRole"),
            new("Version", "2011-06-15"),
            new("RoleArn", settings.RoleArn),
            new("RoleSessionName", settings.SessionName),
            new("DurationSeconds", settings.DurationSeconds.ToString(CultureInfo.InvariantCulture)),
        };
        if (settings.ExternalId is { } externalId)
        {
            form.Add(new("ExternalId", externalId));
        }

        var body = Encoding.UTF8.GetBytes(string.Join('&', form.Select(p => Uri.EscapeDataString(p.Key) + "=" + Uri.EscapeDataString(p.Value))));
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/x-www-form-urlencoded") { CharSet = "utf-8" };
        request.Headers.Accept.ParseAdd("application/xml");
        var sentAt = time.GetUtcNow();
        settings.StsSigner.Sign(request, Convert.ToHexStringLower(SHA256.HashData(body)), sentAt);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(RequestTimeout);
        HttpResponseMessage response;
        string text;
        try
        {
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            text = await ReadBoundedAsync(response, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return TokenResult.Fail(FailureKind.Transient, $"STS did not answer the AssumeRole request within {RequestTimeout.TotalSeconds:0} s.");
        }
        catch (HttpRequestException e)
        {
            return TokenResult.Fail(FailureKind.Transient, $"STS could not be reached for AssumeRole: {e.HttpRequestError}.");
        }

        using (response)
        {
            var status = (int)response.StatusCode;
            if (response.IsSuccessStatusCode && Credentials(text) is { } credentials)
            {
                var expiresAt = credentials.Expiration is { } at && at < sentAt.AddSeconds(settings.DurationSeconds) ? at : sentAt.AddSeconds(settings.DurationSeconds);
                return TokenResult.Success(new TokenSet
                {
                    AccessToken = new Secret(credentials.SessionToken),
                    TokenType = "aws-sts",
                    ObtainedAt = time.GetUtcNow(),
                    ExpiresAt = expiresAt,
                    Extras = new Dictionary<string, Secret>(StringComparer.Ordinal)
                    {
                        [AccessKeyIdField] = new(credentials.AccessKeyId),
                        [SecretAccessKeyField] = new(credentials.SecretAccessKey),
                    },
                });
            }

            // STS's error code and message name the role or the key id, never a secret; bounded all the same.
            var (code, message) = Error(text);
            var said = code is null ? "" : $" ({code}{(message is null ? "" : ": " + Truncate(message))})";
            if (status is 0 or 408 or 429 or >= 500 || code is "Throttling" or "ThrottlingException" or "RequestExpired" || response.IsSuccessStatusCode)
            {
                TimeSpan? retryAfter = response.Headers.RetryAfter is { } header ? header.Delta ?? (header.Date - time.GetUtcNow()) : null;
                return TokenResult.Fail(FailureKind.Transient, response.IsSuccessStatusCode
                    ? "STS's answer to AssumeRole held no credentials."
                    : $"STS answered AssumeRole with {status}{said}.", retryAfter);
            }

            var hint = code switch
            {
                "AccessDenied" => " Check auth.assumeRole.roleArn and that the role's trust policy lets this key (and external id) assume it.",
                "InvalidClientTokenId" or "SignatureDoesNotMatch" => " Check auth.accessKeyId and auth.secretAccessKey: they sign the AssumeRole request.",
                "ValidationError" => " Check auth.assumeRole (the role ARN, session name and duration).",
                _ => "",
            };
            return TokenResult.Fail(FailureKind.Misconfigured, $"STS refused AssumeRole with {status}{said}.{hint}");
        }
    }

    /// <summary>STS answers in a few kilobytes; more is not an STS answer, and is not read.</summary>
    private const int MaxAnswerBytes = 64 * 1024;

    private static async Task<string> ReadBoundedAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[MaxAnswerBytes];
        var read = 0;
        while (read < buffer.Length && await stream.ReadAsync(buffer.AsMemory(read), cancellationToken) is var count and > 0)
        {
            read += count;
        }

        return Encoding.UTF8.GetString(buffer, 0, read);
    }

    /// <summary>Parsed without a DTD: an answer that declares one is not STS's.</summary>
    private static XDocument Parse(string xml)
    {
        using var reader = System.Xml.XmlReader.Create(new StringReader(xml), new System.Xml.XmlReaderSettings { DtdProcessing = System.Xml.DtdProcessing.Prohibit, XmlResolver = null });
        return XDocument.Load(reader);
    }

    private static (string AccessKeyId, string SecretAccessKey, string SessionToken, DateTimeOffset? Expiration)? Credentials(string xml)
    {
        try
        {
            var credentials = Parse(xml).Descendants().FirstOrDefault(e => e.Name.LocalName == "Credentials");
            string? Field(string name) => credentials?.Elements().FirstOrDefault(e => e.Name.LocalName == name)?.Value.Trim();
            if (Field("AccessKeyId") is not { Length: > 0 } id || Field("SecretAccessKey") is not { Length: > 0 } key ||
                Field("SessionToken") is not { Length: > 0 } token)
            {
                return null;
            }

            DateTimeOffset? expiration = DateTimeOffset.TryParse(Field("Expiration"), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var at) ? at : null;
            return (id, key, token, expiration);
        }
        catch (System.Xml.XmlException)
        {
            return null;
        }
    }

    private static (string? Code, string? Message) Error(string xml)
    {
        try
        {
            var error = Parse(xml).Descendants().FirstOrDefault(e => e.Name.LocalName == "Error");
            string? Field(string name) => error?.Elements().FirstOrDefault(e => e.Name.LocalName == name)?.Value.Trim();
            return (Field("Code"), Field("Message"));
        }
        catch (System.Xml.XmlException)
        {
            return (null, null);
        }
    }

    private static string Truncate(string text) => text.Length <= 200 ? text : text[..200] + "…";
}

/// <summary>The <c>assumeRole</c> of an awsSigV4 resource as the engine sees it: acquired without a person, renewed by assuming the role again.</summary>
internal sealed class AssumeRoleProvider(AwsStsClient client, AssumeRoleSettings settings) : ITokenProvider
{
    public AssumeRoleSettings Settings { get; } = settings;

    public bool CanAcquire => true;

    public string ParametersHash { get; } = settings.ParametersHash;

    public TimeSpan? DefaultLifetime => TimeSpan.FromSeconds(Settings.DurationSeconds);

    public Task<TokenResult> AcquireAsync(CredentialKey key, CancellationToken cancellationToken) => client.AssumeRoleAsync(Settings, cancellationToken);

    public Task<TokenResult> RefreshAsync(CredentialKey key, TokenSet current, CancellationToken cancellationToken) => client.AssumeRoleAsync(Settings, cancellationToken);
}

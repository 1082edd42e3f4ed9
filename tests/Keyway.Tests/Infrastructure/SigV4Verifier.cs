using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Keyway.Tests.Infrastructure;

/// <summary>The credentials, region and service a request should be signed with.</summary>
public sealed record SigV4Expectation(string AccessKeyId, string SecretAccessKey, string? SessionToken, string Region, string Service);

/// <summary>
/// Checks the AWS Signature Version 4 signatures of requests an upstream received with botocore, the AWS SDK
/// for Python's signer (tests/sigv4-verifier; Debian's python3-botocore, installed by scripts/test.sh): an
/// implementation that shares nothing with Keyway's.
/// </summary>
internal static class SigV4Verifier
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);

    public static async Task<IReadOnlyList<VerifierVerdict>> VerifyAsync(IReadOnlyList<UpstreamRequest> requests, SigV4Expectation expected)
    {
        var input = new JsonArray(requests.Select(r => (JsonNode)new JsonObject
        {
            ["method"] = r.Method,
            ["target"] = r.RawTarget,
            ["headers"] = new JsonObject(r.Headers.Select(h => KeyValuePair.Create(h.Key, (JsonNode?)h.Value))),
            ["body"] = Convert.ToBase64String(Encoding.UTF8.GetBytes(r.Body)),
            ["accessKeyId"] = expected.AccessKeyId,
            ["secretAccessKey"] = expected.SecretAccessKey,
            ["sessionToken"] = expected.SessionToken,
            ["region"] = expected.Region,
            ["service"] = expected.Service,
        }).ToArray()).ToJsonString();
        var result = await ProcessRunner.RunAsync("/usr/bin/python3", [Path.Combine(Directory(), "verify.py")], standardInput: input, workingDirectory: Directory());
        Assert.True(result.ExitCode == 0, "python3 verify.py failed (is python3-botocore installed? scripts/test.sh installs it): " + result.Output);
        return JsonSerializer.Deserialize<List<VerifierVerdict>>(result.StandardOutput, s_json)!;
    }

    private static string Directory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "sigv4-verifier");
            if (File.Exists(Path.Combine(candidate, "verify.py")))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/sigv4-verifier is not above " + AppContext.BaseDirectory);
    }
}

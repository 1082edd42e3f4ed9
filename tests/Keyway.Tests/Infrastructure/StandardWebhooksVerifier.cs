using System.Text.Json;
using System.Text.Json.Nodes;

namespace Keyway.Tests.Infrastructure;

/// <summary>One delivery as a receiver saw it, to verify.</summary>
public sealed record ReceivedWebhook(string Secret, string Id, string Timestamp, string Signature, string Body);

/// <summary>What the independent verifier said about one delivery.</summary>
public sealed record VerifierVerdict(bool Ok, string? Error, string? Type);

/// <summary>
/// Verifies webhook deliveries in a real node process with the npm <c>standardwebhooks</c> package
/// (tests/webhook-verifier, installed by scripts/test.sh): an implementation that shares nothing with Keyway's.
/// </summary>
internal static class StandardWebhooksVerifier
{
    private static readonly JsonSerializerOptions s_json = new(JsonSerializerDefaults.Web);

    public static async Task<IReadOnlyList<VerifierVerdict>> VerifyAsync(IReadOnlyList<ReceivedWebhook> deliveries)
    {
        var script = Path.Combine(Directory(), "verify.mjs");
        var input = new JsonArray(deliveries.Select(d => (JsonNode)new JsonObject
        {
            ["secret"] = d.Secret,
            ["id"] = d.Id,
            ["timestamp"] = d.Timestamp,
            ["signature"] = d.Signature,
            ["body"] = d.Body,
        }).ToArray()).ToJsonString();
        var result = await ProcessRunner.RunAsync("node", [script], standardInput: input, workingDirectory: Directory());
        Assert.True(result.ExitCode == 0, "node verify.mjs failed: " + result.Output);
        return JsonSerializer.Deserialize<List<VerifierVerdict>>(result.StandardOutput, s_json)!;
    }

    public static ReceivedWebhook From(UpstreamRequest request, string secret) => new(
        secret, request.Headers["webhook-id"], request.Headers["webhook-timestamp"], request.Headers["webhook-signature"], request.Body);

    private static string Directory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "webhook-verifier");
            if (File.Exists(Path.Combine(candidate, "verify.mjs")))
            {
                Assert.True(System.IO.Directory.Exists(Path.Combine(candidate, "node_modules", "standardwebhooks")),
                    $"{candidate} has no node_modules: run scripts/test.sh (it runs npm ci there) or 'npm ci --prefix tests/webhook-verifier'.");
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/webhook-verifier is not above " + AppContext.BaseDirectory);
    }
}

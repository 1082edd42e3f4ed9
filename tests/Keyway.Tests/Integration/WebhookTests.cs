using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Keyway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Keyway.Tests.Integration;

/// <summary>Webhook endpoints and deliveries through a real <c>keyway serve</c>, to a real receiver on loopback.</summary>
[Trait("Category", "Integration")]
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class WebhookTests
{
    private static Dictionary<string, string> Environment() => new()
    {
        ["KEYWAY_ADMIN_TOKEN"] = "kw_webhooks_" + Guid.NewGuid().ToString("N"),
        ["KEYWAY_MASTER_KEY"] = KeywayProcess.NewMasterKey(),
    };

    [Theory]
    [MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_test_event_arrives_signed_and_verifies_with_the_npm_package_and_the_secret_is_shown_only_once(StoreKind store)
    {
        await using var receiver = await UpstreamServer.StartAsync();
        await using var keyway = await KeywayProcess.StartAsync(store, Environment());
        using var admin = keyway.CreateAdminClient();

        var invalid = await Expect.ProblemAsync(await admin.PostAsJsonAsync("/api/v1/webhooks",
            new { name = "ops", url = "not a url", events = new[] { "credential.failed", "credential.melted" } }), 400, "invalid_config");
        Assert.Equal(["url", "events[1]"], invalid["errors"]!.AsArray().Select(e => (string)e!["field"]!));

        var created = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/webhooks",
            new { name = "ops", url = receiver.BaseUrl + "/hook", description = "on call" }), 201);
        var secret = (string)created["secret"]!;
        Assert.StartsWith("whsec_", secret);
        Assert.Contains("only once", (string)created["message"]!);
        Assert.DoesNotContain(secret, await admin.GetStringAsync("/api/v1/webhooks"));
        Assert.DoesNotContain(secret, await admin.GetStringAsync("/api/v1/webhooks/ops"));
        await Expect.ProblemAsync(await admin.PostAsJsonAsync("/api/v1/webhooks", new { name = "ops", url = receiver.BaseUrl + "/hook" }), 409, "conflict");

        var queued = await Expect.StatusAsync(await admin.PostAsync("/api/v1/webhooks/ops/test", null), 202);
        var id = (string)queued["id"]!;
        await Poll.UntilAsync(() => receiver.Requests.Any(r => r.Path == "/hook"), TimeSpan.FromSeconds(20), "the test event to arrive");
        var received = receiver.Requests.Single(r => r.Path == "/hook");
        Assert.Equal(id, received.Headers["webhook-id"]);
        var verdict = Assert.Single(await StandardWebhooksVerifier.VerifyAsync([StandardWebhooksVerifier.From(received, secret)]));
        Assert.True(verdict.Ok, verdict.Error);
        Assert.Equal("webhook.test", verdict.Type);

        await Poll.UntilAsync(async () => (string?)(await Expect.StatusAsync(await admin.GetAsync($"/api/v1/webhooks/ops/deliveries/{id}"), 200))["status"] == "succeeded",
            TimeSpan.FromSeconds(20), "the delivery to be recorded as succeeded");
        var again = await Expect.StatusAsync(await admin.PostAsync($"/api/v1/webhooks/ops/deliveries/{id}/redeliver", null), 202);
        await Poll.UntilAsync(() => receiver.Requests.Count(r => r.Path == "/hook") == 2, TimeSpan.FromSeconds(20), "the redelivery to arrive");
        Assert.Equal((string)again["id"]!, receiver.Requests.Last(r => r.Path == "/hook").Headers["webhook-id"]);

        var rotated = await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/webhooks/ops/rotate-secret", new { graceSeconds = 0 }), 200);
        var newSecret = (string)rotated["secret"]!;
        await Expect.StatusAsync(await admin.PostAsync("/api/v1/webhooks/ops/test", null), 202);
        await Poll.UntilAsync(() => receiver.Requests.Count(r => r.Path == "/hook") == 3, TimeSpan.FromSeconds(20), "the event after the rotation to arrive");
        var verdicts = await StandardWebhooksVerifier.VerifyAsync(
            [StandardWebhooksVerifier.From(receiver.Requests.Last(r => r.Path == "/hook"), newSecret), StandardWebhooksVerifier.From(receiver.Requests.Last(r => r.Path == "/hook"), secret)]);
        Assert.Equal([true, false], verdicts.Select(v => v.Ok));

        var audit = (await Expect.StatusAsync(await admin.GetAsync("/api/v1/audit?action=webhook.create"), 200)).ToJsonString();
        Assert.Contains("webhook.create", audit);
        foreach (var shown in (string[])[secret, newSecret])
        {
            Assert.DoesNotContain(shown, keyway.AllOutput);
            Assert.DoesNotContain(shown, (await Expect.StatusAsync(await admin.GetAsync("/api/v1/audit"), 200)).ToJsonString());
        }

        await Expect.StatusAsync(await admin.DeleteAsync("/api/v1/webhooks/ops"), 204);
        await Expect.ProblemAsync(await admin.GetAsync("/api/v1/webhooks/ops/deliveries"), 404, "not_found");
    }

    [Fact]
    public async Task A_pending_delivery_survives_a_crash_and_is_sent_after_the_restart()
    {
        var accept = false;
        await using var receiver = await UpstreamServer.StartAsync(app => app.MapPost("/hook", () => Volatile.Read(ref accept) ? Results.Ok() : Results.StatusCode(500)));
        await using var keyway = await KeywayProcess.StartAsync(StoreKind.Sqlite, Environment());
        using (var admin = keyway.CreateAdminClient())
        {
            await Expect.StatusAsync(await admin.PostAsJsonAsync("/api/v1/webhooks", new { name = "ops", url = receiver.BaseUrl + "/hook" }), 201);
            var id = (string)(await Expect.StatusAsync(await admin.PostAsync("/api/v1/webhooks/ops/test", null), 202))["id"]!;
            await Poll.UntilAsync(async () => (int?)(await Expect.StatusAsync(await admin.GetAsync($"/api/v1/webhooks/ops/deliveries/{id}"), 200))["attempts"] == 1,
                TimeSpan.FromSeconds(20), "the first attempt to be recorded");
            var pending = await Expect.StatusAsync(await admin.GetAsync($"/api/v1/webhooks/ops/deliveries/{id}"), 200);
            Assert.Equal(("pending", 500), ((string?)pending["status"], (int?)pending["lastStatusCode"]));
        }

        await keyway.KillAsync();
        Volatile.Write(ref accept, true);
        await keyway.RestartAsync();

        using var again = keyway.CreateAdminClient();
        await Poll.UntilAsync(async () => (string?)(await Expect.StatusAsync(await again.GetAsync("/api/v1/webhooks/ops/deliveries"), 200))["deliveries"]![0]!["status"] == "succeeded",
            TimeSpan.FromSeconds(30), "the delivery to be sent after the restart");
        var delivered = (await Expect.StatusAsync(await again.GetAsync("/api/v1/webhooks/ops/deliveries"), 200))["deliveries"]!.AsArray().Single()!;
        Assert.Equal(2, (int)delivered["attempts"]!);
        Assert.Equal(2, receiver.Requests.Count(r => r.Path == "/hook"));
        Assert.Single(receiver.Requests.Where(r => r.Path == "/hook").Select(r => r.Headers["webhook-id"]).Distinct());
    }
}

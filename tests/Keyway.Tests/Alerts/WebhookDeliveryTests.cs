using System.Text.Json;
using Keyway.Alerts;
using Keyway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Keyway.Tests.Alerts;

public sealed class WebhookDeliveryTests
{
    private static Alert CredentialFailed(string? error = "invalid_client") => new(AlertTypes.CredentialFailed, "credential:billing/production/shared",
        new Dictionary<string, string?> { ["resource"] = "billing", ["environment"] = "production", ["state"] = "refresh_failed", ["error"] = error });

    [Fact]
    public void Signatures_match_the_vector_published_with_the_Standard_Webhooks_reference_libraries()
    {
        Assert.Equal("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            WebhookSignature.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, "{\"test\": 2432232314}"));
    }

    [Fact]
    public void A_new_secret_is_whsec_and_32_random_bytes_in_base64()
    {
        var secret = WebhookStore.NewSecret();
        Assert.StartsWith("whsec_", secret);
        Assert.Equal(32, Convert.FromBase64String(secret["whsec_".Length..]).Length);
        Assert.NotEqual(secret, WebhookStore.NewSecret());
    }

    [Fact]
    public async Task A_delivery_verifies_with_the_npm_standardwebhooks_package_and_after_a_rotation_with_either_secret()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        await using var f = await WebhookFixture.CreateAsync();
        var old = await f.CreateEndpointAsync("ops", upstream.BaseUrl + "/hook");
        await f.Alerts.RaiseAsync(CredentialFailed());
        Assert.Equal(1, await f.Sender.RunOnceAsync(default));

        var (_, current) = (await f.Store.RotateSecretAsync("ops", TimeSpan.FromHours(1), default))!.Value;
        await f.Alerts.RaiseAsync(CredentialFailed());
        Assert.Equal(1, await f.Sender.RunOnceAsync(default));

        var requests = upstream.Requests;
        Assert.Equal(2, requests.Count);
        Assert.Single(requests[0].Headers["webhook-signature"].Split(' '));
        Assert.Equal(2, requests[1].Headers["webhook-signature"].Split(' ').Length);
        var verdicts = await StandardWebhooksVerifier.VerifyAsync(
        [
            StandardWebhooksVerifier.From(requests[0], old),
            StandardWebhooksVerifier.From(requests[1], old),
            StandardWebhooksVerifier.From(requests[1], current),
            StandardWebhooksVerifier.From(requests[1], WebhookStore.NewSecret()),
            StandardWebhooksVerifier.From(requests[0] with { Body = requests[0].Body.Replace("billing", "b1lling", StringComparison.Ordinal) }, old),
        ]);
        Assert.Equal([true, true, true, false, false], verdicts.Select(v => v.Ok));
        Assert.Equal(AlertTypes.CredentialFailed, verdicts[0].Type);

        // The payload is the Standard Webhooks shape, names and states only.
        using var body = JsonDocument.Parse(requests[0].Body);
        Assert.Equal("credential.failed", body.RootElement.GetProperty("type").GetString());
        Assert.True(body.RootElement.TryGetProperty("timestamp", out _));
        Assert.Equal("credential:billing/production/shared", body.RootElement.GetProperty("data").GetProperty("subject").GetString());
        Assert.StartsWith("application/json", requests[0].Headers["Content-Type"]);
    }

    [Fact]
    public async Task After_the_grace_period_only_the_new_secret_signs()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        await using var f = await WebhookFixture.CreateAsync();
        await f.CreateEndpointAsync("ops", upstream.BaseUrl + "/hook");
        var (_, current) = (await f.Store.RotateSecretAsync("ops", TimeSpan.FromMinutes(10), default))!.Value;
        f.Time.Advance(TimeSpan.FromMinutes(11));
        await f.Alerts.RaiseAsync(CredentialFailed());
        await f.Sender.RunOnceAsync(default);

        var request = Assert.Single(upstream.Requests);
        var timestamp = long.Parse(request.Headers["webhook-timestamp"], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(WebhookSignature.Sign(current, request.Headers["webhook-id"], timestamp, request.Body), request.Headers["webhook-signature"]);
    }

    [Fact]
    public async Task Under_the_default_destination_policy_a_webhook_reaches_neither_loopback_nor_the_metadata_address_and_no_redirect_is_followed()
    {
        var hits = 0;
        await using var upstream = await UpstreamServer.StartAsync(app =>
        {
            app.MapPost("/hook", () => { Interlocked.Increment(ref hits); return Results.Redirect("http://169.254.169.254/latest/meta-data/"); });
            app.MapPost("/moved", () => { Interlocked.Increment(ref hits); return Results.Redirect("/hook"); });
        });
        await using var f = await WebhookFixture.CreateAsync();
        await f.CreateEndpointAsync("local", upstream.BaseUrl + "/hook");
        await f.CreateEndpointAsync("metadata", "http://169.254.169.254/latest/meta-data/");
        using var strict = new Keyway.Outbound.OutboundClient(
            new Keyway.Outbound.DestinationPolicy(new Keyway.Outbound.DestinationPolicyOptions()), new Keyway.Outbound.OutboundHandlerOptions());
        using var sender = new WebhookSender(f.Queue, f.Store, f.Database, strict, f.Time, new WebhookOptions { Timeout = TimeSpan.FromSeconds(5) },
            Microsoft.Extensions.Logging.Abstractions.NullLogger<WebhookSender>.Instance);
        await f.Alerts.RaiseAsync(CredentialFailed());

        Assert.Equal(2, await sender.RunOnceAsync(default));

        foreach (var endpoint in new[] { "local", "metadata" })
        {
            var attempt = Assert.Single(await f.Queue.ListAsync(endpoint, null, 10, default));
            Assert.Equal((1, (int?)null), (attempt.Attempts, attempt.LastStatusCode));
            Assert.StartsWith("destination_", attempt.LastError);
        }

        Assert.Equal(0, hits);

        // Allowed to loopback (as the fixture is), a redirect is an answer, not an instruction: never followed.
        await f.CreateEndpointAsync("moved", upstream.BaseUrl + "/moved");
        await f.Alerts.EnqueueAsync(new Alert(AlertTypes.WebhookTest, "webhook:moved", new Dictionary<string, string?>()), "moved", default);
        await f.Sender.RunOnceAsync(default);
        var moved = Assert.Single(await f.Queue.ListAsync("moved", null, 10, default));
        Assert.Equal((302, "HTTP 302"), (moved.LastStatusCode, moved.LastError));
        Assert.Equal(1, hits);
    }

    [Fact]
    public async Task A_failed_delivery_is_recorded_and_retried_after_the_backoff_with_the_same_id()
    {
        var answered = 0;
        await using var upstream = await UpstreamServer.StartAsync(app => app.MapPost("/hook", () =>
            Interlocked.Increment(ref answered) == 1 ? Results.StatusCode(500) : Results.Ok()));
        await using var f = await WebhookFixture.CreateAsync();
        await f.CreateEndpointAsync("ops", upstream.BaseUrl + "/hook");
        await f.Alerts.RaiseAsync(CredentialFailed());
        // The store keeps milliseconds.
        var start = DateTimeOffset.FromUnixTimeMilliseconds(f.Time.GetUtcNow().ToUnixTimeMilliseconds());

        Assert.Equal(1, await f.Sender.RunOnceAsync(default));
        var failed = Assert.Single(await f.Queue.ListAsync("ops", null, 10, default));
        Assert.Equal((WebhookQueue.Pending, 1, 500, "HTTP 500"), (failed.Status, failed.Attempts, failed.LastStatusCode, failed.LastError));
        // 5 s plus the fixture's 10% jitter.
        Assert.Equal(start + TimeSpan.FromSeconds(5.5), failed.NextAttemptAt);

        Assert.Equal(0, await f.Sender.RunOnceAsync(default));
        f.Time.Advance(TimeSpan.FromSeconds(5.4));
        Assert.Equal(0, await f.Sender.RunOnceAsync(default));
        f.Time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Equal(1, await f.Sender.RunOnceAsync(default));

        var delivered = Assert.Single(await f.Queue.ListAsync("ops", null, 10, default));
        Assert.Equal((WebhookQueue.Succeeded, 2, 200, (string?)null), (delivered.Status, delivered.Attempts, delivered.LastStatusCode, delivered.LastError));
        Assert.Equal(2, upstream.Requests.Count);
        Assert.Equal(upstream.Requests[0].Headers["webhook-id"], upstream.Requests[1].Headers["webhook-id"]);
        Assert.Equal(upstream.Requests[0].Body, upstream.Requests[1].Body);
    }

    [Fact]
    public async Task A_delivery_that_never_succeeds_is_given_up_after_the_last_wait_of_the_schedule()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        await using var f = await WebhookFixture.CreateAsync();
        await f.CreateEndpointAsync("ops", upstream.BaseUrl + "/status/503");
        await f.Alerts.RaiseAsync(CredentialFailed());

        for (var attempt = 0; attempt <= WebhookQueue.Backoff.Count; attempt++)
        {
            Assert.Equal(1, await f.Sender.RunOnceAsync(default));
            f.Time.Advance(TimeSpan.FromHours(12));
        }

        Assert.Equal(0, await f.Sender.RunOnceAsync(default));
        var gaveUp = Assert.Single(await f.Queue.ListAsync("ops", null, 10, default));
        Assert.Equal((WebhookQueue.Failed, WebhookQueue.Backoff.Count + 1, (DateTimeOffset?)null), (gaveUp.Status, gaveUp.Attempts, gaveUp.NextAttemptAt));
        Assert.Equal(WebhookQueue.Backoff.Count + 1, upstream.Requests.Count);
    }

    [Fact]
    public async Task A_redelivery_sends_the_same_payload_again_under_a_new_id()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        await using var f = await WebhookFixture.CreateAsync();
        await f.CreateEndpointAsync("ops", upstream.BaseUrl + "/hook");
        await f.Alerts.RaiseAsync(CredentialFailed());
        await f.Sender.RunOnceAsync(default);
        var first = Assert.Single(await f.Queue.ListAsync("ops", null, 10, default));

        var again = await f.Queue.RedeliverAsync("ops", first.Id, default);
        Assert.NotNull(again);
        Assert.NotEqual(first.Id, again.Id);
        Assert.Equal(WebhookQueue.Pending, again.Status);
        Assert.Equal(1, await f.Sender.RunOnceAsync(default));

        Assert.Equal(2, upstream.Requests.Count);
        Assert.Equal(again.Id, upstream.Requests[1].Headers["webhook-id"]);
        Assert.Equal(upstream.Requests[0].Body, upstream.Requests[1].Body);
        Assert.Null(await f.Queue.RedeliverAsync("ops", "msg_nonexistent", default));
    }

    [Fact]
    public async Task A_planted_secret_never_reaches_the_stored_or_sent_payload_and_signing_secrets_are_known_to_the_redactor()
    {
        const string Canary = "canary-9f2c41d7e05b8a63";
        await using var upstream = await UpstreamServer.StartAsync();
        await using var f = await WebhookFixture.CreateAsync();
        var secret = await f.CreateEndpointAsync("ops", upstream.BaseUrl + "/hook");
        await f.Variables.SetAsync("production", "CLIENT_SECRET", Canary, secret: true, expiresAt: null, default);

        // A provider's error that echoes the client secret, as some do.
        await f.Alerts.RaiseAsync(CredentialFailed($"invalid_client: client_secret={Canary} was refused"));
        await f.Sender.RunOnceAsync(default);

        var stored = Assert.Single(await f.Queue.ListAsync("ops", null, 10, default));
        Assert.DoesNotContain(Canary, stored.Payload.GetRawText());
        Assert.Contains("[REDACTED]", stored.Payload.GetRawText());
        Assert.DoesNotContain(Canary, Assert.Single(upstream.Requests).Body);
        var redactor = await f.Variables.Known.GetAsync(default);
        Assert.Equal("[REDACTED]", redactor.Redact(secret));
    }

    [Fact]
    public async Task An_endpoint_gets_only_the_types_it_subscribes_to_and_a_disabled_one_gets_nothing()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        await using var f = await WebhookFixture.CreateAsync();
        await f.CreateEndpointAsync("all", upstream.BaseUrl + "/all");
        await f.CreateEndpointAsync("credentials", upstream.BaseUrl + "/credentials", [AlertTypes.CredentialFailed]);
        await f.CreateEndpointAsync("off", upstream.BaseUrl + "/off");
        await f.Store.UpdateAsync("off", new WebhookChange(null, null, false, false, null), default);

        await f.Alerts.RaiseAsync(CredentialFailed());
        await f.Alerts.RaiseAsync(new Alert(AlertTypes.SecretExpiring, "variable:production/API_KEY", new Dictionary<string, string?>()));

        Assert.Single(await f.Queue.ListAsync("credentials", null, 10, default));
        Assert.Equal(2, (await f.Queue.ListAsync("all", null, 10, default)).Count);
        Assert.Empty(await f.Queue.ListAsync("off", null, 10, default));
    }

    [Fact]
    public async Task Concurrent_claims_never_take_the_same_delivery_and_a_lapsed_lease_makes_it_due_again()
    {
        await using var f = await WebhookFixture.CreateAsync();
        await f.CreateEndpointAsync("ops", "http://127.0.0.1:9/hook");
        for (var i = 0; i < 20; i++)
        {
            await f.Alerts.RaiseAsync(CredentialFailed());
        }

        var claims = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => f.Queue.ClaimAsync(8, TimeSpan.FromMinutes(1), default)));
        var ids = claims.SelectMany(c => c.Select(d => d.Id)).ToList();
        Assert.Equal(20, ids.Count);
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.Empty(await f.Queue.ClaimAsync(8, TimeSpan.FromMinutes(1), default));

        f.Time.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(8, (await f.Queue.ClaimAsync(8, TimeSpan.FromMinutes(1), default)).Count);
    }

    [Fact]
    public async Task History_is_pruned_by_age_and_by_count_and_pending_deliveries_are_kept()
    {
        await using var upstream = await UpstreamServer.StartAsync();
        await using var f = await WebhookFixture.CreateAsync();
        await f.CreateEndpointAsync("ops", upstream.BaseUrl + "/hook");
        for (var i = 0; i < 5; i++)
        {
            await f.Alerts.RaiseAsync(CredentialFailed());
            f.Time.Advance(TimeSpan.FromSeconds(1));
        }

        await f.Sender.RunOnceAsync(default);
        await f.Alerts.RaiseAsync(CredentialFailed());

        Assert.Equal(2, await f.Queue.PruneAsync(TimeSpan.FromDays(30), keepPerEndpoint: 3, default));
        Assert.Equal(4, (await f.Queue.ListAsync("ops", null, 10, default)).Count);
        f.Time.Advance(TimeSpan.FromDays(31));
        Assert.Equal(3, await f.Queue.PruneAsync(TimeSpan.FromDays(30), keepPerEndpoint: 3, default));
        Assert.Equal(WebhookQueue.Pending, Assert.Single(await f.Queue.ListAsync("ops", null, 10, default)).Status);
    }

    [Fact]
    public void Urls_and_event_types_are_checked_field_by_field()
    {
        var errors = WebhookStore.Check("ftp://example.com/x", ["credential.failed", "credential.melted"], urlRequired: true);
        Assert.Equal(["url", "events[1]"], errors.Select(e => e.Field));
        Assert.Equal("url", Assert.Single(WebhookStore.Check("https://user:pass@example.com/hook", null, urlRequired: true)).Field);
        Assert.Equal("url", Assert.Single(WebhookStore.Check(null, null, urlRequired: true)).Field);
        Assert.Empty(WebhookStore.Check("https://hooks.example.com/keyway", [.. AlertTypes.All], urlRequired: true));
    }
}

using Keyway.Alerts;
using Keyway.Credentials;
using Keyway.Tests.Credentials;

namespace Keyway.Tests.Alerts;

public sealed class CredentialAlertTests
{
    private static readonly CredentialKey Key = EngineFixture.Key;

    [Fact]
    public async Task Failing_refreshes_raise_one_credential_failed_and_the_recovery_one_credential_recovered()
    {
        await using var f = await EngineFixture.CreateAsync();
        var alerts = new RecordingAlerts();
        new CredentialAlerts(f.Events, alerts).Subscribe();
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = 3600 };
        await f.Engine.GetAsync(Key, provider, default);

        f.Time.Advance(TimeSpan.FromSeconds(3500));
        for (var i = 0; i < 3; i++)
        {
            provider.FailNext(TokenResult.Fail(FailureKind.Transient, "HTTP 503 from the token endpoint"));
            await f.Engine.RefreshAsync(Key, provider, default);
            f.Time.Advance(TimeSpan.FromSeconds(10));
        }

        await f.Engine.RefreshAsync(Key, provider, default);
        await f.Engine.RefreshAsync(Key, provider, default);

        Assert.Equal([AlertTypes.CredentialFailed, AlertTypes.CredentialRecovered], alerts.Raised.Select(a => a.Type));
        var failed = alerts.Raised[0];
        Assert.Equal("credential:api/production/shared", failed.Subject);
        Assert.Equal(("api", "production", "refresh_failed"), (failed.Data["resource"], failed.Data["environment"], failed.Data["state"]));
        Assert.Contains("503", failed.Data["error"]);
    }

    [Fact]
    public async Task A_revoked_grant_raises_reconnect_required_once()
    {
        await using var f = await EngineFixture.CreateAsync();
        var alerts = new RecordingAlerts();
        new CredentialAlerts(f.Events, alerts).Subscribe();
        var provider = new FakeTokenProvider(f.Time) { ExpiresIn = 60 };
        await f.Engine.GetAsync(Key, provider, default);
        f.Time.Advance(TimeSpan.FromSeconds(61));
        provider.FailNext(TokenResult.Fail(FailureKind.GrantRevoked, "invalid_grant"));

        await Assert.ThrowsAsync<CredentialException>(async () => await f.Engine.GetAsync(Key, provider, default));
        await Assert.ThrowsAsync<CredentialException>(async () => await f.Engine.GetAsync(Key, provider, default));

        Assert.Equal([AlertTypes.CredentialReconnectRequired], alerts.Raised.Select(a => a.Type));
    }
}

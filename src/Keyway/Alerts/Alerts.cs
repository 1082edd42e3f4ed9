namespace Keyway.Alerts;

/// <summary>
/// Something an operator should hear about: a secret expiring, a rotation or a schedule failing, a
/// credential that needs a reconnect. <see cref="Type"/> is one of <see cref="AlertTypes"/>;
/// <see cref="Subject"/> names what it is about (<c>variable:production/STRIPE_KEY</c>,
/// <c>resource:billing/production</c>, <c>schedule:nightly-rotate</c>). <see cref="Data"/> carries
/// names, states, times and error codes only: never a secret's value, which is why it is a map of
/// strings that callers fill from fields they name, not an object serialized whole.
/// </summary>
internal sealed record Alert(string Type, string Subject, IReadOnlyDictionary<string, string?> Data);

/// <summary>The alert types Keyway raises (the webhook event names).</summary>
internal static class AlertTypes
{
    public const string SecretExpiring = "secret.expiring";
    public const string SecretExpired = "secret.expired";
    public const string SecretRotationDue = "secret.rotation_due";
    public const string RotationSucceeded = "rotation.succeeded";
    public const string RotationFailed = "rotation.failed";
    public const string CredentialFailed = "credential.failed";
    public const string CredentialReconnectRequired = "credential.reconnect_required";
    public const string CredentialRecovered = "credential.recovered";
    public const string ScheduleFailed = "schedule.failed";
    public const string AuditVerifyFailed = "audit.verify_failed";

    /// <summary>What <c>POST /api/v1/webhooks/{name}/test</c> sends: not an alert, so no endpoint subscribes to it.</summary>
    public const string WebhookTest = "webhook.test";

    /// <summary>Every alert type, in the order the docs list them.</summary>
    public static readonly IReadOnlyList<string> All =
    [
        SecretExpiring, SecretExpired, SecretRotationDue, RotationSucceeded, RotationFailed, CredentialFailed,
        CredentialReconnectRequired, CredentialRecovered, ScheduleFailed, AuditVerifyFailed,
    ];
}

/// <summary>Where alerts go. Raising one never fails the caller's work: delivery is the sink's job.</summary>
internal interface IAlertSink
{
    ValueTask RaiseAsync(Alert alert, CancellationToken cancellationToken = default);
}

/// <summary>The sink used when nothing delivers alerts.</summary>
internal sealed class NoAlerts : IAlertSink
{
    public ValueTask RaiseAsync(Alert alert, CancellationToken cancellationToken = default) => ValueTask.CompletedTask;
}

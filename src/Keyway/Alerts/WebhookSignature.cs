using System.Security.Cryptography;
using System.Text;

namespace Keyway.Alerts;

/// <summary>
/// Standard Webhooks signatures (https://www.standardwebhooks.com): <c>v1,</c> and the base64 of
/// HMAC-SHA256 over <c>{webhook-id}.{webhook-timestamp}.{body}</c>, keyed with the base64-decoded
/// part of the secret after <c>whsec_</c>. While a rotated secret is in its grace period both sign,
/// space-separated in one <c>webhook-signature</c> header, as the spec allows: a receiver that holds
/// either accepts the delivery.
/// </summary>
internal static class WebhookSignature
{
    public static string Sign(string secret, string id, long timestamp, string body)
    {
        var key = Convert.FromBase64String(secret.StartsWith(WebhookStore.SecretPrefix, StringComparison.Ordinal) ? secret[WebhookStore.SecretPrefix.Length..] : secret);
        var content = Encoding.UTF8.GetBytes($"{id}.{timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture)}.{body}");
        return "v1," + Convert.ToBase64String(HMACSHA256.HashData(key, content));
    }

    /// <summary>The <c>webhook-signature</c> header's value: one signature per secret.</summary>
    public static string Header(IEnumerable<string> secrets, string id, long timestamp, string body) =>
        string.Join(' ', secrets.Select(secret => Sign(secret, id, timestamp, body)));
}

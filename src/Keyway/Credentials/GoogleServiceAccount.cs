using System.Text.Json;
using Keyway.Api;

namespace Keyway.Credentials;

/// <summary>
/// A Google service account's JSON key file, as Google's console downloads it: what the RFC 7523 grant needs
/// from it (<c>client_email</c>, <c>private_key</c>, <c>private_key_id</c>, <c>token_uri</c>). Errors name the
/// missing field, never a value.
/// </summary>
internal sealed record GoogleServiceAccount(string ClientEmail, string PrivateKey, string? PrivateKeyId, string TokenUri)
{
    public const string DefaultTokenUri = "https://oauth2.googleapis.com/token";

    public static GoogleServiceAccount Parse(string json, string field)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json);
        }
        catch (JsonException)
        {
            // The reader's message quotes the text around the error: the key's.
            throw Invalid($"{field} is not JSON: give the service account's key file as Google's console downloads it.");
        }

        using (document)
        {
            var root = document.RootElement;
            string? Text(string name) =>
                root.ValueKind == JsonValueKind.Object && root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String
                    ? value.GetString()
                    : null;

            if (Text("type") is { } type && type != "service_account")
            {
                throw Invalid($"{field} is a key file whose type is not 'service_account' (not quoted: the file is a secret). Give the service account's JSON key file as it was downloaded.");
            }

            var email = Text("client_email");
            var key = Text("private_key");
            if (string.IsNullOrEmpty(email) || string.IsNullOrEmpty(key))
            {
                throw Invalid($"{field} has no {(string.IsNullOrEmpty(email) ? "client_email" : "private_key")}: give the service account's JSON key file as it was downloaded.");
            }

            return new GoogleServiceAccount(email, key, Text("private_key_id") is { Length: > 0 } id ? id : null,
                Text("token_uri") is { Length: > 0 } uri ? uri : DefaultTokenUri);
        }

        static KeywayException Invalid(string message) => new(StatusCodes.Status400BadRequest, "invalid_config", message);
    }

    /// <summary>Never the key.</summary>
    public override string ToString() => $"[service account {ClientEmail}]";
}

using Keyway.Api;

namespace Keyway.Resources;

/// <summary>
/// The auth fields that belong to one auth type: given with another type, each is a field error that names the
/// type it belongs to ("'region' belongs to auth type 'awsSigV4', not 'bearer'").
/// </summary>
internal static class AuthFieldOwners
{
    public static void Check(AuthDefinition auth, List<FieldError> errors)
    {
        if (auth.Type != "oauth2")
        {
            foreach (var (field, value) in new (string, object?)[]
                     {
                         ("serviceAccountKey", auth.ServiceAccountKey), ("assertion", auth.Assertion), ("keyId", auth.KeyId), ("algorithm", auth.Algorithm),
                     })
            {
                if (value is not null)
                {
                    errors.Add(new FieldError($"auth.{field}", $"'{field}' belongs to auth type 'oauth2' (grant 'jwt_bearer' or clientAuth 'private_key_jwt'), not '{auth.Type}'."));
                }
            }
        }

        if (auth.Type != CompiledGitHubApp.Type)
        {
            foreach (var (field, value) in new (string, object?)[] { ("appId", auth.AppId), ("installationId", auth.InstallationId), ("apiUrl", auth.ApiUrl) })
            {
                if (value is not null)
                {
                    errors.Add(new FieldError($"auth.{field}", $"'{field}' belongs to auth type '{CompiledGitHubApp.Type}', not '{auth.Type}'."));
                }
            }
        }

        if (auth.Type is not ("oauth2" or CompiledGitHubApp.Type or CompiledOAuth1.Type) && auth.PrivateKey is not null)
        {
            errors.Add(new FieldError("auth.privateKey", $"'privateKey' belongs to auth types 'oauth2', '{CompiledGitHubApp.Type}' and '{CompiledOAuth1.Type}', not '{auth.Type}'."));
        }

        if (auth.Type != CompiledOAuth1.Type)
        {
            foreach (var (field, value) in new (string, object?)[]
                     {
                         ("consumerKey", auth.ConsumerKey), ("consumerSecret", auth.ConsumerSecret), ("tokenSecret", auth.TokenSecret),
                         ("signatureMethod", auth.SignatureMethod), ("realm", auth.Realm),
                     })
            {
                if (value is not null)
                {
                    errors.Add(new FieldError($"auth.{field}", $"'{field}' belongs to auth type '{CompiledOAuth1.Type}', not '{auth.Type}'."));
                }
            }
        }

        if (auth.Type != CompiledSigV4.Type)
        {
            foreach (var (field, value) in new (string, object?)[]
                     {
                         ("accessKeyId", auth.AccessKeyId), ("secretAccessKey", auth.SecretAccessKey), ("sessionToken", auth.SessionToken),
                         ("region", auth.Region), ("service", auth.Service), ("unsignedPayload", auth.UnsignedPayload), ("assumeRole", auth.AssumeRole),
                     })
            {
                if (value is not null)
                {
                    errors.Add(new FieldError($"auth.{field}", $"'{field}' belongs to auth type '{CompiledSigV4.Type}', not '{auth.Type}'."));
                }
            }
        }

        if (auth.Type != "custom")
        {
            foreach (var (field, value) in new (string, object?)[]
                     {
                         ("steps", auth.Steps), ("refreshSteps", auth.RefreshSteps), ("expiresIn", auth.ExpiresIn),
                         ("jwt", auth.Jwt), ("refresh", auth.Refresh),
                     })
            {
                if (value is not null)
                {
                    errors.Add(new FieldError($"auth.{field}", $"'{field}' belongs to auth type 'custom', not '{auth.Type}'."));
                }
            }
        }
    }
}

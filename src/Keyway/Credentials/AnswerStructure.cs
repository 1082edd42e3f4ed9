using System.Text.Json;
using System.Text.Json.Nodes;

namespace Keyway.Credentials;

/// <summary>
/// The shape of a login or token exchange without its contents, for who may use a resource but not own it:
/// a JSON body's field names with each value's type and length, a form's parameter names with their lengths,
/// any other text by its length. Enough to see that a token came back and where; nothing of the token.
/// </summary>
internal static class AnswerStructure
{
    public static string Length(string value) => $"({value.Length} characters)";

    /// <summary>The structure of a body as shown (already redacted).</summary>
    public static string Of(string body)
    {
        var trimmed = body.TrimStart();
        if (trimmed.Length > 0 && trimmed[0] is '{' or '[')
        {
            try
            {
                if (JsonNode.Parse(body) is { } node)
                {
                    return Shape(node)!.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
                }
            }
            catch (JsonException)
            {
                // Not JSON after all: its length.
            }
        }

        if (body.Contains('=', StringComparison.Ordinal) && !body.Contains('\n', StringComparison.Ordinal) && !body.Contains(' ', StringComparison.Ordinal))
        {
            return string.Join('&', body.Split('&').Select(pair =>
            {
                var equals = pair.IndexOf('=', StringComparison.Ordinal);
                return equals > 0 ? $"{pair[..equals]}=({pair.Length - equals - 1} characters)" : $"({pair.Length} characters)";
            }));
        }

        return $"(text, {body.Length} characters; the contents are shown to the resource's owners and admins)";
    }

    private static JsonNode? Shape(JsonNode? node) => node switch
    {
        null => null,
        JsonObject obj => new JsonObject(obj.Select(p => KeyValuePair.Create(p.Key, Shape(p.Value)))),
        JsonArray array => new JsonArray([.. array.Select(Shape)]),
        JsonValue value => value.GetValueKind() switch
        {
            JsonValueKind.String => JsonValue.Create($"(string, {value.GetValue<string>().Length} characters)"),
            JsonValueKind.Number => JsonValue.Create("(number)"),
            JsonValueKind.True or JsonValueKind.False => JsonValue.Create("(boolean)"),
            _ => JsonValue.Create("(null)"),
        },
        _ => null,
    };
}

using System.Buffers;
using System.Text.Json;

namespace Keyway.Secrets;

/// <summary>
/// Redacts a JSON document as its reader will see it: every string and property name once decoded
/// (so <c>\u0063\u0061…</c> or <c>canary\/…</c> is the value again, and is found), and every number
/// whose text is a value. Redacting the raw text alone misses a form that only decoding reveals.
/// </summary>
internal static class JsonRedaction
{
    /// <summary>The document with every value replaced by <c>[REDACTED]</c>; <paramref name="root"/> itself when none was found.</summary>
    public static JsonElement Redact(JsonElement root, Redactor redactor)
    {
        if (redactor.IsEmpty || !Holds(root, redactor))
        {
            return root;
        }

        var buffer = new ArrayBufferWriter<byte>(4096);
        using (var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true, Indented = false }))
        {
            Write(writer, root, redactor);
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
    }

    private static bool Holds(JsonElement element, Redactor redactor)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    if (redactor.Contains(property.Name) || Holds(property.Value, redactor))
                    {
                        return true;
                    }
                }

                return false;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    if (Holds(item, redactor))
                    {
                        return true;
                    }
                }

                return false;
            case JsonValueKind.String:
                return redactor.Contains(element.GetString());
            case JsonValueKind.Number:
                return redactor.Contains(element.GetRawText());
            default:
                return false;
        }
    }

    private static void Write(Utf8JsonWriter writer, JsonElement element, Redactor redactor)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                foreach (var property in element.EnumerateObject())
                {
                    writer.WritePropertyName(redactor.Redact(property.Name));
                    Write(writer, property.Value, redactor);
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray())
                {
                    Write(writer, item, redactor);
                }

                writer.WriteEndArray();
                break;
            case JsonValueKind.String:
                writer.WriteStringValue(redactor.Redact(element.GetString()!));
                break;
            case JsonValueKind.Number when redactor.Contains(element.GetRawText()):
                writer.WriteStringValue(Secret.Redacted);
                break;
            default:
                element.WriteTo(writer);
                break;
        }
    }
}

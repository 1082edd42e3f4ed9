using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Keyway.Secrets;

namespace Keyway.Templates;

/// <summary>
/// A value met while resolving a member path: a struct so that walking a <see cref="JsonElement"/>
/// tree boxes nothing, and with an explicit <c>undefined</c> that JavaScript distinguishes from null.
/// </summary>
internal readonly struct TemplateValue
{
    private static readonly object BoxedTrue = true;
    private static readonly object BoxedFalse = false;

    private TemplateValue(TemplateValueKind kind, object? clr, JsonElement element, double number)
    {
        Kind = kind;
        Clr = clr;
        Element = element;
        Number = number;
    }

    public TemplateValueKind Kind { get; }

    /// <summary>The CLR value when <see cref="Kind"/> is <see cref="TemplateValueKind.Clr"/>.</summary>
    public object? Clr { get; }

    public JsonElement Element { get; }

    /// <summary>A number computed during resolution (an array or string length).</summary>
    public double Number { get; }

    public static TemplateValue Undefined => default;

    public static TemplateValue Null => new(TemplateValueKind.Null, null, default, 0);

    public static TemplateValue FromNumber(double number) => new(TemplateValueKind.Number, null, default, number);

    public static TemplateValue FromElement(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.Undefined => Undefined,
        JsonValueKind.Null => Null,
        _ => new(TemplateValueKind.Element, null, element, 0),
    };

    public static TemplateValue From(object? value) => value switch
    {
        null => Null,
        JsonElement element => FromElement(element),
        JsonValue jsonValue => FromJsonValue(jsonValue),
        _ => new(TemplateValueKind.Clr, value, default, 0),
    };

    private static TemplateValue FromJsonValue(JsonValue jsonValue)
    {
        if (jsonValue.TryGetValue<JsonElement>(out var element))
        {
            return FromElement(element);
        }

        var underlying = jsonValue.GetValue<object>();
        return TemplateScope.IsSupported(underlying) && underlying is not JsonNode
            ? From(underlying)
            : new(TemplateValueKind.Clr, jsonValue, default, 0);
    }

    public bool IsNullish => Kind is TemplateValueKind.Undefined or TemplateValueKind.Null;

    /// <summary>The value as <see cref="Template.Evaluate"/> returns it.</summary>
    public object? ToRawValue() => Kind switch
    {
        TemplateValueKind.Undefined or TemplateValueKind.Null => null,
        TemplateValueKind.Number => NormalizeNumber(Number),
        TemplateValueKind.Element => Element.ValueKind switch
        {
            JsonValueKind.String => Element.GetString(),
            JsonValueKind.Number => Element.TryGetInt64(out var l) && IsSafeInteger(l) ? l : NormalizeNumber(Element.GetDouble()),
            JsonValueKind.True => BoxedTrue,
            JsonValueKind.False => BoxedFalse,
            _ => Element,
        },
        _ => Clr switch
        {
            Secret secret => secret.Reveal(),
            string or bool or JsonNode => Clr,
            IReadOnlyDictionary<string, object?> or IReadOnlyList<object?> => ToJsonNode(Clr, 0),
            long l => IsSafeInteger(l) ? l : (object)(double)l,
            int or short or sbyte or byte or ushort or uint => Convert.ToInt64(Clr, CultureInfo.InvariantCulture),
            _ => NormalizeNumber(Convert.ToDouble(Clr, CultureInfo.InvariantCulture)),
        },
    };

    /// <summary>The value as <see cref="Template.Render"/> writes it.</summary>
    public string ToRenderString() => Kind switch
    {
        TemplateValueKind.Undefined or TemplateValueKind.Null => string.Empty,
        TemplateValueKind.Number => FormatNumber(Number),
        TemplateValueKind.Element => Element.ValueKind switch
        {
            JsonValueKind.String => Element.GetString()!,
            JsonValueKind.Number => Element.TryGetInt64(out var l) && IsSafeInteger(l)
                ? l.ToString(CultureInfo.InvariantCulture)
                : FormatNumber(Element.GetDouble()),
            JsonValueKind.True => "true",
            JsonValueKind.False => "false",
            _ => ToCompactJson(Element),
        },
        _ => Clr switch
        {
            string s => s,
            Secret secret => secret.Reveal(),
            bool b => b ? "true" : "false",
            JsonNode node => node.ToJsonString(JsonOptions),
            IReadOnlyDictionary<string, object?> or IReadOnlyList<object?> => ToCompactJson(Clr),
            long l when IsSafeInteger(l) => l.ToString(CultureInfo.InvariantCulture),
            int i => i.ToString(CultureInfo.InvariantCulture),
            _ => FormatNumber(Convert.ToDouble(Clr, CultureInfo.InvariantCulture)),
        },
    };

    /// <summary>JSON.stringify's output is not HTML-escaped; neither is ours.</summary>
    internal static readonly JsonSerializerOptions JsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private const double MaxSafeInteger = 9007199254740991;

    private static bool IsSafeInteger(long value) => value is >= -(long)MaxSafeInteger and <= (long)MaxSafeInteger;

    /// <summary>JavaScript has one number type; integral values within 2^53 come back as long.</summary>
    internal static object NormalizeNumber(double value) =>
        Math.Abs(value) <= MaxSafeInteger && Math.Floor(value) == value && !(value == 0 && double.IsNegative(value))
            ? (object)(long)value
            : value;

    /// <summary>
    /// Number::toString from ECMA-262 (6.1.6.1.20): the shortest round-trip digits laid out the
    /// way JavaScript prints them, so a fast-path number renders as the script path would.
    /// </summary>
    internal static string FormatNumber(double value)
    {
        if (double.IsNaN(value))
        {
            return "NaN";
        }

        if (double.IsInfinity(value))
        {
            return value > 0 ? "Infinity" : "-Infinity";
        }

        if (value == 0)
        {
            return "0";
        }

        if (Math.Abs(value) <= MaxSafeInteger && Math.Floor(value) == value)
        {
            return ((long)value).ToString(CultureInfo.InvariantCulture);
        }

        var negative = value < 0;
        var text = Math.Abs(value).ToString("R", CultureInfo.InvariantCulture);
        var exponentAt = text.IndexOf('E', StringComparison.Ordinal);
        var mantissa = exponentAt < 0 ? text : text[..exponentAt];
        var exponent = exponentAt < 0 ? 0 : int.Parse(text.AsSpan(exponentAt + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        var point = mantissa.IndexOf('.', StringComparison.Ordinal);
        var digits = point < 0 ? mantissa : mantissa.Remove(point, 1);
        var n = (point < 0 ? mantissa.Length : point) + exponent;
        var leading = 0;
        while (leading < digits.Length - 1 && digits[leading] == '0')
        {
            leading++;
        }

        digits = digits[leading..].TrimEnd('0');
        n -= leading;
        var k = digits.Length;

        string result;
        if (k <= n && n <= 21)
        {
            result = digits + new string('0', n - k);
        }
        else if (0 < n && n <= 21)
        {
            result = string.Concat(digits.AsSpan(0, n), ".", digits.AsSpan(n));
        }
        else if (-6 < n && n <= 0)
        {
            result = "0." + new string('0', -n) + digits;
        }
        else
        {
            var e = n - 1;
            var sign = e < 0 ? "-" : "+";
            var head = k == 1 ? digits : string.Concat(digits.AsSpan(0, 1), ".", digits.AsSpan(1));
            result = head + "e" + sign + Math.Abs(e).ToString(CultureInfo.InvariantCulture);
        }

        return negative ? "-" + result : result;
    }

    internal static string ToCompactJson(JsonElement element)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
        {
            element.WriteTo(writer);
        }

        return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static string ToCompactJson(object value) => ToJsonNode(value, 0)?.ToJsonString(JsonOptions) ?? "null";

    /// <summary>Dictionaries and lists from the scope become JSON (secrets revealed), never CLR objects.</summary>
    internal static JsonNode? ToJsonNode(object? value, int depth)
    {
        if (depth > 64)
        {
            throw new InvalidOperationException("A template scope value is nested too deeply (is it cyclic?).");
        }

        switch (value)
        {
            case null:
                return null;
            case JsonNode node:
                return node.DeepClone();
            case JsonElement element:
                return element.ValueKind switch
                {
                    JsonValueKind.Object => JsonObject.Create(element),
                    JsonValueKind.Array => JsonArray.Create(element),
                    JsonValueKind.Undefined or JsonValueKind.Null => null,
                    _ => JsonValue.Create(element),
                };
            case IReadOnlyDictionary<string, object?> dictionary:
                var obj = new JsonObject();
                foreach (var (key, child) in dictionary)
                {
                    obj[key] = ToJsonNode(child, depth + 1);
                }

                return obj;
            case IReadOnlyList<object?> list:
                var array = new JsonArray();
                foreach (var child in list)
                {
                    array.Add(ToJsonNode(child, depth + 1));
                }

                return array;
            default:
                return From(value).ToRawValue() switch
                {
                    null => null,
                    string s => JsonValue.Create(s),
                    bool b => JsonValue.Create(b),
                    long l => JsonValue.Create(l),
                    double d => double.IsFinite(d) ? JsonValue.Create(d) : null,
                    var other => JsonValue.Create(other.ToString()),
                };
        }
    }
}

internal enum TemplateValueKind : byte
{
    Undefined,
    Null,
    Clr,
    Element,
    Number,
}

using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Keyway.Secrets;

/// <summary>
/// A secret value (a token, a password, a secret variable's value). It cannot reach a log line,
/// an exception message or a JSON document by accident: <see cref="ToString"/> is redacted, the
/// debugger shows nothing and serializing it throws. The one way to the value is
/// <see cref="Reveal"/>, called only where the value leaves for the upstream.
/// </summary>
[JsonConverter(typeof(SecretJsonConverter))]
[DebuggerDisplay("[REDACTED]")]
internal sealed class Secret : IEquatable<Secret>
{
    /// <summary>What a secret looks like wherever it is printed.</summary>
    public const string Redacted = "[REDACTED]";

    private readonly string _value;

    public Secret(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        _value = value;
    }

    /// <summary>The value itself. Call it only where the value must leave Keyway for the upstream.</summary>
    public string Reveal() => _value;

    public int Length => _value.Length;

    public override string ToString() => Redacted;

    public bool Equals(Secret? other) =>
        other is not null && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
            System.Text.Encoding.UTF8.GetBytes(_value), System.Text.Encoding.UTF8.GetBytes(other._value));

    public override bool Equals(object? obj) => obj is Secret other && Equals(other);

    public override int GetHashCode() => _value.GetHashCode(StringComparison.Ordinal);

    private sealed class SecretJsonConverter : JsonConverter<Secret>
    {
        public override Secret Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
            new(reader.GetString() ?? throw new JsonException("A secret value must be a string."));

        public override void Write(Utf8JsonWriter writer, Secret value, JsonSerializerOptions options) =>
            throw new InvalidOperationException("A secret value is never serialized.");
    }
}

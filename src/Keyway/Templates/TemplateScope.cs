using System.Text.Json;
using System.Text.Json.Nodes;
using Keyway.Secrets;

namespace Keyway.Templates;

/// <summary>
/// The roots an expression can see: <c>environment</c>, <c>inputs</c>, <c>current_user</c>, named
/// step results such as <c>login</c>. Built per request, so it is only a small dictionary of
/// references; nothing is converted until an expression reads it.
/// </summary>
/// <remarks>
/// A value may be a <see cref="string"/>, a <see cref="Secret"/> (revealed only when a template
/// produces its outbound value), a <see cref="bool"/>, a number, <c>null</c>, a
/// <see cref="JsonElement"/>, a <see cref="JsonNode"/>, an
/// <see cref="IReadOnlyDictionary{TKey,TValue}"/> of <c>string</c> to <c>object?</c> or an
/// <see cref="IReadOnlyList{T}"/> of <c>object?</c>, nested freely. Any other type is refused
/// when the root is added, so no CLR object can reach the script engine.
/// </remarks>
internal sealed class TemplateScope
{
    private readonly Dictionary<string, object?> _roots;

    public TemplateScope() => _roots = new(StringComparer.Ordinal);

    public TemplateScope(IEnumerable<KeyValuePair<string, object?>> roots)
        : this()
    {
        ArgumentNullException.ThrowIfNull(roots);
        foreach (var (name, value) in roots)
        {
            With(name, value);
        }
    }

    /// <summary>The root names, in no particular order.</summary>
    public IEnumerable<string> Names => _roots.Keys;

    /// <summary>Adds or replaces a root and returns this scope, for chaining.</summary>
    public TemplateScope With(string name, object? value)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!IsSupported(value))
        {
            throw new ArgumentException(
                $"A template scope value cannot be a {value!.GetType().Name}; use a string, Secret, bool, number, JsonElement, JsonNode, IReadOnlyDictionary<string, object?> or IReadOnlyList<object?>.",
                nameof(value));
        }

        _roots[name] = value;
        return this;
    }

    /// <summary>Adds <c>environment</c> as <c>{ variables: { NAME: value } }</c>.</summary>
    public TemplateScope WithEnvironmentVariables(IReadOnlyDictionary<string, object?> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        return With("environment", new Dictionary<string, object?>(1, StringComparer.Ordinal) { ["variables"] = variables });
    }

    /// <summary>A new scope with the same roots, to extend without touching this one.</summary>
    public TemplateScope Clone() => new(_roots);

    public bool TryGetRoot(string name, out object? value) => _roots.TryGetValue(name, out value);

    internal static bool IsSupported(object? value) => value is null
        or string or Secret or bool
        or byte or sbyte or short or ushort or int or uint or long or ulong or float or double or decimal
        or JsonElement or JsonNode
        or IReadOnlyDictionary<string, object?> or IReadOnlyList<object?>;

    /// <summary>
    /// Every string value (not key) in the scope of at least <paramref name="minimumLength"/> characters, secrets
    /// revealed, longest first. Only called when an error message has to be redacted, so its cost
    /// is never paid on the success path.
    /// </summary>
    internal List<string> CollectStrings(int minimumLength)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        foreach (var value in _roots.Values)
        {
            Collect(value, found, minimumLength, depth: 0);
        }

        var list = found.ToList();
        list.Sort((a, b) => b.Length.CompareTo(a.Length));
        return list;
    }

    private static void Collect(object? value, HashSet<string> found, int minimumLength, int depth)
    {
        if (depth > 128)
        {
            return;
        }

        switch (value)
        {
            case string s:
                Add(s);
                break;
            case Secret secret:
                Add(secret.Reveal());
                break;
            case JsonElement element:
                CollectElement(element, found, minimumLength);
                break;
            case JsonValue jsonValue when jsonValue.GetValueKind() == JsonValueKind.String:
                Add(jsonValue.GetValue<string>());
                break;
            case JsonObject obj:
                foreach (var (_, child) in obj)
                {
                    Collect(child, found, minimumLength, depth + 1);
                }

                break;
            case JsonArray array:
                foreach (var child in array)
                {
                    Collect(child, found, minimumLength, depth + 1);
                }

                break;
            case IReadOnlyDictionary<string, object?> dictionary:
                foreach (var (_, child) in dictionary)
                {
                    Collect(child, found, minimumLength, depth + 1);
                }

                break;
            case IReadOnlyList<object?> list:
                foreach (var child in list)
                {
                    Collect(child, found, minimumLength, depth + 1);
                }

                break;
        }

        void Add(string s)
        {
            if (s.Length >= minimumLength)
            {
                found.Add(s);
            }
        }
    }

    private static void CollectElement(JsonElement element, HashSet<string> found, int minimumLength)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                var s = element.GetString()!;
                if (s.Length >= minimumLength)
                {
                    found.Add(s);
                }

                break;
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    CollectElement(property.Value, found, minimumLength);
                }

                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    CollectElement(item, found, minimumLength);
                }

                break;
        }
    }
}

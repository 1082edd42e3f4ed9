using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.RepresentationModel;

namespace Keyway.Cli;

/// <summary>One object of a configuration file, and where each of its fields is written (for errors).</summary>
internal sealed record ConfigDocument(JsonObject Body, IReadOnlyDictionary<string, (long Line, long Column)> Positions)
{
    /// <summary>
    /// " (line L, column C)" for a field path as the server names it (<c>auth.token</c>,
    /// <c>steps[0].url</c>), or for the nearest enclosing field; "" when the file does not say.
    /// </summary>
    public string Where(string field)
    {
        for (var path = field; ; path = Parent(path))
        {
            if (Positions.TryGetValue(path, out var at))
            {
                return $" (line {at.Line}, column {at.Column})";
            }

            if (path.Length == 0)
            {
                return "";
            }
        }
    }

    private static string Parent(string path)
    {
        var cut = Math.Max(path.LastIndexOf('.'), path.LastIndexOf('['));
        return cut <= 0 ? "" : path[..cut];
    }
}

/// <summary>
/// The files <c>resource apply</c>, <c>query apply</c> and <c>schedule put</c> read: JSON (an object or
/// an array of them) or YAML (one or more documents), and the applicable form <c>get --json</c> prints.
/// </summary>
internal static class ConfigFiles
{
    public static async Task<string> ReadAsync(string path, CancellationToken ct)
    {
        try
        {
            return await File.ReadAllTextAsync(path, ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new CliException(ExitCodes.Usage, $"Cannot read {path}: {e.Message}");
        }
    }

    /// <summary>Every object of the file; an empty file (or one of comments alone) is a usage error: it would apply nothing.</summary>
    public static List<ConfigDocument> Parse(string text, string source, string collection)
    {
        var documents = ParseBodies(text, source);
        if (documents.Count == 0)
        {
            throw new CliException(ExitCodes.Usage,
                $"{source} is empty: it holds no {collection}. Write one or more, each with a 'name' (YAML documents separated by ---, or a JSON array).");
        }

        var positions = Positions(text, documents.Count);
        return documents.Select((body, i) => new ConfigDocument(body, positions[i])).ToList();
    }

    /// <summary>
    /// What <c>GET /api/v1/resources/{name}</c> (or a query) answers, as a file applies it: the name and
    /// the definition's fields, no null field, no bookkeeping (version, dates).
    /// </summary>
    public static JsonObject Applicable(JsonNode? stored)
    {
        var result = new JsonObject { ["name"] = stored?["name"]?.DeepClone() };
        if (WithoutNulls(stored?["definition"]) is JsonObject definition)
        {
            foreach (var (key, value) in definition.ToList())
            {
                definition.Remove(key);
                result[key] = value;
            }
        }

        return result;
    }

    /// <summary>A copy without null-valued fields, at every depth (the API writes every optional field).</summary>
    public static JsonNode? WithoutNulls(JsonNode? node) => node switch
    {
        JsonObject obj => new JsonObject(obj.Where(kv => kv.Value is not null && kv.Value.GetValueKind() != JsonValueKind.Null)
            .Select(kv => new KeyValuePair<string, JsonNode?>(kv.Key, WithoutNulls(kv.Value)))),
        JsonArray array => new JsonArray(array.Select(WithoutNulls).ToArray()),
        null => null,
        _ => node.DeepClone(),
    };

    private static List<JsonObject> ParseBodies(string text, string source)
    {
        var trimmed = text.TrimStart();
        if (trimmed.StartsWith('{') || trimmed.StartsWith('['))
        {
            try
            {
                var node = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
                return node switch
                {
                    JsonObject obj => [obj],
                    JsonArray array => array.Select(n => n as JsonObject ?? throw new CliException(ExitCodes.Invalid, $"{source}: every item of the array must be an object.")).ToList(),
                    _ => throw new CliException(ExitCodes.Invalid, $"{source}: expected a JSON object or array."),
                };
            }
            catch (JsonException e)
            {
                throw new CliException(ExitCodes.Invalid, $"{source} is not valid JSON (line {e.LineNumber + 1}): {FirstSentence(e.Message)}");
            }
        }

        try
        {
            var yaml = new YamlStream();
            yaml.Load(new StringReader(text));
            return yaml.Documents
                .Where(d => d.RootNode is not YamlScalarNode { Value: null or "" })
                .Select(d => ToJson(d.RootNode) as JsonObject ?? throw new CliException(ExitCodes.Invalid, $"{source}: each YAML document must be a mapping (line {d.RootNode.Start.Line})."))
                .ToList();
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw new CliException(ExitCodes.Invalid, $"{source} is not valid YAML (line {e.Start.Line}, column {e.Start.Column}): {e.Message}");
        }
    }

    /// <summary>
    /// Where each field of each object is written. YAML reads JSON too, so both get positions; a file
    /// YAML cannot read (JSON with comments) gets none, and its errors name fields without lines.
    /// </summary>
    private static List<Dictionary<string, (long, long)>> Positions(string text, int count)
    {
        var result = Enumerable.Range(0, count).Select(_ => new Dictionary<string, (long, long)>(StringComparer.Ordinal)).ToList();
        try
        {
            var yaml = new YamlStream();
            yaml.Load(new StringReader(text));
            var roots = yaml.Documents.Select(d => d.RootNode).Where(n => n is not YamlScalarNode { Value: null or "" }).ToList();
            if (roots is [YamlSequenceNode sequence] && count == sequence.Children.Count && sequence.Children.All(c => c is YamlMappingNode))
            {
                roots = [.. sequence.Children];
            }

            for (var i = 0; i < Math.Min(count, roots.Count); i++)
            {
                Walk(roots[i], "", result[i]);
            }
        }
        catch (YamlDotNet.Core.YamlException)
        {
        }

        return result;
    }

    private static void Walk(YamlNode node, string path, Dictionary<string, (long, long)> positions)
    {
        positions.TryAdd(path, (node.Start.Line, node.Start.Column));
        switch (node)
        {
            case YamlMappingNode map:
                foreach (var (key, value) in map.Children)
                {
                    var name = (key as YamlScalarNode)?.Value ?? "";
                    var child = path.Length == 0 ? name : path + "." + name;
                    positions[child] = (key.Start.Line, key.Start.Column);
                    Walk(value, child, positions);
                }

                break;
            case YamlSequenceNode sequence:
                for (var i = 0; i < sequence.Children.Count; i++)
                {
                    Walk(sequence.Children[i], $"{path}[{i}]", positions);
                }

                break;
        }
    }

    private static string FirstSentence(string message)
    {
        var cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        return cut > 0 ? message[..cut] : message;
    }

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv => new KeyValuePair<string, JsonNode?>(((YamlScalarNode)kv.Key).Value ?? "", ToJson(kv.Value)))),
        YamlSequenceNode seq => new JsonArray(seq.Children.Select(ToJson).ToArray()),
        YamlScalarNode scalar => Scalar(scalar),
        _ => null,
    };

    private static JsonValue? Scalar(YamlScalarNode scalar)
    {
        var value = scalar.Value;
        if (scalar.Style is YamlDotNet.Core.ScalarStyle.SingleQuoted or YamlDotNet.Core.ScalarStyle.DoubleQuoted or YamlDotNet.Core.ScalarStyle.Literal or YamlDotNet.Core.ScalarStyle.Folded)
        {
            return JsonValue.Create(value);
        }

        return value switch
        {
            null or "~" or "null" => null,
            "true" => JsonValue.Create(true),
            "false" => JsonValue.Create(false),
            _ when long.TryParse(value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var l) => JsonValue.Create(l),
            _ when double.TryParse(value, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) => JsonValue.Create(d),
            _ => JsonValue.Create(value),
        };
    }
}

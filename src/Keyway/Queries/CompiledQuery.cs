using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Keyway.Api;
using Keyway.Outbound;
using Keyway.Runs;
using Keyway.Templates;

namespace Keyway.Queries;

/// <summary>A saved query with every template parsed once; <see cref="Build"/> makes the outbound call per run.</summary>
internal sealed class CompiledQuery
{
    private readonly HttpMethod _method;
    private readonly Template? _path;
    private readonly List<KeyValuePair<string, Template>> _query = [];
    private readonly List<KeyValuePair<string, Template>> _headers = [];
    private readonly Func<TemplateScope, (byte[] Bytes, string ContentType)>? _body;
    private readonly HashSet<string> _variables = new(StringComparer.Ordinal);

    private CompiledQuery(string name, long version, QueryDefinition definition, bool graphQLResource)
    {
        Name = name;
        Version = version;
        Definition = definition;
        var errors = new List<FieldError>();

        Template? Parse(string field, string? text)
        {
            if (text is null)
            {
                return null;
            }

            try
            {
                var template = Template.Parse(text);
                _variables.UnionWith(template.VariableNames);
                return template;
            }
            catch (TemplateException e)
            {
                errors.Add(new FieldError(field, e.Message));
                return null;
            }
        }

        if (Names.CheckName("query", name) is { } nameError)
        {
            errors.Add(new FieldError("name", nameError));
        }

        if (string.IsNullOrEmpty(definition.Resource))
        {
            errors.Add(new FieldError("resource", "Name the resource the query runs against."));
        }

        _method = HttpMethod.Get;
        if (string.IsNullOrWhiteSpace(definition.Method) || !HeaderRules.IsValidName(definition.Method))
        {
            errors.Add(new FieldError("method", $"'{definition.Method}' is not an HTTP method."));
        }
        else
        {
            _method = HttpMethod.Parse(definition.Method.ToUpperInvariant());
        }

        _path = Parse("path", definition.Path);
        foreach (var (key, value) in definition.Query ?? [])
        {
            if (Parse($"query.{key}", value ?? "") is { } t)
            {
                _query.Add(new(key, t));
            }
        }

        foreach (var (key, value) in definition.Headers ?? [])
        {
            if (!HeaderRules.IsValidName(key) || HeaderRules.IsHopByHop(key) || HeaderRules.IsNeverForwarded(key))
            {
                errors.Add(new FieldError($"headers.{key}", $"'{key}' cannot be set by a query."));
            }
            else if (HeaderRules.StaticValueError(value) is { } lineBreak)
            {
                errors.Add(new FieldError($"headers.{key}", lineBreak));
            }
            else if (Parse($"headers.{key}", value ?? "") is { } t)
            {
                _headers.Add(new(key, t));
            }
        }

        if (definition.Body is { } body)
        {
            _body = CompileBody(body, errors, Parse);
        }
        else if (graphQLResource)
        {
            errors.Add(new FieldError("body", "A query on a GraphQL resource needs a body: {\"type\": \"graphql\", \"query\": \"...\"}."));
        }

        if (errors.Count > 0)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                $"The query '{name}' is not valid: " + string.Join(" ", errors.Select(e => $"{e.Field}: {e.Message}")),
                new Dictionary<string, object?> { ["errors"] = errors });
        }
    }

    public string Name { get; }

    public long Version { get; }

    public QueryDefinition Definition { get; }

    /// <summary>The variables the query's templates name (checked against secrets at run time).</summary>
    public IReadOnlySet<string> Variables => _variables;

    public static CompiledQuery Compile(string name, long version, QueryDefinition definition, bool graphQLResource) =>
        new(name, version, definition, graphQLResource);

    public OutboundCall Build(TemplateScope scope)
    {
        var headers = _headers.Select(h => new KeyValuePair<string, string>(h.Key, h.Value.Render(scope))).ToList();
        foreach (var (key, value) in headers)
        {
            if (!HeaderRules.IsValidValue(value))
            {
                throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_header", $"The header '{key}' of query '{Name}' evaluates to a value with a line break or control character.");
            }
        }

        HttpContent? content = null;
        byte[]? replayable = null;
        if (_body is not null)
        {
            (replayable, var type) = _body(scope);
            content = new ByteArrayContent(replayable);
            content.Headers.ContentType = MediaTypeHeaderValue.Parse(type);
        }

        return new OutboundCall(
            _method,
            _path?.Render(scope),
            _query.Select(q => new KeyValuePair<string, string?>(q.Key, q.Value.Render(scope))).ToList(),
            headers.Where(h => content is null || !HeaderRules.ContentHeaders.Contains(h.Key)).ToList(),
            content,
            replayable);
    }

    private static Func<TemplateScope, (byte[] Bytes, string ContentType)>? CompileBody(QueryBody body, List<FieldError> errors, Func<string, string?, Template?> parse)
    {
        switch (body.Type)
        {
            case "json":
                {
                    var json = JsonTemplate.Compile("body.json", body.Json, errors, parse);
                    return scope => Json(json.Render(scope), "application/json");
                }

            case "form":
                {
                    var fields = (body.Fields ?? []).Select(f => (f.Key, Value: parse($"body.fields.{f.Key}", f.Value ?? ""))).ToList();
                    return scope =>
                    {
                        var text = string.Join('&', fields.Select(f => Uri.EscapeDataString(f.Key) + "=" + Uri.EscapeDataString(f.Value?.Render(scope) ?? "")));
                        return Bytes(Encoding.UTF8.GetBytes(text), "application/x-www-form-urlencoded");
                    };
                }

            case "raw":
                {
                    var text = parse("body.text", body.Text ?? "");
                    var type = body.ContentType ?? "text/plain; charset=utf-8";
                    if (!MediaTypeHeaderValue.TryParse(type, out _))
                    {
                        errors.Add(new FieldError("body.contentType", $"'{type}' is not a media type."));
                    }

                    return scope => Bytes(Encoding.UTF8.GetBytes(text?.Render(scope) ?? ""), type);
                }

            case "graphql":
                {
                    if (string.IsNullOrWhiteSpace(body.Query))
                    {
                        errors.Add(new FieldError("body.query", "A GraphQL body needs its document in 'query'."));
                    }

                    // The document is sent as written: GraphQL has its own variables for inputs.
                    var variables = JsonTemplate.Compile("body.variables", body.Variables, errors, parse);
                    var document = body.Query ?? "";
                    var operation = body.OperationName;
                    return scope =>
                    {
                        var payload = new JsonObject { ["query"] = document, ["variables"] = variables.Render(scope) ?? new JsonObject() };
                        if (operation is not null)
                        {
                            payload["operationName"] = operation;
                        }

                        return Json(payload, "application/json");
                    };
                }

            default:
                errors.Add(new FieldError("body.type", $"'{body.Type}' is not a body type; use json, form, raw or graphql."));
                return null;
        }
    }

    private static (byte[], string) Json(JsonNode? node, string type) =>
        (Encoding.UTF8.GetBytes(node?.ToJsonString() ?? "null"), type + "; charset=utf-8");

    private static (byte[], string) Bytes(byte[] bytes, string type) => (bytes, type);
}

/// <summary>
/// JSON whose string values may be templates: a string that is exactly one <c>{{ x }}</c> becomes
/// x's value with its type (a number stays a number); any other template renders to a string.
/// </summary>
internal sealed class JsonTemplate
{
    private readonly Func<TemplateScope, JsonNode?> _render;

    private JsonTemplate(Func<TemplateScope, JsonNode?> render) => _render = render;

    public JsonNode? Render(TemplateScope scope) => _render(scope);

    public static JsonTemplate Compile(string field, JsonElement? element, List<FieldError> errors, Func<string, string?, Template?> parse) =>
        new(element is { } e ? CompileNode(field, e, parse) : _ => null);

    private static Func<TemplateScope, JsonNode?> CompileNode(string field, JsonElement element, Func<string, string?, Template?> parse)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                {
                    var members = element.EnumerateObject().Select(p => (p.Name, Render: CompileNode($"{field}.{p.Name}", p.Value, parse))).ToList();
                    return scope => new JsonObject(members.Select(m => new KeyValuePair<string, JsonNode?>(m.Name, m.Render(scope))));
                }

            case JsonValueKind.Array:
                {
                    var items = element.EnumerateArray().Select((item, i) => CompileNode($"{field}[{i}]", item, parse)).ToList();
                    return scope => new JsonArray(items.Select(i => i(scope)).ToArray());
                }

            case JsonValueKind.String:
                {
                    var text = element.GetString()!;
                    var template = parse(field, text);
                    if (template is null || template.IsConstant)
                    {
                        return _ => JsonValue.Create(text);
                    }

                    if (template.IsSingleExpression)
                    {
                        return scope => ToNode(template.Evaluate(scope));
                    }

                    return scope => JsonValue.Create(template.Render(scope));
                }

            default:
                {
                    var constant = JsonNode.Parse(element.GetRawText());
                    return _ => constant?.DeepClone();
                }
        }
    }

    private static JsonNode? ToNode(object? value) => value switch
    {
        null => null,
        JsonNode node => node.DeepClone(),
        JsonElement element => JsonNode.Parse(element.GetRawText()),
        string s => JsonValue.Create(s),
        bool b => JsonValue.Create(b),
        long l => JsonValue.Create(l),
        int i => JsonValue.Create(i),
        double d => JsonValue.Create(d),
        _ => JsonValue.Create(value.ToString()),
    };
}

using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Acornima.Ast;
using Jint;
using Jint.Native;
using Jint.Runtime;
using Jint.Runtime.Descriptors;
using Jint.Runtime.Interop;
using Keyway.Secrets;

namespace Keyway.Templates;

/// <summary>
/// Runs template scripts in Jint with no host access and hard limits on time, statements, memory,
/// recursion and array length.
/// </summary>
/// <remarks>
/// <para>
/// <b>A fresh <see cref="Engine"/> per evaluation, on purpose.</b> Measured on the build machine
/// (Release, .NET 10, Jint 4.18): a bare engine plus a prepared <c>inputs.a + 1</c> costs about
/// 15–19 µs and 11.6 KB, against about 1.6 µs and 600 B when one engine is reused; with the
/// hardening below, a whole <see cref="Template.Render"/> of that script is about 25 µs and 27 KB
/// (a member path: about 0.26 µs and only the result string). A reused engine keeps whatever a script left behind: global <c>let</c>/<c>function</c>
/// bindings, a patched <c>String.prototype.toUpperCase</c>, legacy <c>RegExp.$1</c> statics. Templates
/// are written by different people for different resources, so a pooled engine would let one
/// template observe the values (secrets) another template handled, and resetting a realm completely
/// is not something Jint offers. Isolation is worth the 15 µs, which is noise beside the upstream
/// call each evaluation serves, and the common case (a plain member path) never reaches this class.
/// </para>
/// <para>
/// The host-facing surface is nil: CLR interop is off (no <c>AllowClr</c>, no
/// <c>importNamespace</c>), string compilation is off (<c>eval</c>, <c>Function('…')</c> and every
/// constructor reachable through <c>constructor.constructor</c> throw), scope values cross as plain
/// JS objects, arrays and primitives built by <see cref="ToJs"/>, never as wrapped CLR objects, and
/// binary buffers (<c>ArrayBuffer</c>, typed arrays), <c>WeakRef</c> and <c>ShadowRealm</c> are
/// removed because a template needs none of them and a typed array allocates its full size in one
/// step, before any limit can look.
/// </para>
/// </remarks>
internal sealed partial class TemplateSandbox
{
    // The user's expression starts on line 2 so error locations map back to the template.
    // Objects and arrays leave the engine as JSON text made inside the limits, so no getter, proxy
    // trap or toJSON of the script's ever runs on the host after the deadline has stopped counting.
    private const string WrapperPrefix =
        "(function (v) { if (typeof v === 'object' && v !== null) { return [JSON.stringify(v)]; } " +
        "if (typeof v === 'function' || typeof v === 'symbol') { return undefined; } " +
        "if (typeof v === 'bigint') { return String(v); } return v; })((\n";

    private const string WrapperSuffix = "\n))";

    private static readonly string[] RemovedGlobals =
    [
        "ArrayBuffer", "SharedArrayBuffer", "DataView", "Atomics", "Int8Array", "Uint8Array", "Uint8ClampedArray",
        "Int16Array", "Uint16Array", "Int32Array", "Uint32Array", "Float16Array", "Float32Array", "Float64Array",
        "BigInt64Array", "BigUint64Array", "WeakRef", "FinalizationRegistry", "ShadowRealm",
    ];

    public TemplateSandbox(TemplateLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        limits.Validate();
        Limits = limits;
    }

    /// <summary>The sandbox with <see cref="TemplateLimits.Default"/>.</summary>
    public static TemplateSandbox Default { get; } = new(TemplateLimits.Default);

    public TemplateLimits Limits { get; }

    /// <summary>Parses and prepares one expression. Prepared scripts are immutable and thread-safe.</summary>
    internal static TemplateScript Compile(string expression, int position)
    {
        Prepared<Script> checkedScript;
        try
        {
            checkedScript = Engine.PrepareScript("(\n" + expression + "\n)", options: new ScriptPreparationOptions
            {
                CollectReferencedGlobals = true,
                StaticAnalysis = false,
            });
        }
        catch (ScriptPreparationException ex) when (ex.InnerException is Acornima.ParseErrorException parse)
        {
            var offset = OffsetInExpression(expression, parse.Error?.LineNumber ?? 2, parse.Error?.Column ?? 0);
            throw new TemplateSyntaxException($"invalid expression: {parse.Description}", position + offset);
        }

        // "a); while (true) {}; (b" parses as a script of three statements; a template is one expression.
        if (checkedScript.Program?.Body is not [ExpressionStatement])
        {
            throw new TemplateSyntaxException("a template holds one expression, not statements", position);
        }

        var globals = checkedScript.ReferencedGlobals?.ToArray();
        var prepared = Engine.PrepareScript(WrapperPrefix + expression + WrapperSuffix);
        return new TemplateScript(prepared, globals, expression, position);
    }

    /// <summary>
    /// Parses and prepares a function body (statements ending in <c>return</c>), run as
    /// <c>(function () { body })()</c> under the same limits as an expression.
    /// </summary>
    internal static TemplateScript CompileFunctionBody(string body)
    {
        Prepared<Script> checkedScript;
        try
        {
            checkedScript = Engine.PrepareScript("(function () {\n" + body + "\n})", options: new ScriptPreparationOptions
            {
                CollectReferencedGlobals = true,
                StaticAnalysis = false,
            });
        }
        catch (ScriptPreparationException ex) when (ex.InnerException is Acornima.ParseErrorException parse)
        {
            var offset = OffsetInExpression(body, parse.Error?.LineNumber ?? 2, parse.Error?.Column ?? 0);
            throw new TemplateSyntaxException($"invalid code: {parse.Description}", offset);
        }

        // "}); while (true) {}; (function () {" would close the function early: the body must stay one function.
        if (checkedScript.Program?.Body is not [ExpressionStatement { Expression: FunctionExpression }])
        {
            throw new TemplateSyntaxException("the code must be one function body (statements and a return), not close it", 0);
        }

        // The body starts on line 2, as an expression does, so error positions map back to the code.
        // Only the scope roots the code names are set, as for an expression: globalThis['environ' + 'ment']
        // finds nothing, so what the code can reach is what a scan of its names sees.
        var globals = checkedScript.ReferencedGlobals?.ToArray() ?? [];
        var prepared = Engine.PrepareScript(WrapperPrefix[..^1] + "(function () {\n" + body + "\n})()" + WrapperSuffix);
        return new TemplateScript(prepared, globals, body, 0);
    }

    /// <summary>Evaluates a script against the scope; objects and arrays come back as JSON text.</summary>
    internal ScriptResult Evaluate(TemplateScript script, TemplateScope scope)
    {
        try
        {
            var engine = CreateEngine();
            if (script.Globals is { } globals)
            {
                foreach (var name in globals)
                {
                    if (scope.TryGetRoot(name, out var value))
                    {
                        engine.SetValue(name, ToJs(engine, value, 0));
                    }
                }
            }
            else
            {
                foreach (var name in scope.Names)
                {
                    scope.TryGetRoot(name, out var value);
                    engine.SetValue(name, ToJs(engine, value, 0));
                }
            }

            var result = FromJs(engine.Evaluate(script.Prepared));
            if (result.Value is string s && (long)s.Length * sizeof(char) > Limits.MaxMemoryBytes)
            {
                throw new SandboxLimitException(TemplateLimitKind.Memory);
            }

            return result;
        }
        catch (Exception ex) when (Map(ex, script, scope) is { } mapped)
        {
            throw mapped;
        }
    }

    private Engine CreateEngine()
    {
        var options = new Options();
        options.Strict();
        options.DisableStringCompilation();
        options.Interop.Enabled = false;
        options.TimeoutInterval(Limits.Timeout);
        options.MaxStatements(Limits.MaxStatements);
        options.LimitMemory(Limits.MaxMemoryBytes);
        options.LimitRecursion(Limits.MaxRecursionDepth);
        options.Constraints.MaxArraySize = Limits.MaxArrayLength;
        options.Constraints.RegexTimeout = Limits.Timeout;
        options.Constraints.PromiseTimeout = Limits.Timeout;

        var engine = new Engine(options);
        var global = engine.Global;
        foreach (var name in RemovedGlobals)
        {
            global.Delete(name);
        }

        GuardRepeat(engine);
        return engine;
    }

    /// <summary>
    /// Jint charges memory at statement and call boundaries, but <c>'x'.repeat(n)</c> builds its whole
    /// result in one native step (300 MB in one expression, measured), so the size is checked first.
    /// </summary>
    private void GuardRepeat(Engine engine)
    {
        var stringPrototype = engine.Global.Get("String").AsObject().Get("prototype").AsObject();
        var original = stringPrototype.Get("repeat");
        var maxChars = Limits.MaxMemoryBytes / sizeof(char);
        var guarded = new ClrFunction(engine, "repeat", (thisObject, arguments) =>
        {
            if (thisObject.IsNull() || thisObject.IsUndefined())
            {
                return original.Call(thisObject, arguments);
            }

            var text = TypeConverter.ToString(thisObject);
            var count = arguments.Length > 0 ? TypeConverter.ToNumber(arguments[0]) : 0;
            if (text.Length * count > maxChars)
            {
                throw new SandboxLimitException(TemplateLimitKind.Memory);
            }

            return original.Call(new JsString(text), [JsNumber.Create(count)]);
        }, 1);
        stringPrototype.FastSetProperty("repeat", new PropertyDescriptor(guarded, PropertyFlag.NonEnumerable));
    }

    /// <summary>
    /// Scope values become plain JS data: objects made with <see cref="JsObject"/> and own data
    /// properties (a "__proto__" key is a key, not a prototype), arrays, strings, numbers.
    /// </summary>
    private static JsValue ToJs(Engine engine, object? value, int depth)
    {
        if (depth > 64)
        {
            throw new InvalidOperationException("A template scope value is nested too deeply (is it cyclic?).");
        }

        switch (value)
        {
            case null:
                return JsValue.Null;
            case string s:
                return new JsString(s);
            case Secret secret:
                return new JsString(secret.Reveal());
            case bool b:
                return b ? JsBoolean.True : JsBoolean.False;
            case JsonElement element:
                return ElementToJs(engine, element);
            case JsonValue jsonValue:
                return TemplateValue.From(jsonValue) is { Kind: TemplateValueKind.Element } v
                    ? ElementToJs(engine, v.Element)
                    : ToJs(engine, TemplateValue.From(jsonValue).ToRawValue(), depth + 1);
            case JsonObject jsonObject:
                var fromNode = new JsObject(engine);
                foreach (var (key, child) in jsonObject)
                {
                    fromNode.FastSetDataProperty(key, ToJs(engine, child, depth + 1));
                }

                return fromNode;
            case JsonArray jsonArray:
                var nodeItems = new JsValue[jsonArray.Count];
                for (var i = 0; i < nodeItems.Length; i++)
                {
                    nodeItems[i] = ToJs(engine, jsonArray[i], depth + 1);
                }

                return new JsArray(engine, nodeItems);
            case IReadOnlyDictionary<string, object?> dictionary:
                var obj = new JsObject(engine);
                foreach (var (key, child) in dictionary)
                {
                    obj.FastSetDataProperty(key, ToJs(engine, child, depth + 1));
                }

                return obj;
            case IReadOnlyList<object?> list:
                var items = new JsValue[list.Count];
                for (var i = 0; i < items.Length; i++)
                {
                    items[i] = ToJs(engine, list[i], depth + 1);
                }

                return new JsArray(engine, items);
            case byte or sbyte or short or ushort or int or uint or long or ulong or float or double or decimal:
                return JsNumber.Create(Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture));
            default:
                // TemplateScope refuses other types at its door; a nested one is dropped, never wrapped.
                return JsValue.Undefined;
        }
    }

    private static JsValue ElementToJs(Engine engine, JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var obj = new JsObject(engine);
                foreach (var property in element.EnumerateObject())
                {
                    obj.FastSetDataProperty(property.Name, ElementToJs(engine, property.Value));
                }

                return obj;
            case JsonValueKind.Array:
                var items = new JsValue[element.GetArrayLength()];
                var i = 0;
                foreach (var item in element.EnumerateArray())
                {
                    items[i++] = ElementToJs(engine, item);
                }

                return new JsArray(engine, items);
            case JsonValueKind.String:
                return new JsString(element.GetString()!);
            case JsonValueKind.Number:
                return JsNumber.Create(element.GetDouble());
            case JsonValueKind.True:
                return JsBoolean.True;
            case JsonValueKind.False:
                return JsBoolean.False;
            case JsonValueKind.Null:
                return JsValue.Null;
            default:
                return JsValue.Undefined;
        }
    }

    private static ScriptResult FromJs(JsValue value)
    {
        if (value.IsString())
        {
            return new ScriptResult(value.AsString(), IsJson: false);
        }

        if (value.IsNumber())
        {
            return new ScriptResult(TemplateValue.NormalizeNumber(value.AsNumber()), IsJson: false);
        }

        if (value.IsBoolean())
        {
            return new ScriptResult(value.AsBoolean(), IsJson: false);
        }

        // The wrapper's one-element array holding JSON.stringify's output (undefined when the
        // object's toJSON says so). Anything else the script could return is undefined or null.
        if (value is JsArray { Length: 1 } wrapped && wrapped[0] is var json && json.IsString())
        {
            return new ScriptResult(json.AsString(), IsJson: true);
        }

        return new ScriptResult(null, IsJson: false);
    }

    private TemplateEvaluationException? Map(Exception exception, TemplateScript script, TemplateScope scope)
    {
        var position = script.Position;
        if (JintException.TryGetJavaScriptLocation(exception, out var location) && location.Start.Line >= 2)
        {
            position += OffsetInExpression(script.Expression, location.Start.Line, location.Start.Column);
        }

        TemplateEvaluationException Limit(TemplateLimitKind kind, string what) =>
            new($"the script exceeded the {what}", script.Expression, position, kind);

        return exception switch
        {
            TemplateEvaluationException => null, // already safe and specific
            SandboxLimitException limit => Limit(limit.Kind, Describe(limit.Kind)),
            TimeoutException or RegexMatchTimeoutException => Limit(TemplateLimitKind.Time, Describe(TemplateLimitKind.Time)),
            StatementsCountOverflowException => Limit(TemplateLimitKind.Statements, Describe(TemplateLimitKind.Statements)),
            MemoryLimitExceededException => Limit(TemplateLimitKind.Memory, Describe(TemplateLimitKind.Memory)),
            RecursionDepthOverflowException => Limit(TemplateLimitKind.Recursion, Describe(TemplateLimitKind.Recursion)),
            JavaScriptException js when js.Message is "Invalid string length" or "Invalid array length" =>
                Limit(TemplateLimitKind.Memory, Describe(TemplateLimitKind.Memory)),
            JavaScriptException js when js.Message.StartsWith("Maximum call stack size exceeded", StringComparison.Ordinal) =>
                Limit(TemplateLimitKind.Recursion, Describe(TemplateLimitKind.Recursion)),
            JintException or InvalidOperationException =>
                new($"script error: {Describe(exception)}", script.Expression, position),
            _ => null,
        };
    }

    private string Describe(TemplateLimitKind kind) => kind switch
    {
        TemplateLimitKind.Time => $"time limit ({Limits.Timeout.TotalMilliseconds:0} ms)",
        TemplateLimitKind.Statements => $"statement limit ({Limits.MaxStatements} statements)",
        TemplateLimitKind.Memory => $"memory limit ({Limits.MaxMemoryBytes} bytes)",
        _ => $"recursion limit (depth {Limits.MaxRecursionDepth})",
    };

    /// <summary>
    /// What kind of error a script raised, never what it said: a message can carry text the script
    /// derived from a secret (<c>throw new Error(token.split('').join(' '))</c>), and even a name an
    /// engine message quotes can be computed (<c>undefined['k' + token.charCodeAt(0)]</c>). Only the
    /// error's kind, from a fixed list, and messages of the engine's own that quote nothing are shown.
    /// </summary>
    internal static string Describe(Exception exception)
    {
        if (exception is not JavaScriptException js)
        {
            return "the script could not run";
        }

        var kind = ErrorKind(js);
        return js.Message switch
        {
            "String compilation has been disabled in engine options" => $"{js.Message} ({kind})",
            var m when m.EndsWith(" is not defined", StringComparison.Ordinal) => $"the script read a name that is not defined ({kind})",
            var m when m.StartsWith("Cannot read properties of undefined", StringComparison.Ordinal) => $"the script read a property of undefined ({kind})",
            var m when m.StartsWith("Cannot read properties of null", StringComparison.Ordinal) => $"the script read a property of null ({kind})",
            _ => $"the script raised {Article(kind)} (its message is not shown: it could carry a value the script read)",
        };
    }

    private static string ErrorKind(JavaScriptException js) =>
        js.Error is Jint.Native.Object.ObjectInstance error && error.Get("name") is var name && name.IsString() &&
        ErrorName().IsMatch(name.AsString())
            ? name.AsString()
            : "exception";

    private static string Article(string kind) => kind == "exception" ? "an exception" : (kind[0] is 'E' or 'A' or 'I' or 'O' or 'U' ? "an " : "a ") + kind;

    [System.Text.RegularExpressions.GeneratedRegex(@"^(?:Error|TypeError|RangeError|ReferenceError|SyntaxError|EvalError|URIError|AggregateError)$")]
    private static partial System.Text.RegularExpressions.Regex ErrorName();

    /// <summary>
    /// Jint's messages can quote values ("Cannot read properties of undefined (reading 'x')" is fine;
    /// <c>throw new Error(token)</c> is not). Every scope string of 4+ characters is replaced, longest
    /// first, and the message is capped. A script can still encode a value (reverse it, base64 it)
    /// before throwing; redaction is a safety net, not a channel guarantee.
    /// </summary>
    internal static string Redact(string message, TemplateScope scope)
    {
        foreach (var value in scope.CollectStrings(minimumLength: 4))
        {
            message = message.Replace(value, Secret.Redacted, StringComparison.Ordinal);
        }

        return message.Length > 300 ? message[..300] + "…" : message;
    }

    /// <summary>Maps a 1-based line (the expression starts on line 2) and 0-based column to an offset.</summary>
    private static int OffsetInExpression(string expression, int line, int column)
    {
        var offset = 0;
        for (var l = 2; l < line; l++)
        {
            var next = expression.IndexOf('\n', offset);
            if (next < 0)
            {
                return expression.Length;
            }

            offset = next + 1;
        }

        return line < 2 ? 0 : Math.Clamp(offset + column, 0, expression.Length);
    }

    /// <summary>Thrown from guarded built-ins; never visible to the script's own try/catch.</summary>
    private sealed class SandboxLimitException(TemplateLimitKind kind) : Exception("A template sandbox limit was hit.")
    {
        public TemplateLimitKind Kind { get; } = kind;
    }
}

/// <summary>A prepared script: the expression wrapped, parsed and analysed once, at configuration load.</summary>
/// <remarks>
/// The prepared script is kept boxed, as an object: every template expression has a field of this
/// type, and a field of Jint's <c>Prepared&lt;Script&gt;</c> struct here would load Jint and Acornima
/// as soon as any template is parsed. This way a server whose templates are all member paths never
/// loads the script engine (about 2 MB resident; docs/benchmarks.md, "Memory and the audit insert").
/// </remarks>
internal sealed record TemplateScript(object PreparedScript, string[]? Globals, string Expression, int Position)
{
    public TemplateScript(Prepared<Script> prepared, string[]? globals, string expression, int position)
        : this((object)prepared, globals, expression, position)
    {
    }

    public Prepared<Script> Prepared => (Prepared<Script>)PreparedScript;
}

/// <summary>A primitive (string, long, double, bool, null) or, when <see cref="IsJson"/>, compact JSON text.</summary>
internal readonly record struct ScriptResult(object? Value, bool IsJson);

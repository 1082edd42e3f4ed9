using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Keyway.Api;
using Keyway.Outbound;
using Keyway.Templates;

namespace Keyway.Resources;

/// <summary>One step of a compiled custom auth flow.</summary>
internal abstract record CustomStep(string Name, string Field);

/// <summary>An HTTP call; its response is <c>{{ name.status }}</c>, <c>{{ name.headers['x'] }}</c>, <c>{{ name.body }}</c>.</summary>
internal sealed record RequestStep(string Name, string Field, HttpMethod Method, Template Url, IReadOnlyList<KeyValuePair<string, Template>> Headers, Template? Body)
    : CustomStep(Name, Field);

/// <summary><c>NAME = {{ template }}</c>.</summary>
internal sealed record VariableStep(string Name, string Field, Template Value) : CustomStep(Name, Field);

/// <summary>Sandboxed code returning an object whose properties become variables.</summary>
internal sealed record JavascriptStep(string Name, string Field, TemplateFunction Code) : CustomStep(Name, Field);

/// <summary>A <c>custom</c> auth method (a multi-step login flow), validated, every template parsed once.</summary>
internal sealed partial class CompiledCustomFlow
{
    public const int MaxSteps = 20;

    private static readonly HashSet<string> Reserved = new(StringComparer.Ordinal)
    {
        "environment", "current_user", "response", "inputs", "undefined", "null", "true", "false", "this", "NaN", "Infinity",
    };

    private static readonly string[] Methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];

    public required IReadOnlyList<CustomStep> Steps { get; init; }

    /// <summary>Run instead of <see cref="Steps"/> to renew a session, with the previous variables in scope; null: run the whole flow again.</summary>
    public IReadOnlyList<CustomStep>? RefreshSteps { get; init; }

    /// <summary>Where the flow's variables go on every request.</summary>
    public required CompiledApply Apply { get; init; }

    public Template? ExpiresIn { get; init; }

    public Template? Jwt { get; init; }

    public TimeSpan? Lifetime { get; init; }

    /// <summary>A template over <c>response</c>: true means the session was rejected.</summary>
    public Template? BodyCondition { get; init; }

    /// <summary>Statuses that mean the session was rejected (<c>refresh.statuses</c>), or null.</summary>
    public IReadOnlyList<int>? RefreshStatuses { get; init; }

    /// <summary>Run the flow again on this schedule too (<c>auth.refreshSchedule</c>, cron, UTC).</summary>
    public Cronos.CronExpression? RefreshSchedule { get; init; }

    /// <summary>A hash of the flow's shape (steps, refresh steps, expiry rules as written): templates, never values.</summary>
    public required string ShapeHash { get; init; }

    /// <summary>The environment variables the flow (not <c>apply</c>) reads.</summary>
    public required IReadOnlySet<string> FlowVariables { get; init; }

    public static CompiledCustomFlow? Compile(AuthDefinition auth, List<FieldError> errors, Func<string, string?, bool, Template?> parse)
    {
        foreach (var (field, value) in new (string, object?)[]
                 {
                     ("grant", auth.Grant), ("issuer", auth.Issuer), ("tokenUrl", auth.TokenUrl), ("authorizeUrl", auth.AuthorizeUrl),
                     ("revocationUrl", auth.RevocationUrl), ("clientId", auth.ClientId), ("clientSecret", auth.ClientSecret),
                     ("clientAuth", auth.ClientAuth), ("scope", auth.Scope), ("audience", auth.Audience), ("resourceIndicator", auth.ResourceIndicator),
                     ("extraParameters", auth.ExtraParameters), ("token", auth.Token), ("prefix", auth.Prefix), ("username", auth.Username),
                     ("password", auth.Password), ("in", auth.In), ("name", auth.Name), ("value", auth.Value),
                     ("keepAliveSeconds", auth.KeepAliveSeconds),
                 })
        {
            if (value is not null)
            {
                errors.Add(new FieldError($"auth.{field}", $"'{field}' does not apply to auth type 'custom': put it in a step (auth.steps) or in auth.apply."));
            }
        }

        Cronos.CronExpression? schedule = null;
        if (auth.RefreshSchedule is { } cron && !Cronos.CronExpression.TryParse(cron, out schedule))
        {
            errors.Add(new FieldError("auth.refreshSchedule", $"'{cron}' is not a cron expression (5 fields: minute hour day month weekday, UTC), e.g. '0 3 * * *'."));
        }

        var flowVariables = new HashSet<string>(StringComparer.Ordinal);
        Template? ParseFlow(string field, string? text, bool required)
        {
            var template = parse(field, text, required);
            if (template is not null)
            {
                flowVariables.UnionWith(template.VariableNames);
                if (template.Roots.Contains("current_user"))
                {
                    errors.Add(new FieldError(field, "A custom flow's credential is shared by everyone: its steps and expiry cannot read current_user."));
                }
            }

            return template;
        }

        if (auth.Steps is not { Count: > 0 })
        {
            errors.Add(new FieldError("auth.steps", "A custom flow needs at least one step (request, variable or javascript)."));
        }

        var steps = CompileSteps("auth.steps", auth.Steps ?? [], errors, ParseFlow, []);
        var definedByMain = new HashSet<string>(steps.Where(s => s is VariableStep).Select(s => s.Name), StringComparer.Ordinal);
        var refreshSteps = auth.RefreshSteps is null ? null : CompileSteps("auth.refreshSteps", auth.RefreshSteps, errors, ParseFlow, definedByMain);
        if (auth.RefreshSteps is { Count: 0 })
        {
            errors.Add(new FieldError("auth.refreshSteps", "Leave refreshSteps out to run the whole flow again, or give it at least one step."));
        }

        var allSteps = steps.Concat(refreshSteps ?? []).ToList();
        var variables = new HashSet<string>(allSteps.OfType<VariableStep>().Select(s => s.Name), StringComparer.Ordinal);
        var responses = new HashSet<string>(allSteps.OfType<RequestStep>().Select(s => s.Name), StringComparer.Ordinal);
        var hasJavascript = allSteps.Any(s => s is JavascriptStep);

        var usesVariable = false;
        CompiledApply? apply = null;
        if (auth.Apply is null)
        {
            errors.Add(new FieldError("auth.apply", "Say where the flow's variables go: auth.apply.headers, auth.apply.query, auth.apply.cookies or auth.apply.body, e.g. { \"headers\": { \"Authorization\": \"Bearer {{ TOKEN }}\" } }."));
        }
        else
        {
            apply = CompiledApply.Compile(auth.Apply, errors, parse, (field, template) =>
            {
                if (template.Roots.FirstOrDefault(responses.Contains) is { } response)
                {
                    errors.Add(new FieldError(field,
                        $"'{response}' is a request step's response, which is not kept after the flow: copy what you need into a variable step ({{ \"type\": \"variable\", \"name\": \"TOKEN\", \"value\": \"{{{{ {response}.body.token }}}}\" }}) and use {{{{ TOKEN }}}} here."));
                }

                usesVariable |= template.Roots.Any(variables.Contains) ||
                                (hasJavascript && template.Roots.Any(r => r is not ("environment" or "current_user") && !responses.Contains(r)));
            });
            var entries = (auth.Apply.Headers?.Count ?? 0) + (auth.Apply.Query?.Count ?? 0) + (auth.Apply.Cookies?.Count ?? 0) + (auth.Apply.Body?.Count ?? 0);
            if (entries == 0)
            {
                errors.Add(new FieldError("auth.apply", "Give at least one header, query parameter, cookie or body field."));
            }
            else if (!usesVariable && apply.Count == entries)
            {
                errors.Add(new FieldError("auth.apply",
                    "auth.apply must use at least one of the flow's variables (a variable step's name, or a property a javascript step returns), e.g. \"Bearer {{ TOKEN }}\"."));
            }
        }

        if (auth.LifetimeSeconds is < 1)
        {
            errors.Add(new FieldError("auth.lifetimeSeconds", "Must be a positive number of seconds."));
        }

        var statuses = auth.Refresh?.Statuses;
        if (statuses is not null && statuses.Any(status => status is < 400 or > 599))
        {
            errors.Add(new FieldError("auth.refresh.statuses", "Only 4xx and 5xx statuses can mean that a session was rejected."));
        }

        var bodyCondition = parse("auth.refresh.bodyCondition", auth.Refresh?.BodyCondition, false);
        if (bodyCondition is not null && bodyCondition.Roots.FirstOrDefault(r => r is not ("response" or "environment")) is { } other &&
            (responses.Contains(other) || variables.Contains(other)))
        {
            errors.Add(new FieldError("auth.refresh.bodyCondition", $"A body condition sees 'response' (status, headers, body) and 'environment', not '{other}'."));
        }

        var shape = JsonSerializer.Serialize(new { auth.Steps, auth.RefreshSteps, auth.ExpiresIn, auth.Jwt, auth.LifetimeSeconds }, ConfigJson.Options);
        return new CompiledCustomFlow
        {
            Steps = steps,
            RefreshSteps = refreshSteps,
            Apply = apply ?? new CompiledApply { Headers = [], Query = [], Cookies = [], Body = [] },
            ExpiresIn = ParseFlow("auth.expiresIn", auth.ExpiresIn, false),
            Jwt = ParseFlow("auth.jwt", auth.Jwt, false),
            Lifetime = auth.LifetimeSeconds is { } seconds and > 0 ? TimeSpan.FromSeconds(seconds) : null,
            BodyCondition = bodyCondition,
            RefreshStatuses = statuses,
            RefreshSchedule = schedule,
            ShapeHash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(shape)))[..32],
            FlowVariables = flowVariables,
        };
    }

    private static List<CustomStep> CompileSteps(
        string list, List<AuthStepDefinition> definitions, List<FieldError> errors, Func<string, string?, bool, Template?> parse, HashSet<string> known)
    {
        var steps = new List<CustomStep>();
        if (definitions.Count > MaxSteps)
        {
            errors.Add(new FieldError(list, $"A flow has at most {MaxSteps} steps."));
        }

        var names = definitions.Select(d => d.Name).ToList();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var sawJavascript = false;
        for (var i = 0; i < definitions.Count; i++)
        {
            var step = definitions[i] ?? new AuthStepDefinition();
            var at = $"{list}[{i}]";
            var name = step.Name;
            if (string.IsNullOrEmpty(name))
            {
                errors.Add(new FieldError($"{at}.name", "Name the step: an identifier such as login or TOKEN."));
                name = $"step{i}";
            }
            else if (!Identifier().IsMatch(name))
            {
                errors.Add(new FieldError($"{at}.name", $"'{name}' is not an identifier (letters, digits and _, not starting with a digit)."));
            }
            else if (Reserved.Contains(name))
            {
                errors.Add(new FieldError($"{at}.name", $"'{name}' is reserved; choose another name."));
            }
            else if (!seen.Add(name))
            {
                errors.Add(new FieldError($"{at}.name", $"Another step of {list} is already named '{name}'."));
            }

            void Reject(string field, object? value)
            {
                if (value is not null)
                {
                    errors.Add(new FieldError($"{at}.{field}", $"'{field}' does not apply to a {step.Type} step."));
                }
            }

            // Reading a step that has not run yet is always a mistake (best effort: member paths and script globals).
            Template? ParseStep(string field, string? text, bool required)
            {
                var template = parse($"{at}.{field}", text, required);
                if (template is not null && !sawJavascript)
                {
                    var before = new HashSet<string>(known, StringComparer.Ordinal);
                    before.UnionWith(names.Take(i).OfType<string>());
                    var later = names.Skip(i).OfType<string>().FirstOrDefault(n => template.Roots.Contains(n) && !before.Contains(n));
                    if (later is not null)
                    {
                        errors.Add(new FieldError($"{at}.{field}", $"'{later}' is not defined yet: steps run in order, and '{later}' comes later (or is this step)."));
                    }
                }

                return template;
            }

            switch (step.Type)
            {
                case "request":
                    {
                        Reject("value", step.Value);
                        Reject("code", step.Code);
                        var method = (step.Method ?? "GET").ToUpperInvariant();
                        if (!Methods.Contains(method))
                        {
                            errors.Add(new FieldError($"{at}.method", $"'{step.Method}' is not a method a login step can use; use {string.Join(", ", Methods)}."));
                        }

                        var url = ParseStep("url", step.Url, true);
                        if (url is { IsConstant: true } && ResourceCompiler.CheckBaseUrl(step.Url!) is { } urlError)
                        {
                            errors.Add(new FieldError($"{at}.url", urlError));
                        }

                        var headers = new List<KeyValuePair<string, Template>>();
                        foreach (var (header, value) in step.Headers ?? [])
                        {
                            var field = $"headers.{header}";
                            if (!HeaderRules.IsValidName(header))
                            {
                                errors.Add(new FieldError($"{at}.{field}", $"'{header}' is not a valid header name."));
                            }
                            else if (HeaderRules.IsHopByHop(header) || header.Equals("Host", StringComparison.OrdinalIgnoreCase) || header.Equals("Content-Length", StringComparison.OrdinalIgnoreCase))
                            {
                                errors.Add(new FieldError($"{at}.{field}", $"Keyway sets '{header}' itself; remove it."));
                            }
                            else if (ParseStep(field, value ?? "", false) is { } template)
                            {
                                headers.Add(new(header, template));
                            }
                        }

                        var body = ParseStep("body", step.Body, false);
                        if (body is not null && method is "GET")
                        {
                            errors.Add(new FieldError($"{at}.body", "A GET request has no body; use POST."));
                        }

                        if (url is not null)
                        {
                            steps.Add(new RequestStep(name, at, new HttpMethod(method), url, headers, body));
                        }

                        break;
                    }

                case "variable":
                    {
                        Reject("method", step.Method);
                        Reject("url", step.Url);
                        Reject("headers", step.Headers);
                        Reject("body", step.Body);
                        Reject("code", step.Code);
                        if (ParseStep("value", step.Value, true) is { } value)
                        {
                            steps.Add(new VariableStep(name, at, value));
                        }

                        break;
                    }

                case "javascript":
                    {
                        Reject("method", step.Method);
                        Reject("url", step.Url);
                        Reject("headers", step.Headers);
                        Reject("body", step.Body);
                        Reject("value", step.Value);
                        sawJavascript = true;
                        if (string.IsNullOrWhiteSpace(step.Code))
                        {
                            errors.Add(new FieldError($"{at}.code", "This field is required: a function body that returns an object, e.g. return { CSRF: login.headers['x-csrf'] };"));
                            break;
                        }

                        if (step.Code.Contains("current_user", StringComparison.Ordinal))
                        {
                            errors.Add(new FieldError($"{at}.code", "A custom flow's credential is shared by everyone: its steps cannot read current_user."));
                        }

                        try
                        {
                            steps.Add(new JavascriptStep(name, at, TemplateFunction.Parse(step.Code)));
                        }
                        catch (TemplateException e)
                        {
                            errors.Add(new FieldError($"{at}.code", e.Message));
                        }

                        break;
                    }

                default:
                    errors.Add(new FieldError($"{at}.type", $"'{step.Type}' is not a step type; use request, variable or javascript."));
                    break;
            }
        }

        return steps;
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex Identifier();
}

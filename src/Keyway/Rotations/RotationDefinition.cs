using System.Text.Json;
using Keyway.Api;
using Keyway.Templates;

namespace Keyway.Rotations;

/// <summary>
/// How a secret variable is rotated (<c>PUT /api/v1/environments/{env}/variables/{name}/rotation</c>,
/// <c>keyway var rotation set NAME -f FILE</c>): <see cref="Mint"/> steps that obtain a new secret at
/// the provider, <see cref="Value"/> and <see cref="Id"/> that extract it (and the provider's id for
/// it) from their answers, a <see cref="Verify"/> request that must succeed with the new value, and an
/// optional <see cref="Revoke"/> of the old one <see cref="RevokeAfter"/> the commit.
/// </summary>
/// <remarks>
/// Templates see the answers of earlier mint steps by step name (<c>{{ create.body.key }}</c>, as in
/// custom login flows) and <c>rotation</c>: <c>rotation.environment</c>, <c>rotation.variable</c>,
/// <c>rotation.previous.id</c>/<c>.version</c> (the value being replaced), in verify and revoke,
/// <c>rotation.new.id</c>/<c>.version</c>, and in revoke <c>rotation.revoke.id</c>/<c>.version</c>: the key that
/// revoke retires (the replaced one after a commit, the minted one after a roll-back). Never <c>environment</c> or <c>current_user</c>: a rotation
/// cannot copy another secret into this one, or depend on who triggered it.
/// </remarks>
internal sealed record RotationDefinition
{
    public List<RotationStep>? Mint { get; init; }

    /// <summary>The new secret, from the mint answers (<c>{{ create.body.key }}</c>).</summary>
    public string? Value { get; init; }

    /// <summary>The provider's id of the new secret (a key id, never the key), kept for the next rotation's revoke.</summary>
    public string? Id { get; init; }

    /// <summary>A request through a resource that reads this variable, sent with the new value before it is committed.</summary>
    public RotationStep? Verify { get; init; }

    /// <summary>
    /// A request that revokes a key at the provider: <c>{{ rotation.revoke.id }}</c> names the replaced key after a commit and
    /// the minted one after a roll-back (<c>{{ rotation.previous.id }}</c> names only the former; such a step is not sent for an abandoned key).
    /// </summary>
    public RotationStep? Revoke { get; init; }

    /// <summary>The grace period between commit and revoke (<c>1h</c>, <c>PT1H</c>, <c>0s</c>; default 1h).</summary>
    public string? RevokeAfter { get; init; }
}

/// <summary>One request of a rotation, sent through a resource: its base URL, headers and credential apply.</summary>
internal sealed record RotationStep
{
    /// <summary>How later templates name this step's answer (mint steps; default <c>step1</c>, <c>step2</c>…).</summary>
    public string? Name { get; init; }

    public string? Resource { get; init; }

    public string? Method { get; init; }

    /// <summary>Relative to the resource's base URL; a template.</summary>
    public string? Path { get; init; }

    public Dictionary<string, string>? Query { get; init; }

    public Dictionary<string, string>? Headers { get; init; }

    /// <summary>A template; sent as JSON when it renders as JSON, else as text.</summary>
    public string? Body { get; init; }

    /// <summary>The statuses that count as success (default: any 2xx; for revoke, 2xx and 404: already gone).</summary>
    public List<int>? ExpectStatus { get; init; }
}

/// <summary>A step with its templates parsed.</summary>
internal sealed record CompiledRotationStep(
    string Name, string Field, string Resource, HttpMethod Method, Template Path, IReadOnlyList<KeyValuePair<string, Template>> Query,
    IReadOnlyList<KeyValuePair<string, Template>> Headers, Template? Body, IReadOnlyList<int>? ExpectStatus)
{
    /// <summary>Whether <paramref name="status"/> counts as success; <paramref name="goneIsDone"/>: 404 too (revoke).</summary>
    public bool Accepts(int status, bool goneIsDone = false) =>
        ExpectStatus is { } expected ? expected.Contains(status) : status is >= 200 and < 300 || (goneIsDone && status == 404);
}

/// <summary>A rotation definition validated and parsed once.</summary>
internal sealed record CompiledRotation(
    RotationDefinition Definition, IReadOnlyList<CompiledRotationStep> Mint, Template Value, Template? Id,
    CompiledRotationStep Verify, CompiledRotationStep? Revoke, TimeSpan RevokeAfter)
{
    public const int MaxMintSteps = 5;
    public static readonly TimeSpan DefaultRevokeAfter = TimeSpan.FromHours(1);

    private static readonly HashSet<string> Reserved = new(StringComparer.Ordinal)
    {
        "rotation", "environment", "current_user", "inputs", "response", "undefined", "null", "true", "false", "this", "NaN", "Infinity",
    };

    private static readonly string[] Methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];

    /// <summary>Every resource the rotation sends a request through.</summary>
    public IEnumerable<string> Resources => Mint.Select(s => s.Resource).Append(Verify.Resource).Concat(Revoke is null ? [] : [Revoke.Resource]).Distinct(StringComparer.Ordinal);

    public static CompiledRotation Parse(string json) =>
        Compile(JsonSerializer.Deserialize<RotationDefinition>(json, Keyway.Resources.ConfigJson.Options) ?? throw new InvalidDataException("A stored rotation is empty."));

    /// <summary>
    /// Checks what can be checked without the store; every problem is one field error, thrown together as
    /// <c>400 invalid_config</c>. Whether the resources exist and read the variable is checked on save.
    /// </summary>
    public static CompiledRotation Compile(RotationDefinition definition)
    {
        var errors = new List<FieldError>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var mint = new List<CompiledRotationStep>();
        if (definition.Mint is not { Count: > 0 })
        {
            errors.Add(new FieldError("mint", "A rotation needs at least one mint step: a request through a resource that creates the new secret at the provider."));
        }
        else if (definition.Mint.Count > MaxMintSteps)
        {
            errors.Add(new FieldError("mint", $"A rotation has at most {MaxMintSteps} mint steps."));
        }
        else
        {
            for (var i = 0; i < definition.Mint.Count; i++)
            {
                var step = definition.Mint[i] ?? new RotationStep();
                var name = step.Name ?? $"step{i + 1}";
                var field = $"mint[{i}]";
                if (!IsStepName(name))
                {
                    errors.Add(new FieldError(field + ".name", $"'{name}' is not a usable step name: letters, digits and _, not starting with a digit, and not one of {string.Join(", ", Reserved.Take(4))}."));
                }
                else if (!names.Add(name))
                {
                    errors.Add(new FieldError(field + ".name", $"Two mint steps are named '{name}'."));
                }

                if (CompileStep(step, name, field, errors, names.Where(n => n != name).ToHashSet(StringComparer.Ordinal), allowNew: false) is { } compiled)
                {
                    mint.Add(compiled);
                }
            }
        }

        var value = ParseTemplate("value", definition.Value, required: true, errors, names, allowNew: false);
        if (definition.Value is { Length: > 0 } && value is not null && value.IsConstant)
        {
            errors.Add(new FieldError("value", "value extracts the new secret from a mint answer, e.g. {{ create.body.key }}; a constant is not a rotation."));
        }

        var id = ParseTemplate("id", definition.Id, required: false, errors, names, allowNew: false);
        RequireMemberPath("value", value, errors);
        RequireMemberPath("id", id, errors);
        CompiledRotationStep? verify = null;
        if (definition.Verify is null)
        {
            errors.Add(new FieldError("verify", "A rotation needs verify: a request through a resource that reads this variable, which must succeed with the new value before it is used."));
        }
        else
        {
            verify = CompileStep(definition.Verify, "verify", "verify", errors, [], allowNew: true);
        }

        var revoke = definition.Revoke is null ? null : CompileStep(definition.Revoke, "revoke", "revoke", errors, [], allowNew: true);
        var revokeAfter = DefaultRevokeAfter;
        if (definition.RevokeAfter is { } after)
        {
            try
            {
                revokeAfter = after.Trim() is "0" or "0s" ? TimeSpan.Zero : ParseGrace(after);
            }
            catch (KeywayException e)
            {
                errors.Add(new FieldError("revokeAfter", e.Message));
            }
        }

        if (definition.RevokeAfter is not null && definition.Revoke is null)
        {
            errors.Add(new FieldError("revokeAfter", "revokeAfter is the grace period before revoke; there is no revoke step."));
        }

        if (errors.Count > 0)
        {
            throw Invalid(errors);
        }

        return new CompiledRotation(definition, mint, value!, id, verify!, revoke, revokeAfter);
    }

    public static KeywayException Invalid(IReadOnlyList<FieldError> errors) =>
        new(StatusCodes.Status400BadRequest, "invalid_config",
            $"The rotation is not valid: {string.Join("; ", errors.Select(e => $"{e.Field}: {e.Message}"))}",
            new Dictionary<string, object?> { ["errors"] = errors });

    private static TimeSpan ParseGrace(string text)
    {
        try
        {
            return Environments.SecretPolicy.ParseRotateEvery(text);
        }
        catch (KeywayException)
        {
            throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config",
                $"'{text}' is not a grace period: 0s (revoke at once), or 30m, 12h, 7d, PT1H (at least a minute).");
        }
    }

    private static CompiledRotationStep? CompileStep(RotationStep step, string name, string field, List<FieldError> errors, HashSet<string> earlier, bool allowNew)
    {
        var before = errors.Count;
        if (string.IsNullOrWhiteSpace(step.Resource) || Names.CheckName("resource", step.Resource) is not null)
        {
            errors.Add(new FieldError(field + ".resource", "Name the resource the request goes through (its base URL, headers and credential apply)."));
        }

        var method = (step.Method ?? "GET").ToUpperInvariant();
        if (!Methods.Contains(method))
        {
            errors.Add(new FieldError(field + ".method", $"method is one of {string.Join(", ", Methods)}."));
        }

        var path = ParseTemplate(field + ".path", step.Path ?? "", required: false, errors, earlier, allowNew) ?? Template.Parse("");
        var query = ParseMap(field + ".query", step.Query, errors, earlier, allowNew);
        var headers = ParseMap(field + ".headers", step.Headers, errors, earlier, allowNew);
        foreach (var (header, _) in step.Headers ?? [])
        {
            if (!Outbound.HeaderRules.IsValidName(header) || Outbound.HeaderRules.IsHopByHop(header) || Outbound.HeaderRules.IsNeverForwarded(header))
            {
                errors.Add(new FieldError($"{field}.headers.{header}", $"'{header}' cannot be set on a rotation request."));
            }
        }

        var body = ParseTemplate(field + ".body", step.Body, required: false, errors, earlier, allowNew);
        if (step.ExpectStatus is { } expect && (expect.Count == 0 || expect.Any(s => s is < 100 or > 599)))
        {
            errors.Add(new FieldError(field + ".expectStatus", "expectStatus lists HTTP statuses (100–599), e.g. [200, 204]."));
        }

        return errors.Count > before
            ? null
            : new CompiledRotationStep(name, field, step.Resource!, HttpMethod.Parse(method), path, query, headers, body, step.ExpectStatus);
    }

    private static List<KeyValuePair<string, Template>> ParseMap(string field, Dictionary<string, string>? entries, List<FieldError> errors, HashSet<string> earlier, bool allowNew)
    {
        var parsed = new List<KeyValuePair<string, Template>>();
        foreach (var (name, text) in entries ?? [])
        {
            if (ParseTemplate($"{field}.{name}", text ?? "", required: false, errors, earlier, allowNew) is { } template)
            {
                parsed.Add(new(name, template));
            }
        }

        return parsed;
    }

    /// <summary>Parses a template that may read <c>rotation</c> and the answers of <paramref name="steps"/>, nothing else.</summary>
    private static Template? ParseTemplate(string field, string? text, bool required, List<FieldError> errors, HashSet<string> steps, bool allowNew)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            if (required)
            {
                errors.Add(new FieldError(field, $"Set {field}, a template over the mint answers, e.g. {{{{ create.body.key }}}}."));
            }

            return text is null ? null : Template.Parse("");
        }

        Template template;
        try
        {
            template = Template.Parse(text);
        }
        catch (TemplateException e)
        {
            errors.Add(new FieldError(field, e.Message));
            return null;
        }

        if (template.ReferencesAllVariables || template.Roots.Any(r => r is "environment" or "current_user" or "inputs"))
        {
            errors.Add(new FieldError(field, "A rotation's templates read the mint answers and rotation.* only: never environment variables or current_user."));
            return null;
        }

        foreach (var root in template.Roots)
        {
            if (root != "rotation" && !steps.Contains(root))
            {
                errors.Add(new FieldError(field, allowNew
                    ? $"'{root}' is not known here: verify and revoke read rotation.previous.id, rotation.new.id, rotation.revoke.id and the like (copy what a mint answer says into id)."
                    : $"'{root}' is not an earlier mint step: templates read the answers of the steps before them (and rotation.*)."));
                return null;
            }
        }

        if (!field.StartsWith("revoke", StringComparison.Ordinal) && template.ReferencedPaths.Any(p => p.StartsWith("rotation.revoke", StringComparison.Ordinal)))
        {
            errors.Add(new FieldError(field, "rotation.revoke is the key a revoke retires: only the revoke step reads it."));
            return null;
        }

        if (!allowNew && template.ReferencedPaths.Any(p => p.StartsWith("rotation.new", StringComparison.Ordinal)))
        {
            errors.Add(new FieldError(field, "rotation.new is known only after minting: verify and revoke read it."));
            return null;
        }

        return template;
    }

    /// <summary>
    /// value and id copy one field of a mint answer (<c>{{ create.body.id }}</c>): a script could compute anything
    /// from the answer (the secret reversed, sliced, encoded) and store it where history and audit show it.
    /// </summary>
    private static void RequireMemberPath(string field, Template? template, List<FieldError> errors)
    {
        if (template is null || template.IsConstant)
        {
            return;
        }

        if (!template.IsSingleExpression || !template.Expressions.Single().IsMemberPath)
        {
            errors.Add(new FieldError(field,
                $"{field} is one plain member path of a mint answer, like {{{{ create.body.{(field == "id" ? "id" : "key")} }}}}: no text around it, no calls or operators."));
        }
    }

    private static bool IsStepName(string name) =>
        name.Length is > 0 and <= 40 && (char.IsAsciiLetter(name[0]) || name[0] == '_') && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_') && !Reserved.Contains(name);
}

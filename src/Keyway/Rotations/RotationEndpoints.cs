using System.Text.Json;
using Keyway.Access;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Environments;
using Keyway.Resources;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Keyway.Rotations;

/// <summary>
/// A variable's rotation flow and its runs: <c>/api/v1/environments/{env}/variables/{name}/rotation</c>
/// (the definition), <c>…/rotate</c> (run one now) and <c>…/rotations</c> (history). Variables are
/// admin's, and so is what moves their values: defining, running and reading rotations needs admin
/// (in that environment, for a scoped key).
/// </summary>
internal static class RotationEndpoints
{
    internal sealed record RotationView(string Environment, string Name, RotationDefinition Rotation);

    internal sealed record RotationList(string Environment, string Name, IReadOnlyList<RotationInfo> Rotations);

    public static RouteGroupBuilder MapRotations(this RouteGroupBuilder api)
    {
        var group = api.MapGroup("/environments/{env}/variables/{name}").WithTags("Rotations");

        group.MapGet("/rotation", async Task<Results<Ok<RotationView>, ProblemHttpResult>> (string env, string name, VariableService variables, CancellationToken ct) =>
            {
                var variable = await variables.GetRotationAsync(env, name, ct);
                if (variable is null)
                {
                    return Problems.NotFound($"There is no variable '{name}' in environment '{env}'.");
                }

                return variable.Value.Rotation is { } json
                    ? TypedResults.Ok(new RotationView(env, name, JsonSerializer.Deserialize<RotationDefinition>(json, ConfigJson.Options)!))
                    : throw new KeywayException(StatusCodes.Status404NotFound, "rotation_not_defined",
                        $"'{name}' in '{env}' has no rotation flow. Define one: keyway var rotation set {name} --env {env} -f rotation.json");
            })
            .Requires(Permission.Admin)
            .WithSummary("Get a secret variable's rotation flow (templates and resource names, never a value).");

        group.MapPut("/rotation", async Task<Results<Ok<RotationView>, ProblemHttpResult>> (
                string env, string name, HttpRequest request, VariableService variables, ResourceService resources, HttpContext http, IAuditLog audit, CancellationToken ct) =>
            {
                var definition = await ReadAsync(request, ct);
                var compiled = CompiledRotation.Compile(definition);
                if (await variables.GetRotationAsync(env, name, ct) is not { } variable)
                {
                    return Problems.NotFound($"There is no variable '{name}' in environment '{env}'.");
                }

                if (!variable.Secret)
                {
                    throw new KeywayException(StatusCodes.Status409Conflict, "not_secret",
                        $"'{name}' in '{env}' is a plain variable; only a secret is rotated. Set it as one first: keyway var set {name} --env {env} --secret");
                }

                if ((await variables.GetAsync(env, name, ct))?.Origins is not { Count: > 0 })
                {
                    // Step resources are named, not owned: only a binding keeps a minted secret off a resource someone else points elsewhere.
                    throw NeedsBinding(env, name);
                }

                await CheckResourcesAsync(compiled, name, resources, ct);
                var json = JsonSerializer.Serialize(definition, ConfigJson.Options);
                await variables.SetRotationAsync(env, name, json, ct, transaction => audit.StageAsync(transaction, new AuditEntry("variable.rotation.put")
                {
                    Actor = Caller.From(http.User),
                    Environment = env,
                    Target = name,
                    Detail = new Dictionary<string, object?>
                    {
                        ["resources"] = compiled.Resources.ToArray(),
                        ["mintSteps"] = compiled.Mint.Count,
                        ["revoke"] = compiled.Revoke is not null,
                        ["revokeAfter"] = SecretPolicy.Format(compiled.RevokeAfter),
                    },
                }, ct));
                audit.NotifyStaged();
                return TypedResults.Ok(new RotationView(env, name, definition));
            })
            .Requires(Permission.Admin)
            .WithSummary("Define how a secret variable is rotated: mint steps, the value and id they give, verify, and an optional revoke after a grace period.");

        group.MapDelete("/rotation", async Task<Results<NoContent, ProblemHttpResult>> (
                string env, string name, VariableService variables, HttpContext http, IAuditLog audit, CancellationToken ct) =>
            {
                if (!await variables.SetRotationAsync(env, name, null, ct, transaction => audit.StageAsync(transaction,
                        new AuditEntry("variable.rotation.delete") { Actor = Caller.From(http.User), Environment = env, Target = name }, ct)))
                {
                    return Problems.NotFound($"There is no variable '{name}' in environment '{env}'.");
                }

                audit.NotifyStaged();
                return TypedResults.NoContent();
            })
            .Requires(Permission.Admin)
            .WithSummary("Remove a variable's rotation flow (its history stays).");

        group.MapPost("/rotate", async Task<Ok<RotationInfo>> (string env, string name, RotationEngine engine, HttpContext http, IHostApplicationLifetime lifetime) =>
            {
                // Not the request's token: a rotation that has minted a secret finishes (or records why not) even if the caller goes away.
                var rotation = await engine.RotateAsync(env, name, new RotationTrigger("manual", Caller.From(http.User)), lifetime.ApplicationStopping);
                return rotation.State is RotationStates.Failed or RotationStates.RolledBack
                    ? throw new KeywayException(StatusCodes.Status502BadGateway, rotation.ErrorCode ?? "rotation_failed",
                        $"The rotation of '{name}' in '{env}' ended {rotation.State}: {rotation.Error} See: keyway var rotations {name} --env {env}",
                        new Dictionary<string, object?> { ["rotation"] = rotation.Id, ["state"] = rotation.State, ["abandonedRevoke"] = rotation.AbandonedRevoke })
                    : TypedResults.Ok(rotation);
            })
            .Requires(Permission.Admin)
            .WithSummary("Rotate a secret variable now with its rotation flow: mint, store as pending, verify, commit. The revoke, if any, follows after its grace period.");

        group.MapGet("/rotations", async Task<Results<Ok<RotationList>, ProblemHttpResult>> (
                string env, string name, int? limit, RotationStore store, VariableService variables, CancellationToken ct) =>
            {
                var rotations = await store.ListAsync(env, name, Math.Clamp(limit ?? 20, 1, RotationStore.KeepHistory), ct);
                if (rotations.Count == 0 && await variables.GetRotationAsync(env, name, ct) is null)
                {
                    return Problems.NotFound($"There is no variable '{name}' in environment '{env}'.");
                }

                return TypedResults.Ok(new RotationList(env, name, rotations));
            })
            .Requires(Permission.Admin)
            .WithSummary("A variable's rotations, newest first: state, versions, provider ids, error codes and times. Never a value.");

        return api;
    }

    /// <summary>Every resource exists; verify goes through one that reads the variable (else it would prove nothing).</summary>
    private static async Task CheckResourcesAsync(CompiledRotation rotation, string variable, ResourceService resources, CancellationToken ct)
    {
        var errors = new List<FieldError>();
        foreach (var step in rotation.Mint.Append(rotation.Verify).Concat(rotation.Revoke is null ? [] : [rotation.Revoke]))
        {
            if (await resources.GetAsync(step.Resource, ct) is null)
            {
                errors.Add(new FieldError(step.Field + ".resource", $"There is no resource '{step.Resource}'."));
            }
            else if (step == rotation.Verify)
            {
                var compiled = await resources.GetCompiledAsync(step.Resource, ct);
                if (!compiled.ReadsAllVariables && !compiled.Variables.Contains(variable))
                {
                    errors.Add(new FieldError("verify.resource",
                        $"Resource '{step.Resource}' does not read {variable}: a request through it would not test the new value. Verify through a resource whose templates use {{{{ environment.variables.{variable} }}}}."));
                }
            }
        }

        if (errors.Count > 0)
        {
            throw CompiledRotation.Invalid(errors);
        }
    }

    /// <summary>A rotation flow is saved only on a variable bound to origins: every rotation request must go to one of them.</summary>
    internal static KeywayException NeedsBinding(string env, string name) =>
        new(StatusCodes.Status400BadRequest, "rotation_needs_binding",
            $"'{name}' in '{env}' is not bound to origins: a rotation sends its requests (and the minted secret) only to origins the variable is bound to. " +
            $"Bind it first: keyway var bind {name} https://api.example.com --env {env} (the provider's and the API's origins), then set the rotation.",
            new Dictionary<string, object?> { ["errors"] = new[] { new FieldError("origins", $"Bind '{name}' to the provider's origins before defining its rotation.") } });

    private static async Task<RotationDefinition> ReadAsync(HttpRequest request, CancellationToken ct)
    {
        try
        {
            return await JsonSerializer.DeserializeAsync<RotationDefinition>(request.Body, ConfigJson.Options, ct)
                ?? throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config", "The body is empty; send the rotation as JSON.");
        }
        catch (JsonException e)
        {
            var where = e.Path is { Length: > 1 } path ? $" at {path.TrimStart('$', '.')}" : "";
            throw new KeywayException(StatusCodes.Status400BadRequest, "invalid_config", $"The rotation is not valid JSON{where}.");
        }
    }
}

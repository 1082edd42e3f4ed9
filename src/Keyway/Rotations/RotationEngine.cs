using System.Globalization;
using Keyway.Access;
using Keyway.Alerts;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Environments;
using Keyway.Secrets;
using Keyway.Templates;

namespace Keyway.Rotations;

/// <summary>Who or what started a rotation: a person (<c>manual</c>), a schedule (<c>schedule:NAME</c>).</summary>
internal sealed record RotationTrigger(string Name, Caller? Actor);

/// <summary>
/// Runs rotation flows: mint → pending → verifying → committed (→ revoke_pending → revoked), or failed
/// / rolled_back. Every state is written to the <c>rotations</c> row before the step it leads to, and
/// the minted value is stored encrypted as a pending version (in the same transaction as the state
/// <c>pending</c>) before it is sent anywhere, so a minted secret is never lost. Commit is one
/// transaction that retires the old version and makes the pending one current: there are never two
/// current versions. A failure at any step leaves the current secret in force, records why (an error
/// code and a message redacted of every secret and every answer the rotation saw), is audited and
/// raises <c>rotation.failed</c>; a commit raises <c>rotation.succeeded</c>.
/// </summary>
/// <remarks>
/// Recovery (<see cref="RecoverAsync"/>, at start for this replica's own rows and later for any whose
/// lease ran out): a rotation left <c>minting</c> has no pending value and is marked failed
/// (<c>rotation_interrupted</c>; if the provider created a secret, Keyway never saw it); one left
/// <c>pending</c> or <c>verifying</c> is verified again with its stored pending value and committed
/// if that succeeds, rolled back if not — verification is a test request with no effect, so sending it
/// again is safe, and the minted secret is already live at the provider; one in <c>revoke_pending</c>
/// whose revoke is due is revoked (again), and so is a <c>rolled_back</c> one whose abandoned key's
/// revoke is due (see <c>RotationRevokes.cs</c>).
/// </remarks>
internal sealed partial class RotationEngine(
    RotationStore store, VariableService variables, IRotationSteps steps, IAuditLog audit, IAlertSink alerts, TimeProvider time,
    ILogger<RotationEngine> logger)
{
    /// <summary>Revoke attempts before a rotation is left <c>revoke_failed</c>.</summary>
    public const int MaxRevokeAttempts = 6;

    /// <summary>The longest provider id kept: ids are shown in history and audit, and sent in revoke paths.</summary>
    public const int MaxProviderIdLength = 256;

    /// <summary>Set by the background service: woken when a revoke becomes due at once (a grace period of 0).</summary>
    public Action? RevokeDue { get; set; }

    /// <summary>Starts a rotation of a secret variable and runs it to commit or failure (the revoke waits for its grace period).</summary>
    public async Task<RotationInfo> RotateAsync(string environment, string name, RotationTrigger trigger, CancellationToken cancellationToken)
    {
        var variable = await variables.GetRotationAsync(environment, name, cancellationToken)
            ?? throw new KeywayException(StatusCodes.Status404NotFound, "not_found", $"There is no variable '{name}' in environment '{environment}'.");
        if (!variable.Secret || variable.Rotation is null)
        {
            throw new KeywayException(StatusCodes.Status409Conflict, "rotation_not_defined",
                $"'{name}' in '{environment}' has no rotation flow{(variable.Secret ? "" : " (only a secret variable has one)")}. Define one: keyway var rotation set {name} --env {environment} -f rotation.json");
        }

        var compiled = CompiledRotation.Parse(variable.Rotation);
        var previousId = await variables.CurrentProviderIdAsync(environment, name, cancellationToken);
        var now = time.GetUtcNow();
        var rotation = new RotationInfo(Guid.NewGuid().ToString("N"), environment, name, RotationStates.Minting, trigger.Name, trigger.Actor?.UserName,
            variable.Version, null, null, previousId, null, null, now, now, null, null, 0);
        var claim = await store.TryStartAsync(rotation, trigger.Actor?.ApiKeyId,
            transaction => audit.StageAsync(transaction, Event("rotation.start", rotation, trigger.Actor), cancellationToken), cancellationToken);
        if (claim is null)
        {
            throw new KeywayException(StatusCodes.Status409Conflict, "rotation_in_progress",
                $"A rotation of '{name}' in '{environment}' is under way. Follow it: keyway var rotations {name} --env {environment}");
        }

        audit.NotifyStaged();
        Log.Started(logger, environment, name, rotation.Id, trigger.Name);
        return await ContinueAsync(rotation with { Claim = claim }, compiled, trigger.Actor, cancellationToken);
    }

    /// <summary>Takes over a rotation nobody works on (see the remarks on the class). Returns it as it ends up.</summary>
    public async Task<RotationInfo?> RecoverAsync(RotationInfo rotation, CancellationToken cancellationToken)
    {
        if (await store.ClaimAsync(rotation, cancellationToken) is not { } claim)
        {
            return null;
        }

        rotation = rotation with { Claim = claim };

        Log.Recovering(logger, rotation.Environment, rotation.Name, rotation.Id, rotation.State);
        if (rotation.State == RotationStates.Minting)
        {
            return await FailAsync(rotation, RotationStates.Failed, "rotation_interrupted",
                "Keyway stopped while the mint steps ran, before a new value was stored. The current secret stays in force; if the provider created a new one, Keyway never received it: check the provider.",
                null, "mint", cancellationToken);
        }

        var compiled = await CompiledForAsync(rotation, cancellationToken);
        if (rotation.State is RotationStates.RevokePending or RotationStates.RolledBack)
        {
            return await RevokeAsync(rotation, compiled, cancellationToken);
        }

        if (compiled is null)
        {
            return await RollBackAsync(rotation, null, "rotation_not_defined", "The rotation flow was removed before the minted value was verified; it is kept as a retired version.", cancellationToken);
        }

        // pending or verifying: verify again, then commit or roll back.
        return await ContinueAsync(rotation, compiled, null, cancellationToken);
    }

    /// <summary>The rotation flow a stored rotation runs (the variable's current definition), or null when it is gone.</summary>
    public async Task<CompiledRotation?> CompiledForAsync(RotationInfo rotation, CancellationToken cancellationToken) =>
        (await variables.GetRotationAsync(rotation.Environment, rotation.Name, cancellationToken))?.Rotation is { } json ? CompiledRotation.Parse(json) : null;

    private async Task<RotationInfo> ContinueAsync(RotationInfo rotation, CompiledRotation compiled, Caller? actor, CancellationToken cancellationToken)
    {
        if (rotation.State == RotationStates.Minting)
        {
            var minted = await MintAsync(rotation, compiled, actor, cancellationToken);
            if (minted.State != RotationStates.Pending)
            {
                return minted;
            }

            rotation = minted;
        }

        // pending: verify with the stored value, then commit or roll back.
        await store.UpdateAsync(rotation, new RotationUpdate(RotationStates.Verifying), null, cancellationToken);
        rotation = rotation with { State = RotationStates.Verifying };
        var pending = await variables.ReadPendingAsync(rotation.Environment, rotation.Name, rotation.Version!.Value, cancellationToken);
        if (pending is null)
        {
            return await FailAsync(rotation, RotationStates.Failed, "rotation_variable_gone",
                "The pending version is gone (the variable was deleted): nothing was committed.", null, "verify", cancellationToken);
        }

        var scope = Scope(rotation, withNew: true);
        try
        {
            var answer = await steps.SendAsync(
                new RotationRequest(compiled.Verify, rotation.Environment, rotation.Name, scope, new PendingValue(pending, rotation.Version!.Value), actor), cancellationToken);
            if (!compiled.Verify.Accepts(answer.Status))
            {
                return await RollBackAsync(rotation, compiled, "rotation_verify_failed",
                    $"Verification through resource '{compiled.Verify.Resource}' answered {answer.Status} with the new value; the current secret stays in force.", cancellationToken);
            }
        }
        catch (KeywayException e)
        {
            return await RollBackAsync(rotation, compiled, e.Code,
                await RedactAsync($"Verification through resource '{compiled.Verify.Resource}' failed: {e.Message}", pending, scope, cancellationToken), cancellationToken);
        }

        return await CommitAsync(rotation, compiled, actor, cancellationToken);
    }

    private async Task<RotationInfo> MintAsync(RotationInfo rotation, CompiledRotation compiled, Caller? actor, CancellationToken cancellationToken)
    {
        var scope = Scope(rotation, withNew: false);
        Secret value;
        string? providerId;
        try
        {
            foreach (var step in compiled.Mint)
            {
                var answer = await steps.SendAsync(new RotationRequest(step, rotation.Environment, rotation.Name, scope, Actor: actor), cancellationToken);
                if (!step.Accepts(answer.Status))
                {
                    // The status only: a provider's error body may quote what was sent.
                    return await FailAsync(rotation, RotationStates.Failed, "rotation_mint_failed",
                        $"Mint step '{step.Name}' (resource '{step.Resource}') answered {answer.Status}. The current secret stays in force.", null, "mint", cancellationToken);
                }

                scope.With(step.Name, answer.Response);
            }

            value = new Secret(compiled.Value.Render(scope));
            providerId = compiled.Id?.Render(scope) is { Length: > 0 } id ? id : null;
        }
        catch (KeywayException e)
        {
            return await FailAsync(rotation, RotationStates.Failed, e.Code,
                await RedactAsync($"A mint step failed: {e.Message}", null, scope, cancellationToken), null, "mint", cancellationToken);
        }
        catch (TemplateException)
        {
            // Not the message: it could quote the answer the template read.
            return await FailAsync(rotation, RotationStates.Failed, "rotation_extract_failed",
                "value or id could not be read from the mint answers (the template failed). Check the provider's answer and the templates.", null, "mint", cancellationToken);
        }

        var plain = value.Reveal();
        if (plain.Length < Redactor.MinimumLength || plain.Trim().Length == 0)
        {
            return await FailAsync(rotation, RotationStates.Failed, "rotation_extract_failed",
                $"value gave an empty or too short secret (fewer than {Redactor.MinimumLength} characters). Check the provider's answer and the value template.", providerId, "mint", cancellationToken);
        }

        if (providerId is not null && (providerId.Length > MaxProviderIdLength || providerId.Any(char.IsControl)))
        {
            return await FailAsync(rotation, RotationStates.Failed, "rotation_extract_failed",
                $"id gave more than {MaxProviderIdLength} characters or control characters: id names the secret at the provider (a key id). Check the provider's answer and the id template. The minted value was not stored; revoke it at the provider.",
                null, "mint", cancellationToken);
        }

        if (providerId is not null && (plain.Contains(providerId, StringComparison.Ordinal) && providerId.Length >= 16
            || (await variables.Known.GetAsync(cancellationToken)).Combine(Redactor.For([value])).Contains(providerId)))
        {
            // An id is shown in history and sent in revoke paths: no secret (known, or the one being minted, in any form the redactor knows) may be.
            return await FailAsync(rotation, RotationStates.Failed, "rotation_id_is_secret",
                "id gave a secret (the minted one or another known secret, or part of one): id names the secret at the provider (a key id), it is shown in history. The minted value was not stored; revoke it at the provider.",
                null, "mint", cancellationToken);
        }

        var author = new VersionAuthor(actor?.UserName ?? rotation.Actor ?? "rotation", actor?.ApiKeyId);
        long? version;
        try
        {
            version = await variables.WritePendingAsync(rotation.Environment, rotation.Name, value, providerId, author, compiled.Revoke is not null,
                async (connection, transaction, written) =>
                {
                    await store.UpdateAsync(connection, transaction, rotation, new RotationUpdate(RotationStates.Pending) { PendingVersion = written, NewId = providerId });
                    await audit.StageAsync(transaction, Event("rotation.mint", rotation with { State = RotationStates.Pending, Version = written, NewId = providerId }, actor), cancellationToken);
                },
                cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException and not OutOfMemoryException)
        {
            // The store did not take it: the value is not kept anywhere. Said so, with the id to revoke it by.
            Log.PendingNotStored(logger, rotation.Environment, rotation.Name, rotation.Id, e.GetType().Name);
            return await FailAsync(rotation, RotationStates.Failed, "rotation_not_stored",
                "The minted value could not be stored, so it is not used. Revoke it at the provider (its id is in this rotation's record).", providerId, "mint", cancellationToken);
        }

        audit.NotifyStaged();
        if (version is null)
        {
            return await FailAsync(rotation, RotationStates.Failed, "rotation_variable_gone",
                "The variable was deleted (or is no longer secret) while the mint steps ran: the minted value was not stored. Revoke it at the provider.", providerId, "mint", cancellationToken);
        }

        return rotation with { State = RotationStates.Pending, Version = version, NewId = providerId };
    }

    private async Task<RotationInfo> CommitAsync(RotationInfo rotation, CompiledRotation compiled, Caller? actor, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        // Nothing to revoke by: the replaced secret has no provider id (set by hand, or its mint gave none). A revoke
        // then would name no key (DELETE /keys/), so it is skipped and the record says so.
        var revoke = compiled.Revoke is not null && !string.IsNullOrEmpty(rotation.PreviousId);
        var skipped = compiled.Revoke is not null && !revoke;
        var committedState = revoke ? RotationStates.RevokePending : RotationStates.Committed;
        var abandon = false;
        var outcome = await variables.CommitPendingAsync(rotation.Environment, rotation.Name, rotation.Version!.Value, rotation.FromVersion ?? 0,
            async (connection, transaction, result) =>
            {
                if (result == VariableService.CommitOutcome.Committed)
                {
                    await store.UpdateAsync(connection, transaction, rotation, new RotationUpdate(committedState)
                    {
                        ErrorCode = skipped ? "revoke_skipped" : null,
                        Error = skipped
                            ? "The replaced secret has no provider id (it was set by hand, or its mint gave no id), so the revoke step was not sent: revoke it at the provider by hand if it must stop working."
                            : null,
                        RevokeDueAt = revoke ? now + compiled.RevokeAfter : null,
                        Finished = !revoke,
                        Release = revoke,
                    });
                    if (rotation.FromVersion is { } replaced)
                    {
                        // The replaced key is held back from pruning until its revoke; with no revoke coming (no revoke step,
                        // or no id), no longer.
                        await (revoke
                            ? VariableService.MarkRevokeOwedAsync(connection, transaction, rotation.Environment, rotation.Name, replaced)
                            : VariableService.SetRevokeStateAsync(connection, transaction, rotation.Environment, rotation.Name, replaced, VariableService.RevokeSkipped));
                    }

                    await audit.StageAsync(transaction, Event("rotation.commit", rotation with { State = committedState }, actor), cancellationToken);
                }
                else if (result == VariableService.CommitOutcome.Superseded)
                {
                    // The pending version was retired by this transaction: the rotation says so in it too, so no stop
                    // between the two can leave a rotation pointing at a pending version that is no longer pending.
                    abandon = await RollBackInAsync(connection, transaction, rotation, compiled, "rotation_superseded",
                        "Another version became current while the rotation ran (a set or a rollback): it stays; the minted value is kept as a retired version.",
                        cancellationToken);
                }
            },
            cancellationToken);
        switch (outcome)
        {
            case VariableService.CommitOutcome.Superseded:
                WakeIf(abandon);
                return await AfterFailureAsync(rotation, RotationStates.RolledBack, "rotation_superseded", "commit", cancellationToken);
            case VariableService.CommitOutcome.Gone:
                return await FailAsync(rotation, RotationStates.Failed, "rotation_variable_gone",
                    "The variable was deleted before the commit: nothing was committed.", null, "commit", cancellationToken);
        }

        audit.NotifyStaged();
        Log.Committed(logger, rotation.Environment, rotation.Name, rotation.Id, rotation.Version!.Value);
        await alerts.RaiseAsync(Alert(AlertTypes.RotationSucceeded, rotation with { State = committedState }, null, null), cancellationToken);
        if (revoke && compiled.RevokeAfter == TimeSpan.Zero)
        {
            RevokeDue?.Invoke();
        }

        return (await store.GetAsync(rotation.Id, cancellationToken))!;
    }

    /// <summary>Retires the pending version and records the roll-back (and what is owed about the minted key) in one transaction.</summary>
    private async Task<RotationInfo> RollBackAsync(RotationInfo rotation, CompiledRotation? compiled, string code, string error, CancellationToken cancellationToken)
    {
        var abandon = false;
        await variables.RetirePendingAsync(rotation.Environment, rotation.Name, rotation.Version!.Value,
            async (connection, transaction) => abandon = await RollBackInAsync(connection, transaction, rotation, compiled, code, error, cancellationToken),
            cancellationToken);
        WakeIf(abandon);
        return await AfterFailureAsync(rotation, RotationStates.RolledBack, code, "verify", cancellationToken);
    }

    /// <summary>Records a failure that changed no version (before anything was stored, or once the variable is gone).</summary>
    private async Task<RotationInfo> FailAsync(
        RotationInfo rotation, string state, string code, string error, string? providerId, string stage, CancellationToken cancellationToken)
    {
        await store.UpdateAsync(rotation, new RotationUpdate(state) { ErrorCode = code, Error = error, NewId = providerId, Finished = true },
            transaction => audit.StageAsync(transaction, Event("rotation.fail", rotation with { State = state, ErrorCode = code, NewId = providerId ?? rotation.NewId }, null, AuditOutcome.Failure), cancellationToken),
            cancellationToken);

        return await AfterFailureAsync(rotation, state, code, stage, cancellationToken);
    }

    private async Task<RotationInfo> AfterFailureAsync(RotationInfo rotation, string state, string code, string stage, CancellationToken cancellationToken)
    {
        audit.NotifyStaged();
        Log.Failed(logger, rotation.Environment, rotation.Name, rotation.Id, state, code);
        var recorded = (await store.GetAsync(rotation.Id, cancellationToken))!;
        await alerts.RaiseAsync(Alert(AlertTypes.RotationFailed, recorded, code, stage), cancellationToken);
        return recorded;
    }

    /// <summary>
    /// What templates see as <c>rotation</c>: names, versions and provider ids, never a value. <c>new</c> is the minted
    /// key (verify and revoke); <c>revoke</c> (revoke only) is the key the revoke retires: the replaced one after a
    /// commit, the minted one when the rotation was rolled back (<paramref name="abandoned"/>), while <c>previous</c> is
    /// always the key in use when the rotation started.
    /// </summary>
    private static TemplateScope Scope(RotationInfo rotation, bool withNew, bool? abandoned = null)
    {
        var root = new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["environment"] = rotation.Environment,
            ["variable"] = rotation.Name,
            ["previous"] = Key(rotation.PreviousId, rotation.FromVersion),
        };
        if (withNew)
        {
            root["new"] = Key(rotation.NewId, rotation.Version);
        }

        if (abandoned is { } minted)
        {
            root["revoke"] = minted ? Key(rotation.NewId, rotation.Version) : Key(rotation.PreviousId, rotation.FromVersion);
        }

        return new TemplateScope().With("rotation", root);

        static Dictionary<string, object?> Key(string? id, long? version) =>
            new(StringComparer.Ordinal) { ["id"] = id, ["version"] = version };
    }

    /// <summary>
    /// An error is redacted of every known secret, the value being minted or verified, and every string of 8
    /// characters or more the rotation's answers held: a provider's message may quote any of them.
    /// </summary>
    private async Task<string> RedactAsync(string text, Secret? value, TemplateScope scope, CancellationToken cancellationToken)
    {
        var known = await variables.Known.GetAsync(cancellationToken);
        var strings = scope.CollectStrings(minimumLength: 8);
        if (value is not null)
        {
            strings.Add(value.Reveal());
        }

        return known.Combine(new Redactor(strings)).Redact(text);
    }

    private static AuditEntry Event(string action, RotationInfo rotation, Caller? actor, string outcome = AuditOutcome.Success) =>
        new(action, outcome)
        {
            Actor = actor,
            Environment = rotation.Environment,
            Target = rotation.Name,
            Detail = new Dictionary<string, object?>
            {
                ["rotation"] = rotation.Id,
                ["state"] = rotation.State,
                ["trigger"] = rotation.Trigger,
                ["fromVersion"] = rotation.FromVersion,
                ["version"] = rotation.Version,
                ["providerId"] = rotation.NewId,
                ["previousProviderId"] = rotation.PreviousId,
                ["errorCode"] = rotation.ErrorCode,
                ["abandonedRevoke"] = rotation.AbandonedRevoke,
            },
        };

    private static Alert Alert(string type, RotationInfo rotation, string? code, string? stage) =>
        new(type, $"variable:{rotation.Environment}/{rotation.Name}", new Dictionary<string, string?>
        {
            ["environment"] = rotation.Environment,
            ["name"] = rotation.Name,
            ["rotation"] = rotation.Id,
            ["state"] = rotation.State,
            ["trigger"] = rotation.Trigger,
            ["fromVersion"] = rotation.FromVersion?.ToString(CultureInfo.InvariantCulture),
            ["version"] = rotation.Version?.ToString(CultureInfo.InvariantCulture),
            ["stage"] = stage,
            ["errorCode"] = code,
        });

    private static partial class Log
    {
        [LoggerMessage(960, LogLevel.Information, "Rotation {Id} of {Environment}/{Name} started ({Trigger})")]
        public static partial void Started(ILogger logger, string environment, string name, string id, string trigger);

        [LoggerMessage(961, LogLevel.Information, "Rotation {Id} of {Environment}/{Name} committed version {Version}")]
        public static partial void Committed(ILogger logger, string environment, string name, string id, long version);

        [LoggerMessage(962, LogLevel.Warning, "Rotation {Id} of {Environment}/{Name} ended {State} ({Code})")]
        public static partial void Failed(ILogger logger, string environment, string name, string id, string state, string code);

        [LoggerMessage(963, LogLevel.Information, "Rotation {Id} of {Environment}/{Name} revoked the old secret")]
        public static partial void Revoked(ILogger logger, string environment, string name, string id);

        [LoggerMessage(964, LogLevel.Warning, "Rotation {Id} of {Environment}/{Name}: revoke failed ({Code}), attempt {Attempt}; tried again later")]
        public static partial void RevokeRetry(ILogger logger, string environment, string name, string id, string code, int attempt);

        [LoggerMessage(965, LogLevel.Warning, "Rotation {Id} of {Environment}/{Name} found {State} after a stop: taking it over")]
        public static partial void Recovering(ILogger logger, string environment, string name, string id, string state);

        [LoggerMessage(966, LogLevel.Error, "Rotation {Id} of {Environment}/{Name}: the minted value could not be stored ({Error})")]
        public static partial void PendingNotStored(ILogger logger, string environment, string name, string id, string error);
    }
}

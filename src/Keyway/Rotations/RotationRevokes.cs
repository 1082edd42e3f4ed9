using System.Data.Common;
using System.Text;
using Keyway.Alerts;
using Keyway.Api;
using Keyway.Audit;
using Keyway.Environments;
using Keyway.Templates;

namespace Keyway.Rotations;

/// <summary>
/// Revokes, of two kinds, through the flow's one revoke step. After a commit, the replaced key, once
/// <c>revokeAfter</c> has passed (<c>revoke_pending</c> → <c>revoked</c> or <c>revoke_failed</c>). After a roll-back
/// (verification failed, or another version became current meanwhile), the key the rotation minted and abandoned,
/// at once: it was never used for traffic, and it would otherwise stay live at the provider. The row stays
/// <c>rolled_back</c>, unfinished, with <c>abandonedRevoke</c> <c>pending</c>, until the revoke ends <c>revoked</c>,
/// <c>failed</c> or <c>skipped</c>.
/// </summary>
/// <remarks>
/// The step's templates see <c>rotation.revoke.id</c>, the key being revoked: the replaced key after a commit, the
/// minted key after a roll-back (<c>rotation.previous</c> stays the key in use, <c>rotation.new</c> the minted one). A
/// step written with <c>rotation.previous.id</c> revokes replaced keys as before, but sent for an abandoned key it would
/// revoke the key in use; so an abandoned key's revoke is sent only when the rendered request names
/// <c>rotation.revoke.id</c> and not <c>rotation.previous.id</c> (checked by rendering the step with marker ids), and is
/// skipped, saying so, otherwise.
/// </remarks>
internal sealed partial class RotationEngine
{
    /// <summary>Runs a due revoke of a rotation this replica has claimed (or <see cref="RecoverAsync"/> has): a replaced key, or an abandoned one.</summary>
    public async Task<RotationInfo> RevokeAsync(RotationInfo rotation, CompiledRotation? compiled, CancellationToken cancellationToken)
    {
        var abandoned = rotation.State == RotationStates.RolledBack;
        if (abandoned && AbandonedRevokeRefusal(rotation, compiled) is { } why)
        {
            return await FinishAbandonedAsync(rotation, AbandonedRevokes.Skipped, why, cancellationToken);
        }

        if (compiled?.Revoke is not { } step)
        {
            return await FinishRevokeAsync(rotation, RotationStates.RevokeFailed, "rotation_not_defined",
                "The rotation flow (or its revoke step) was removed before the old secret was revoked: revoke it at the provider by hand.", cancellationToken);
        }

        var scope = Scope(rotation, withNew: true, abandoned);
        string? error = null;
        string? code = null;
        try
        {
            var answer = await steps.SendAsync(new RotationRequest(step, rotation.Environment, rotation.Name, scope), cancellationToken);
            if (!step.Accepts(answer.Status, goneIsDone: true))
            {
                (code, error) = ("rotation_revoke_failed", $"Step 'revoke' (resource '{step.Resource}') answered {answer.Status}.");
            }
        }
        catch (KeywayException e)
        {
            (code, error) = (e.Code, $"Step 'revoke' (resource '{step.Resource}') failed: {e.Message}");
        }

        if (code is null)
        {
            return abandoned
                ? await FinishAbandonedAsync(rotation, AbandonedRevokes.Revoked, null, cancellationToken)
                : await FinishRevokeAsync(rotation, RotationStates.Revoked, null, null, cancellationToken);
        }

        var attempts = rotation.RevokeAttempts + 1;
        error = await RedactAsync(error!, null, scope, cancellationToken);
        if (attempts >= MaxRevokeAttempts)
        {
            return abandoned
                ? await FinishAbandonedAsync(rotation with { RevokeAttempts = attempts }, AbandonedRevokes.Failed,
                    $"{code}: {error} Gave up after {attempts} attempts: revoke the minted key (id {rotation.NewId}) at the provider by hand.", cancellationToken)
                : await FinishRevokeAsync(rotation with { RevokeAttempts = attempts }, RotationStates.RevokeFailed, code,
                    error + $" Gave up after {attempts} attempts: revoke the old secret at the provider by hand.", cancellationToken);
        }

        // Tried again later: 1, 2, 4, 8, 16 minutes.
        var next = time.GetUtcNow() + TimeSpan.FromMinutes(1 << (attempts - 1));
        await store.UpdateAsync(rotation, new RotationUpdate(rotation.State)
        {
            // A rolled-back rotation keeps the code of why it rolled back; the revoke's own failure is its abandoned-revoke error.
            ErrorCode = abandoned ? null : code,
            Error = abandoned ? null : error,
            AbandonedRevokeError = abandoned ? $"{code}: {error}" : null,
            RevokeAttempts = attempts,
            RevokeDueAt = next,
            Release = true,
        }, null, cancellationToken);
        Log.RevokeRetry(logger, rotation.Environment, rotation.Name, rotation.Id, code, attempts);
        return (await store.GetAsync(rotation.Id, cancellationToken))!;
    }

    /// <summary>
    /// Records a roll-back inside <paramref name="transaction"/> (the one that retires the pending version): the state,
    /// its audit event, and what is owed about the minted key. True when its revoke is pending (wake the service).
    /// </summary>
    private async Task<bool> RollBackInAsync(
        DbConnection connection, DbTransaction transaction, RotationInfo rotation, CompiledRotation? compiled, string code, string error,
        CancellationToken cancellationToken)
    {
        var refusal = AbandonedRevokeRefusal(rotation, compiled);
        var outcome = refusal is null ? AbandonedRevokes.Pending : AbandonedRevokes.Skipped;
        await store.UpdateAsync(connection, transaction, rotation, new RotationUpdate(RotationStates.RolledBack)
        {
            ErrorCode = code,
            Error = error,
            AbandonedRevoke = outcome,
            AbandonedRevokeError = refusal,
            // Due at once: the minted key was only ever sent in the verify request.
            RevokeDueAt = refusal is null ? time.GetUtcNow() : null,
            Finished = refusal is not null,
            Release = refusal is null,
        });
        if (refusal is not null)
        {
            await VariableService.SetRevokeStateAsync(connection, transaction, rotation.Environment, rotation.Name, rotation.Version!.Value, VariableService.RevokeSkipped);
        }

        await audit.StageAsync(transaction, Event("rotation.rollback",
            rotation with { State = RotationStates.RolledBack, ErrorCode = code, AbandonedRevoke = outcome }, null, AuditOutcome.Failure), cancellationToken);
        return refusal is null;
    }

    private void WakeIf(bool due)
    {
        if (due)
        {
            RevokeDue?.Invoke();
        }
    }

    /// <summary>
    /// Why the key a rolled-back rotation minted cannot be revoked through the flow's revoke step, or null when it can:
    /// there must be an id, a revoke step, and that step must name the key by <c>rotation.revoke.id</c>, never by
    /// <c>rotation.previous.id</c> (the key in use). Checked by rendering the step with a marker for each id.
    /// </summary>
    internal static string? AbandonedRevokeRefusal(RotationInfo rotation, CompiledRotation? compiled)
    {
        if (string.IsNullOrEmpty(rotation.NewId))
        {
            return "The mint gave no provider id, so nothing names the minted key: if the provider created one, revoke it there by hand.";
        }

        if (compiled?.Revoke is not { } step)
        {
            return $"The rotation flow has no revoke step: revoke the minted key (id {rotation.NewId}) at the provider by hand.";
        }

        var marker = Guid.NewGuid().ToString("N");
        var (previous, minted, revoked) = ("previous" + marker, "new" + marker, "revoke" + marker);
        var probe = new TemplateScope().With("rotation", new Dictionary<string, object?>(StringComparer.Ordinal)
        {
            ["environment"] = rotation.Environment,
            ["variable"] = rotation.Name,
            ["previous"] = new Dictionary<string, object?>(StringComparer.Ordinal) { ["id"] = previous, ["version"] = rotation.FromVersion },
            ["new"] = new Dictionary<string, object?>(StringComparer.Ordinal) { ["id"] = minted, ["version"] = rotation.Version },
            ["revoke"] = new Dictionary<string, object?>(StringComparer.Ordinal) { ["id"] = revoked, ["version"] = rotation.Version },
        });
        string rendered;
        try
        {
            var text = new StringBuilder(step.Path.Render(probe));
            foreach (var (_, template) in step.Query.Concat(step.Headers))
            {
                text.Append('\n').Append(template.Render(probe));
            }

            rendered = text.Append('\n').Append(step.Body?.Render(probe)).ToString();
        }
        catch (TemplateException)
        {
            rendered = "";
        }

        return rendered.Contains(revoked, StringComparison.Ordinal) && !rendered.Contains(previous, StringComparison.Ordinal)
            ? null
            : $"The revoke step does not name the key by rotation.revoke.id (it may name rotation.previous.id, the key in use), so it was not sent for the minted key (id {rotation.NewId}): revoke that key at the provider by hand, and write the step's path with {{{{ rotation.revoke.id }}}} so abandoned keys are revoked.";
    }

    /// <summary>Ends an abandoned key's revoke: the row finished, the version's key recorded, the event audited (and a failure alerted).</summary>
    private async Task<RotationInfo> FinishAbandonedAsync(RotationInfo rotation, string outcome, string? error, CancellationToken cancellationToken)
    {
        var update = new RotationUpdate(RotationStates.RolledBack)
        {
            AbandonedRevoke = outcome,
            AbandonedRevokeError = error,
            RevokeAttempts = rotation.RevokeAttempts,
            Finished = true,
        };
        await store.UpdateAsync(rotation, update,
            async transaction =>
            {
                if (outcome != AbandonedRevokes.Failed && rotation.Version is { } version)
                {
                    await VariableService.SetRevokeStateAsync(transaction.Connection!, transaction, rotation.Environment, rotation.Name, version,
                        outcome == AbandonedRevokes.Revoked ? VariableService.RevokeRevoked : VariableService.RevokeSkipped);
                }

                await audit.StageAsync(transaction, Event(outcome == AbandonedRevokes.Revoked ? "rotation.revoke" : "rotation.fail",
                    rotation with { AbandonedRevoke = outcome }, null, outcome == AbandonedRevokes.Revoked ? AuditOutcome.Success : AuditOutcome.Failure), cancellationToken);
            },
            cancellationToken);
        audit.NotifyStaged();
        var recorded = (await store.GetAsync(rotation.Id, cancellationToken))!;
        if (outcome == AbandonedRevokes.Revoked)
        {
            Log.Revoked(logger, rotation.Environment, rotation.Name, rotation.Id);
        }
        else if (outcome == AbandonedRevokes.Failed)
        {
            Log.Failed(logger, rotation.Environment, rotation.Name, rotation.Id, rotation.State, "rotation_revoke_failed");
            await alerts.RaiseAsync(Alert(AlertTypes.RotationFailed, recorded, "rotation_revoke_failed", "revoke"), cancellationToken);
        }

        return recorded;
    }

    private async Task<RotationInfo> FinishRevokeAsync(RotationInfo rotation, string state, string? code, string? error, CancellationToken cancellationToken)
    {
        await store.UpdateAsync(rotation, new RotationUpdate(state) { ErrorCode = code, Error = error, RevokeAttempts = rotation.RevokeAttempts, Finished = true },
            async transaction =>
            {
                if (state == RotationStates.Revoked && rotation.FromVersion is { } replaced)
                {
                    await VariableService.SetRevokeStateAsync(transaction.Connection!, transaction, rotation.Environment, rotation.Name, replaced, VariableService.RevokeRevoked);
                }

                await audit.StageAsync(transaction,
                    Event(state == RotationStates.Revoked ? "rotation.revoke" : "rotation.fail", rotation with { State = state, ErrorCode = code }, null,
                        state == RotationStates.Revoked ? AuditOutcome.Success : AuditOutcome.Failure), cancellationToken);
            },
            cancellationToken);
        audit.NotifyStaged();
        var recorded = (await store.GetAsync(rotation.Id, cancellationToken))!;
        if (state == RotationStates.Revoked)
        {
            Log.Revoked(logger, rotation.Environment, rotation.Name, rotation.Id);
        }
        else
        {
            Log.Failed(logger, rotation.Environment, rotation.Name, rotation.Id, state, code!);
            await alerts.RaiseAsync(Alert(AlertTypes.RotationFailed, recorded, code, "revoke"), cancellationToken);
        }

        return recorded;
    }
}

using Keyway.Alerts;
using Keyway.Environments;
using Keyway.Rotations;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Rotations;

/// <summary>
/// A key the provider minted that no version will use after a failure past the mint (its value unusable, not
/// stored, the variable deleted) is revoked through the revoke step by <c>rotation.revoke.id</c>, retried with
/// backoff on a fake clock, recorded, audited and alerted; and a rollback to a rotation-minted version keeps its
/// provider id, so the next rotation revokes the right key and no revoke ever retires the key in use.
/// </summary>
[Trait("Category", "Integration")]
public sealed class RotationAbandonTests
{
    private static readonly string ShortValueFlow = RotationHarness.FlowRevokingById.Replace("create.body.key", "create.body.tiny", StringComparison.Ordinal);

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_minted_value_too_short_to_use_has_its_key_revoked_by_id_and_retried_with_backoff(StoreKind kind)
    {
        await using var h = await RotationHarness.CreateAsync(kind);
        await h.DefineAsync("API_KEY", "set-by-hand", ShortValueFlow);
        h.Provider.RevokeStatus = 500;

        var failed = await h.RotateAsync("API_KEY");

        // The first attempt is made at once; it failed, so the key is owed a revoke a minute later.
        Assert.Equal((RotationStates.Failed, "rotation_extract_failed", AbandonedRevokes.Pending, "key_1"),
            (failed.State, failed.ErrorCode, failed.AbandonedRevoke, failed.NewId));
        Assert.Contains("answered 500", failed.AbandonedRevokeError);
        Assert.Equal((1, RotationHarness.Start + TimeSpan.FromMinutes(1)), (failed.RevokeAttempts, failed.RevokeDueAt));
        Assert.Null(failed.FinishedAt);
        Assert.DoesNotContain("by hand", failed.Error);
        Assert.Equal(("mint", "rotation_extract_failed"), (h.Alerts.Raised[^1].Data["stage"], h.Alerts.Raised[^1].Data["errorCode"]));

        // Not due yet: nothing is sent.
        await h.Service().SweepAsync(atStart: false, CancellationToken.None);
        Assert.Single(h.Provider.Sent, s => s.Step == "revoke");

        h.Provider.RevokeStatus = 204;
        h.Time.Advance(TimeSpan.FromMinutes(1));
        await h.Service().SweepAsync(atStart: false, CancellationToken.None);

        Assert.Equal(["/keys/key_1", "/keys/key_1"], h.Provider.Sent.Where(s => s.Step == "revoke").Select(s => s.Path));
        var row = (await h.Store.GetAsync(failed.Id, CancellationToken.None))!;
        Assert.Equal((RotationStates.Failed, "rotation_extract_failed", AbandonedRevokes.Revoked), (row.State, row.ErrorCode, row.AbandonedRevoke));
        Assert.NotNull(row.FinishedAt);
        Assert.Equal("set-by-hand", await h.CurrentAsync("API_KEY"));
        var revoke = h.Audit.Entries.Last(e => e.Action == "rotation.revoke");
        Assert.Equal(("key_1", AbandonedRevokes.Revoked, RotationStates.Failed), (revoke.Detail!["providerId"], revoke.Detail["abandonedRevoke"], revoke.Detail["state"]));
    }

    [Fact]
    public async Task An_abandoned_key_whose_revoke_keeps_failing_after_the_mint_is_given_up_and_alerted()
    {
        await using var h = await RotationHarness.CreateAsync(StoreKind.Sqlite);
        await h.DefineAsync("API_KEY", "set-by-hand", ShortValueFlow);
        h.Provider.RevokeStatus = 500;
        var rotation = await h.RotateAsync("API_KEY");

        for (var attempt = 2; attempt <= RotationEngine.MaxRevokeAttempts; attempt++)
        {
            h.Time.Advance(TimeSpan.FromMinutes(1 << (attempt - 2)));
            await h.Service().SweepAsync(atStart: false, CancellationToken.None);
            Assert.Equal(attempt, h.Provider.Sent.Count(s => s.Step == "revoke"));
        }

        var row = (await h.Store.GetAsync(rotation.Id, CancellationToken.None))!;
        Assert.Equal((RotationStates.Failed, AbandonedRevokes.Failed), (row.State, row.AbandonedRevoke));
        Assert.Contains("by hand", row.AbandonedRevokeError);
        Assert.Contains("key_1", row.AbandonedRevokeError);
        Assert.Equal((AlertTypes.RotationFailed, "revoke"), (h.Alerts.Raised[^1].Type, h.Alerts.Raised[^1].Data["stage"]));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_minted_value_the_store_did_not_take_has_its_key_revoked(StoreKind kind)
    {
        await using var h = await RotationHarness.CreateAsync(kind);
        await h.DefineAsync("API_KEY", "set-by-hand", RotationHarness.FlowRevokingById);
        // The pending version's transaction fails (as a store that refuses the write would): nothing of it is kept.
        h.Audit.FailStagingOf = "rotation.mint";

        var failed = await h.RotateAsync("API_KEY");

        Assert.Equal((RotationStates.Failed, "rotation_not_stored", AbandonedRevokes.Revoked, "key_1"),
            (failed.State, failed.ErrorCode, failed.AbandonedRevoke, failed.NewId));
        Assert.Equal(["/keys/key_1"], h.Provider.Sent.Where(s => s.Step == "revoke").Select(s => s.Path));
        Assert.DoesNotContain(await h.VersionsAsync("API_KEY"), v => v.State == "pending");
        Assert.Equal("set-by-hand", await h.CurrentAsync("API_KEY"));
        Assert.Contains(h.Audit.Entries, e => e.Action == "rotation.revoke" && (string?)e.Detail!["providerId"] == "key_1");
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_variable_deleted_before_the_commit_has_the_key_its_rotation_minted_revoked(StoreKind kind)
    {
        await using var h = await RotationHarness.CreateAsync(kind);
        await h.DefineAsync("API_KEY", "set-by-hand", RotationHarness.FlowRevokingById);
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        h.Provider.HoldNextVerify = hold;
        var rotating = h.RotateAsync("API_KEY");
        await h.Provider.VerifyHeld.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(await h.Variables.DeleteAsync("production", "API_KEY", CancellationToken.None));
        hold.SetResult();

        var failed = await rotating;

        // The flow went with the variable; the engine still held it, so the revoke was sent at once.
        Assert.Equal((RotationStates.Failed, "rotation_variable_gone", AbandonedRevokes.Revoked), (failed.State, failed.ErrorCode, failed.AbandonedRevoke));
        Assert.Equal(["/keys/key_1"], h.Provider.Sent.Where(s => s.Step == "revoke").Select(s => s.Path));
        Assert.Equal("commit", h.Alerts.Raised.Single(a => a.Data["errorCode"] == "rotation_variable_gone").Data["stage"]);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_rollback_to_a_minted_version_keeps_its_key_id_so_the_next_rotation_revokes_that_key_and_none_revokes_it_while_in_use(StoreKind kind)
    {
        await using var h = await RotationHarness.CreateAsync(kind);
        await h.DefineAsync("API_KEY", "set-by-hand", RotationHarness.FlowRevokingById);
        var first = await h.RotateAsync("API_KEY");   // version 2, key_1 (the hand-set value had no id: nothing to revoke)
        var second = await h.RotateAsync("API_KEY");  // version 3, key_2: key_1 is owed a revoke in an hour
        Assert.Equal((2L, 3L, "key_1"), (first.Version!.Value, second.Version!.Value, second.PreviousId));

        var restored = (await h.Variables.RollbackAsync("production", "API_KEY", 2, new VersionAuthor("ops", null), CancellationToken.None))!;

        Assert.Equal(4, restored.Version);
        Assert.Equal(h.Provider.KeyOf(1), await h.CurrentAsync("API_KEY"));
        var current = (await h.VersionsAsync("API_KEY")).Single(v => v.Current);
        Assert.Equal(("key_1", VariableService.RevokeOwed, 2L), (current.ProviderId, current.Revoke, current.RestoredFrom));

        // The second rotation's revoke of key_1 comes due while key_1 is current again: not sent, and said so.
        h.Time.Advance(TimeSpan.FromHours(1));
        await h.Service().SweepAsync(atStart: false, CancellationToken.None);
        Assert.DoesNotContain(h.Provider.Sent, s => s.Step == "revoke");
        var skipped = (await h.Store.GetAsync(second.Id, CancellationToken.None))!;
        Assert.Equal((RotationStates.Committed, "revoke_skipped"), (skipped.State, skipped.ErrorCode));
        Assert.Contains("in use again", skipped.Error);
        var replaced = (await h.VersionsAsync("API_KEY")).Single(v => v.Version == 2);
        Assert.Equal((VariableService.RevokeSkipped, "skipped", second.Id), (replaced.Revoke, replaced.RevokeBy!.Status, replaced.RevokeBy.Rotation));
        Assert.Contains("in use again", replaced.RevokeBy.Reason);

        // The next rotation replaces version 4 and revokes key_1, the key it names.
        var third = await h.RotateAsync("API_KEY");
        Assert.Equal((4L, "key_1", RotationStates.RevokePending), (third.FromVersion!.Value, third.PreviousId, third.State));
        var pending = (await h.VersionsAsync("API_KEY")).Single(v => v.Version == 4).RevokeBy!;
        Assert.Equal(("pending", third.Id, third.RevokeDueAt), (pending.Status, pending.Rotation, pending.DueAt));
        h.Time.Advance(TimeSpan.FromHours(1));
        await h.Service().SweepAsync(atStart: false, CancellationToken.None);

        Assert.Equal(["/keys/key_1"], h.Provider.Sent.Where(s => s.Step == "revoke").Select(s => s.Path));
        Assert.Equal(RotationStates.Revoked, (await h.Store.GetAsync(third.Id, CancellationToken.None))!.State);
        var revoked = (await h.VersionsAsync("API_KEY")).Single(v => v.Version == 4);
        Assert.Equal((VariableService.RevokeRevoked, "revoked"), (revoked.Revoke, revoked.RevokeBy!.Status));
        Assert.Equal(h.Provider.KeyOf(3), await h.CurrentAsync("API_KEY"));
    }

    [Fact]
    public async Task A_rolled_back_rotations_key_made_current_again_by_a_rollback_is_not_revoked()
    {
        await using var h = await RotationHarness.CreateAsync(StoreKind.Sqlite);
        await h.DefineAsync("API_KEY", "set-by-hand", RotationHarness.FlowRevokingById);
        h.Provider.VerifyStatus = 401;
        h.Provider.RevokeStatus = 500;
        var rolledBack = await h.RotateAsync("API_KEY");
        await h.Service().SweepAsync(atStart: false, CancellationToken.None); // attempt 1 fails
        var owed = (await h.VersionsAsync("API_KEY")).Single(v => v.Version == rolledBack.Version);
        Assert.Equal(("key_1", "pending", 1), (owed.ProviderId, owed.RevokeBy!.Status, owed.RevokeBy.Attempts));
        Assert.Contains("answered 500", owed.RevokeBy.Reason);

        await h.Variables.RollbackAsync("production", "API_KEY", rolledBack.Version!.Value, new VersionAuthor("ops", null), CancellationToken.None);
        h.Provider.RevokeStatus = 204;
        h.Time.Advance(TimeSpan.FromMinutes(1));
        await h.Service().SweepAsync(atStart: false, CancellationToken.None);

        Assert.Single(h.Provider.Sent, s => s.Step == "revoke");
        var row = (await h.Store.GetAsync(rolledBack.Id, CancellationToken.None))!;
        Assert.Equal(AbandonedRevokes.Skipped, row.AbandonedRevoke);
        Assert.Contains("in use again", row.AbandonedRevokeError);
        Assert.Equal(h.Provider.KeyOf(1), await h.CurrentAsync("API_KEY"));
    }
}

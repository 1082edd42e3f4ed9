using Keyway.Environments;
using Keyway.Rotations;
using Keyway.Tests.Infrastructure;

namespace Keyway.Tests.Rotations;

/// <summary>
/// What becomes of keys a rotation leaves behind, on a real store with a fake provider and clock: an
/// abandoned (minted, never committed) key is revoked through the revoke step by <c>rotation.revoke.id</c>,
/// or recorded as skipped; a superseded commit records its roll-back in the transaction that retires the
/// pending version; and a version whose key is still owed a revoke is never pruned.
/// </summary>
[Trait("Category", "Integration")]
public sealed class RotationRevocationTests
{
    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_key_minted_by_a_rotation_that_failed_verification_is_revoked_by_its_own_id_and_the_current_key_is_left_alone(StoreKind kind)
    {
        await using var h = await RotationHarness.CreateAsync(kind);
        await h.DefineAsync("API_KEY", "set-by-hand", RotationHarness.FlowRevokingById);
        Assert.Equal(RotationStates.Committed, (await h.RotateAsync("API_KEY")).State);
        h.Provider.VerifyStatus = 401;

        var rolledBack = await h.RotateAsync("API_KEY");

        Assert.Equal((RotationStates.RolledBack, "rotation_verify_failed", AbandonedRevokes.Pending), (rolledBack.State, rolledBack.ErrorCode, rolledBack.AbandonedRevoke));
        Assert.Null(rolledBack.FinishedAt);
        await h.Service().SweepAsync(atStart: false, CancellationToken.None);

        // key_2 (the abandoned one) is revoked; key_1, the key in use, is not.
        Assert.Equal(["/keys/key_2"], h.Provider.Sent.Where(s => s.Step == "revoke").Select(s => s.Path));
        var row = (await h.Store.GetAsync(rolledBack.Id, CancellationToken.None))!;
        Assert.Equal((RotationStates.RolledBack, "rotation_verify_failed", AbandonedRevokes.Revoked), (row.State, row.ErrorCode, row.AbandonedRevoke));
        Assert.NotNull(row.FinishedAt);
        Assert.Equal(h.Provider.KeyOf(1), await h.CurrentAsync("API_KEY"));
        Assert.Equal(VariableService.RevokeRevoked, (await h.VersionsAsync("API_KEY")).Single(v => v.Version == 3).Revoke);
        var revoke = h.Audit.Entries.Last(e => e.Action == "rotation.revoke");
        Assert.Equal(("key_2", AbandonedRevokes.Revoked), (revoke.Detail!["providerId"], revoke.Detail["abandonedRevoke"]));

        // A later sweep sends nothing more.
        await h.Service().SweepAsync(atStart: false, CancellationToken.None);
        Assert.Single(h.Provider.Sent, s => s.Step == "revoke");
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_revoke_step_that_names_the_previous_key_is_not_sent_for_an_abandoned_key_and_the_record_says_why(StoreKind kind)
    {
        await using var h = await RotationHarness.CreateAsync(kind);
        await h.DefineAsync("API_KEY", "set-by-hand");
        await h.RotateAsync("API_KEY");
        h.Provider.VerifyStatus = 401;

        var rolledBack = await h.RotateAsync("API_KEY");
        await h.Service().SweepAsync(atStart: false, CancellationToken.None);

        // Sent for the abandoned key, /keys/{{ rotation.previous.id }} would have revoked key_1, the key in use.
        Assert.DoesNotContain(h.Provider.Sent, s => s.Step == "revoke");
        Assert.Equal(AbandonedRevokes.Skipped, rolledBack.AbandonedRevoke);
        Assert.Contains("rotation.revoke.id", rolledBack.AbandonedRevokeError);
        Assert.Contains("key_2", rolledBack.AbandonedRevokeError);
        Assert.NotNull(rolledBack.FinishedAt);
        Assert.Equal(VariableService.RevokeSkipped, (await h.VersionsAsync("API_KEY")).Single(v => v.Version == 3).Revoke);
    }

    [Fact]
    public async Task An_abandoned_key_with_no_id_or_no_revoke_step_is_recorded_skipped()
    {
        await using var h = await RotationHarness.CreateAsync(StoreKind.Sqlite);
        await h.DefineAsync("NO_ID", "set-by-hand", RotationHarness.FlowRevokingById.Replace("\"id\": \"{{ create.body.id }}\",", "", StringComparison.Ordinal));
        await h.DefineAsync("NO_REVOKE", "set-by-hand", """
            { "mint": [{ "name": "create", "resource": "admin-api", "method": "POST", "path": "/keys" }],
              "value": "{{ create.body.key }}", "id": "{{ create.body.id }}", "verify": { "resource": "api", "path": "/me" } }
            """);
        h.Provider.VerifyStatus = 401;

        var noId = await h.RotateAsync("NO_ID");
        var noRevoke = await h.RotateAsync("NO_REVOKE");

        Assert.Equal(AbandonedRevokes.Skipped, noId.AbandonedRevoke);
        Assert.Contains("no provider id", noId.AbandonedRevokeError);
        Assert.Equal(AbandonedRevokes.Skipped, noRevoke.AbandonedRevoke);
        Assert.Contains("no revoke step", noRevoke.AbandonedRevokeError);
        Assert.DoesNotContain(h.Provider.Sent, s => s.Step == "revoke");
    }

    [Fact]
    public async Task An_abandoned_key_whose_revoke_keeps_failing_is_retried_then_recorded_failed_alerted_and_never_pruned()
    {
        await using var h = await RotationHarness.CreateAsync(StoreKind.Sqlite);
        await h.DefineAsync("API_KEY", "set-by-hand", RotationHarness.FlowRevokingById);
        await h.Variables.SetAsync("production", "API_KEY", "set-by-hand", secret: true, null, CancellationToken.None, policy: new VariablePolicy(KeepVersions: 1));
        h.Provider.VerifyStatus = 401;
        h.Provider.RevokeStatus = 500;
        var rotation = await h.RotateAsync("API_KEY");
        var service = h.Service();

        for (var attempt = 1; attempt <= RotationEngine.MaxRevokeAttempts; attempt++)
        {
            await service.SweepAsync(atStart: false, CancellationToken.None);
            Assert.Equal(attempt, h.Provider.Sent.Count(s => s.Step == "revoke"));
            h.Time.Advance(TimeSpan.FromMinutes(1 << (attempt - 1)));
        }

        var failed = (await h.Store.GetAsync(rotation.Id, CancellationToken.None))!;
        Assert.Equal((RotationStates.RolledBack, "rotation_verify_failed", AbandonedRevokes.Failed), (failed.State, failed.ErrorCode, failed.AbandonedRevoke));
        Assert.Contains("by hand", failed.AbandonedRevokeError);
        Assert.Equal(("revoke", "rotation_revoke_failed"), (h.Alerts.Raised[^1].Data["stage"], h.Alerts.Raised[^1].Data["errorCode"]));

        // Writes that prune past a keep count of 1 keep the version whose key is still live.
        await h.Variables.SetAsync("production", "API_KEY", "by-hand-2", secret: true, null, CancellationToken.None);
        await h.Variables.SetAsync("production", "API_KEY", "by-hand-3", secret: true, null, CancellationToken.None);
        var versions = await h.VersionsAsync("API_KEY");
        Assert.Contains(versions, v => v.Version == rotation.Version && v.Revoke == VariableService.RevokeOwed);
        Assert.True((await h.Variables.Known.GetAsync(CancellationToken.None)).Contains(h.Provider.KeyOf(1)));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_retired_version_whose_key_awaits_its_revoke_is_not_pruned_until_the_revoke_succeeds(StoreKind kind)
    {
        await using var h = await RotationHarness.CreateAsync(kind);
        await h.DefineAsync("API_KEY", "set-by-hand", RotationHarness.FlowRevokingById);
        await h.Variables.SetAsync("production", "API_KEY", "set-by-hand", secret: true, null, CancellationToken.None, policy: new VariablePolicy(KeepVersions: 1));
        await h.RotateAsync("API_KEY");     // version 3, key_1: the hand-set values had no id, nothing owed
        var second = await h.RotateAsync("API_KEY"); // version 4, key_2: key_1 is owed a revoke in an hour

        await h.Variables.SetAsync("production", "API_KEY", "by-hand", secret: true, null, CancellationToken.None);

        // Keep count 1: only the current version would stay; version 3 (key_1, revoke pending) and 4 (key_2, minted
        // with a revoke step, replaced by hand, never revoked) stay with it, and their values are still redacted.
        var versions = await h.VersionsAsync("API_KEY");
        Assert.Equal([(5L, null), (4L, VariableService.RevokeOwed), (3L, VariableService.RevokeOwed)], versions.Select(v => (v.Version, v.Revoke)));
        var known = await h.Variables.Known.GetAsync(CancellationToken.None);
        Assert.True(known.Contains(h.Provider.KeyOf(1)));

        h.Time.Advance(TimeSpan.FromHours(1));
        await h.Service().SweepAsync(atStart: false, CancellationToken.None);
        Assert.Equal(RotationStates.Revoked, (await h.Store.GetAsync(second.Id, CancellationToken.None))!.State);
        Assert.Equal(VariableService.RevokeRevoked, (await h.VersionsAsync("API_KEY")).Single(v => v.Version == 3).Revoke);

        // Revoked: the next write prunes it like any retired version.
        await h.Variables.SetAsync("production", "API_KEY", "by-hand-again", secret: true, null, CancellationToken.None);
        Assert.Equal([6L, 4L], (await h.VersionsAsync("API_KEY")).Select(v => v.Version));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_superseded_commit_retires_the_pending_version_and_rolls_the_rotation_back_in_one_transaction(StoreKind kind)
    {
        await using var h = await RotationHarness.CreateAsync(kind);
        await h.DefineAsync("API_KEY", "set-by-hand", RotationHarness.FlowRevokingById);
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        h.Provider.HoldNextVerify = hold;
        var rotating = h.RotateAsync("API_KEY");
        await h.Provider.VerifyHeld.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await h.Variables.SetAsync("production", "API_KEY", "set-meanwhile", secret: true, null, CancellationToken.None);

        // The roll-back's audit event cannot be staged: the transaction fails as a crash there would, and nothing
        // of it is kept — the pending version is still pending and the rotation still verifying, never a rotation
        // that points at a retired version while it says it is under way.
        h.Audit.FailStagingOf = "rotation.rollback";
        hold.SetResult();
        await Assert.ThrowsAsync<InvalidOperationException>(() => rotating);
        var stuck = Assert.Single(await h.Store.ListAsync("production", "API_KEY", 10, CancellationToken.None));
        Assert.Equal(RotationStates.Verifying, stuck.State);
        Assert.Equal("pending", (await h.VersionsAsync("API_KEY")).Single(v => v.Version == stuck.Version).State);

        // Taken over once its lease runs out: verified again, superseded, rolled back, and its key revoked.
        h.Audit.FailStagingOf = null;
        h.Time.Advance(RotationStore.Lease + TimeSpan.FromSeconds(1));
        await h.Service().SweepAsync(atStart: false, CancellationToken.None);
        await h.Service().SweepAsync(atStart: false, CancellationToken.None);

        var row = (await h.Store.GetAsync(stuck.Id, CancellationToken.None))!;
        Assert.Equal((RotationStates.RolledBack, "rotation_superseded", AbandonedRevokes.Revoked), (row.State, row.ErrorCode, row.AbandonedRevoke));
        Assert.Equal("retired", (await h.VersionsAsync("API_KEY")).Single(v => v.Version == row.Version).State);
        Assert.Equal("set-meanwhile", await h.CurrentAsync("API_KEY"));
        Assert.Equal(["/keys/key_1"], h.Provider.Sent.Where(s => s.Step == "revoke").Select(s => s.Path));
    }

    [Fact]
    public void Only_the_revoke_step_reads_rotation_revoke()
    {
        var definition = CompiledRotation.Parse(RotationHarness.FlowRevokingById).Definition;

        var refused = Assert.Throws<Api.KeywayException>(() => CompiledRotation.Compile(definition with
        {
            Verify = definition.Verify! with { Path = "/me/{{ rotation.revoke.id }}" },
        }));

        Assert.Contains("verify.path", refused.Message);
    }
}

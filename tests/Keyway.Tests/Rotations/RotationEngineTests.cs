using System.Security.Cryptography;
using System.Text.Json;
using Keyway.Alerts;
using Keyway.Api;
using Keyway.Environments;
using Keyway.Rotations;
using Keyway.Secrets;
using Keyway.Storage;
using Keyway.Tests.Alerts;
using Keyway.Tests.Audit;
using Keyway.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using StoreKind = Keyway.Tests.Infrastructure.StoreKind;

namespace Keyway.Tests.Rotations;

/// <summary>
/// The rotation state machine on a real store with a fake provider and a fake clock: commit, the
/// grace period before revoke, a failed verification, and what recovery does with each state a
/// stop can leave behind.
/// </summary>
[Trait("Category", "Integration")]
public sealed class RotationEngineTests
{
    private static readonly DateTimeOffset Start = RotationHarness.Start;

    private const string Flow = RotationHarness.Flow;

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_rotation_commits_one_current_version_and_revokes_the_old_secret_only_after_its_grace_period(StoreKind kind)
    {
        await using var h = await RotationHarness.CreateAsync(kind);
        await h.DefineAsync("API_KEY", "set-by-hand");

        // The first rotation replaces a value set by hand: no provider id to revoke it by.
        var first = await h.RotateAsync("API_KEY");
        Assert.Equal((RotationStates.Committed, 2L, "key_1"), (first.State, first.Version, first.NewId));
        var second = await h.RotateAsync("API_KEY");
        Assert.Equal((RotationStates.RevokePending, 3L, "key_1"), (second.State, second.Version, second.PreviousId));
        Assert.Equal(Start + TimeSpan.FromHours(1), second.RevokeDueAt);
        Assert.Equal(h.Provider.KeyOf(2), await h.CurrentAsync("API_KEY"));
        Assert.Single(await h.VersionsAsync("API_KEY"), v => v.Current);
        // Verify was sent with the pending value, before it was current.
        Assert.Equal(h.Provider.KeyOf(2), h.Provider.Sent.Last(s => s.Step == "verify").Pending);

        var service = h.Service();
        await service.SweepAsync(atStart: false, CancellationToken.None);
        Assert.DoesNotContain(h.Provider.Sent, s => s.Step == "revoke");
        h.Time.Advance(TimeSpan.FromMinutes(59));
        await service.SweepAsync(atStart: false, CancellationToken.None);
        Assert.DoesNotContain(h.Provider.Sent, s => s.Step == "revoke");
        h.Time.Advance(TimeSpan.FromMinutes(1));
        await service.SweepAsync(atStart: false, CancellationToken.None);
        await service.SweepAsync(atStart: false, CancellationToken.None);

        Assert.Equal("/keys/key_1", Assert.Single(h.Provider.Sent, s => s.Step == "revoke").Path);
        Assert.Equal(RotationStates.Revoked, (await h.Store.GetAsync(second.Id, CancellationToken.None))!.State);
        Assert.Equal([AlertTypes.RotationSucceeded, AlertTypes.RotationSucceeded], h.Alerts.Raised.Select(a => a.Type));
        Assert.Equal(["rotation.start", "rotation.mint", "rotation.commit", "rotation.start", "rotation.mint", "rotation.commit", "rotation.revoke"],
            h.Audit.Entries.Select(e => e.Action));
    }

    [Fact]
    public async Task A_failed_verification_keeps_the_current_secret_keeps_the_minted_one_retired_and_alerts_without_a_value()
    {
        await using var h = await RotationHarness.CreateAsync(StoreKind.Sqlite);
        await h.DefineAsync("API_KEY", "the-old-value");
        h.Provider.VerifyStatus = 401;

        var rotation = await h.RotateAsync("API_KEY");

        Assert.Equal((RotationStates.RolledBack, "rotation_verify_failed", "key_1"), (rotation.State, rotation.ErrorCode, rotation.NewId));
        Assert.Equal("the-old-value", await h.CurrentAsync("API_KEY"));
        var versions = await h.VersionsAsync("API_KEY");
        Assert.Equal([(2L, "retired"), (1L, "current")], versions.Select(v => (v.Version, v.State)));
        var alert = Assert.Single(h.Alerts.Raised);
        Assert.Equal((AlertTypes.RotationFailed, "rotation_verify_failed", "verify"), (alert.Type, alert.Data["errorCode"], alert.Data["stage"]));
        Assert.Equal("rotation.rollback", h.Audit.Entries[^1].Action);
        var everything = JsonSerializer.Serialize(new { rotation, alerts = h.Alerts.Raised, audit = h.Audit.Entries.Select(e => e.Detail) });
        Assert.DoesNotContain(h.Provider.Canary, everything, StringComparison.Ordinal);
        // Another rotation may start at once: the failed one holds nothing.
        h.Provider.VerifyStatus = 200;
        Assert.Equal(RotationStates.Committed, (await h.RotateAsync("API_KEY")).State);
    }

    [Fact]
    public async Task A_second_rotation_of_the_same_variable_is_refused_while_one_is_under_way()
    {
        await using var h = await RotationHarness.CreateAsync(StoreKind.Sqlite);
        await h.DefineAsync("API_KEY", "value");
        await InsertAsync(h, "left-over", RotationStates.Verifying, "replica-a", pendingVersion: null);

        var refused = await Assert.ThrowsAsync<KeywayException>(() => h.RotateAsync("API_KEY"));

        Assert.Equal("rotation_in_progress", refused.Code);
    }

    [Fact]
    public async Task Recovery_fails_a_rotation_left_minting_and_commits_one_left_verifying_whose_value_verifies()
    {
        await using var h = await RotationHarness.CreateAsync(StoreKind.Sqlite);
        await h.DefineAsync("MINTING", "minting-old");
        await h.DefineAsync("VERIFYING", "verifying-old");
        await InsertAsync(h, "was-minting", RotationStates.Minting, "replica-a", pendingVersion: null, name: "MINTING");
        var pending = await h.Variables.WritePendingAsync("production", "VERIFYING", new Secret("minted-before-the-stop"), "key_9", default, true,
            (_, _, _) => Task.CompletedTask, CancellationToken.None);
        await InsertAsync(h, "was-verifying", RotationStates.Verifying, "replica-a", pending, name: "VERIFYING");
        // Another replica's rotation, still within its lease, is not taken over.
        await h.DefineAsync("ELSEWHERE", "elsewhere-old");
        await InsertAsync(h, "elsewhere", RotationStates.Minting, "replica-b", pendingVersion: null, name: "ELSEWHERE");

        await h.Service().SweepAsync(atStart: true, CancellationToken.None);

        var minting = (await h.Store.GetAsync("was-minting", CancellationToken.None))!;
        Assert.Equal((RotationStates.Failed, "rotation_interrupted"), (minting.State, minting.ErrorCode));
        Assert.Equal("minting-old", await h.CurrentAsync("MINTING"));
        var verifying = (await h.Store.GetAsync("was-verifying", CancellationToken.None))!;
        Assert.Equal(RotationStates.Committed, verifying.State);
        Assert.Equal("minted-before-the-stop", await h.CurrentAsync("VERIFYING"));
        Assert.Single(await h.VersionsAsync("VERIFYING"), v => v.Current);
        Assert.Equal(RotationStates.Minting, (await h.Store.GetAsync("elsewhere", CancellationToken.None))!.State);

        // Once that replica's lease has run out, any replica takes it over.
        h.Time.Advance(RotationStore.Lease + TimeSpan.FromSeconds(1));
        await h.Service().SweepAsync(atStart: false, CancellationToken.None);
        Assert.Equal(RotationStates.Failed, (await h.Store.GetAsync("elsewhere", CancellationToken.None))!.State);
    }

    [Fact]
    public async Task Recovery_rolls_back_a_pending_value_that_no_longer_verifies()
    {
        await using var h = await RotationHarness.CreateAsync(StoreKind.Sqlite);
        await h.DefineAsync("API_KEY", "the-old-value");
        var pending = await h.Variables.WritePendingAsync("production", "API_KEY", new Secret("minted-then-stopped"), "key_5", default, true,
            (_, _, _) => Task.CompletedTask, CancellationToken.None);
        await InsertAsync(h, "was-pending", RotationStates.Pending, "replica-a", pending);
        h.Provider.VerifyStatus = 403;

        await h.Service().SweepAsync(atStart: true, CancellationToken.None);

        Assert.Equal(RotationStates.RolledBack, (await h.Store.GetAsync("was-pending", CancellationToken.None))!.State);
        Assert.Equal("the-old-value", await h.CurrentAsync("API_KEY"));
        Assert.Contains(await h.VersionsAsync("API_KEY"), v => v.Version == pending && v.State == "retired");
    }

    [Fact]
    public async Task A_failing_revoke_is_tried_again_with_backoff_then_left_revoke_failed_and_alerted()
    {
        await using var h = await RotationHarness.CreateAsync(StoreKind.Sqlite);
        await h.DefineAsync("API_KEY", "value");
        await h.RotateAsync("API_KEY");
        var rotation = await h.RotateAsync("API_KEY");
        h.Provider.RevokeStatus = 500;
        var service = h.Service();
        h.Time.Advance(TimeSpan.FromHours(1));

        for (var attempt = 1; attempt <= RotationEngine.MaxRevokeAttempts; attempt++)
        {
            await service.SweepAsync(atStart: false, CancellationToken.None);
            Assert.Equal(attempt, h.Provider.Sent.Count(s => s.Step == "revoke"));
            h.Time.Advance(TimeSpan.FromMinutes(1 << (attempt - 1)));
        }

        var failed = (await h.Store.GetAsync(rotation.Id, CancellationToken.None))!;
        Assert.Equal((RotationStates.RevokeFailed, "rotation_revoke_failed", RotationEngine.MaxRevokeAttempts), (failed.State, failed.ErrorCode, failed.RevokeAttempts));
        Assert.Equal(h.Provider.KeyOf(2), await h.CurrentAsync("API_KEY"));
        Assert.Equal("revoke", h.Alerts.Raised[^1].Data["stage"]);
    }

    [Fact]
    public void A_definition_cannot_read_environment_variables_or_use_an_unknown_step()
    {
        var errors = Assert.Throws<KeywayException>(() => CompiledRotation.Compile(new RotationDefinition
        {
            Mint = [new RotationStep { Name = "create", Resource = "admin", Body = "{{ environment.variables.OTHER_SECRET }}" }],
            Value = "{{ missing.body.key }}",
            Verify = new RotationStep { Resource = "api", Path = "{{ create.body.id }}" },
        }));

        Assert.Equal("invalid_config", errors.Code);
        var fields = ((IReadOnlyList<FieldError>)errors.Extensions!["errors"]!).Select(e => e.Field).ToList();
        Assert.Equal(["mint[0].body", "value", "verify.path"], fields);
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_worker_whose_lease_ran_out_cannot_overwrite_the_rotation_another_worker_finished(StoreKind kind)
    {
        await using var h = await RotationHarness.CreateAsync(kind);
        await h.DefineAsync("API_KEY", "set-by-hand");
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        h.Provider.HoldNextVerify = hold;
        var workerA = h.RotateAsync("API_KEY");
        await h.Provider.VerifyHeld.Task.WaitAsync(TimeSpan.FromSeconds(30));

        // A stalls past its lease; B (another replica) takes the rotation over, verifies and commits it.
        h.Time.Advance(RotationStore.Lease + TimeSpan.FromMinutes(1));
        var storeB = new RotationStore(h.Database, h.Time, "replica-b");
        var engineB = new RotationEngine(storeB, h.Variables, h.Provider, h.Audit, h.Alerts, h.Time, NullLogger<RotationEngine>.Instance);
        var recoverable = Assert.Single(await storeB.ListRecoverableAsync(atStart: false, CancellationToken.None));
        var byB = (await engineB.RecoverAsync(recoverable, CancellationToken.None))!;
        Assert.Equal(RotationStates.Committed, byB.State);

        // A wakes up: its verify succeeds, its commit finds nothing pending, and its write of "failed" is refused.
        hold.SetResult();
        var refused = await Assert.ThrowsAsync<KeywayException>(() => workerA);

        Assert.Equal("rotation_lease_lost", refused.Code);
        var row = (await h.Store.GetAsync(byB.Id, CancellationToken.None))!;
        Assert.Equal((RotationStates.Committed, byB.ErrorCode, byB.FinishedAt), (row.State, row.ErrorCode, row.FinishedAt));
        Assert.Equal(h.Provider.KeyOf(1), await h.CurrentAsync("API_KEY"));
    }

    [Theory, MemberData(nameof(KeywayStores.All), MemberType = typeof(KeywayStores))]
    public async Task A_revoke_is_skipped_and_recorded_when_the_replaced_secret_has_no_provider_id(StoreKind kind)
    {
        await using var h = await RotationHarness.CreateAsync(kind);
        // The revoke names the previous id without the text "rotation.previous": still skipped when there is none.
        await h.DefineAsync("API_KEY", "set-by-hand", Flow.Replace("{{ rotation.previous.id }}", "{{ rotation['previous']['id'] }}", StringComparison.Ordinal));

        var rotation = await h.RotateAsync("API_KEY");
        h.Time.Advance(TimeSpan.FromHours(2));
        await h.Service().SweepAsync(atStart: false, CancellationToken.None);

        Assert.Equal((RotationStates.Committed, "revoke_skipped"), (rotation.State, rotation.ErrorCode));
        Assert.DoesNotContain(h.Provider.Sent, s => s.Step == "revoke");
        Assert.Equal(h.Provider.KeyOf(1), await h.CurrentAsync("API_KEY"));
    }

    [Fact]
    public void Value_and_id_are_plain_member_paths_so_a_script_cannot_store_a_transformed_secret_as_id()
    {
        var errors = Assert.Throws<KeywayException>(() => CompiledRotation.Compile(new RotationDefinition
        {
            Mint = [new RotationStep { Name = "create", Resource = "admin" }],
            Value = "{{ create.body.key.trim() }}",
            Id = "{{ create.body.key.split('').reverse().join('') }}",
            Verify = new RotationStep { Resource = "api" },
        }));

        var fields = ((IReadOnlyList<FieldError>)errors.Extensions!["errors"]!).Select(e => e.Field).ToList();
        Assert.Equal(["value", "id"], fields);
        Assert.Throws<KeywayException>(() => CompiledRotation.Compile(CompiledRotation.Parse(Flow).Definition with { Id = "id-{{ create.body.id }}" }));
        Assert.NotNull(CompiledRotation.Compile(CompiledRotation.Parse(Flow).Definition with { Id = "{{ create.body['id'] }}" }));
    }

    public static TheoryData<StoreKind, string> SecretIds => new()
    {
        { StoreKind.Sqlite, "minted" },
        { StoreKind.Sqlite, "other" },
        { StoreKind.Sqlite, "base64" },
    };

    [Theory, MemberData(nameof(SecretIds))]
    public async Task An_id_that_holds_a_secret_is_refused_before_anything_is_stored(StoreKind kind, string what)
    {
        await using var h = await RotationHarness.CreateAsync(kind);
        await h.DefineAsync("API_KEY", "set-by-hand");
        var other = "other-secret-" + Guid.NewGuid().ToString("N");
        await h.Variables.SetAsync("production", "OTHER_KEY", other, secret: true, null, CancellationToken.None);
        h.Provider.IdOf = key => what switch
        {
            "minted" => key,
            "other" => other,
            _ => Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(key)),
        };

        var rotation = await h.RotateAsync("API_KEY");

        Assert.Equal((RotationStates.Failed, "rotation_id_is_secret"), (rotation.State, rotation.ErrorCode));
        Assert.Null(rotation.NewId);
        Assert.Equal("set-by-hand", await h.CurrentAsync("API_KEY"));
        Assert.Single(await h.VersionsAsync("API_KEY"));
        Assert.DoesNotContain(h.Provider.Sent, s => s.Step == "verify");
    }

    private static Task InsertAsync(RotationHarness h, string id, string state, string owner, long? pendingVersion, string name = "API_KEY") =>
        h.InsertAsync(id, state, owner, pendingVersion, name);
}

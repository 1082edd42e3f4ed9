namespace Keyway.Audit;

/// <summary>The first event where the chain breaks: its place, its id (when it still exists) and what is wrong.</summary>
internal sealed record BrokenEvent(long Seq, string? Id, string Problem, string Kind);

/// <summary>What verification found: how many events it checked, the head it ended on, and the first break.</summary>
internal sealed record AuditVerification(bool Ok, long Checked, AuditHead Head, BrokenEvent? FirstBroken)
{
    /// <summary>The checkpoint verification started from (its seal checked), null when the log was never pruned.</summary>
    public AuditCheckpoint? Checkpoint { get; init; }
}

/// <summary>Why a chain breaks, as <see cref="BrokenEvent.Kind"/> reports it.</summary>
internal static class BreakKind
{
    /// <summary>An event's fields no longer give its stored hash.</summary>
    public const string Edited = "edited";

    /// <summary>Events are missing: a gap in seq, a link to nothing, or a head beyond the last event.</summary>
    public const string Deleted = "deleted";

    /// <summary>An event links to one that now sits after it.</summary>
    public const string Reordered = "reordered";

    /// <summary>An event the writer never appended: beyond the head, or spliced between two linked events.</summary>
    public const string Inserted = "inserted";

    /// <summary>
    /// Every link holds but the head's seal does not: events were changed and every later hash
    /// recomputed, by someone without the master key.
    /// </summary>
    public const string Rewritten = "rewritten";

    /// <summary>The head carries no seal this server can check (none yet, or made under a master key it no longer holds).</summary>
    public const string Unsealed = "unsealed";

    /// <summary>
    /// The newest retention checkpoint does not match its seal (edited or forged), or the events it kept
    /// before its cut no longer give its digest.
    /// </summary>
    public const string Checkpoint = "checkpoint";
}

/// <summary>
/// Walks the chain in pages, oldest first, and reports the first event that breaks it: its seq must
/// follow the previous one's, its prev_hash must be the previous event's hash, its hash must be the
/// hash of its fields, and the last event must be the one the chain head names, whose seal must be the
/// one <see cref="AuditSeal"/> makes under the master key. Where a link is wrong, the event it does link
/// to tells an edit, a deletion, a reordering and an insertion apart.
/// <para>
/// After a prune the walk starts at the newest checkpoint (<see cref="AuditCheckpoint"/>), once its seal
/// holds: the events it kept before its cut must each match their hash and together give its digest, and
/// the first event after the cut must link to the checkpoint's hash. Events pruned before the cut are gone
/// by design and not reported. A prune that commits while the walk runs starts it again from the new checkpoint.
/// </para>
/// </summary>
/// <remarks>A verification that finds a break raises <c>audit.verify_failed</c> through <paramref name="alerts"/>, whoever asked for it.</remarks>
internal sealed class AuditVerifier(AuditStore store, AuditSeal seal, Alerts.IAlertSink? alerts = null)
{
    public const int DefaultPageSize = 1000;

    public async Task<AuditVerification> VerifyAsync(CancellationToken cancellationToken, int pageSize = DefaultPageSize)
    {
        for (var attempt = 0; ; attempt++)
        {
            var checkpoint = await store.NewestCheckpointAsync(cancellationToken);
            var result = await VerifyFromAsync(checkpoint, pageSize, cancellationToken);
            if (result.Ok || attempt == 2 || (await store.NewestCheckpointAsync(cancellationToken))?.Number == checkpoint?.Number)
            {
                if (!result.Ok && alerts is not null && result.FirstBroken is { } broken)
                {
                    await alerts.RaiseAsync(new Alerts.Alert(Alerts.AlertTypes.AuditVerifyFailed, "audit:chain", new Dictionary<string, string?>
                    {
                        ["seq"] = broken.Seq.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        ["eventId"] = broken.Id,
                        ["kind"] = broken.Kind,
                        ["problem"] = broken.Problem,
                        ["checked"] = result.Checked.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    }), cancellationToken);
                }

                return result with { Checkpoint = checkpoint };
            }

            // A prune committed while we walked, and cut away what we were reading: start from its checkpoint.
        }
    }

    private async Task<AuditVerification> VerifyFromAsync(AuditCheckpoint? checkpoint, int pageSize, CancellationToken cancellationToken)
    {
        long checkedCount = 0;
        AuditEvent? previous = null;
        var expectedSeq = 1L;
        var expectedPrev = AuditHash.Genesis;
        var knownHead = await store.HeadAsync(cancellationToken);
        if (checkpoint is not null)
        {
            var (kept, broken) = await CheckCheckpointAsync(checkpoint, pageSize, cancellationToken);
            if (broken is not null)
            {
                return Broken(kept, await store.HeadAsync(cancellationToken), broken);
            }

            checkedCount = kept;
            expectedSeq = checkpoint.Seq + 1;
            expectedPrev = checkpoint.Hash;
        }

        var start = expectedSeq - 1;
        while (true)
        {
            var page = await store.PageAsync(previous?.Seq ?? start, pageSize, cancellationToken);
            if (page.Count == 0)
            {
                // The end of the rows; the head is read after them, so it is at least as new as what was read.
                var head = await store.HeadAsync(cancellationToken);
                var last = previous?.Seq ?? start;
                if (head.Seq > last)
                {
                    // Appended while we walked? Read on; if nothing is there, the newest events were deleted.
                    if ((await store.PageAsync(last, 1, cancellationToken)).Count > 0)
                    {
                        continue;
                    }

                    var missing = head.Seq == last + 1 ? $"event {head.Seq} is" : $"events {last + 1} to {head.Seq} are";
                    return Broken(checkedCount, head, new BrokenEvent(last + 1, head.Seq == last + 1 ? head.EventId : null,
                        $"deleted: the chain head names event {head.Seq} ({head.EventId}) but the log ends at {last}; {missing} missing.", BreakKind.Deleted));
                }

                if (head.Seq < last)
                {
                    var forged = await store.FindBySeqAsync(head.Seq + 1, cancellationToken);
                    return Broken(checkedCount, head, new BrokenEvent(head.Seq + 1, forged?.Id,
                        $"inserted: event {head.Seq + 1} lies beyond the chain head ({head.Seq}); Keyway never appended it.", BreakKind.Inserted));
                }

                if (head.Hash != expectedPrev)
                {
                    return Broken(checkedCount, head, new BrokenEvent(last, previous?.Id,
                        last == start && checkpoint is not null
                        ? $"edited: the chain head records a different hash for event {last} than the checkpoint at it does."
                        : $"edited: the chain head records a different hash for event {last}; the newest event was replaced.", BreakKind.Edited));
                }

                return seal.Check(head) switch
                {
                    SealCheck.Valid => new AuditVerification(true, checkedCount, head, null),
                    SealCheck.Mismatch => Broken(checkedCount, head, new BrokenEvent(head.Seq, head.EventId,
                        $"rewritten: every event links to the one before it, but the chain head's seal does not match event {head.Seq}: " +
                        "events were changed and their hashes recomputed by someone without Keyway's master key. Compare with a head recorded " +
                        "outside the database, or with an export, to find where.", BreakKind.Rewritten)),
                    SealCheck.UnknownKey => Broken(checkedCount, head, new BrokenEvent(head.Seq, head.EventId,
                        $"unsealed: the chain head (event {head.Seq}) was sealed under master key {head.SealKey}, which this server does not hold. " +
                        "Verify with that key in KEYWAY_MASTER_KEY (after the primary), or let the next event reseal the head under the current key.",
                        BreakKind.Unsealed)),
                    _ when head.Seq == 0 => new AuditVerification(true, checkedCount, head, null),
                    _ => Broken(checkedCount, head, new BrokenEvent(head.Seq, head.EventId,
                        $"unsealed: the chain head (event {head.Seq}) carries no seal. Keyway seals it with every write and at start; a head without one was " +
                        "written by something else, or by a version of Keyway before seals.", BreakKind.Unsealed)),
                };
            }

            foreach (var e in page)
            {
                if (e.Seq > knownHead.Seq && (knownHead = await store.HeadAsync(cancellationToken)).Seq < e.Seq)
                {
                    // Past the head even as re-read now: the writer never appended it.
                    return Broken(checkedCount, knownHead, new BrokenEvent(e.Seq, e.Id,
                        $"inserted: event {e.Seq} lies beyond the chain head ({knownHead.Seq}); Keyway never appended it.", BreakKind.Inserted));
                }

                var problem = await CheckAsync(e, previous, expectedSeq, expectedPrev, cancellationToken);
                if (problem is not null)
                {
                    return Broken(checkedCount, await store.HeadAsync(cancellationToken), problem);
                }

                checkedCount++;
                previous = e;
                expectedSeq = e.Seq + 1;
                expectedPrev = e.Hash;
            }
        }
    }

    /// <summary>
    /// The checkpoint's seal, then the events it kept at or before its cut: each must match its hash, and
    /// together they must give its digest. Events it pruned that are still there (a prune stopped half-way)
    /// are passed over. Returns how many kept events were checked, or what is wrong.
    /// </summary>
    private async Task<(long Kept, BrokenEvent? Broken)> CheckCheckpointAsync(AuditCheckpoint checkpoint, int pageSize, CancellationToken cancellationToken)
    {
        var sealCheck = seal.Check(checkpoint);
        if (sealCheck != SealCheck.Valid)
        {
            var why = sealCheck switch
            {
                SealCheck.UnknownKey => $"it was sealed under master key {checkpoint.SealKey}, which this server does not hold; verify with that key in " +
                                        "KEYWAY_MASTER_KEY (after the primary), or prune again to write a checkpoint under the current key.",
                SealCheck.Missing => "it carries no seal; Keyway seals every checkpoint it writes, so this one was written by something else.",
                _ => "its seal does not match its fields: the checkpoint was edited or forged by someone without Keyway's master key.",
            };
            return (0, new BrokenEvent(checkpoint.Seq, checkpoint.EventId,
                $"checkpoint: the retention checkpoint {checkpoint.Number} (at event {checkpoint.Seq}) cannot be trusted: {why}",
                sealCheck == SealCheck.UnknownKey ? BreakKind.Unsealed : BreakKind.Checkpoint));
        }

        using var digest = new KeptDigestBuilder();
        var after = 0L;
        while (true)
        {
            var page = await store.PageAsync(after, pageSize, cancellationToken);
            foreach (var e in page)
            {
                if (e.Seq > checkpoint.Seq)
                {
                    return (digest.Count, Compare());
                }

                if (checkpoint.Expired(e))
                {
                    continue;
                }

                if (AuditHash.Compute(e) != e.Hash)
                {
                    return (digest.Count, new BrokenEvent(e.Seq, e.Id,
                        $"edited: event {e.Seq}, kept before the checkpoint at event {checkpoint.Seq}, no longer matches its hash.", BreakKind.Edited));
                }

                digest.Add(e);
            }

            if (page.Count < pageSize)
            {
                return (digest.Count, Compare());
            }

            after = page[^1].Seq;
        }

        BrokenEvent? Compare()
        {
            if (digest.Count == checkpoint.Kept && digest.Finish() == checkpoint.KeptDigest)
            {
                return null;
            }

            var what = digest.Count < checkpoint.Kept
                ? $"deleted: {checkpoint.Kept - digest.Count} of the {checkpoint.Kept} events kept before the checkpoint at event {checkpoint.Seq} are missing."
                : digest.Count > checkpoint.Kept
                    ? $"inserted: {digest.Count - checkpoint.Kept} events before the checkpoint at event {checkpoint.Seq} were not there when it was made."
                    : $"edited: an event kept before the checkpoint at event {checkpoint.Seq} was changed and its hash recomputed, or replaced.";
            var kind = digest.Count < checkpoint.Kept ? BreakKind.Deleted : digest.Count > checkpoint.Kept ? BreakKind.Inserted : BreakKind.Edited;
            return new BrokenEvent(checkpoint.Seq, checkpoint.EventId, what, kind);
        }
    }

    private static AuditVerification Broken(long checkedCount, AuditHead head, BrokenEvent broken) => new(false, checkedCount, head, broken);

    private async Task<BrokenEvent?> CheckAsync(AuditEvent e, AuditEvent? previous, long expectedSeq, string expectedPrev, CancellationToken cancellationToken)
    {
        var intact = AuditHash.Compute(e) == e.Hash;
        if (e.Seq != expectedSeq)
        {
            var missing = e.Seq == expectedSeq + 1 ? $"event {expectedSeq} is" : $"events {expectedSeq} to {e.Seq - 1} are";
            return new BrokenEvent(e.Seq, e.Id, $"deleted: {missing} missing before event {e.Seq}.", BreakKind.Deleted);
        }

        if (e.PrevHash != expectedPrev)
        {
            var linked = await store.FindByHashAsync(e.PrevHash, cancellationToken);
            if (linked is not null && linked.Seq > e.Seq)
            {
                return new BrokenEvent(e.Seq, e.Id,
                    $"reordered: event {e.Seq} was appended after the event now at {linked.Seq} ({linked.Id}) but sits before it.", BreakKind.Reordered);
            }

            if (linked is not null && linked.Seq < e.Seq - 1)
            {
                // This event links past its predecessor: what lies between was spliced in.
                var first = await store.FindBySeqAsync(linked.Seq + 1, cancellationToken);
                return new BrokenEvent(linked.Seq + 1, first?.Id,
                    $"inserted: event {linked.Seq + 1} is not in the chain; event {e.Seq} ({e.Id}) links straight to event {linked.Seq}.", BreakKind.Inserted);
            }

            if (intact && previous is not null)
            {
                // This event is whole, and links to a hash no event has: its predecessor was changed, hash and all.
                return new BrokenEvent(previous.Seq, previous.Id,
                    $"edited: event {previous.Seq} was changed and its hash recomputed; event {e.Seq} still links to the original.", BreakKind.Edited);
            }

            return new BrokenEvent(e.Seq, e.Id,
                $"deleted: event {e.Seq} does not link to event {e.Seq - 1}; an event before it was removed and the rest renumbered, or this one was edited.",
                BreakKind.Deleted);
        }

        return intact
            ? null
            : new BrokenEvent(e.Seq, e.Id, $"edited: event {e.Seq}'s fields do not match its hash.", BreakKind.Edited);
    }
}

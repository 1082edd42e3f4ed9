-- Keyway schema, version 21: abandoned keys are revoked, and a key still live at the provider is never pruned.
-- What a rotation that minted a key and did not commit it (verify failed, or another version became
-- current meanwhile) did about that key: pending (a revoke is owed and due at revoke_due_at), revoked,
-- failed (gave up: revoke it by hand) or skipped (no revoke step, no id, or a revoke step that does
-- not name the key by rotation.revoke.id); abandoned_revoke_error says why. NULL: nothing was abandoned.
ALTER TABLE rotations ADD COLUMN abandoned_revoke TEXT NULL;
ALTER TABLE rotations ADD COLUMN abandoned_revoke_error TEXT NULL;
-- Whether a version's key is still owed a revoke at the provider: owed (minted by a rotation whose flow
-- has a revoke step, with a provider id, and not yet revoked), revoked, or skipped (nothing will revoke
-- it: the flow lost its revoke step). NULL: nothing to revoke (set by hand, or minted without an id or a
-- revoke step). An owed version is never pruned: its value stays known, and redacted, while the key works.
ALTER TABLE variable_versions ADD COLUMN revoke_state TEXT NULL;
-- Versions written before this version: a retired one whose rotation's revoke has not succeeded is owed;
-- so is a current or pending one with a provider id (its revoke, if any, comes with the next rotation).
UPDATE variable_versions SET revoke_state = 'owed'
WHERE provider_id IS NOT NULL AND (state IN ('current', 'pending') OR EXISTS (
    SELECT 1 FROM rotations r WHERE r.environment = variable_versions.environment AND r.name = variable_versions.name
      AND r.from_version = variable_versions.version AND r.state IN ('revoke_pending', 'revoke_failed')));

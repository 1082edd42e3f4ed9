-- Keyway schema, version 19: rotation flows (docs/operations.md, "Rotation flows").
-- A secret variable's rotation definition (mint, verify, revoke), as JSON: templates and resource
-- names, never a value.
ALTER TABLE variables ADD COLUMN rotation TEXT NULL;

-- The provider's id of a version's value when a rotation minted it (a key id, never the key): what
-- the next rotation's revoke step names as rotation.previous.id.
ALTER TABLE variable_versions ADD COLUMN provider_id TEXT NULL;

-- One row per rotation: the write-ahead record. state is minting, pending, verifying, committed,
-- revoke_pending, revoked, revoke_failed, failed or rolled_back. owner and lease_until say which
-- replica works on it and until when, so recovery takes over only what nobody works on.
CREATE TABLE rotations (
    id              TEXT PRIMARY KEY,
    environment     TEXT NOT NULL,
    name            TEXT NOT NULL,
    state           TEXT NOT NULL,
    trigger         TEXT NOT NULL,
    actor           TEXT NULL,
    actor_key       TEXT NULL,
    from_version    INTEGER NULL,
    pending_version INTEGER NULL,
    new_id          TEXT NULL,
    previous_id     TEXT NULL,
    error_code      TEXT NULL,
    error           TEXT NULL,
    owner           TEXT NULL,
    claim           TEXT NULL,
    lease_until     INTEGER NULL,
    revoke_due_at   INTEGER NULL,
    revoke_attempts INTEGER NOT NULL DEFAULT 0,
    started_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER NULL
);
-- Exactly one rotation of a variable mints, waits or verifies at a time, on every replica: the
-- second insert fails.
CREATE UNIQUE INDEX rotations_one_active ON rotations (environment, name) WHERE state IN ('minting', 'pending', 'verifying');
CREATE INDEX rotations_by_variable ON rotations (environment, name, started_at);
CREATE INDEX rotations_by_state ON rotations (state, revoke_due_at);

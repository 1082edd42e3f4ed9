-- Keyway schema, version 16: secret versions, rollback and expiry tracking (docs/operations.md,
-- "Versions and rollback", "Expiry").
-- A variable's versions each carry a state: 'current' (the one in use; variables.version points at
-- it), 'retired' (an earlier value, kept for rollback until pruned) or 'pending' (a value written
-- ahead of a rotation, not in use yet). Who set a version, and when its value expires (set by hand,
-- or read from a JWT's exp claim) are the version's own. value_set_at is when the value was first
-- set: a rollback makes a new version of an older value, and its rotate-by date counts from then.
ALTER TABLE variable_versions ADD COLUMN state TEXT NOT NULL DEFAULT 'retired';
ALTER TABLE variable_versions ADD COLUMN set_by TEXT NULL;
ALTER TABLE variable_versions ADD COLUMN set_by_key TEXT NULL;
ALTER TABLE variable_versions ADD COLUMN expires_at BIGINT NULL;
ALTER TABLE variable_versions ADD COLUMN expires_from TEXT NULL;
ALTER TABLE variable_versions ADD COLUMN restored_from BIGINT NULL;
ALTER TABLE variable_versions ADD COLUMN value_set_at BIGINT NULL;
UPDATE variable_versions SET value_set_at = created_at;
UPDATE variable_versions SET state = 'current',
    expires_at = (SELECT v.expires_at FROM variables v WHERE v.environment = variable_versions.environment AND v.name = variable_versions.name),
    expires_from = CASE WHEN (SELECT v.expires_at FROM variables v WHERE v.environment = variable_versions.environment AND v.name = variable_versions.name) IS NULL THEN NULL ELSE 'set' END
WHERE version = (SELECT v.version FROM variables v WHERE v.environment = variable_versions.environment AND v.name = variable_versions.name);

-- Per-variable policies: how many versions to keep (null: KEYWAY_VARIABLE_KEEP_VERSIONS), how often
-- the value should be rotated (seconds; null: no policy), and what happens once it has expired
-- (null or 'warn': used and flagged; 'block': refused with secret_expired).
ALTER TABLE variables ADD COLUMN keep_versions BIGINT NULL;
ALTER TABLE variables ADD COLUMN rotate_every BIGINT NULL;
ALTER TABLE variables ADD COLUMN expired_policy TEXT NULL;

-- The alerts already raised, one row per alert (e.g. secret.expiring for one version and one lead
-- time): a sweep inserts the row first and raises the alert only if its insert added it, so a
-- restart or a second replica never raises it again.
CREATE TABLE alert_claims (
    claim      TEXT PRIMARY KEY,
    claimed_at BIGINT NOT NULL
);

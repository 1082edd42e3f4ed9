-- Keyway schema, version 14: audit retention (docs/audit.md, "Retention and checkpoints").
-- Before a prune deletes events, it writes a checkpoint: the chain's hash at the cut (the event at
-- seq), the time horizons it pruned to, how many events it deleted, and a digest of the events at or
-- before the cut that it kept (change events still within their retention), all sealed with an HMAC
-- under the key the chain head's seal uses. Verification starts at the newest checkpoint (the highest
-- number; a cut never moves back).
CREATE TABLE audit_checkpoints (
    number         BIGINT PRIMARY KEY,
    seq            BIGINT NOT NULL,
    event_id       TEXT NULL,
    hash           TEXT NOT NULL,
    at             BIGINT NOT NULL,
    made_at        BIGINT NOT NULL,
    traffic_before BIGINT NOT NULL,
    changes_before BIGINT NOT NULL,
    pruned         BIGINT NOT NULL,
    kept           BIGINT NOT NULL,
    kept_digest    TEXT NOT NULL,
    archive        TEXT NULL,
    seal           TEXT NOT NULL,
    seal_key       TEXT NOT NULL
);

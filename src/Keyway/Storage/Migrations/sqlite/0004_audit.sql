-- Keyway schema, version 4: the tamper-evident audit log. Each event carries the hash of the one
-- before it (prev_hash) and its own hash, SHA-256 over a canonical form of its fields and prev_hash
-- (docs/audit.md). seq is assigned by the writer, strictly increasing with no gaps. audit_head holds
-- the newest event's seq, id and hash, updated in the same transaction as the append, so deleting the
-- newest events is detected too.
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    at          INTEGER NOT NULL,
    actor_id    TEXT NOT NULL,
    actor_name  TEXT NOT NULL,
    actor_kind  TEXT NOT NULL,
    key_id      TEXT NULL,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    resource    TEXT NULL,
    environment TEXT NULL,
    target      TEXT NULL,
    detail      TEXT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_events_by_at ON audit_events(at);
CREATE INDEX audit_events_by_actor ON audit_events(actor_id, seq);
CREATE INDEX audit_events_by_actor_name ON audit_events(actor_name, seq);
CREATE INDEX audit_events_by_key ON audit_events(key_id, seq);
CREATE INDEX audit_events_by_resource ON audit_events(resource, seq);
CREATE INDEX audit_events_by_action ON audit_events(action, seq);
CREATE INDEX audit_events_by_hash ON audit_events(hash);

CREATE TABLE audit_head (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    seq      INTEGER NOT NULL,
    event_id TEXT NULL,
    hash     TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, event_id, hash) VALUES (1, 0, NULL, '0000000000000000000000000000000000000000000000000000000000000000');

-- Keyway schema, version 7: the event id is no longer a UNIQUE column. Nothing looks an event up by
-- its id (lists walk seq, verification walks the chain), the ids are version 7 UUIDs with 74 random
-- bits, and the chain's hashes cover them; but every append paid one more B-tree insert, with string
-- comparisons, to keep the uniqueness index. SQLite cannot drop a column constraint, so the table is
-- rebuilt once: rows are copied as they are (seq, hashes and all), so the chain verifies as before.
-- On a large log this takes a while on the first start after upgrading (measured: 14 s for a
-- million events, 517 MB, on a busy two-core machine), and the write-ahead log grows to about the
-- table's size until the next checkpoint. docs/audit.md, "Storage".
CREATE TABLE audit_events_v7 (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL,
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
INSERT INTO audit_events_v7 (seq, id, at, actor_id, actor_name, actor_kind, key_id, action, outcome, resource, environment, target, detail, prev_hash, hash)
    SELECT seq, id, at, actor_id, actor_name, actor_kind, key_id, action, outcome, resource, environment, target, detail, prev_hash, hash
    FROM audit_events ORDER BY seq;
DROP TABLE audit_events;
ALTER TABLE audit_events_v7 RENAME TO audit_events;
CREATE INDEX audit_events_by_at ON audit_events(at);
CREATE INDEX audit_events_by_resource ON audit_events(resource, seq);
CREATE INDEX audit_events_by_action ON audit_events(action, seq);

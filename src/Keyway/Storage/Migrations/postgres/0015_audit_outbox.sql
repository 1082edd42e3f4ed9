-- Keyway schema, version 15: the audit outbox (docs/audit.md, "What a crash can lose").
-- A change's event is inserted here in the change's own transaction, so the change and its event
-- commit together or not at all. The audit writer moves rows from here into the chain (seq,
-- prev_hash, hash and the head's seal are given then, under its append lock) and deletes them in
-- the same transaction. The columns are audit_events' without the chain's; detail is already
-- redacted: this table never holds a secret value. n orders the events as they were staged (an
-- id orders them only to the millisecond).
CREATE TABLE audit_outbox (
    n           BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    at          BIGINT NOT NULL,
    actor_id    TEXT NOT NULL,
    actor_name  TEXT NOT NULL,
    actor_kind  TEXT NOT NULL,
    key_id      TEXT NULL,
    action      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    resource    TEXT NULL,
    environment TEXT NULL,
    target      TEXT NULL,
    detail      TEXT NULL
);

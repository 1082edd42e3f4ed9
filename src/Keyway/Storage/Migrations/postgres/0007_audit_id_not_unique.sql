-- Keyway schema, version 7: the event id is no longer a UNIQUE column. Nothing looks an event up by
-- its id (lists walk seq, verification walks the chain), the ids are version 7 UUIDs with 74 random
-- bits, and the chain's hashes cover them; but every append paid one more B-tree insert to keep the
-- uniqueness index. docs/audit.md, "Storage".
ALTER TABLE audit_events DROP CONSTRAINT IF EXISTS audit_events_id_key;

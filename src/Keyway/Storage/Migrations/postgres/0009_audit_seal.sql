-- Keyway schema, version 9.
-- The chain head's seal: an HMAC of (seq, event id, hash) under a key derived from the master key,
-- written by the writer with every move of the head (docs/audit.md, "The seal"). Someone who can
-- write to the database but does not hold the master key can rewrite events and recompute their
-- hashes, but cannot make a seal that verifies. seal_key names the master key it was made under.
ALTER TABLE audit_head ADD COLUMN seal TEXT NULL;
ALTER TABLE audit_head ADD COLUMN seal_key TEXT NULL;

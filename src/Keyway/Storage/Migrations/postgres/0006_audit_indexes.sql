-- Keyway schema, version 6: fewer indexes on audit_events. Every proxied request appends an event,
-- and every index is one more B-tree insert per event; the hash index, written at random places, cost
-- the most. Kept: at (time filters), resource and action with seq (the list's common filters, and the
-- rare config events among many runs). Dropped: the three actor indexes (an actor filter walks seq
-- newest first until the page is full) and the hash index (only verification of a broken chain looks
-- an event up by hash). seq (the key) and the unique id stay. docs/audit.md, "Storage".
DROP INDEX IF EXISTS audit_events_by_actor;
DROP INDEX IF EXISTS audit_events_by_actor_name;
DROP INDEX IF EXISTS audit_events_by_key;
DROP INDEX IF EXISTS audit_events_by_hash;

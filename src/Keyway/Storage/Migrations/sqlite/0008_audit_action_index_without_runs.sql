-- Keyway schema, version 8: the action index leaves runs out. Nearly every event is a run (one per
-- proxied request), and every index entry is a B-tree insert on the append path; a filter on the
-- run action finds its page among the newest events by walking seq, so the index only ever helped
-- the rare actions (key.create among millions of runs). The list query adds "action <> 'run'" to
-- a filter on any other action, which is what lets the planner use a partial index.
-- docs/audit.md, "Storage".
DROP INDEX IF EXISTS audit_events_by_action;
CREATE INDEX audit_events_by_action ON audit_events(action, seq) WHERE action <> 'run';

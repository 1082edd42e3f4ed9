-- Keyway schema, version 20.
-- A schedule saved with an API key records that key (owner_key_id): a run whose key is revoked,
-- expired or deleted fails with schedule_key_unavailable, so a schedule never outlives the key that
-- saved it. NULL: saved by a signed-in person (it runs while that user is active) or before this version.
ALTER TABLE schedules ADD COLUMN owner_key_id TEXT NULL;
-- A run schedule records a SHA-256 of its saved query's definition when it was saved: a run refuses a
-- query whose definition differs (schedule_query_changed). NULL: saved before this version (the saved
-- query's updated_at is compared with the schedule's, as before).
ALTER TABLE schedules ADD COLUMN query_hash TEXT NULL;
-- A secret's origin binding travels with each version: the origins in force while the version was
-- current. A rollback restores the version's binding with its value. Versions written before this
-- version take the variable's binding as it is now, the best record there is.
ALTER TABLE variable_versions ADD COLUMN origins TEXT NULL;
UPDATE variable_versions SET origins = (
    SELECT v.origins FROM variables v WHERE v.environment = variable_versions.environment AND v.name = variable_versions.name);

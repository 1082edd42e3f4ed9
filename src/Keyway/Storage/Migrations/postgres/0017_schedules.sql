-- Keyway schema, version 17: schedules (docs/operations.md, "Schedules").
-- A schedule's definition is its JSON config (cron, time zone, action, target, retries, misfire
-- policy, enabled). It runs as owner_id, narrowed by owner_scope (the scope of the API key that
-- saved it, as JSON; NULL: unscoped), so a schedule can never do more than its saver could.
CREATE TABLE schedules (
    name        TEXT PRIMARY KEY,
    config      TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    owner_scope TEXT NULL,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
-- One row per run. The key (schedule, scheduled_at) is the claim: a replica runs an occurrence
-- only if its INSERT of that row succeeded, so each occurrence runs once per cluster. Manual runs
-- ("run now") use the time they were asked for. Kept bounded per schedule.
CREATE TABLE schedule_runs (
    schedule     TEXT NOT NULL,
    scheduled_at BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    replica      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT NULL,
    outcome      TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    error_code   TEXT NULL,
    status       BIGINT NULL,
    PRIMARY KEY (schedule, scheduled_at)
);

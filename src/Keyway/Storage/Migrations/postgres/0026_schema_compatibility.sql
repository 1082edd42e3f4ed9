-- The oldest schema version a Keyway must know to run on this store. A migration that only adds
-- (tables, columns with defaults, indexes) leaves it alone, so during a rolling upgrade a replica of
-- the previous release can still start on a store the new release has migrated; a migration that
-- removes or changes what an older release reads raises it to its own version.
CREATE TABLE schema_compatibility (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    oldest_reader BIGINT NOT NULL
);
INSERT INTO schema_compatibility (id, oldest_reader) VALUES (1, 26);

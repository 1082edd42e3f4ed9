-- Keyway schema, version 13: which replicas are alive (docs/credentials.md, "When the store
-- fails"). Each replica writes its row every few seconds; a refresh left marked in flight by a
-- replica still seen here is its to finish (its answer may sit in its credential journal), and no
-- other replica spends the refresh token meanwhile.
CREATE TABLE replicas (
    id         TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL
);

-- Keyway schema, version 13: which replicas are alive (docs/auth.md, "When the store fails").
-- Each replica writes its row every few seconds, with how many token answers it holds that the
-- store has not taken yet. A refresh marked in flight by a replica seen here that is still at the
-- provider, or whose answer waits in that replica's journal, is its to finish: no other replica
-- spends the refresh token meanwhile.
CREATE TABLE replicas (
    id         TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL,
    pending    BIGINT NOT NULL DEFAULT 0
);

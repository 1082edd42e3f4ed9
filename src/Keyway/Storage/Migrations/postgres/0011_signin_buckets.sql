-- Keyway schema, version 11: sign-in rate limits shared by every replica. One token bucket per
-- client address and per user name (docs/sign-in.md, "Rate limits"); on PostgreSQL every replica
-- takes its tokens from here, so N replicas do not allow N times the limit. SQLite, a single
-- process, keeps its buckets in memory and leaves this table empty.
CREATE TABLE signin_buckets (
    key        TEXT PRIMARY KEY,
    tokens     DOUBLE PRECISION NOT NULL,
    updated_at BIGINT NOT NULL
);

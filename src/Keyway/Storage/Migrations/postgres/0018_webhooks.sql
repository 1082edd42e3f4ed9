-- Keyway schema, version 18: webhook endpoints and their delivery queue (docs/operations.md,
-- "Alerts and webhooks"). An endpoint's signing secret is encrypted with the key ring (AAD
-- webhook_endpoints:{name}:secret, and :previous_secret for the one a rotation replaced, which
-- still signs until previous_until). A delivery is one alert for one endpoint: it stays here
-- across restarts until it is sent or given up, and then as history until retention drops it.
-- A sender claims a due row by writing a claim token and a lease end; a lease that ends
-- without the attempt recorded (the replica died) makes the row due again. Its payload holds names and states only, redacted of every known secret before it is stored.
CREATE TABLE webhook_endpoints (
    name            TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    events          TEXT NULL,
    enabled         INTEGER NOT NULL,
    description     TEXT NULL,
    secret          BYTEA NOT NULL,
    previous_secret BYTEA NULL,
    previous_until  BIGINT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    endpoint        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at BIGINT NULL,
    claim           TEXT NULL,
    lease_until     BIGINT NULL,
    last_status     INTEGER NULL,
    last_error      TEXT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    delivered_at    BIGINT NULL
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint, created_at);

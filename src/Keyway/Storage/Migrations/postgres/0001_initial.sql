-- Keyway schema, version 1 (PostgreSQL). Times are Unix milliseconds; booleans are 0/1.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE data_keys (
    id            TEXT PRIMARY KEY,
    master_key_id TEXT NOT NULL,
    wrapped_key   BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    active        BIGINT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    email         TEXT NULL,
    role          TEXT NOT NULL,
    password_hash TEXT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash         TEXT NOT NULL UNIQUE,
    hint         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NULL,
    last_used_at BIGINT NULL,
    revoked_at   BIGINT NULL
);

CREATE TABLE environments (
    name        TEXT PRIMARY KEY,
    description TEXT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE variables (
    environment TEXT NOT NULL REFERENCES environments(name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    secret      BIGINT NOT NULL,
    version     BIGINT NOT NULL,
    expires_at  BIGINT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (environment, name)
);

-- Every value a variable has had. A secret's value is only ever stored encrypted (ciphertext),
-- a plain variable's in value.
CREATE TABLE variable_versions (
    environment TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    value       TEXT NULL,
    ciphertext  BYTEA NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (environment, name, version),
    FOREIGN KEY (environment, name) REFERENCES variables(environment, name) ON DELETE CASCADE
);

CREATE TABLE resources (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    config     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE queries (
    name       TEXT PRIMARY KEY,
    resource   TEXT NOT NULL,
    config     TEXT NOT NULL,
    version    BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX queries_by_resource ON queries(resource);

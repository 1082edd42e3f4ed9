-- Credentials produced by dynamic auth methods (OAuth 2.0, custom flows). Keyed by
-- (resource, environment, owner); owner is 'shared' or a user id. Tokens are encrypted
-- (AAD binds each to its key, field and version). `version` is the compare-and-swap column:
-- every write names the version it read and bumps it, so an older result never overwrites a newer.
CREATE TABLE credentials (
    resource           TEXT NOT NULL,
    environment        TEXT NOT NULL,
    owner              TEXT NOT NULL,
    params_hash        TEXT NOT NULL,
    state              TEXT NOT NULL,
    version            BIGINT NOT NULL,
    access_token       BYTEA NULL,
    refresh_token      BYTEA NULL,
    extras             BYTEA NULL,
    token_type         TEXT NULL,
    expires_at         BIGINT NULL,
    obtained_at        BIGINT NULL,
    last_refreshed_at  BIGINT NULL,
    next_refresh_at    BIGINT NULL,
    keep_alive_at      BIGINT NULL,
    refresh_count      BIGINT NOT NULL,
    failure_count      BIGINT NOT NULL,
    last_error         TEXT NULL,
    refresh_started_at BIGINT NULL,
    refresh_owner      TEXT NULL,
    last_used_at       BIGINT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (resource, environment, owner)
);
CREATE INDEX credentials_due ON credentials(next_refresh_at);
CREATE INDEX credentials_keep_alive ON credentials(keep_alive_at);

-- Authorization-code connections in progress: the state parameter names the row; the PKCE
-- verifier is encrypted. Rows older than ten minutes are refused and swept.
CREATE TABLE oauth_pending (
    state         TEXT PRIMARY KEY,
    resource      TEXT NOT NULL,
    environment   TEXT NOT NULL,
    owner         TEXT NOT NULL,
    code_verifier BYTEA NOT NULL,
    nonce         TEXT NOT NULL,
    redirect_uri  TEXT NOT NULL,
    return_to     TEXT NULL,
    created_at    BIGINT NOT NULL
);

-- Keyway schema, version 3: who may use what. Users gain a source (local password, OIDC single
-- sign-on, or a service identity for API keys), groups, per-resource grants and scoped API keys.
ALTER TABLE users ADD COLUMN display_name TEXT NULL;
ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
ALTER TABLE users ADD COLUMN external_id TEXT NULL;
ALTER TABLE users ADD COLUMN claims TEXT NULL;
ALTER TABLE users ADD COLUMN disabled_at BIGINT NULL;
ALTER TABLE users ADD COLUMN failed_sign_ins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until BIGINT NULL;
ALTER TABLE users ADD COLUMN password_changed_at BIGINT NULL;
ALTER TABLE users ADD COLUMN session_version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN updated_at BIGINT NULL;
CREATE UNIQUE INDEX users_by_external_id ON users(external_id);

CREATE TABLE groups (
    name        TEXT PRIMARY KEY,
    description TEXT NULL,
    created_at  BIGINT NOT NULL
);

-- source: 'manual' (set by an admin) or 'sso' (mapped from the identity provider's groups claim at sign-in).
CREATE TABLE group_members (
    group_name TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    source     TEXT NOT NULL DEFAULT 'manual',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (group_name, user_id)
);
CREATE INDEX group_members_by_user ON group_members(user_id);

-- A permission ('use', 'edit', 'own') on a resource ('*' for every resource) for a user (principal_kind
-- 'user', principal = user id) or a group ('group', principal = group name), in one environment or
-- in every one ('*').
CREATE TABLE grants (
    id             TEXT PRIMARY KEY,
    resource       TEXT NOT NULL,
    principal_kind TEXT NOT NULL,
    principal      TEXT NOT NULL,
    permission     TEXT NOT NULL,
    environment    TEXT NOT NULL DEFAULT '*',
    created_at     BIGINT NOT NULL,
    created_by     TEXT NULL,
    UNIQUE (resource, principal_kind, principal, permission, environment)
);
CREATE INDEX grants_by_principal ON grants(principal_kind, principal);

-- A key's scope as JSON: {"resources": [...], "environments": [...], "actions": [...]}; NULL = everything its owner may do.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NULL;
ALTER TABLE resources ADD COLUMN created_by TEXT NULL;

-- Keyway schema, version 10: sessions ended by signing out. A session cookie is self-contained, so
-- a copy taken before sign-out would stay valid until it expired; its id is kept here until then
-- (the sign-out time plus the session lifetime), and every replica refuses it (docs/sign-in.md).
CREATE TABLE revoked_sessions (
    id         TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

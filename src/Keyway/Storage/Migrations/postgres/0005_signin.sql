-- Keyway schema, version 5: console sign-in. ASP.NET Core Data Protection keys (which protect the
-- session cookie and the single sign-on state) live in the store so that every replica reads the
-- same sessions; each key's XML is encrypted with the key ring (associated data names the row).
CREATE TABLE dataprotection_keys (
    name       TEXT PRIMARY KEY,
    xml        BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);

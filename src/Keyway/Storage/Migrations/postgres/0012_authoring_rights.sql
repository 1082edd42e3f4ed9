-- Keyway schema, version 12: who may point a secret where (docs/security.md, "Who can do what
-- with a secret").
-- Rights that are not about one resource: 'build' (create resources; target '*') and 'attach'
-- (save a resource definition that reads a secret variable; target a variable name or '*').
CREATE TABLE rights (
    id             TEXT PRIMARY KEY,
    "right"        TEXT NOT NULL,
    target         TEXT NOT NULL,
    principal_kind TEXT NOT NULL,
    principal      TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    created_by     TEXT NULL,
    UNIQUE ("right", target, principal_kind, principal)
);
-- The origins a variable's value may be sent to, as a JSON array ('https://api.example.com',
-- 'https://*.example.com'); NULL: not bound.
ALTER TABLE variables ADD COLUMN origins TEXT NULL;
-- The variables a resource's saver was allowed to attach, as a JSON array ('*': every variable);
-- NULL for a resource saved before version 12, whose references were never checked.
ALTER TABLE resources ADD COLUMN attached TEXT NULL;
-- Who started an authorization-code connection: only a browser signed in to Keyway as them may finish
-- it, so a connect link sent to someone else cannot tie their account to the sender's credential.
ALTER TABLE oauth_pending ADD COLUMN started_by TEXT NULL;

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL DEFAULT '',
    -- argon2id PHC string; NULL for users who only sign in through single sign-on
    password_hash TEXT,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'deployer', 'admin')),
    disabled INTEGER NOT NULL DEFAULT 0,
    -- the OpenID Connect issuer and subject of a user created by single sign-on
    sso_issuer TEXT,
    sso_subject TEXT,
    created_at BIGINT NOT NULL,
    password_changed_at BIGINT,
    UNIQUE (sso_issuer, sso_subject)
);

CREATE TABLE sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- SHA-256 of the cookie value; the value itself is never stored
    token_hash TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    source_ip TEXT NOT NULL DEFAULT '',
    user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);

-- Tokens gain owners (personal tokens), expiry, revocation and the `deploy` scope; their hash
-- becomes argon2id, looked up through a public id, so tokens made before this version stop
-- working and must be created again.
DROP TABLE api_tokens;
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- the public part of the token, `vgl_<public_id>_<secret>`
    public_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    -- service tokens carry a scope; personal tokens carry their user and act with its role
    kind TEXT NOT NULL CHECK (kind IN ('service', 'personal')),
    scope TEXT CHECK (scope IN ('ingest', 'read', 'deploy', 'admin')),
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    revoked_at BIGINT,
    CHECK ((kind = 'service' AND scope IS NOT NULL AND user_id IS NULL)
        OR (kind = 'personal' AND scope IS NULL AND user_id IS NOT NULL))
);
CREATE UNIQUE INDEX api_tokens_service_name ON api_tokens (name) WHERE kind = 'service' AND revoked_at IS NULL;

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    source_ip TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

CREATE TABLE integrations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    -- settings that are not secret, as JSON
    settings TEXT NOT NULL,
    -- secrets as JSON of name -> AEAD ciphertext; never returned
    secrets TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- keygate schema. Timestamps are INTEGER microseconds since the Unix epoch (UTC).
-- Secrets are stored only as HMAC-SHA256 digests (BLOB), never in plaintext.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    is_system   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    org_id         TEXT NOT NULL REFERENCES organizations(id),
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    person_id      INTEGER,
    is_admin       INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    UNIQUE (org_id, person_id)
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    hash        BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX api_keys_org ON api_keys(org_id, id);

-- Tickets (kind 'ticket') and cookie sessions (kind 'session').
CREATE TABLE login_tokens (
    hash        BLOB PRIMARY KEY,
    kind        TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users(id),
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    xsrf_hash   BLOB,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX login_tokens_expiry ON login_tokens(expires_at);

CREATE TABLE credentials (
    id             TEXT PRIMARY KEY,          -- UUIDv7: time ordered, used as the list cursor
    org_id         TEXT NOT NULL REFERENCES organizations(id),
    kind           TEXT NOT NULL,
    owner_id       TEXT,
    name           TEXT NOT NULL,
    prefix         TEXT NOT NULL,
    hash           BLOB NOT NULL UNIQUE,
    scopes         TEXT NOT NULL,             -- JSON array
    not_before     INTEGER,
    expires_at     INTEGER,
    max_uses       INTEGER,
    used_count     INTEGER NOT NULL DEFAULT 0,
    allowed_users  TEXT NOT NULL,             -- JSON array of UUIDs
    subject        TEXT NOT NULL,             -- JSON
    metadata       TEXT NOT NULL,             -- JSON
    created_at     INTEGER NOT NULL,
    created_by     TEXT NOT NULL,
    updated_at     INTEGER NOT NULL,
    updated_by     TEXT NOT NULL,
    revoked_at     INTEGER,
    revoked_by     TEXT
);
CREATE INDEX credentials_org ON credentials(org_id, id);
CREATE INDEX credentials_org_kind ON credentials(org_id, kind, id);
CREATE INDEX credentials_owner ON credentials(org_id, owner_id, id);

CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id          TEXT NOT NULL,
    aggregate_type  TEXT NOT NULL,
    aggregate_id    TEXT NOT NULL,
    version         INTEGER NOT NULL,
    type            TEXT NOT NULL,
    data            TEXT NOT NULL,
    actor           TEXT NOT NULL,
    at              INTEGER NOT NULL,
    UNIQUE (aggregate_id, version)
);
CREATE INDEX events_org_seq ON events(org_id, seq);

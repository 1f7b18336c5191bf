-- keygate schema (PostgreSQL). Mirrors migrations/sqlite: timestamps are BIGINT microseconds since
-- the Unix epoch (UTC); JSON documents are TEXT (stored exactly as serialized, like SQLite).
-- Secrets are stored only as HMAC-SHA256 digests (BYTEA), never in plaintext.

CREATE TABLE organizations (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    is_system   BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    id             UUID PRIMARY KEY,
    org_id         UUID NOT NULL REFERENCES organizations(id),
    username       TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    person_id      BIGINT,
    is_admin       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT NOT NULL,
    UNIQUE (org_id, person_id)
);

CREATE TABLE api_keys (
    id          UUID PRIMARY KEY,
    org_id      UUID NOT NULL REFERENCES organizations(id),
    name        TEXT NOT NULL,
    prefix      TEXT NOT NULL,
    hash        BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX api_keys_org ON api_keys(org_id, id);

-- Tickets (kind 'ticket') and cookie sessions (kind 'session').
CREATE TABLE login_tokens (
    hash        BYTEA PRIMARY KEY,
    kind        TEXT NOT NULL,
    user_id     UUID NOT NULL REFERENCES users(id),
    org_id      UUID NOT NULL REFERENCES organizations(id),
    xsrf_hash   BYTEA,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX login_tokens_expiry ON login_tokens(expires_at);

CREATE TABLE credentials (
    id             UUID PRIMARY KEY,          -- UUIDv7: time ordered, used as the list cursor
    org_id         UUID NOT NULL REFERENCES organizations(id),
    kind           TEXT NOT NULL,
    owner_id       UUID,
    name           TEXT NOT NULL,
    prefix         TEXT NOT NULL,
    hash           BYTEA NOT NULL UNIQUE,
    scopes         TEXT NOT NULL,             -- JSON array
    not_before     BIGINT,
    expires_at     BIGINT,
    max_uses       BIGINT,
    used_count     BIGINT NOT NULL DEFAULT 0,
    allowed_users  TEXT NOT NULL,             -- JSON array of UUIDs
    subject        TEXT NOT NULL,             -- JSON
    metadata       TEXT NOT NULL,             -- JSON
    created_at     BIGINT NOT NULL,
    created_by     TEXT NOT NULL,
    updated_at     BIGINT NOT NULL,
    updated_by     TEXT NOT NULL,
    revoked_at     BIGINT,
    revoked_by     TEXT
);
CREATE INDEX credentials_org ON credentials(org_id, id);
CREATE INDEX credentials_org_kind ON credentials(org_id, kind, id);
CREATE INDEX credentials_owner ON credentials(org_id, owner_id, id);

-- seq is handed out under a transaction-scoped advisory lock that is held until commit
-- (see src/store/postgres.rs), so it grows in commit order and `after` cursors never skip.
CREATE TABLE events (
    seq             BIGSERIAL PRIMARY KEY,
    org_id          UUID NOT NULL,
    aggregate_type  TEXT NOT NULL,
    aggregate_id    UUID NOT NULL,
    version         BIGINT NOT NULL,
    type            TEXT NOT NULL,
    data            TEXT NOT NULL,
    actor           TEXT NOT NULL,
    at              BIGINT NOT NULL,
    UNIQUE (aggregate_id, version)
);
CREATE INDEX events_org_seq ON events(org_id, seq);

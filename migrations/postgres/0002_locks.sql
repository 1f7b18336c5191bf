-- Locks (SmartphoneKey surface): numeric id for the wire, UUID for events.
CREATE TABLE locks (
    id          BIGSERIAL PRIMARY KEY,
    uuid        UUID NOT NULL UNIQUE,
    org_id      UUID NOT NULL REFERENCES organizations(id),
    name        TEXT NOT NULL,
    owner_id    UUID,
    doors       TEXT NOT NULL,             -- JSON array of {id, name}
    created_at  BIGINT NOT NULL
);
CREATE INDEX locks_org ON locks(org_id, id);

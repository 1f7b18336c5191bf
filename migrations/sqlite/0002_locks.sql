-- Locks (SmartphoneKey surface): numeric id for the wire, UUID for events.
CREATE TABLE locks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid        TEXT NOT NULL UNIQUE,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    name        TEXT NOT NULL,
    owner_id    TEXT,
    doors       TEXT NOT NULL,             -- JSON array of {id, name}
    created_at  INTEGER NOT NULL
);
CREATE INDEX locks_org ON locks(org_id, id);

-- The SuperOffice ForeignSystem agent: per-organization applications -> devices -> keys.
-- Numeric ids travel on the wire (int32); UUIDs name the event aggregates.
CREATE TABLE foreign_apps (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid               TEXT NOT NULL UNIQUE,
    org_id             TEXT NOT NULL REFERENCES organizations(id),
    name               TEXT NOT NULL,
    created_at         INTEGER NOT NULL,
    created_by         TEXT NOT NULL,
    created_by_user    TEXT,
    created_by_person  INTEGER,
    updated_at         INTEGER NOT NULL,
    updated_by         TEXT NOT NULL,
    updated_by_user    TEXT,
    updated_by_person  INTEGER
);
CREATE UNIQUE INDEX foreign_apps_name ON foreign_apps(org_id, name);

-- A device is identified by its application, name and identifier ('' when it has none).
CREATE TABLE foreign_devices (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid        TEXT NOT NULL UNIQUE,
    org_id      TEXT NOT NULL REFERENCES organizations(id),
    app_id      INTEGER NOT NULL REFERENCES foreign_apps(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    identifier  TEXT NOT NULL,
    owner_name  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT NOT NULL
);
CREATE UNIQUE INDEX foreign_devices_path ON foreign_devices(app_id, name, identifier);

-- value_digest is SHA-256 of the value: lookups by value use it (a 4,000-character value is too
-- long for a PostgreSQL btree entry) and then compare the value itself.
CREATE TABLE foreign_keys (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid          TEXT NOT NULL UNIQUE,
    org_id        TEXT NOT NULL REFERENCES organizations(id),
    device_id     INTEGER NOT NULL REFERENCES foreign_devices(id) ON DELETE CASCADE,
    key_name      TEXT NOT NULL,
    value         TEXT NOT NULL,
    value_digest  BLOB NOT NULL,
    table_name    TEXT NOT NULL,
    record_id     INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    updated_at    INTEGER NOT NULL,
    updated_by    TEXT NOT NULL
);
CREATE UNIQUE INDEX foreign_keys_name ON foreign_keys(device_id, key_name, table_name, record_id);
CREATE INDEX foreign_keys_value ON foreign_keys(device_id, key_name, value_digest);
-- GetAllForeignKeysOnEntity. The index starts with the record, not the organization: every lookup of a
-- device's keys also filters on org_id, so an index led by org_id was a candidate for all of them, and
-- SQLite (no statistics here) chose it to list a device's keys, reading every key of the organization.
-- SQLite ends every index with the rowid, so the keys come out in id order.
CREATE INDEX foreign_keys_entity ON foreign_keys(table_name, record_id, org_id);

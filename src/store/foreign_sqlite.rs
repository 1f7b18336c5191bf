//! The ForeignSystem mapping store on SQLite. The SQL of the lookups is public ([`sql`]) so that
//! the query-plan test explains exactly what the store runs.

use super::sqlite::{append, opt_uuid_col, time_col, uuid_col};
use crate::clock::to_micros;
use crate::core::foreign::{
    self, Author, DevicePath, DeviceTarget, ForeignApp, ForeignDevice, ForeignKey, KeyFilter, KeyMode, KeyWrite, Stamp,
    kind, value_digest,
};
use crate::error::{Error, Result};
use sqlx::sqlite::SqliteRow;
use sqlx::{Executor, Row, Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

/// The lookups' SQL, with the index each is meant to use (asserted by the query-plan test).
pub mod sql {
    /// Index `foreign_apps_name`.
    pub const APP_BY_NAME: &str = "SELECT * FROM foreign_apps WHERE org_id = ?1 AND name = ?2";
    pub const APP_BY_ID: &str = "SELECT * FROM foreign_apps WHERE org_id = ?1 AND id = ?2";
    /// Indexes `foreign_apps_name` and `foreign_devices_path`.
    pub const DEVICE_AT: &str = "SELECT d.* FROM foreign_devices d JOIN foreign_apps a ON a.id = d.app_id \
         WHERE a.org_id = ?1 AND d.org_id = ?1 AND a.name = ?2 AND d.name = ?3 AND d.identifier = ?4";
    pub const DEVICE_BY_ID: &str = "SELECT * FROM foreign_devices WHERE org_id = ?1 AND id = ?2";
    pub const DEVICES_OF_APP: &str = "SELECT * FROM foreign_devices WHERE org_id = ?1 AND app_id = ?2 ORDER BY id";
    pub const KEYS_OF_APP: &str = "SELECT k.* FROM foreign_keys k JOIN foreign_devices d ON d.id = k.device_id \
         WHERE k.org_id = ?1 AND d.org_id = ?1 AND d.app_id = ?2 ORDER BY k.id LIMIT ?3";
    /// Index `foreign_keys_value`: the digest finds the row, the value itself is then compared.
    pub const KEY_BY_VALUE: &str = "SELECT * FROM foreign_keys WHERE org_id = ?1 AND device_id = ?2 \
         AND key_name = ?3 AND value_digest = ?4 AND value = ?5 ORDER BY id LIMIT 1";
    /// [`KEY_BY_VALUE`] in one table: the same index, the table compared on the rows it finds.
    pub const KEY_BY_VALUE_IN_TABLE: &str = "SELECT * FROM foreign_keys WHERE org_id = ?1 AND device_id = ?2 \
         AND key_name = ?3 AND value_digest = ?4 AND value = ?5 AND table_name = ?6 ORDER BY id LIMIT 1";
    /// Index `foreign_keys_entity`.
    pub const KEYS_ON_ENTITY: &str = "SELECT k.*, a.name AS app_name, d.name AS device_name FROM foreign_keys k \
         JOIN foreign_devices d ON d.id = k.device_id JOIN foreign_apps a ON a.id = d.app_id \
         WHERE k.org_id = ?1 AND k.table_name = ?2 AND k.record_id = ?3 ORDER BY k.id LIMIT ?4";

    /// A device's keys matching a filter, with only the filters that are set in the text (the
    /// planner cannot put an `(?3 IS NULL OR key_name = ?3)` on an index), on `foreign_keys_name`:
    /// the full address is the unique index (the upsert's lookup), a key name its `(device_id,
    /// key_name)` prefix, else the `device_id` prefix. `INDEXED BY`, because without statistics
    /// SQLite took `foreign_keys_entity (table_name, ...)` for a table on any key name, reading
    /// that table's keys in every organization. The limit is in the text (it is the store's
    /// number, 1, the list cap or all). Parameters, in order: org_id, device_id, then key_name,
    /// table_name and record_id when set.
    pub fn keys_of_device(f: &crate::core::foreign::KeyFilter, limit: i64) -> String {
        let mut sql = String::from(
            "SELECT * FROM foreign_keys INDEXED BY foreign_keys_name WHERE org_id = ?1 AND device_id = ?2",
        );
        let mut n = 2;
        for (set, col) in [
            (f.key_name.is_some(), "key_name"),
            (f.table_name.is_some(), "table_name"),
            (f.record_id.is_some(), "record_id"),
        ] {
            if set {
                n += 1;
                sql.push_str(&format!(" AND {col} = ?{n}"));
            }
        }
        sql.push_str(&format!(" ORDER BY id LIMIT {limit}"));
        sql
    }
}

fn id32(row: &SqliteRow, col: &str) -> Result<i32> {
    let v: i64 = row.try_get(col)?;
    i32::try_from(v).map_err(|_| Error::internal(format!("{col} {v} is out of the int32 range")))
}

fn author(row: &SqliteRow, prefix: &str) -> Result<Author> {
    Ok(Author {
        name: row.try_get(prefix)?,
        user_id: opt_uuid_col(row, &format!("{prefix}_user"))?,
        person_id: row.try_get(format!("{prefix}_person").as_str())?,
    })
}

fn app_from(row: &SqliteRow) -> Result<ForeignApp> {
    Ok(ForeignApp {
        id: id32(row, "id")?,
        uuid: uuid_col(row, "uuid")?,
        org_id: uuid_col(row, "org_id")?,
        name: row.try_get("name")?,
        created_at: time_col(row, "created_at")?,
        created_by: author(row, "created_by")?,
        updated_at: time_col(row, "updated_at")?,
        updated_by: author(row, "updated_by")?,
    })
}

fn device_from(row: &SqliteRow) -> Result<ForeignDevice> {
    Ok(ForeignDevice {
        id: id32(row, "id")?,
        uuid: uuid_col(row, "uuid")?,
        org_id: uuid_col(row, "org_id")?,
        app_id: id32(row, "app_id")?,
        name: row.try_get("name")?,
        identifier: row.try_get("identifier")?,
        owner_name: row.try_get("owner_name")?,
        created_at: time_col(row, "created_at")?,
        created_by: row.try_get("created_by")?,
        updated_at: time_col(row, "updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}

fn key_from(row: &SqliteRow) -> Result<ForeignKey> {
    Ok(ForeignKey {
        id: row.try_get("id")?,
        uuid: uuid_col(row, "uuid")?,
        org_id: uuid_col(row, "org_id")?,
        device_id: id32(row, "device_id")?,
        key_name: row.try_get("key_name")?,
        value: row.try_get("value")?,
        table_name: row.try_get("table_name")?,
        record_id: id32(row, "record_id")?,
        created_at: time_col(row, "created_at")?,
        created_by: row.try_get("created_by")?,
        updated_at: time_col(row, "updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}

type Tx<'a> = Transaction<'a, Sqlite>;

/// A device's address in an application.
fn path_in(app: &ForeignApp, name: &str, identifier: &str) -> DevicePath {
    DevicePath {
        app: app.name.clone(),
        device: name.to_string(),
        identifier: identifier.to_string(),
    }
}

// The lookups run on the read pool (the `Store` methods) or inside a write transaction alike.

pub(super) async fn app_by_name<'e, E: Executor<'e, Database = Sqlite>>(
    ex: E,
    org: Uuid,
    name: &str,
) -> Result<Option<ForeignApp>> {
    sqlx::query(sql::APP_BY_NAME)
        .bind(org.to_string())
        .bind(name)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(app_from)
        .transpose()
}

pub(super) async fn app_by_id<'e, E: Executor<'e, Database = Sqlite>>(
    ex: E,
    org: Uuid,
    id: i32,
) -> Result<Option<ForeignApp>> {
    sqlx::query(sql::APP_BY_ID)
        .bind(org.to_string())
        .bind(id)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(app_from)
        .transpose()
}

pub(super) async fn device_at<'e, E: Executor<'e, Database = Sqlite>>(
    ex: E,
    org: Uuid,
    p: &DevicePath,
) -> Result<Option<ForeignDevice>> {
    sqlx::query(sql::DEVICE_AT)
        .bind(org.to_string())
        .bind(&p.app)
        .bind(&p.device)
        .bind(&p.identifier)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(device_from)
        .transpose()
}

pub(super) async fn device_by_id<'e, E: Executor<'e, Database = Sqlite>>(
    ex: E,
    org: Uuid,
    id: i32,
) -> Result<Option<ForeignDevice>> {
    sqlx::query(sql::DEVICE_BY_ID)
        .bind(org.to_string())
        .bind(id)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(device_from)
        .transpose()
}

/// A device's keys matching `f`: the exact address through the unique index, a key name through
/// the `(device_id, key_name)` prefix, else every key of the device.
pub(super) async fn keys_of_device<'e, E: Executor<'e, Database = Sqlite>>(
    ex: E,
    org: Uuid,
    device_id: i32,
    f: &KeyFilter,
    limit: i64,
) -> Result<Vec<ForeignKey>> {
    let q = sql::keys_of_device(f, limit);
    let mut query = sqlx::query(&q).bind(org.to_string()).bind(device_id);
    if let Some(k) = &f.key_name {
        query = query.bind(k.as_str());
    }
    if let Some(t) = &f.table_name {
        query = query.bind(t.as_str());
    }
    if let Some(r) = f.record_id {
        query = query.bind(r);
    }
    query.fetch_all(ex).await?.iter().map(key_from).collect()
}

async fn insert_app(tx: &mut Tx<'_>, name: &str, s: &Stamp) -> Result<ForeignApp> {
    let a = &s.author;
    let row = sqlx::query(
        "INSERT INTO foreign_apps (uuid, org_id, name, created_at, created_by, created_by_user, created_by_person, \
         updated_at, updated_by, updated_by_user, updated_by_person) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?4, ?5, ?6, ?7) \
         RETURNING *",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(s.org_id.to_string())
    .bind(name)
    .bind(to_micros(s.at))
    .bind(&a.name)
    .bind(a.user_id.map(|u| u.to_string()))
    .bind(a.person_id)
    .fetch_one(&mut **tx)
    .await?;
    let app = app_from(&row)?;
    append(
        tx,
        &foreign::app_event(s, &app, kind::APP_CREATED, serde_json::json!({})),
    )
    .await?;
    Ok(app)
}

async fn ensure_app(tx: &mut Tx<'_>, name: &str, s: &Stamp) -> Result<ForeignApp> {
    match app_by_name(&mut **tx, s.org_id, name).await? {
        Some(a) => Ok(a),
        None => insert_app(tx, name, s).await,
    }
}

async fn insert_device(tx: &mut Tx<'_>, app: &ForeignApp, name: &str, ident: &str, s: &Stamp) -> Result<ForeignDevice> {
    let row = sqlx::query(
        "INSERT INTO foreign_devices (uuid, org_id, app_id, name, identifier, owner_name, created_at, created_by, \
         updated_at, updated_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?6, ?7, ?6) RETURNING *",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(s.org_id.to_string())
    .bind(app.id)
    .bind(name)
    .bind(ident)
    .bind(&s.author.name)
    .bind(to_micros(s.at))
    .fetch_one(&mut **tx)
    .await?;
    let d = device_from(&row)?;
    append(
        tx,
        &foreign::device_event(s, app, &d, kind::DEVICE_CREATED, serde_json::json!({})),
    )
    .await?;
    Ok(d)
}

async fn ensure_device(
    tx: &mut Tx<'_>,
    app: &ForeignApp,
    name: &str,
    ident: &str,
    s: &Stamp,
) -> Result<(ForeignDevice, bool)> {
    match device_at(&mut **tx, s.org_id, &path_in(app, name, ident)).await? {
        Some(d) => Ok((d, false)),
        None => Ok((insert_device(tx, app, name, ident, s).await?, true)),
    }
}

/// The device a target names within `app`.
async fn target_device(tx: &mut Tx<'_>, app: &ForeignApp, target: &DeviceTarget) -> Result<Option<ForeignDevice>> {
    match target {
        DeviceTarget::Id(id) => Ok(device_by_id(&mut **tx, app.org_id, *id)
            .await?
            .filter(|d| d.app_id == app.id)),
        DeviceTarget::Path { name, identifier } => {
            device_at(&mut **tx, app.org_id, &path_in(app, name, identifier)).await
        }
    }
}

async fn count(tx: &mut Tx<'_>, q: &str, org: Uuid, id: i32) -> Result<i64> {
    Ok(sqlx::query_scalar(q)
        .bind(org.to_string())
        .bind(id)
        .fetch_one(&mut **tx)
        .await?)
}

pub(super) async fn save_app(pool: &SqlitePool, id: i32, name: &str, s: &Stamp) -> Result<Option<ForeignApp>> {
    let mut tx = pool.begin().await?;
    if id == 0 {
        if app_by_name(&mut *tx, s.org_id, name).await?.is_some() {
            return Err(Error::Conflict(format!("an application named {name:?} already exists")));
        }
        let app = insert_app(&mut tx, name, s).await?;
        tx.commit().await?;
        return Ok(Some(app));
    }
    let Some(old) = app_by_id(&mut *tx, s.org_id, id).await? else {
        return Ok(None);
    };
    if old.name != name && app_by_name(&mut *tx, s.org_id, name).await?.is_some() {
        return Err(Error::Conflict(format!("an application named {name:?} already exists")));
    }
    let a = &s.author;
    let row = sqlx::query(
        "UPDATE foreign_apps SET name = ?3, updated_at = ?4, updated_by = ?5, updated_by_user = ?6, \
         updated_by_person = ?7 WHERE org_id = ?1 AND id = ?2 RETURNING *",
    )
    .bind(s.org_id.to_string())
    .bind(id)
    .bind(name)
    .bind(to_micros(s.at))
    .bind(&a.name)
    .bind(a.user_id.map(|u| u.to_string()))
    .bind(a.person_id)
    .fetch_one(&mut *tx)
    .await?;
    let app = app_from(&row)?;
    append(
        &mut tx,
        &foreign::app_event(
            s,
            &app,
            kind::APP_UPDATED,
            serde_json::json!({"previousName": old.name}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(app))
}

pub(super) async fn delete_app(pool: &SqlitePool, id: i32, s: &Stamp) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let Some(app) = app_by_id(&mut *tx, s.org_id, id).await? else {
        return Ok(false);
    };
    let devices = count(
        &mut tx,
        "SELECT COUNT(*) FROM foreign_devices WHERE org_id = ?1 AND app_id = ?2",
        s.org_id,
        id,
    )
    .await?;
    let keys = count(
        &mut tx,
        "SELECT COUNT(*) FROM foreign_keys k JOIN foreign_devices d ON d.id = k.device_id WHERE k.org_id = ?1 AND d.app_id = ?2",
        s.org_id,
        id,
    )
    .await?;
    sqlx::query("DELETE FROM foreign_apps WHERE org_id = ?1 AND id = ?2")
        .bind(s.org_id.to_string())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    append(
        &mut tx,
        &foreign::app_event(
            s,
            &app,
            kind::APP_DELETED,
            serde_json::json!({"devices": devices, "keys": keys}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn list_devices(pool: &SqlitePool, org: Uuid, app_id: i32) -> Result<Vec<ForeignDevice>> {
    sqlx::query(sql::DEVICES_OF_APP)
        .bind(org.to_string())
        .bind(app_id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(device_from)
        .collect()
}

pub(super) async fn save_device(
    pool: &SqlitePool,
    app_name: &str,
    target: &DeviceTarget,
    rename: Option<(&str, &str)>,
    touch: bool,
    s: &Stamp,
) -> Result<Option<ForeignDevice>> {
    let mut tx = pool.begin().await?;
    let (app, device, created) = match target {
        DeviceTarget::Id(_) => {
            let Some(app) = app_by_name(&mut *tx, s.org_id, app_name).await? else {
                return Ok(None);
            };
            let Some(d) = target_device(&mut tx, &app, target).await? else {
                return Ok(None);
            };
            (app, d, false)
        }
        DeviceTarget::Path { name, identifier } => {
            let app = ensure_app(&mut tx, app_name, s).await?;
            let (d, created) = ensure_device(&mut tx, &app, name, identifier, s).await?;
            (app, d, created)
        }
    };
    if !touch || (created && rename.is_none_or(|(n, i)| n == device.name && i == device.identifier)) {
        tx.commit().await?;
        return Ok(Some(device));
    }
    let (name, ident) = rename.unwrap_or((&device.name, &device.identifier));
    if (name, ident) != (device.name.as_str(), device.identifier.as_str())
        && device_at(&mut *tx, s.org_id, &path_in(&app, name, ident))
            .await?
            .is_some()
    {
        return Err(Error::Conflict(format!(
            "the application already has a device named {name:?} with the identifier {ident:?}"
        )));
    }
    let row = sqlx::query(
        "UPDATE foreign_devices SET name = ?3, identifier = ?4, updated_at = ?5, updated_by = ?6 \
         WHERE org_id = ?1 AND id = ?2 RETURNING *",
    )
    .bind(s.org_id.to_string())
    .bind(device.id)
    .bind(name)
    .bind(ident)
    .bind(to_micros(s.at))
    .bind(&s.author.name)
    .fetch_one(&mut *tx)
    .await?;
    let d = device_from(&row)?;
    append(
        &mut tx,
        &foreign::device_event(
            s,
            &app,
            &d,
            kind::DEVICE_UPDATED,
            serde_json::json!({"previousName": device.name, "previousIdentifier": device.identifier}),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(d))
}

pub(super) async fn delete_device(pool: &SqlitePool, app_name: &str, target: &DeviceTarget, s: &Stamp) -> Result<bool> {
    let mut tx = pool.begin().await?;
    let Some(app) = app_by_name(&mut *tx, s.org_id, app_name).await? else {
        return Ok(false);
    };
    let Some(d) = target_device(&mut tx, &app, target).await? else {
        return Ok(false);
    };
    let keys = count(
        &mut tx,
        "SELECT COUNT(*) FROM foreign_keys WHERE org_id = ?1 AND device_id = ?2",
        s.org_id,
        d.id,
    )
    .await?;
    sqlx::query("DELETE FROM foreign_devices WHERE org_id = ?1 AND id = ?2")
        .bind(s.org_id.to_string())
        .bind(d.id)
        .execute(&mut *tx)
        .await?;
    append(
        &mut tx,
        &foreign::device_event(s, &app, &d, kind::DEVICE_DELETED, serde_json::json!({"keys": keys})),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn list_app_keys(pool: &SqlitePool, org: Uuid, app_id: i32, limit: u32) -> Result<Vec<ForeignKey>> {
    sqlx::query(sql::KEYS_OF_APP)
        .bind(org.to_string())
        .bind(app_id)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
        .iter()
        .map(key_from)
        .collect()
}

pub(super) async fn key_by_value(
    pool: &SqlitePool,
    org: Uuid,
    device_id: i32,
    key_name: &str,
    value: &str,
    table_name: Option<&str>,
) -> Result<Option<ForeignKey>> {
    let q = sqlx::query(if table_name.is_some() {
        sql::KEY_BY_VALUE_IN_TABLE
    } else {
        sql::KEY_BY_VALUE
    })
    .bind(org.to_string())
    .bind(device_id)
    .bind(key_name)
    .bind(value_digest(value))
    .bind(value);
    match table_name {
        Some(t) => q.bind(t),
        None => q,
    }
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(key_from)
    .transpose()
}

pub(super) async fn keys_on_entity(
    pool: &SqlitePool,
    org: Uuid,
    table: &str,
    record: i32,
    limit: u32,
) -> Result<Vec<(String, String, ForeignKey)>> {
    sqlx::query(sql::KEYS_ON_ENTITY)
        .bind(org.to_string())
        .bind(table)
        .bind(record)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("app_name")?, r.try_get("device_name")?, key_from(r)?)))
        .collect()
}

pub(super) async fn save_key(
    pool: &SqlitePool,
    p: &DevicePath,
    k: &KeyWrite,
    mode: KeyMode,
    s: &Stamp,
) -> Result<ForeignKey> {
    let mut tx = pool.begin().await?;
    let app = ensure_app(&mut tx, &p.app, s).await?;
    let (device, _) = ensure_device(&mut tx, &app, &p.device, &p.identifier, s).await?;
    let address = KeyFilter {
        key_name: Some(k.key_name.clone()),
        table_name: Some(k.table_name.clone()),
        record_id: Some(k.record_id),
    };
    let existing = keys_of_device(&mut *tx, s.org_id, device.id, &address, 1).await?.pop();
    let (row, event_type) = match (existing, mode) {
        (Some(_), KeyMode::Add) => {
            return Err(Error::Conflict(
                "the device already has a key with this name, table name and record id".into(),
            ));
        }
        (Some(old), KeyMode::Save) => (
            sqlx::query(
                "UPDATE foreign_keys SET value = ?3, value_digest = ?4, updated_at = ?5, updated_by = ?6 \
                 WHERE org_id = ?1 AND id = ?2 RETURNING *",
            )
            .bind(s.org_id.to_string())
            .bind(old.id)
            .bind(&k.value)
            .bind(value_digest(&k.value))
            .bind(to_micros(s.at))
            .bind(&s.author.name)
            .fetch_one(&mut *tx)
            .await?,
            kind::KEY_UPDATED,
        ),
        (None, _) => (
            sqlx::query(
                "INSERT INTO foreign_keys (uuid, org_id, device_id, key_name, value, value_digest, table_name, \
                 record_id, created_at, created_by, updated_at, updated_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?9, ?10) RETURNING *",
            )
            .bind(Uuid::now_v7().to_string())
            .bind(s.org_id.to_string())
            .bind(device.id)
            .bind(&k.key_name)
            .bind(&k.value)
            .bind(value_digest(&k.value))
            .bind(&k.table_name)
            .bind(k.record_id)
            .bind(to_micros(s.at))
            .bind(&s.author.name)
            .fetch_one(&mut *tx)
            .await?,
            kind::KEY_CREATED,
        ),
    };
    let key = key_from(&row)?;
    append(&mut tx, &foreign::key_event(s, &app, &device, &key, event_type)).await?;
    tx.commit().await?;
    Ok(key)
}

pub(super) async fn delete_keys(pool: &SqlitePool, p: &DevicePath, f: &KeyFilter, s: &Stamp) -> Result<u64> {
    let mut tx = pool.begin().await?;
    let Some(app) = app_by_name(&mut *tx, s.org_id, &p.app).await? else {
        return Ok(0);
    };
    let Some(device) = device_at(&mut *tx, s.org_id, p).await? else {
        return Ok(0);
    };
    let keys = keys_of_device(&mut *tx, s.org_id, device.id, f, i64::MAX).await?;
    for k in &keys {
        sqlx::query("DELETE FROM foreign_keys WHERE org_id = ?1 AND id = ?2")
            .bind(s.org_id.to_string())
            .bind(k.id)
            .execute(&mut *tx)
            .await?;
        append(&mut tx, &foreign::key_event(s, &app, &device, k, kind::KEY_DELETED)).await?;
    }
    tx.commit().await?;
    Ok(keys.len() as u64)
}

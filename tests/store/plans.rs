//! Query plans of the ForeignSystem lookups: each uses the index it is meant to, by name. The SQL
//! explained is the store's own (`foreign_sqlite::sql`, `foreign_postgres::sql`), on a database
//! migrated by the store, holding rows written through it. The rules are `explain.rs`'s.
//!
//! - SQLite: `EXPLAIN QUERY PLAN`. Checked twice: with a few rows and no statistics (what a
//!   keygate database has: nothing runs `ANALYZE`), parameters unbound; then with thousands of
//!   keys after `ANALYZE`, parameters bound as the store binds them (the bundled SQLite is built
//!   with STAT4, which plans with the bound values).
//! - PostgreSQL: with `enable_seqscan = off`, the custom and the generic plan. The expected
//!   indexes are asserted on data where the choice matters (many devices mapping the same
//!   records, analyzed): on a few unanalyzed rows every candidate is estimated at one row and the
//!   planner's pick among usable indexes is a tie-break, so there only the absence of scans is.
//!
//! A device's key list (`sql::keys_of_device`) holds only the filters that are set; each of its
//! eight combinations is explained.

use super::bulk::{KeyRow, insert_keys};
use super::explain::{P, ROWID, Uses, pg_check, sqlite_check, text};
use super::{pg, seed_org, t0};
use keygate::core::foreign::{Author, DevicePath, DeviceTarget, KeyFilter, KeyMode, KeyWrite, Stamp, value_digest};
use keygate::store::foreign_postgres::sql as pgsql;
use keygate::store::foreign_sqlite::sql as lite;
use keygate::store::{self, SharedStore};
use sqlx::Connection;
use uuid::Uuid;

/// How a lookup's parameters are made from a [`Target`].
#[derive(Clone)]
enum Params {
    KeyByValue {
        in_table: bool,
    },
    DeviceAt,
    KeysOnEntity,
    AppByName,
    AppById,
    DeviceById,
    /// `keys_of_device` with these filters set: key name, table name, record id.
    DeviceKeys(bool, bool, bool),
}

/// A lookup, and for each table (by the name or alias the plan shows) the indexes any of which
/// it may use.
struct Lookup {
    name: String,
    sqlite: String,
    postgres: String,
    params: Params,
    uses: &'static Uses,
}

/// The `(device_id, key_name)` prefix: `foreign_keys_name (device_id, key_name, table_name,
/// record_id)` or `foreign_keys_value (device_id, key_name, value_digest)`.
const DEVICE_PREFIX: &Uses = &[("foreign_keys", &["foreign_keys_name", "foreign_keys_value"])];

fn lookup(name: &str, sqlite: &str, postgres: &str, params: Params, uses: &'static Uses) -> Lookup {
    Lookup {
        name: name.into(),
        sqlite: sqlite.into(),
        postgres: postgres.into(),
        params,
        uses,
    }
}

fn filter(t: &Target, (k, tb, r): (bool, bool, bool)) -> KeyFilter {
    KeyFilter {
        key_name: k.then(|| t.key.to_string()),
        table_name: tb.then(|| t.table.to_string()),
        record_id: r.then_some(t.record),
    }
}

fn lookups() -> Vec<Lookup> {
    let mut v = vec![
        lookup(
            "KEY_BY_VALUE",
            lite::KEY_BY_VALUE,
            pgsql::KEY_BY_VALUE,
            Params::KeyByValue { in_table: false },
            &[("foreign_keys", &["foreign_keys_value"])],
        ),
        lookup(
            "KEY_BY_VALUE_IN_TABLE",
            lite::KEY_BY_VALUE_IN_TABLE,
            pgsql::KEY_BY_VALUE_IN_TABLE,
            Params::KeyByValue { in_table: true },
            &[("foreign_keys", &["foreign_keys_value"])],
        ),
        lookup(
            "DEVICE_AT",
            lite::DEVICE_AT,
            pgsql::DEVICE_AT,
            Params::DeviceAt,
            &[("a", &["foreign_apps_name"]), ("d", &["foreign_devices_path"])],
        ),
        lookup(
            "KEYS_ON_ENTITY",
            lite::KEYS_ON_ENTITY,
            pgsql::KEYS_ON_ENTITY,
            Params::KeysOnEntity,
            &[
                ("k", &["foreign_keys_entity"]),
                ("d", &[ROWID, "foreign_devices_pkey"]),
                ("a", &[ROWID, "foreign_apps_pkey"]),
            ],
        ),
        lookup(
            "APP_BY_NAME",
            lite::APP_BY_NAME,
            pgsql::APP_BY_NAME,
            Params::AppByName,
            &[("foreign_apps", &["foreign_apps_name"])],
        ),
        // By id: the primary key. (The lists of an application's devices and keys are left out: on
        // the data below the application holds nearly every row, and a scan is the right plan.)
        lookup(
            "APP_BY_ID",
            lite::APP_BY_ID,
            pgsql::APP_BY_ID,
            Params::AppById,
            &[("foreign_apps", &[ROWID, "foreign_apps_pkey"])],
        ),
        lookup(
            "DEVICE_BY_ID",
            lite::DEVICE_BY_ID,
            pgsql::DEVICE_BY_ID,
            Params::DeviceById,
            &[("foreign_devices", &[ROWID, "foreign_devices_pkey"])],
        ),
    ];
    // A device's keys, for every combination of the optional filters.
    for k in [false, true] {
        for tb in [false, true] {
            for r in [false, true] {
                let f = KeyFilter {
                    key_name: k.then(String::new),
                    table_name: tb.then(String::new),
                    record_id: r.then_some(0),
                };
                let uses: &'static Uses = match (k, tb, r) {
                    // A key name and a table: the unique index's prefix (all of it with a record).
                    (true, true, _) => &[("foreign_keys", &["foreign_keys_name"])],
                    // A key name: the `(device_id, key_name)` prefix; else the `device_id` prefix
                    // (never `foreign_keys_entity`, which holds every device's keys of a table).
                    _ => DEVICE_PREFIX,
                };
                let name = format!(
                    "keys_of_device(key name {}, table {}, record {})",
                    if k { "set" } else { "any" },
                    if tb { "set" } else { "any" },
                    if r { "set" } else { "any" }
                );
                v.push(Lookup {
                    name,
                    sqlite: lite::keys_of_device(&f, 1001),
                    postgres: pgsql::keys_of_device(&f, 1001),
                    params: Params::DeviceKeys(k, tb, r),
                    uses,
                });
            }
        }
    }
    v
}

/// The parameters the store binds for a lookup, in its order.
fn params(p: &Params, t: &Target) -> Vec<P> {
    let (org, dev) = (P::Uuid(t.org), P::I32(t.device));
    match p {
        Params::KeyByValue { in_table } => {
            let mut v = vec![org, dev, text(t.key), P::Bytes(value_digest(&t.value)), text(&t.value)];
            if *in_table {
                v.push(text(t.table));
            }
            v
        }
        Params::DeviceAt => vec![org, text(t.app), text(t.device_name), text(&t.identifier)],
        Params::KeysOnEntity => vec![org, text(t.table), P::I32(t.record), P::I64(1001)],
        Params::AppByName => vec![org, text(t.app)],
        Params::AppById => vec![org, P::I32(t.app_id)],
        Params::DeviceById => vec![org, dev],
        Params::DeviceKeys(k, tb, r) => {
            let f = filter(t, (*k, *tb, *r));
            let mut v = vec![org, dev];
            if let Some(k) = f.key_name {
                v.push(P::Text(k));
            }
            if let Some(tb) = f.table_name {
                v.push(P::Text(tb));
            }
            if let Some(r) = f.record_id {
                v.push(P::I32(r));
            }
            v
        }
    }
}

fn stamp(org: Uuid) -> Stamp {
    Stamp {
        org_id: org,
        author: Author {
            name: "admin".into(),
            user_id: None,
            person_id: None,
        },
        actor: "api_key:plans".into(),
        at: t0(),
    }
}

fn dpath(app: &str, device: &str, identifier: &str) -> DevicePath {
    DevicePath {
        app: app.into(),
        device: device.into(),
        identifier: identifier.into(),
    }
}

/// A few applications, devices and keys in two organizations, written through the store.
/// Returns the first organization.
async fn seed_few(s: &SharedStore) -> Uuid {
    let mut first = None;
    for org_name in ["acme", "beta"] {
        let o = seed_org(s, org_name).await;
        let st = stamp(o.id);
        for app in ["ERP", "CRM"] {
            for (dev, ident) in [("dev", ""), ("dev", "SN-1"), ("phone", "")] {
                for i in 0..4 {
                    let k = KeyWrite {
                        key_name: if i % 2 == 0 { "id".into() } else { "other".into() },
                        value: format!("value {app} {dev} {ident} {i}"),
                        table_name: if i < 2 { "contact".into() } else { "person".into() },
                        record_id: i,
                    };
                    s.save_foreign_key(&dpath(app, dev, ident), &k, KeyMode::Add, &st)
                        .await
                        .unwrap();
                }
            }
        }
        first.get_or_insert(o.id);
    }
    first.unwrap()
}

const SYNC_DEVICES: i32 = 100;
const SYNC_RECORDS: i32 = 50;

/// What the lookups look for in the data of [`seed_many`] (or of [`seed_few`]).
struct Target {
    org: Uuid,
    app_id: i32,
    device: i32,
    app: &'static str,
    device_name: &'static str,
    identifier: String,
    key: &'static str,
    value: String,
    table: &'static str,
    record: i32,
}

/// Thousands of keys on data where the index matters: an application with 100 devices (a
/// phone per user, say) that each map the same 50 contacts (so a record has 100 keys, a device
/// 60), written through the store (devices) and in bulk (keys), then analyzed.
async fn seed_many(s: &SharedStore, url: &str, org: Uuid) -> Target {
    let st = stamp(org);
    let mut rows = vec![];
    let mut target = None;
    for i in 0..SYNC_DEVICES {
        let d = s
            .save_foreign_device(
                "Sync",
                &DeviceTarget::Path {
                    name: "phone".into(),
                    identifier: format!("P-{i}"),
                },
                None,
                false,
                &st,
            )
            .await
            .unwrap()
            .unwrap();
        for r in 1..=SYNC_RECORDS {
            rows.push(KeyRow {
                device_id: d.id,
                key_name: "id".into(),
                value: format!("sync {i} {r}"),
                table_name: "contact".into(),
                record_id: r,
            });
        }
        for r in 1..=10 {
            rows.push(KeyRow {
                device_id: d.id,
                key_name: "guid".into(),
                value: format!("{}", Uuid::new_v4()),
                table_name: "person".into(),
                record_id: r,
            });
        }
        if i == SYNC_DEVICES / 2 {
            target = Some(Target {
                org,
                app_id: d.app_id,
                device: d.id,
                app: "Sync",
                device_name: "phone",
                identifier: format!("P-{i}"),
                key: "id",
                value: format!("sync {i} 7"),
                table: "contact",
                record: 7,
            });
        }
    }
    insert_keys(url, org, rows, true).await;
    target.unwrap()
}

/// Explain every lookup on SQLite: unbound (`target` None), or with the values the store would
/// bind.
async fn sqlite_all(c: &mut sqlx::SqliteConnection, phase: &str, target: Option<&Target>, failures: &mut Vec<String>) {
    for l in lookups() {
        let p = target.map(|t| params(&l.params, t)).unwrap_or_default();
        sqlite_check(c, &l.name, phase, &l.sqlite, &p, l.uses, false, failures).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_lookups_use_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/plans.db", dir.path().display());
    let s = store::open(&url).await.unwrap();
    s.migrate().await.unwrap();
    let org = seed_few(&s).await;
    let mut failures = vec![];
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlite_all(&mut c, "a few rows, no statistics", None, &mut failures).await;
    c.close().await.ok();
    let many = seed_many(&s, &url, org).await;
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlite_all(&mut c, "6,000 keys, analyzed", Some(&many), &mut failures).await;
    c.close().await.ok();
    assert!(failures.is_empty(), "{failures:#?}");
}

async fn pg_all(c: &mut sqlx::PgConnection, t: &Target, phase: &str, named: bool, failures: &mut Vec<String>) {
    for l in lookups() {
        let p = params(&l.params, t);
        pg_check(c, &l.name, phase, &l.postgres, &p, l.uses, named, false, failures).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lookups_use_their_indexes() {
    let Some(admin) = pg::admin_url("postgres_lookups_use_their_indexes") else {
        return;
    };
    let url = pg::fresh_database(&admin).await;
    let s = store::open(&url).await.unwrap();
    s.migrate().await.unwrap();
    let org = seed_few(&s).await;
    let dev = s
        .get_foreign_device_at(org, &dpath("ERP", "dev", ""))
        .await
        .unwrap()
        .unwrap();
    let few = Target {
        org,
        app_id: dev.app_id,
        device: dev.id,
        app: "ERP",
        device_name: "dev",
        identifier: String::new(),
        key: "id",
        value: "value ERP dev  0".into(),
        table: "contact",
        record: 0,
    };
    let mut failures = vec![];
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("SET enable_seqscan = off").execute(&mut c).await.unwrap();
    pg_all(&mut c, &few, "a few rows, unanalyzed", false, &mut failures).await;
    let many = seed_many(&s, &url, org).await;
    pg_all(&mut c, &many, "6,000 keys, analyzed", true, &mut failures).await;
    c.close().await.ok();
    assert!(failures.is_empty(), "{failures:#?}");
}

//! Query plans of the ForeignSystem lookups: each uses the index it is meant to, by name. The SQL
//! explained is the store's own (`foreign_sqlite::sql`, `foreign_postgres::sql`), on a database
//! migrated by the store, holding rows written through it.
//!
//! - SQLite: `EXPLAIN QUERY PLAN`. Every table the query reads must be a `SEARCH` with one of its
//!   expected indexes (or the rowid), never a `SCAN`. Checked twice: with a few rows and no
//!   statistics (what a keygate database has: nothing runs `ANALYZE`), parameters unbound; then
//!   with thousands of keys after `ANALYZE`, parameters bound as the store binds them (the
//!   bundled SQLite is built with STAT4, which plans with the bound values).
//! - PostgreSQL: with `enable_seqscan = off`, `EXPLAIN (FORMAT JSON)` with bound parameters (the
//!   custom plan) and, through `PREPARE` under `plan_cache_mode = force_generic_plan`, the
//!   generic plan a reused prepared statement may switch to. No node may be a `Seq Scan` and no
//!   index of `foreign_keys` may be read whole (an index scan without an index condition). The
//!   expected indexes are asserted on data where the choice matters (many devices mapping the
//!   same records, analyzed): on a few unanalyzed rows every candidate is estimated at one row
//!   and the planner's pick among usable indexes is a tie-break, so there only the first two
//!   rules are asserted.

use super::bulk::{KeyRow, insert_keys};
use super::{pg, seed_org, t0};
use keygate::core::foreign::{Author, DevicePath, DeviceTarget, KeyMode, KeyWrite, Stamp, value_digest};
use keygate::store::foreign_postgres::sql as pgsql;
use keygate::store::foreign_sqlite::sql as lite;
use keygate::store::{self, SharedStore};
use serde_json::Value;
use sqlx::{Connection, Row};
use uuid::Uuid;

/// The rowid of a table joined by its primary key (SQLite).
const ROWID: &str = "INTEGER PRIMARY KEY";

/// A lookup, and for each table (by the name or alias the plan shows) the indexes any of which
/// it may use.
struct Lookup {
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
    /// (table or alias, acceptable indexes); on PostgreSQL a primary key is `<table>_pkey`.
    uses: &'static [(&'static str, &'static [&'static str])],
}

const LOOKUPS: &[Lookup] = &[
    Lookup {
        name: "KEY_BY_VALUE",
        sqlite: lite::KEY_BY_VALUE,
        postgres: pgsql::KEY_BY_VALUE,
        uses: &[("foreign_keys", &["foreign_keys_value"])],
    },
    Lookup {
        name: "DEVICE_AT",
        sqlite: lite::DEVICE_AT,
        postgres: pgsql::DEVICE_AT,
        uses: &[("a", &["foreign_apps_name"]), ("d", &["foreign_devices_path"])],
    },
    Lookup {
        name: "KEYS_ON_ENTITY",
        sqlite: lite::KEYS_ON_ENTITY,
        postgres: pgsql::KEYS_ON_ENTITY,
        uses: &[
            ("k", &["foreign_keys_entity"]),
            ("d", &[ROWID, "foreign_devices_pkey"]),
            ("a", &[ROWID, "foreign_apps_pkey"]),
        ],
    },
    Lookup {
        name: "KEY_AT",
        sqlite: lite::KEY_AT,
        postgres: pgsql::KEY_AT,
        uses: &[("foreign_keys", &["foreign_keys_name"])],
    },
    Lookup {
        name: "APP_BY_NAME",
        sqlite: lite::APP_BY_NAME,
        postgres: pgsql::APP_BY_NAME,
        uses: &[("foreign_apps", &["foreign_apps_name"])],
    },
    Lookup {
        name: "KEYS_NAMED",
        sqlite: lite::KEYS_NAMED,
        postgres: pgsql::KEYS_NAMED,
        uses: &[("foreign_keys", &["foreign_keys_name", "foreign_keys_value"])],
    },
    Lookup {
        name: "KEYS_OF_DEVICE",
        sqlite: lite::KEYS_OF_DEVICE,
        postgres: pgsql::KEYS_OF_DEVICE,
        uses: &[("foreign_keys", &["foreign_keys_name", "foreign_keys_value"])],
    },
    // By id: the primary key. (The lists of an application's devices and keys are left out: on
    // the data below the application holds nearly every row, and a scan is the right plan.)
    Lookup {
        name: "APP_BY_ID",
        sqlite: lite::APP_BY_ID,
        postgres: pgsql::APP_BY_ID,
        uses: &[("foreign_apps", &[ROWID, "foreign_apps_pkey"])],
    },
    Lookup {
        name: "DEVICE_BY_ID",
        sqlite: lite::DEVICE_BY_ID,
        postgres: pgsql::DEVICE_BY_ID,
        uses: &[("foreign_devices", &[ROWID, "foreign_devices_pkey"])],
    },
];

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

/// One table access of an SQLite plan: the table (or alias), and the index named after USING.
#[derive(Debug)]
struct Access {
    scan: bool,
    table: String,
    index: Option<String>,
}

/// Parse `SEARCH d USING INDEX foreign_devices_path (app_id=? AND ...)`,
/// `SEARCH foreign_apps USING COVERING INDEX foreign_apps_name (...)`,
/// `SEARCH a USING INTEGER PRIMARY KEY (rowid=?)`, `SCAN foreign_keys`, also in the older
/// `SEARCH TABLE foreign_devices AS d USING ...` form. Other lines (temporary b-trees) are None.
fn access(detail: &str) -> Option<Access> {
    let (scan, rest) = if let Some(r) = detail.strip_prefix("SCAN ") {
        (true, r)
    } else if let Some(r) = detail.strip_prefix("SEARCH ") {
        (false, r)
    } else {
        return None;
    };
    let rest = rest.strip_prefix("TABLE ").unwrap_or(rest);
    let mut words = rest.split_whitespace();
    let mut table = words.next()?.to_string();
    let tail: Vec<&str> = words.collect();
    let mut tail = tail.as_slice();
    if tail.first() == Some(&"AS") && tail.len() > 1 {
        table = tail[1].to_string();
        tail = &tail[2..];
    }
    let using = tail.join(" ");
    let index = using.strip_prefix("USING ").map(|u| {
        let u = u.strip_prefix("COVERING ").unwrap_or(u);
        if let Some(i) = u.strip_prefix("INDEX ") {
            i.split_whitespace().next().unwrap_or("").to_string()
        } else if u.starts_with(ROWID) || u.starts_with("PRIMARY KEY") {
            ROWID.to_string()
        } else {
            u.to_string()
        }
    });
    Some(Access { scan, table, index })
}

fn sqlite_bind<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    params: &'q [P],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for p in params {
        q = match p {
            P::Uuid(u) => q.bind(u.to_string()),
            P::I32(v) => q.bind(*v),
            P::NullI32 => q.bind(None::<i32>),
            P::I64(v) => q.bind(*v),
            P::Text(t) => q.bind(t.as_deref()),
            P::Bytes(b) => q.bind(b.as_slice()),
        };
    }
    q
}

/// Explain every lookup: unbound (`target` None), or with the values the store would bind
/// (with statistics, SQLite's bundled build (STAT4) plans with the bound values).
async fn sqlite_check(
    c: &mut sqlx::SqliteConnection,
    phase: &str,
    target: Option<&Target>,
    failures: &mut Vec<String>,
) {
    for l in LOOKUPS {
        let sets = match target {
            Some(t) => pg_params(l.name, t),
            None => vec![vec![]],
        };
        for params in &sets {
            let sql = format!("EXPLAIN QUERY PLAN {}", l.sqlite);
            let rows = sqlite_bind(sqlx::query(&sql), params).fetch_all(&mut *c).await.unwrap();
            let details: Vec<String> = rows.iter().map(|r| r.get::<String, _>("detail")).collect();
            eprintln!("sqlite {} ({phase}): {details:?}", l.name);
            let accesses: Vec<Access> = details.iter().filter_map(|d| access(d)).collect();
            for a in &accesses {
                if a.scan {
                    failures.push(format!("{} ({phase}): a full scan: {details:?}", l.name));
                }
                if !l.uses.iter().any(|(t, _)| *t == a.table) {
                    failures.push(format!("{} ({phase}): reads an unexpected table: {a:?}", l.name));
                }
            }
            for (table, indexes) in l.uses {
                let ok = accesses
                    .iter()
                    .any(|a| a.table == *table && !a.scan && a.index.as_deref().is_some_and(|i| indexes.contains(&i)));
                if !ok {
                    failures.push(format!(
                        "{} ({phase}): {table} uses none of {indexes:?}: {details:?}",
                        l.name
                    ));
                }
            }
        }
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
    sqlite_check(&mut c, "a few rows, no statistics", None, &mut failures).await;
    c.close().await.ok();
    let many = seed_many(&s, &url, org).await;
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlite_check(&mut c, "6,000 keys, analyzed", Some(&many), &mut failures).await;
    c.close().await.ok();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn sqlite_plan_lines_are_parsed() {
    let a = access("SEARCH d USING INDEX foreign_devices_path (app_id=? AND name=? AND identifier=?)").unwrap();
    assert_eq!(
        (a.scan, a.table.as_str(), a.index.as_deref()),
        (false, "d", Some("foreign_devices_path"))
    );
    let a = access("SEARCH foreign_apps USING COVERING INDEX foreign_apps_name (org_id=? AND name=?)").unwrap();
    assert_eq!(a.index.as_deref(), Some("foreign_apps_name"));
    let a = access("SEARCH a USING INTEGER PRIMARY KEY (rowid=?)").unwrap();
    assert_eq!(a.index.as_deref(), Some(ROWID));
    let a = access("SEARCH TABLE foreign_devices AS d USING INDEX foreign_devices_path (app_id=?)").unwrap();
    assert_eq!(
        (a.table.as_str(), a.index.as_deref()),
        ("d", Some("foreign_devices_path"))
    );
    let a = access("SCAN foreign_keys").unwrap();
    assert!(a.scan && a.index.is_none());
    assert!(access("SCAN k USING INDEX foreign_keys_name").unwrap().scan);
    assert!(access("USE TEMP B-TREE FOR ORDER BY").is_none());
}

/// A parameter of a PostgreSQL lookup: its type (for PREPARE) and its value.
#[derive(Clone)]
enum P {
    Uuid(Uuid),
    I32(i32),
    /// An absent int4 (KEYS_OF_DEVICE's record filter).
    NullI32,
    I64(i64),
    Text(Option<String>),
    Bytes(Vec<u8>),
}

impl P {
    fn pg_type(&self) -> &'static str {
        match self {
            P::Uuid(_) => "uuid",
            P::I32(_) | P::NullI32 => "int4",
            P::I64(_) => "int8",
            P::Text(_) => "text",
            P::Bytes(_) => "bytea",
        }
    }
}

fn text(s: &str) -> P {
    P::Text(Some(s.into()))
}

/// The parameters the store binds for each lookup: one set per way the store calls it.
fn pg_params(name: &str, t: &Target) -> Vec<Vec<P>> {
    let (org, dev) = (P::Uuid(t.org), P::I32(t.device));
    match name {
        "KEY_BY_VALUE" => [P::Text(None), text(t.table)]
            .into_iter()
            .map(|table| {
                vec![
                    org.clone(),
                    dev.clone(),
                    text(t.key),
                    P::Bytes(value_digest(&t.value)),
                    text(&t.value),
                    table,
                ]
            })
            .collect(),
        "DEVICE_AT" => vec![vec![org, text(t.app), text(t.device_name), text(&t.identifier)]],
        "KEYS_ON_ENTITY" => vec![vec![org, text(t.table), P::I32(t.record), P::I64(1001)]],
        "KEY_AT" => vec![vec![org, dev, text(t.key), text(t.table), P::I32(t.record), P::I64(1)]],
        "KEYS_NAMED" => [(None, None), (Some(t.table), None), (None, Some(t.record))]
            .into_iter()
            .map(|(tb, r)| {
                vec![
                    org.clone(),
                    dev.clone(),
                    text(t.key),
                    P::Text(tb.map(Into::into)),
                    r.map(P::I32).unwrap_or(P::NullI32),
                    P::I64(1001),
                ]
            })
            .collect(),
        "APP_BY_NAME" => vec![vec![org, text(t.app)]],
        "APP_BY_ID" => vec![vec![org, P::I32(t.app_id)]],
        "DEVICE_BY_ID" => vec![vec![org, dev]],
        "KEYS_OF_DEVICE" => [
            (None, None, None),
            (Some(t.key), None, None),
            (Some(t.key), Some(t.table), None),
            (Some(t.key), Some(t.table), Some(t.record)),
            (None, None, Some(t.record)),
        ]
        .into_iter()
        .map(|(k, tb, r)| {
            vec![
                org.clone(),
                dev.clone(),
                P::Text(k.map(Into::into)),
                P::Text(tb.map(Into::into)),
                r.map(P::I32).unwrap_or(P::NullI32),
                P::I64(1001),
            ]
        })
        .collect(),
        other => panic!("no parameters for {other}"),
    }
}

fn bind<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    params: &'q [P],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for p in params {
        q = match p {
            P::Uuid(u) => q.bind(*u),
            P::I32(v) => q.bind(*v),
            P::NullI32 => q.bind(None::<i32>),
            P::I64(v) => q.bind(*v),
            P::Text(t) => q.bind(t.as_deref()),
            P::Bytes(b) => q.bind(b.as_slice()),
        };
    }
    q
}

/// A literal for `EXECUTE name(...)`.
fn literal(p: &P) -> String {
    match p {
        P::Uuid(u) => format!("'{u}'::uuid"),
        P::I32(v) => format!("{v}::int4"),
        P::NullI32 => "NULL::int4".into(),
        P::I64(v) => format!("{v}::int8"),
        P::Text(None) => "NULL::text".into(),
        P::Text(Some(t)) => format!("'{}'::text", t.replace('\'', "''")),
        P::Bytes(b) => format!(
            "'\\x{}'::bytea",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

/// What a PostgreSQL plan reads: the indexes it scans, and the problems (a sequential scan;
/// an index of `foreign_keys` read whole).
fn pg_plan_uses(plan: &Value, indexes: &mut Vec<String>, problems: &mut Vec<String>) {
    let node = plan["Node Type"].as_str().unwrap_or("");
    if node == "Seq Scan" {
        problems.push(format!("Seq Scan on {}", plan["Relation Name"]));
    }
    if let Some(idx) = plan["Index Name"].as_str() {
        if idx.starts_with("foreign_keys") && plan.get("Index Cond").is_none() {
            problems.push(format!("{node} on {idx} without an index condition (the whole index)"));
        }
        indexes.push(idx.to_string());
    }
    for c in plan["Plans"].as_array().into_iter().flatten() {
        pg_plan_uses(c, indexes, problems);
    }
}

/// Check one plan; `named`: also that the expected indexes are used.
fn pg_check(l: &Lookup, how: &str, plan: &Value, named: bool, failures: &mut Vec<String>) {
    let mut indexes = vec![];
    let mut problems = vec![];
    pg_plan_uses(&plan[0]["Plan"], &mut indexes, &mut problems);
    eprintln!(
        "postgres {} ({how}): indexes {indexes:?}, problems {problems:?}",
        l.name
    );
    for p in problems {
        failures.push(format!("{} ({how}): {p}: {plan}", l.name));
    }
    if !named {
        return;
    }
    for (table, acceptable) in l.uses {
        if !indexes.iter().any(|i| acceptable.contains(&i.as_str())) {
            failures.push(format!(
                "{} ({how}): {table} uses none of {acceptable:?} (used {indexes:?}): {plan}",
                l.name
            ));
        }
    }
}

async fn pg_explain_all(c: &mut sqlx::PgConnection, t: &Target, phase: &str, named: bool, failures: &mut Vec<String>) {
    for l in LOOKUPS {
        for (n, params) in pg_params(l.name, t).iter().enumerate() {
            // The custom plan: the statement with these values bound.
            let sql = format!("EXPLAIN (FORMAT JSON) {}", l.postgres);
            let row = bind(sqlx::query(&sql), params)
                .fetch_one(&mut *c)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", l.name));
            let plan: Value = row.get(0);
            pg_check(l, &format!("{phase}, custom plan #{n}"), &plan, named, failures);

            // The generic plan a prepared statement may switch to once reused.
            let types: Vec<&str> = params.iter().map(P::pg_type).collect();
            sqlx::raw_sql(&format!(
                "SET plan_cache_mode = force_generic_plan; PREPARE plan_probe({}) AS {}",
                types.join(", "),
                l.postgres
            ))
            .execute(&mut *c)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", l.name));
            let args: Vec<String> = params.iter().map(literal).collect();
            let row = sqlx::query(&format!(
                "EXPLAIN (FORMAT JSON) EXECUTE plan_probe({})",
                args.join(", ")
            ))
            .fetch_one(&mut *c)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", l.name));
            let plan: Value = row.get(0);
            pg_check(l, &format!("{phase}, generic plan #{n}"), &plan, named, failures);
            sqlx::raw_sql("DEALLOCATE plan_probe; RESET plan_cache_mode")
                .execute(&mut *c)
                .await
                .unwrap();
        }
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
    pg_explain_all(&mut c, &few, "a few rows, unanalyzed", false, &mut failures).await;
    let many = seed_many(&s, &url, org).await;
    pg_explain_all(&mut c, &many, "6,000 keys, analyzed", true, &mut failures).await;
    c.close().await.ok();
    assert!(failures.is_empty(), "{failures:#?}");
}

//! ForeignSystem GetKeyByValue against the number of keys in the organization (issue 14): what
//! the service does per call (`Store::get_foreign_device_at`, then
//! `Store::get_foreign_key_by_value`), for a value that is there and one that is not, with 100
//! and with 100,000 keys. Every key is on the one device under the one key name, so only the
//! value's digest tells them apart: the worst case for the `foreign_keys_value` index.
//!
//! SQLite always; PostgreSQL too when `KEYGATE_BENCH_POSTGRES_URL` names a server (an admin URL:
//! a throwaway database is created on it, and dropped at the end). Run with
//! `cargo bench --bench foreign`; figures are in BENCHMARKS.md.

#[path = "../tests/store/bulk.rs"]
mod bulk;
#[path = "../tests/support/pg.rs"]
mod pg;

use bulk::{KeyRow, insert_keys};
use chrono::Utc;
use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use keygate::core::event::NewEvent;
use keygate::core::foreign::{Author, DevicePath, DeviceTarget, Stamp};
use keygate::model::{ApiKey, Organization};
use keygate::store::{self, SharedStore};
use sqlx::Connection;
use std::time::Duration;
use tokio::runtime::Runtime;
use uuid::Uuid;

const SIZES: [usize; 2] = [100, 100_000];
const TABLE: &str = "contact";
const KEY: &str = "id";

/// One seeded database: its store, the organization, the device's path and a value on it.
struct Seeded {
    store: SharedStore,
    org: Uuid,
    path: DevicePath,
    hit: String,
    /// Kept for the end: the temporary SQLite directory, or the PostgreSQL database to drop.
    _dir: Option<tempfile::TempDir>,
    pg_db: Option<(String, String)>,
}

fn value(i: usize) -> String {
    format!("external-id-{i:08}")
}

/// A database with one organization holding `n` keys, on `url` (a fresh SQLite file or a fresh
/// PostgreSQL database). The organization, application and device go through the store; the
/// keys are inserted in bulk.
async fn seed(url: &str, n: usize) -> Seeded {
    let store = store::open(url).await.expect("open the store");
    store.migrate().await.expect("migrate");
    let now = Utc::now();
    let org = Organization {
        id: Uuid::now_v7(),
        name: format!("bench-{n}"),
        is_system: false,
        created_at: now,
    };
    let key = ApiKey {
        id: Uuid::now_v7(),
        org_id: org.id,
        name: "bench".into(),
        prefix: "kg_bench".into(),
        hash: Uuid::new_v4().as_bytes().to_vec(),
        created_at: now,
        revoked_at: None,
    };
    let created = NewEvent {
        org_id: org.id,
        aggregate_type: "organization",
        aggregate_id: org.id,
        event_type: "OrganizationCreated",
        data: serde_json::json!({"name": org.name}),
        actor: "bench".into(),
        at: now,
    };
    store.create_org(&org, &key, &[created]).await.expect("organization");
    let stamp = Stamp {
        org_id: org.id,
        author: Author {
            name: "bench".into(),
            user_id: None,
            person_id: None,
        },
        actor: format!("api_key:{}", key.id),
        at: now,
    };
    let path = DevicePath {
        app: "ERP".into(),
        device: "sync".into(),
        identifier: String::new(),
    };
    let device = store
        .save_foreign_device(
            &path.app,
            &DeviceTarget::Path {
                name: path.device.clone(),
                identifier: String::new(),
            },
            None,
            false,
            &stamp,
        )
        .await
        .expect("device")
        .expect("created");
    let rows = (0..n)
        .map(|i| KeyRow {
            device_id: device.id,
            key_name: KEY.into(),
            value: value(i),
            table_name: TABLE.into(),
            record_id: i as i32 + 1,
        })
        .collect();
    // PostgreSQL's autovacuum would analyze a table that grew this much; SQLite's tables are
    // never analyzed by keygate, so they are not here either.
    insert_keys(url, org.id, rows, store::is_postgres_url(url)).await;
    Seeded {
        store,
        org: org.id,
        path,
        hit: value(n / 2),
        _dir: None,
        pg_db: None,
    }
}

/// One GetKeyByValue as the service runs it.
async fn get_key_by_value(s: &Seeded, v: &str) -> Option<i64> {
    let device = s
        .store
        .get_foreign_device_at(s.org, &s.path)
        .await
        .expect("device lookup")?;
    s.store
        .get_foreign_key_by_value(s.org, device.id, KEY, v, Some(TABLE))
        .await
        .expect("key lookup")
        .map(|k| k.id)
}

fn databases(rt: &Runtime) -> Vec<(&'static str, usize, Seeded)> {
    let mut out = vec![];
    for n in SIZES {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        let mut s = rt.block_on(seed(&url, n));
        s._dir = Some(dir);
        out.push(("sqlite", n, s));
    }
    if let Ok(admin) = std::env::var("KEYGATE_BENCH_POSTGRES_URL")
        && !admin.trim().is_empty()
    {
        for n in SIZES {
            let url = rt.block_on(pg::fresh_database(admin.trim()));
            let db = url.rsplit('/').next().unwrap_or_default().to_string();
            let mut s = rt.block_on(seed(&url, n));
            s.pg_db = Some((admin.trim().to_string(), db));
            out.push(("postgres", n, s));
        }
    } else {
        eprintln!("notice: KEYGATE_BENCH_POSTGRES_URL is unset: SQLite only");
    }
    out
}

fn get_key_by_value_bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dbs = databases(&rt);
    let mut g = c.benchmark_group("GetKeyByValue");
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
    for (db, n, s) in &dbs {
        // The lookups find what they should before they are timed.
        assert!(rt.block_on(get_key_by_value(s, &s.hit)).is_some(), "{db} {n}: a hit");
        assert!(
            rt.block_on(get_key_by_value(s, "no-such-value")).is_none(),
            "{db} {n}: a miss"
        );
        g.bench_with_input(BenchmarkId::new(format!("{db}/hit"), n), s, |b, s| {
            b.iter(|| rt.block_on(get_key_by_value(s, black_box(&s.hit))))
        });
        g.bench_with_input(BenchmarkId::new(format!("{db}/miss"), n), s, |b, s| {
            b.iter(|| rt.block_on(get_key_by_value(s, black_box("no-such-value"))))
        });
    }
    g.finish();
    // Drop the throwaway PostgreSQL databases (their pools first).
    let drops: Vec<(String, String)> = dbs.into_iter().filter_map(|(_, _, s)| s.pg_db.clone()).collect();
    rt.block_on(async {
        for (admin, db) in drops {
            if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        }
    });
}

criterion_group!(foreign, get_key_by_value_bench);
criterion_main!(foreign);

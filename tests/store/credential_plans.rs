//! Query plans of the credential listing (`Store::list_credentials`): the personal-key list of
//! one user, a kind's keys and the whole organization's, each on its own index. The SQL explained
//! is the store's own (`list_credentials_sql`).
//!
//! - SQLite, without statistics (keygate never runs `ANALYZE`): the index named for each filter.
//! - PostgreSQL, with `enable_seqscan = off`: no `Seq Scan`. On a few unanalyzed rows the
//!   planner's pick among usable indexes is a tie-break, so the name is not asserted there.

use super::pg;
use keygate::core::credential::Kind;
use keygate::store::{self, CredentialFilter};
use sqlx::{Connection, Row};
use uuid::Uuid;

fn filters() -> Vec<(&'static str, CredentialFilter, &'static str)> {
    let f = |kind: Option<Kind>, owner: bool, after: bool| CredentialFilter {
        kind,
        owner_id: owner.then(Uuid::now_v7),
        after: after.then(Uuid::now_v7),
        limit: 500,
    };
    vec![
        // A user's personal keys (the Tedee list), and a user's keys of any kind.
        (
            "kind and owner",
            f(Some(Kind::Personal), true, false),
            "credentials_owner",
        ),
        (
            "kind and owner, next page",
            f(Some(Kind::Personal), true, true),
            "credentials_owner",
        ),
        ("owner", f(None, true, false), "credentials_owner"),
        // A kind's keys (the repair, DeleteTemporaryKeysOfDomain, share-key lists).
        ("kind", f(Some(Kind::Temporary), false, false), "credentials_org_kind"),
        (
            "kind, next page",
            f(Some(Kind::Temporary), false, true),
            "credentials_org_kind",
        ),
        // Everything (GET /v1/keys of an administrator).
        ("all", f(None, false, false), "credentials_org"),
        ("all, next page", f(None, false, true), "credentials_org"),
    ]
}

#[tokio::test]
async fn sqlite_credential_listings_use_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/plans.db", dir.path().display());
    let s = store::open(&url).await.unwrap();
    s.migrate().await.unwrap();
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mut failures = vec![];
    for (what, f, index) in filters() {
        let sql = format!(
            "EXPLAIN QUERY PLAN {}",
            keygate::store::sqlite::list_credentials_sql(&f)
        );
        let details: Vec<String> = sqlx::query(&sql)
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect();
        let on_index = details
            .iter()
            .any(|d| d.starts_with("SEARCH credentials USING") && d.contains(&format!("INDEX {index} ")));
        let scans = details.iter().any(|d| d.starts_with("SCAN credentials"));
        if !on_index || scans {
            failures.push(format!("{what}: expected {index}: {details:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn postgres_credential_listings_never_scan_the_table() {
    let Some(admin) = pg::admin_url("postgres_credential_listings_never_scan_the_table") else {
        return;
    };
    let url = pg::fresh_database(&admin).await;
    let s = store::open(&url).await.unwrap();
    s.migrate().await.unwrap();
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("SET enable_seqscan = off").execute(&mut c).await.unwrap();
    let mut failures = vec![];
    for (what, f, _) in filters() {
        let sql = format!("EXPLAIN {}", keygate::store::postgres::list_credentials_sql(&f));
        let mut q = sqlx::query(&sql).bind(Uuid::now_v7());
        if let Some(k) = f.kind {
            q = q.bind(k.as_str());
        }
        if let Some(o) = f.owner_id {
            q = q.bind(o);
        }
        if let Some(a) = f.after {
            q = q.bind(a);
        }
        let plan: Vec<String> = q
            .bind(i64::from(f.limit))
            .fetch_all(&mut c)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect();
        if plan.iter().any(|l| l.contains("Seq Scan")) {
            failures.push(format!("{what}: {plan:#?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

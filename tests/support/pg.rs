//! PostgreSQL for tests: the server named by `KEYGATE_TEST_POSTGRES_URL` (an admin URL, as
//! `bash scripts/pg.sh start` prints), and a fresh database per test so tests run in parallel.
//! Without the variable the PostgreSQL tests skip with a notice, except under `CI=true`,
//! where they fail: CI must not skip them silently.
#![allow(dead_code)]

use sqlx::Connection;

/// The admin URL, or `None` (with a notice) when the PostgreSQL tests should skip.
pub fn admin_url(test: &str) -> Option<String> {
    match std::env::var("KEYGATE_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u.trim().to_string()),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "CI is set but KEYGATE_TEST_POSTGRES_URL is not: the PostgreSQL tests must run in CI \
                 (bash scripts/test.sh starts a throwaway server with scripts/pg.sh)"
            );
            eprintln!(
                "notice: skipping PostgreSQL test {test}: KEYGATE_TEST_POSTGRES_URL is unset \
                 (bash scripts/pg.sh start prints one)"
            );
            None
        }
    }
}

/// The same server URL with another database name.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{host_part}/{db}?{q}"),
        None => format!("{host_part}/{db}"),
    }
}

/// Create an empty database with a random name; returns its URL.
pub async fn fresh_database(admin: &str) -> String {
    let name = format!("kg_test_{}", uuid::Uuid::new_v4().simple());
    let mut c = sqlx::PgConnection::connect(admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to KEYGATE_TEST_POSTGRES_URL: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.ok();
    with_database(admin, &name)
}

/// End every backend of `c`'s database whose `application_name` is `application`
/// (`pg_terminate_backend`); one entry per backend, true where it was signalled. `c` is a
/// connection already open, so this also works while the database refuses new ones.
pub async fn terminate_backends(c: &mut sqlx::PgConnection, application: &str) -> Vec<bool> {
    sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND datname = current_database()",
    )
    .bind(application)
    .fetch_all(c)
    .await
    .unwrap()
}

#[test]
fn database_names_are_replaced() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/postgres?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h:1", "x"), "postgres://h:1/x");
}

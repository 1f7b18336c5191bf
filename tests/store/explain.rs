//! Shared by the query-plan tests (`plans.rs`, `hot_plans.rs`): explaining the store's own SQL
//! on SQLite (`EXPLAIN QUERY PLAN`) and PostgreSQL (`EXPLAIN (FORMAT JSON)`, custom and generic
//! plans), and checking that every table read is on an expected index.
//!
//! - SQLite: every table the query reads must be a `SEARCH` with one of its expected indexes (or
//!   the rowid), never a `SCAN`, and no table outside the expected ones. With `no_sort`, no
//!   temporary B-tree for an `ORDER BY` either (the index gives the order).
//! - PostgreSQL: no `Seq Scan`, no index of the query's main table (the first in its `uses`) read
//!   whole (an index scan without an index condition), and with `no_sort` no `Sort` node; when
//!   `named`, each table uses one of its expected indexes.
#![allow(dead_code)]

use serde_json::Value;
use sqlx::Row;
use uuid::Uuid;

/// The rowid of a table (SQLite), as the plan names it for `INTEGER PRIMARY KEY`.
pub const ROWID: &str = "INTEGER PRIMARY KEY";

/// What one query may read: for each table (by the name or alias the plan shows) the indexes
/// any of which it may use; on PostgreSQL a primary key is `<table>_pkey`.
pub type Uses = [(&'static str, &'static [&'static str])];

/// One table access of an SQLite plan: the table (or alias), and the index named after USING.
#[derive(Debug)]
pub struct Access {
    pub scan: bool,
    pub table: String,
    pub index: Option<String>,
}

/// Parse `SEARCH d USING INDEX foreign_devices_path (app_id=? AND ...)`,
/// `SEARCH foreign_apps USING COVERING INDEX foreign_apps_name (...)`,
/// `SEARCH a USING INTEGER PRIMARY KEY (rowid=?)`, `SCAN foreign_keys`, also in the older
/// `SEARCH TABLE foreign_devices AS d USING ...` form. Other lines (temporary b-trees) are None.
pub fn access(detail: &str) -> Option<Access> {
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

/// A parameter of an explained query: its type (for PostgreSQL's PREPARE) and its value, bound as
/// the store binds it (on SQLite a UUID is text).
#[derive(Clone, Debug)]
pub enum P {
    Uuid(Uuid),
    I32(i32),
    I64(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl P {
    fn pg_type(&self) -> &'static str {
        match self {
            P::Uuid(_) => "uuid",
            P::I32(_) => "int4",
            P::I64(_) => "int8",
            P::Text(_) => "text",
            P::Bytes(_) => "bytea",
        }
    }
}

pub fn text(s: &str) -> P {
    P::Text(s.into())
}

fn sqlite_bind<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    params: &'q [P],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for p in params {
        q = match p {
            P::Uuid(u) => q.bind(u.to_string()),
            P::I32(v) => q.bind(*v),
            P::I64(v) => q.bind(*v),
            P::Text(t) => q.bind(t.as_str()),
            P::Bytes(b) => q.bind(b.as_slice()),
        };
    }
    q
}

fn pg_bind<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    params: &'q [P],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for p in params {
        q = match p {
            P::Uuid(u) => q.bind(*u),
            P::I32(v) => q.bind(*v),
            P::I64(v) => q.bind(*v),
            P::Text(t) => q.bind(t.as_str()),
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
        P::I64(v) => format!("{v}::int8"),
        P::Text(t) => format!("'{}'::text", t.replace('\'', "''")),
        P::Bytes(b) => format!(
            "'\\x{}'::bytea",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
    }
}

/// Explain `sql` on SQLite, `params` bound (none: unbound, as without statistics the values do not
/// matter), and check it against `uses`. Returns the plan's lines.
#[allow(clippy::too_many_arguments)]
pub async fn sqlite_check(
    c: &mut sqlx::SqliteConnection,
    name: &str,
    phase: &str,
    sql: &str,
    params: &[P],
    uses: &Uses,
    no_sort: bool,
    failures: &mut Vec<String>,
) -> Vec<String> {
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let rows = sqlite_bind(sqlx::query(&explain), params)
        .fetch_all(&mut *c)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let details: Vec<String> = rows.iter().map(|r| r.get::<String, _>("detail")).collect();
    eprintln!("sqlite {name} ({phase}): {details:?}");
    let accesses: Vec<Access> = details.iter().filter_map(|d| access(d)).collect();
    for a in &accesses {
        if a.scan {
            failures.push(format!("{name} ({phase}): a full scan: {details:?}"));
        }
        if !uses.iter().any(|(t, _)| *t == a.table) {
            failures.push(format!("{name} ({phase}): reads an unexpected table: {a:?}"));
        }
    }
    for (table, indexes) in uses {
        let ok = accesses
            .iter()
            .any(|a| a.table == *table && !a.scan && a.index.as_deref().is_some_and(|i| indexes.contains(&i)));
        if !ok {
            failures.push(format!(
                "{name} ({phase}): {table} uses none of {indexes:?}: {details:?}"
            ));
        }
    }
    if no_sort && details.iter().any(|d| d.contains("TEMP B-TREE")) {
        failures.push(format!(
            "{name} ({phase}): sorts instead of reading in index order: {details:?}"
        ));
    }
    details
}

/// What a PostgreSQL plan reads: the indexes it scans, and the problems (a sequential scan; an
/// index of the `main` table (by name or alias) read whole; with `no_sort`, a sort).
pub fn pg_plan_uses(plan: &Value, main: &str, no_sort: bool, indexes: &mut Vec<String>, problems: &mut Vec<String>) {
    let node = plan["Node Type"].as_str().unwrap_or("");
    if node == "Seq Scan" {
        problems.push(format!("Seq Scan on {}", plan["Relation Name"]));
    }
    if no_sort && (node == "Sort" || node == "Incremental Sort") {
        problems.push(format!("{node} (the index does not give the order)"));
    }
    if let Some(idx) = plan["Index Name"].as_str() {
        let on_main = plan["Alias"].as_str() == Some(main) || plan["Relation Name"].as_str() == Some(main);
        if on_main && plan.get("Index Cond").is_none() {
            problems.push(format!("{node} on {idx} without an index condition (the whole index)"));
        }
        indexes.push(idx.to_string());
    }
    for c in plan["Plans"].as_array().into_iter().flatten() {
        pg_plan_uses(c, main, no_sort, indexes, problems);
    }
}

/// Check one PostgreSQL plan; `named`: also that the expected indexes are used.
fn pg_judge(name: &str, how: &str, plan: &Value, uses: &Uses, named: bool, no_sort: bool, failures: &mut Vec<String>) {
    let mut indexes = vec![];
    let mut problems = vec![];
    let main = uses.first().map(|(t, _)| *t).unwrap_or("");
    pg_plan_uses(&plan[0]["Plan"], main, no_sort, &mut indexes, &mut problems);
    eprintln!("postgres {name} ({how}): indexes {indexes:?}, problems {problems:?}");
    for p in problems {
        failures.push(format!("{name} ({how}): {p}: {plan}"));
    }
    if !named {
        return;
    }
    for (table, acceptable) in uses {
        if !indexes.iter().any(|i| acceptable.contains(&i.as_str())) {
            failures.push(format!(
                "{name} ({how}): {table} uses none of {acceptable:?} (used {indexes:?}): {plan}"
            ));
        }
    }
}

/// Explain `sql` on PostgreSQL (the connection should have `enable_seqscan = off`): the custom
/// plan with `params` bound, and, through `PREPARE` under `plan_cache_mode = force_generic_plan`,
/// the generic plan a reused prepared statement may switch to. Both are checked.
#[allow(clippy::too_many_arguments)]
pub async fn pg_check(
    c: &mut sqlx::PgConnection,
    name: &str,
    phase: &str,
    sql: &str,
    params: &[P],
    uses: &Uses,
    named: bool,
    no_sort: bool,
    failures: &mut Vec<String>,
) {
    let explain = format!("EXPLAIN (FORMAT JSON) {sql}");
    let row = pg_bind(sqlx::query(&explain), params)
        .fetch_one(&mut *c)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let plan: Value = row.get(0);
    pg_judge(
        name,
        &format!("{phase}, custom plan"),
        &plan,
        uses,
        named,
        no_sort,
        failures,
    );

    let types: Vec<&str> = params.iter().map(P::pg_type).collect();
    let prepare = if types.is_empty() {
        format!("SET plan_cache_mode = force_generic_plan; PREPARE plan_probe AS {sql}")
    } else {
        format!(
            "SET plan_cache_mode = force_generic_plan; PREPARE plan_probe({}) AS {sql}",
            types.join(", ")
        )
    };
    sqlx::raw_sql(&prepare)
        .execute(&mut *c)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let args: Vec<String> = params.iter().map(literal).collect();
    let execute = if args.is_empty() {
        "EXPLAIN (FORMAT JSON) EXECUTE plan_probe".to_string()
    } else {
        format!("EXPLAIN (FORMAT JSON) EXECUTE plan_probe({})", args.join(", "))
    };
    let row = sqlx::query(&execute)
        .fetch_one(&mut *c)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let plan: Value = row.get(0);
    pg_judge(
        name,
        &format!("{phase}, generic plan"),
        &plan,
        uses,
        named,
        no_sort,
        failures,
    );
    sqlx::raw_sql("DEALLOCATE plan_probe; RESET plan_cache_mode")
        .execute(&mut *c)
        .await
        .unwrap();
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

//! Group commit for the SQLite store: the single-row credential writes and event appends of
//! concurrent callers share one transaction and one commit (one fsync with
//! `synchronous=FULL`), instead of one each.
//!
//! One writer (a task on a thread of its own) takes what is queued now (at most [`MAX_BATCH`] writes; it never waits for
//! more), opens one transaction on the writer pool's one connection, runs each write in a
//! `SAVEPOINT` of its own, one after another, and commits. Each caller is answered only after
//! its batch committed:
//! - a write that fails is rolled back to its savepoint and gets its error; the others commit;
//! - when `COMMIT` (or the transaction itself) fails, every caller of the batch gets the error;
//! - writes run one after another, so a use limit stays exact (`consume_use`'s conditional
//!   `UPDATE`) and every event gets the next version of its aggregate (`append`);
//! - when the writer task is gone, a caller gets [`Error::Unavailable`], never a hang.
//!
//! No thread hop per statement: sqlx runs each statement on its connection's worker thread, so
//! a batch run through sqlx cost several thread round trips per write (savepoint, insert, event,
//! release). Instead the writer takes the writer pool's connection for the whole batch
//! (`PoolConnection`, so the other writes of this process, on the same pool, wait for it as
//! before), locks sqlx's worker out of it (`lock_handle`) and runs the batch's statements on
//! that very `sqlite3` handle through rusqlite, synchronously on the writer thread, `COMMIT`'s
//! fsync included. It is still the one connection this process writes through, with sqlx's
//! settings (WAL, `synchronous=FULL`, `foreign_keys=ON`, the busy timeout): there is no second
//! writing connection to contend with for the write lock, and the cache's other-process probe
//! (`sqlite_changes.rs`, `PRAGMA data_version` on this connection) stays exact.
//!
//! The `sqlite_group_commit` setting turns grouping off: then the writer takes one write at a
//! time, each its own transaction and commit. Either way the SQL of each write is the same
//! ([`run`]).

use super::{APPEND_EVENT, CRED_COLS, cred_from, to_json};
use crate::clock::to_micros;
use crate::core::credential::Credential;
use crate::core::event::NewEvent;
use crate::error::{Error, Result};
use crate::store::ConsumeOutcome;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use sqlx::sqlite::SqlitePool;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Most writes in one transaction.
pub const MAX_BATCH: usize = 256;
/// Most writes waiting for the writer; a caller past it waits for room.
const QUEUE: usize = 4 * MAX_BATCH;

/// One write that may share a transaction.
#[derive(Debug)]
pub(super) enum Op {
    Insert {
        cred: Credential,
        event: NewEvent,
    },
    Update {
        cred: Credential,
        event: NewEvent,
    },
    Revoke {
        org_id: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
        by: String,
        event: NewEvent,
    },
    Consume {
        org_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        event: NewEvent,
        extra: Vec<NewEvent>,
    },
    Append {
        event: NewEvent,
    },
}

/// What a write answers (one variant per [`Op`]).
#[derive(Debug)]
pub(super) enum Done {
    Version(i64),
    Updated(Option<i64>),
    Revoked(Option<(Credential, Option<i64>)>),
    Consumed(ConsumeOutcome),
}

impl Done {
    pub(super) fn version(self) -> Result<i64> {
        match self {
            Done::Version(v) => Ok(v),
            other => Err(mismatch(&other)),
        }
    }

    pub(super) fn updated(self) -> Result<Option<i64>> {
        match self {
            Done::Updated(v) => Ok(v),
            other => Err(mismatch(&other)),
        }
    }

    pub(super) fn revoked(self) -> Result<Option<(Credential, Option<i64>)>> {
        match self {
            Done::Revoked(v) => Ok(v),
            other => Err(mismatch(&other)),
        }
    }

    pub(super) fn consumed(self) -> Result<ConsumeOutcome> {
        match self {
            Done::Consumed(v) => Ok(v),
            other => Err(mismatch(&other)),
        }
    }
}

fn mismatch(d: &Done) -> Error {
    Error::internal(format!("the SQLite writer answered a different write: {d:?}"))
}

/// A queued write and where its answer goes.
struct Job {
    op: Op,
    reply: oneshot::Sender<Result<Done>>,
}

/// The writes of one store: through the writer thread (grouped when group commit is on, one by
/// one when it is off).
#[derive(Debug, Clone)]
pub(super) struct Writes {
    pool: SqlitePool,
    /// `None` when the writer thread could not start: then each write runs on the caller's task.
    queue: Option<mpsc::Sender<Job>>,
}

impl Writes {
    /// Start the writer. It runs on a thread of its own (with a single-threaded runtime), so
    /// that it is never starved by busy tasks of the server's runtime and its synchronous
    /// statements and fsyncs never block them; it ends when the last handle on the store is
    /// dropped. `group` off: at most one write per transaction.
    pub(super) fn new(pool: SqlitePool, group: bool) -> Self {
        let limit = if group { MAX_BATCH } else { 1 };
        let queue = start(pool.clone(), limit);
        Self { pool, queue }
    }

    /// Run one write and answer once it is committed.
    pub(super) async fn run(&self, op: Op) -> Result<Done> {
        let (reply, answer) = oneshot::channel();
        let job = Job { op, reply };
        match &self.queue {
            Some(queue) => queue.send(job).await.map_err(|_| stopped())?,
            // No writer thread (it could not be spawned): commit here, blocking this task's
            // thread for the statements and the fsync.
            None => commit_batch(&self.pool, vec![job]).await,
        }
        answer.await.map_err(|_| stopped())?
    }
}

/// The writer thread, taking at most `limit` writes a transaction; `None` (writes committed on
/// the callers' tasks, with a log line) when it cannot start.
fn start(pool: SqlitePool, limit: usize) -> Option<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let started = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            std::thread::Builder::new()
                .name("sqlite-writer".into())
                .spawn(move || rt.block_on(writer(pool, rx, limit)))
                .map_err(|e| e.to_string())
        });
    match started {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the SQLite writer thread: writes are committed by their callers");
            None
        }
    }
}

fn stopped() -> Error {
    Error::Unavailable("the SQLite writer has stopped; restart keygate".into())
}

/// The writer task: until every store handle is gone, take what is queued (at most `limit`),
/// commit it as one transaction, answer, repeat.
async fn writer(pool: SqlitePool, mut rx: mpsc::Receiver<Job>, limit: usize) {
    let mut stats = Stats::new();
    let mut jobs = Vec::with_capacity(limit);
    while rx.recv_many(&mut jobs, limit).await > 0 {
        if limit > 1 {
            stats.record(jobs.len());
        }
        commit_batch(&pool, std::mem::take(&mut jobs)).await;
        jobs.reserve(limit);
    }
}

/// A queued write's answer, sent only after the batch's `COMMIT`.
type Answer = (oneshot::Sender<Result<Done>>, Result<Done>);

/// Run `jobs` in one transaction on the writer pool's connection, each in its own savepoint,
/// commit, and answer each.
async fn commit_batch(pool: &SqlitePool, jobs: Vec<Job>) {
    let answers = match pool.acquire().await {
        Ok(mut conn) => {
            let (answers, clean) = match conn.lock_handle().await {
                Ok(mut handle) => {
                    // SAFETY: `handle` keeps sqlx's worker thread off this connection (it makes
                    // no call on it or its statements) until it is dropped, and `db` is dropped
                    // first: rusqlite's `from_handle` neither closes the handle nor keeps it, and
                    // dropping `db` finalizes every statement it prepared. rusqlite and sqlx link
                    // the same libsqlite3-sys, so the handle is the same type in both.
                    match unsafe { Connection::from_handle(handle.as_raw_handle().as_ptr()) } {
                        Ok(db) => {
                            let out = run_batch(&db, jobs);
                            (out, db.is_autocommit())
                        }
                        Err(e) => (fail_all(jobs, Error::from(e)), true),
                    }
                }
                Err(e) => (fail_all(jobs, e.into()), true),
            };
            if !clean {
                // A transaction is still open (even ROLLBACK failed): never hand this
                // connection to another write. The pool opens a fresh one; the cache's probe
                // takes that as another process's commit (a flush), which is safe.
                tracing::warn!("SQLite group commit: the writer connection is left in a transaction; it is closed");
                conn.close_on_drop();
            }
            answers
        }
        Err(e) => fail_all(jobs, e.into()),
    };
    for (reply, result) in answers {
        let _ = reply.send(result);
    }
}

fn fail_all(jobs: Vec<Job>, e: Error) -> Vec<Answer> {
    jobs.into_iter().map(|j| (j.reply, Err(e.clone()))).collect()
}

/// The batch on the writer connection `db`: `BEGIN IMMEDIATE`, each write in its savepoint,
/// `COMMIT` (or `ROLLBACK`). The answers, in order.
fn run_batch(db: &Connection, jobs: Vec<Job>) -> Vec<Answer> {
    // The savepoints' sub-journal (each write copies the pages it changes, a few per write) in
    // memory: by default it spills to a temporary file past 64 KiB, a pwrite per page. It is
    // only ever needed to roll back to a savepoint, never for durability (that is the WAL's,
    // with synchronous=FULL). A no-op once set; it must be set outside a transaction.
    if let Err(e) = exec(db, "PRAGMA temp_store = MEMORY").and_then(|()| exec(db, "BEGIN IMMEDIATE")) {
        return fail_all(jobs, e);
    }
    let mut answers: Vec<Answer> = Vec::with_capacity(jobs.len());
    let mut broken: Option<Error> = None;
    for job in jobs {
        if let Some(e) = &broken {
            answers.push((job.reply, Err(e.clone())));
            continue;
        }
        match run_in_savepoint(db, &job.op) {
            Ok(result) => answers.push((job.reply, result)),
            Err(e) => {
                // The savepoint could not be opened, released or rolled back: the transaction
                // is in an unknown state, so none of the batch commits.
                tracing::warn!(error = %e, "SQLite group commit: the batch's transaction failed; it is rolled back");
                broken = Some(e.clone());
                answers.push((job.reply, Err(e)));
            }
        }
    }
    let committed = match broken {
        Some(e) => Err(e),
        None => exec(db, "COMMIT"),
    };
    match committed {
        Ok(()) => answers,
        Err(e) => {
            // A failed COMMIT (a deferred constraint, an I/O error) may leave the transaction
            // open: end it, so that the connection goes back to the pool clean.
            if !db.is_autocommit() {
                let _ = exec(db, "ROLLBACK");
            }
            if !matches!(e, Error::Unavailable(_)) {
                tracing::warn!(error = %e, "SQLite group commit: COMMIT failed; every write of the batch gets the error");
            }
            answers
                .into_iter()
                // A write that failed on its own keeps its error; the others get COMMIT's.
                .map(|(reply, result)| match result {
                    Ok(_) => (reply, Err(e.clone())),
                    Err(own) => (reply, Err(own)),
                })
                .collect()
        }
    }
}

/// Run one write in a savepoint: `Ok(Ok)` when it ran (released), `Ok(Err)` when it failed and
/// was rolled back to the savepoint (the others go on), `Err` when the transaction is broken.
fn run_in_savepoint(db: &Connection, op: &Op) -> Result<Result<Done>> {
    exec(db, "SAVEPOINT kg_write")?;
    match run(db, op) {
        Ok(done) => {
            exec(db, "RELEASE kg_write")?;
            Ok(Ok(done))
        }
        Err(e) => {
            exec(db, "ROLLBACK TO kg_write")?;
            exec(db, "RELEASE kg_write")?;
            Ok(Err(e))
        }
    }
}

/// A statement without parameters or rows, prepared once per batch.
fn exec(db: &Connection, sql: &str) -> Result<()> {
    db.prepare_cached(sql).and_then(|mut s| s.execute([]))?;
    Ok(())
}

/// Batch sizes: the `keygate_sqlite_batch_size` histogram, and at debug level at most one line
/// a second with the mean.
struct Stats {
    since: Instant,
    batches: u64,
    writes: u64,
    largest: usize,
}

impl Stats {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            batches: 0,
            writes: 0,
            largest: 0,
        }
    }

    fn record(&mut self, n: usize) {
        metrics::histogram!("keygate_sqlite_batch_size").record(n as f64);
        self.batches += 1;
        self.writes += n as u64;
        self.largest = self.largest.max(n);
        if self.since.elapsed() >= Duration::from_secs(1) {
            tracing::debug!(
                batches = self.batches,
                writes = self.writes,
                mean = format!("{:.1}", self.writes as f64 / self.batches as f64),
                largest = self.largest,
                "SQLite group commit"
            );
            *self = Self::new();
        }
    }
}

/// One write, inside the batch's transaction (in its savepoint); the same SQL with or without
/// group commit.
fn run(db: &Connection, op: &Op) -> Result<Done> {
    match op {
        Op::Insert { cred, event } => insert_credential(db, cred, event).map(Done::Version),
        Op::Update { cred, event } => update_credential(db, cred, event).map(Done::Updated),
        Op::Revoke {
            org_id,
            id,
            at,
            by,
            event,
        } => revoke_credential(db, *org_id, *id, *at, by, event).map(Done::Revoked),
        Op::Consume {
            org_id,
            id,
            now,
            event,
            extra,
        } => consume_use(db, *org_id, *id, *now, event, extra).map(Done::Consumed),
        Op::Append { event } => append(db, event).map(Done::Version),
    }
}

/// The event with the next version of its aggregate (sqlite.rs's `append`, the same SQL).
fn append(db: &Connection, e: &NewEvent) -> Result<i64> {
    let mut stmt = db.prepare_cached(APPEND_EVENT)?;
    stmt.query_row(
        params![
            e.org_id.to_string(),
            e.aggregate_type,
            e.aggregate_id.to_string(),
            e.event_type,
            to_json(&e.data)?,
            e.actor,
            to_micros(e.at),
        ],
        |r| r.get(0),
    )
    .map_err(Error::from)
}

/// The credential row `sql` answers (parameters org_id, id), mapped by sqlite.rs's `cred_from`.
fn cred_row(db: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<Option<Credential>> {
    let mut stmt = db.prepare_cached(sql)?;
    let mut rows = stmt.query(p)?;
    rows.next()?.map(cred_from).transpose()
}

fn insert_credential(db: &Connection, c: &Credential, event: &NewEvent) -> Result<i64> {
    let mut stmt = db.prepare_cached(&format!(
        "INSERT INTO credentials ({CRED_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))?;
    stmt.execute(params![
        c.id.to_string(),
        c.org_id.to_string(),
        c.kind.as_str(),
        c.owner_id.map(|u| u.to_string()),
        c.name,
        c.prefix,
        c.hash,
        to_json(&c.scopes)?,
        c.not_before.map(to_micros),
        c.expires_at.map(to_micros),
        c.max_uses,
        c.used_count,
        to_json(&c.allowed_users)?,
        to_json(&c.subject)?,
        to_json(&c.metadata)?,
        to_micros(c.created_at),
        c.created_by,
        to_micros(c.updated_at),
        c.updated_by,
        c.revoked_at.map(to_micros),
        c.revoked_by,
    ])?;
    append(db, event)
}

fn update_credential(db: &Connection, c: &Credential, event: &NewEvent) -> Result<Option<i64>> {
    let mut stmt = db.prepare_cached(
        "UPDATE credentials SET name = ?, scopes = ?, not_before = ?, expires_at = ?, max_uses = ?, \
             allowed_users = ?, subject = ?, metadata = ?, updated_at = ?, updated_by = ? \
             WHERE org_id = ? AND id = ? AND revoked_at IS NULL",
    )?;
    let n = stmt.execute(params![
        c.name,
        to_json(&c.scopes)?,
        c.not_before.map(to_micros),
        c.expires_at.map(to_micros),
        c.max_uses,
        to_json(&c.allowed_users)?,
        to_json(&c.subject)?,
        to_json(&c.metadata)?,
        to_micros(c.updated_at),
        c.updated_by,
        c.org_id.to_string(),
        c.id.to_string(),
    ])?;
    if n == 1 { Ok(Some(append(db, event)?)) } else { Ok(None) }
}

fn revoke_credential(
    db: &Connection,
    org_id: Uuid,
    id: Uuid,
    at: DateTime<Utc>,
    by: &str,
    event: &NewEvent,
) -> Result<Option<(Credential, Option<i64>)>> {
    let mut stmt = db.prepare_cached(
        "UPDATE credentials SET revoked_at = ?, revoked_by = ?, updated_at = ?, updated_by = ? \
             WHERE org_id = ? AND id = ? AND revoked_at IS NULL",
    )?;
    let n = stmt.execute(params![
        to_micros(at),
        by,
        to_micros(at),
        by,
        org_id.to_string(),
        id.to_string()
    ])?;
    let version = if n == 1 { Some(append(db, event)?) } else { None };
    let cred = cred_row(
        db,
        super::sql::GET_CREDENTIAL,
        params![org_id.to_string(), id.to_string()],
    )?;
    Ok(cred.map(|c| (c, version)))
}

fn consume_use(
    db: &Connection,
    org_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
    event: &NewEvent,
    extra: &[NewEvent],
) -> Result<ConsumeOutcome> {
    let used = cred_row(
        db,
        super::sql::CONSUME_USE,
        params![org_id.to_string(), id.to_string(), to_micros(now)],
    )?;
    match used {
        Some(cred) => {
            let mut e = event.clone();
            if let serde_json::Value::Object(m) = &mut e.data {
                let key = if m.contains_key("usedCount") {
                    "usedCount"
                } else {
                    "used_count"
                };
                m.insert(key.into(), cred.used_count.into());
            }
            let version = append(db, &e)?;
            for x in extra {
                append(db, x)?;
            }
            Ok(ConsumeOutcome::Used(cred, version))
        }
        None => Ok(ConsumeOutcome::Refused(cred_row(
            db,
            super::sql::GET_CREDENTIAL,
            params![org_id.to_string(), id.to_string()],
        )?)),
    }
}

#[cfg(test)]
mod tests {
    //! One batch built by hand and committed by [`commit_batch`], so that what shares the
    //! transaction is certain (the store-level test in tests/store/batch.rs goes through the
    //! writer task).

    use super::*;
    use crate::core::credential::Kind;
    use crate::store::Store;
    use crate::store::sqlite::SqliteStore;
    use serde_json::json;

    async fn open() -> (tempfile::TempDir, SqliteStore, Uuid) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kg.db", dir.path().display());
        // Off: nothing but this test runs batches.
        let settings = crate::store::postgres::PoolSettings {
            sqlite_group_commit: false,
            ..Default::default()
        };
        let s = SqliteStore::open_with(&url, &settings).await.unwrap();
        s.migrate().await.unwrap();
        let org = Uuid::now_v7();
        sqlx::query("INSERT INTO organizations (id, name, is_system, created_at) VALUES (?, 'acme', 0, 0)")
            .bind(org.to_string())
            .execute(&s.writer)
            .await
            .unwrap();
        (dir, s, org)
    }

    fn ev(org: Uuid, agg: Uuid, ty: &'static str) -> NewEvent {
        NewEvent {
            org_id: org,
            aggregate_type: "key",
            aggregate_id: agg,
            event_type: ty,
            data: json!({}),
            actor: "tester".into(),
            at: Utc::now(),
        }
    }

    fn cred(org: Uuid, max_uses: Option<i64>) -> Credential {
        Credential {
            prefix: "kg_1".into(),
            hash: Uuid::new_v4().as_bytes().to_vec(),
            max_uses,
            ..Credential::fixture(org, Kind::Api, Utc::now())
        }
    }

    fn consume(c: &Credential) -> Op {
        Op::Consume {
            org_id: c.org_id,
            id: c.id,
            now: Utc::now(),
            event: ev(c.org_id, c.id, "KeyUsed"),
            extra: vec![],
        }
    }

    fn insert(c: &Credential) -> Op {
        Op::Insert {
            cred: c.clone(),
            event: ev(c.org_id, c.id, "KeyCreated"),
        }
    }

    /// Commit `ops` as one batch; the answers in order.
    async fn batch(s: &SqliteStore, ops: Vec<Op>) -> Vec<Result<Done>> {
        let mut jobs = vec![];
        let mut answers = vec![];
        for op in ops {
            let (reply, answer) = oneshot::channel();
            jobs.push(Job { op, reply });
            answers.push(answer);
        }
        commit_batch(&s.writer, jobs).await;
        let mut out = vec![];
        for a in answers {
            out.push(a.await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_failing_write_fails_alone_and_the_others_commit_in_order() {
        let (_dir, s, org) = open().await;
        let limited = cred(org, Some(2));
        let mut dup = cred(org, None);
        dup.hash = limited.hash.clone();
        let elsewhere = cred(Uuid::now_v7(), None);
        let after = cred(org, None);
        let out = batch(
            &s,
            vec![
                insert(&limited),
                consume(&limited),
                insert(&dup), // the same digest: Conflict
                consume(&limited),
                insert(&elsewhere), // no such organization: refused by the foreign key
                consume(&limited),  // over the limit: refused, not an error
                insert(&after),
                Op::Append {
                    event: ev(org, limited.id, "Noted"),
                },
            ],
        )
        .await;
        assert!(matches!(out[0], Ok(Done::Version(1))), "{:?}", out[0]);
        assert!(matches!(&out[1], Ok(Done::Consumed(ConsumeOutcome::Used(c, 2))) if c.used_count == 1));
        assert!(matches!(out[2], Err(Error::Conflict(_))), "{:?}", out[2]);
        assert!(matches!(&out[3], Ok(Done::Consumed(ConsumeOutcome::Used(c, 3))) if c.used_count == 2));
        assert!(out[4].is_err(), "{:?}", out[4]);
        assert!(matches!(&out[5], Ok(Done::Consumed(ConsumeOutcome::Refused(Some(c)))) if c.used_count == 2));
        assert!(matches!(out[6], Ok(Done::Version(1))), "{:?}", out[6]);
        assert!(matches!(out[7], Ok(Done::Version(4))), "{:?}", out[7]);
        // Committed: everything but the two failures.
        let got = s.get_credential(org, limited.id).await.unwrap().unwrap();
        assert_eq!(got.used_count, 2);
        assert!(s.get_credential(org, after.id).await.unwrap().is_some());
        assert!(s.get_credential(org, dup.id).await.unwrap().is_none());
        assert!(s.find_credential(elsewhere.id).await.unwrap().is_none());
        let types: Vec<String> = s
            .events_of(org, limited.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| format!("{}{}", e.version, e.event_type))
            .collect();
        assert_eq!(types, ["1KeyCreated", "2KeyUsed", "3KeyUsed", "4Noted"]);
        assert!(s.events_of(org, dup.id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_write_of_the_batch() {
        let (_dir, s, org) = open().await;
        // An event of type Poison breaks a deferred foreign key: its statement succeeds, COMMIT
        // fails.
        for sql in [
            "CREATE TABLE poison (org TEXT REFERENCES organizations(id) DEFERRABLE INITIALLY DEFERRED)",
            "CREATE TRIGGER poison AFTER INSERT ON events WHEN NEW.type = 'Poison' \
             BEGIN INSERT INTO poison VALUES ('no such organization'); END",
        ] {
            sqlx::query(sql).execute(&s.writer).await.unwrap();
        }
        let a = cred(org, None);
        let out = batch(
            &s,
            vec![
                insert(&a),
                Op::Append {
                    event: ev(org, a.id, "Poison"),
                },
                consume(&a),
            ],
        )
        .await;
        assert!(out.iter().all(|r| r.is_err()), "{out:?}");
        assert!(s.get_credential(org, a.id).await.unwrap().is_none());
        assert!(s.events_of(org, a.id).await.unwrap().is_empty());
        // The connection is fine afterwards.
        let out = batch(&s, vec![insert(&a), consume(&a)]).await;
        assert!(out.iter().all(|r| r.is_ok()), "{out:?}");
        assert_eq!(s.get_credential(org, a.id).await.unwrap().unwrap().used_count, 1);
    }

    #[tokio::test]
    async fn the_probe_tells_this_process_s_batches_from_another_process_s_commits() {
        let (dir, s, org) = open().await;
        let probe = s.change_probe().unwrap();
        assert!(probe.others_committed().await.unwrap(), "the first answer is a change");
        assert!(!probe.others_committed().await.unwrap());
        // This process's batches (the writer connection's, through rusqlite): not another's.
        let a = cred(org, Some(5));
        let out = batch(&s, vec![insert(&a), consume(&a)]).await;
        assert!(out.iter().all(|r| r.is_ok()), "{out:?}");
        let out = batch(&s, vec![consume(&a)]).await;
        assert!(out.iter().all(|r| r.is_ok()), "{out:?}");
        assert!(!probe.others_committed().await.unwrap());
        // Through the writer thread, with and without grouping.
        for group in [true, false] {
            let w = Writes::new(s.writer.clone(), group);
            w.run(consume(&a)).await.unwrap().consumed().unwrap();
            assert!(!probe.others_committed().await.unwrap());
        }
        // Another process's commit (another connection to the file) is seen.
        let other = Connection::open(dir.path().join("kg.db")).unwrap();
        other
            .execute(
                "UPDATE credentials SET name = 'renamed' WHERE id = ?",
                [a.id.to_string()],
            )
            .unwrap();
        assert!(probe.others_committed().await.unwrap());
        assert!(!probe.others_committed().await.unwrap());
        let got = s.get_credential(org, a.id).await.unwrap().unwrap();
        assert_eq!((got.name.as_str(), got.used_count), ("renamed", 4));
    }

    #[tokio::test]
    async fn a_batch_waits_for_the_writer_pool_s_transaction_and_shares_its_connection() {
        let (_dir, s, org) = open().await;
        let a = cred(org, None);
        // An admin write's transaction holds the pool's one connection: the batch waits for it
        // (no second connection, no SQLITE_BUSY), then commits.
        let mut tx = s.writer.begin().await.unwrap();
        sqlx::query("INSERT INTO organizations (id, name, is_system, created_at) VALUES (?, 'other', 0, 0)")
            .bind(Uuid::now_v7().to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
        let pending = {
            let s = s.clone();
            let a = a.clone();
            tokio::spawn(async move { batch(&s, vec![insert(&a), consume(&a)]).await })
        };
        tokio::task::yield_now().await;
        tx.commit().await.unwrap();
        let out = pending.await.unwrap();
        assert!(out.iter().all(|r| r.is_ok()), "{out:?}");
        // sqlx goes on using the connection after rusqlite had it, in and out of transactions.
        let mut tx = s.writer.begin().await.unwrap();
        sqlx::query("UPDATE credentials SET name = 'again' WHERE id = ?")
            .bind(a.id.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let got = s.get_credential(org, a.id).await.unwrap().unwrap();
        assert_eq!((got.name.as_str(), got.used_count), ("again", 1));
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations")
            .fetch_one(&s.writer)
            .await
            .unwrap();
        assert_eq!(n, 2);
        // The batch's sub-journal is kept in memory on the writer connection.
        let temp_store: i64 = sqlx::query_scalar("PRAGMA temp_store")
            .fetch_one(&s.writer)
            .await
            .unwrap();
        assert_eq!(temp_store, 2);
    }

    #[tokio::test]
    async fn a_stopped_writer_answers_unavailable() {
        let (_dir, s, org) = open().await;
        let (queue, rx) = mpsc::channel(1);
        drop(rx);
        let w = Writes {
            pool: s.writer.clone(),
            queue: Some(queue),
        };
        let r = w.run(insert(&cred(org, None))).await;
        assert!(matches!(r, Err(Error::Unavailable(_))), "{r:?}");
        // A writer that takes the write and drops it unanswered.
        let (queue, mut rx) = mpsc::channel::<Job>(1);
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                drop(job);
            }
        });
        let w = Writes {
            pool: s.writer.clone(),
            queue: Some(queue),
        };
        let r = w.run(insert(&cred(org, None))).await;
        assert!(matches!(r, Err(Error::Unavailable(_))), "{r:?}");
    }
}

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
//! The `sqlite_group_commit` setting turns it off: then each write is its own transaction on the
//! writer pool, as before. Either way the SQL of each write is the same ([`run`]).

use super::{CRED_COLS, append, cred_from, to_json};
use crate::clock::to_micros;
use crate::core::credential::Credential;
use crate::core::event::NewEvent;
use crate::error::{Error, Result};
use crate::store::ConsumeOutcome;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqlitePool;
use sqlx::{Acquire, Sqlite, Transaction};
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

/// The writes of one store: through the writer task when group commit is on, else each in its
/// own transaction on the writer pool.
#[derive(Debug, Clone)]
pub(super) struct Writes {
    pool: SqlitePool,
    queue: Option<mpsc::Sender<Job>>,
}

impl Writes {
    /// Start the writer when `group` is on. It runs on a thread of its own (with a
    /// single-threaded runtime), so that it is never starved by busy tasks of the server's
    /// runtime; it ends when the last handle on the store is dropped.
    pub(super) fn new(pool: SqlitePool, group: bool) -> Self {
        let queue = if group { start(pool.clone()) } else { None };
        Self { pool, queue }
    }

    /// Run one write and answer once it is committed.
    pub(super) async fn run(&self, op: Op) -> Result<Done> {
        let Some(queue) = &self.queue else {
            let mut tx = self.pool.begin().await?;
            let done = run(&mut tx, &op).await?;
            tx.commit().await?;
            return Ok(done);
        };
        let (reply, answer) = oneshot::channel();
        queue.send(Job { op, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// The writer thread; `None` (writes committed one by one, with a log line) when it cannot start.
fn start(pool: SqlitePool) -> Option<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let started = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            std::thread::Builder::new()
                .name("sqlite-writer".into())
                .spawn(move || rt.block_on(writer(pool, rx)))
                .map_err(|e| e.to_string())
        });
    match started {
        Ok(_) => Some(tx),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the SQLite writer thread: writes are committed one by one");
            None
        }
    }
}

fn stopped() -> Error {
    Error::Unavailable("the SQLite writer has stopped; restart keygate".into())
}

/// The writer task: until every store handle is gone, take what is queued (at most
/// [`MAX_BATCH`]), commit it as one transaction, answer, repeat.
async fn writer(pool: SqlitePool, mut rx: mpsc::Receiver<Job>) {
    let mut stats = Stats::new();
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        stats.record(jobs.len());
        commit_batch(&pool, std::mem::take(&mut jobs)).await;
        jobs.reserve(MAX_BATCH);
    }
}

/// Run `jobs` in one transaction, each in its own savepoint, commit, and answer each.
async fn commit_batch(pool: &SqlitePool, jobs: Vec<Job>) {
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            let e = Error::from(e);
            for job in jobs {
                let _ = job.reply.send(Err(e.clone()));
            }
            return;
        }
    };
    // The answers, sent only after COMMIT.
    let mut answers: Vec<(oneshot::Sender<Result<Done>>, Result<Done>)> = Vec::with_capacity(jobs.len());
    let mut broken: Option<Error> = None;
    for job in jobs {
        if let Some(e) = &broken {
            answers.push((job.reply, Err(e.clone())));
            continue;
        }
        match run_in_savepoint(&mut tx, &job.op).await {
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
        Some(e) => {
            let _ = tx.rollback().await;
            Err(e)
        }
        None => tx.commit().await.map_err(Error::from),
    };
    match committed {
        Ok(()) => {
            for (reply, result) in answers {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            if !matches!(e, Error::Unavailable(_)) {
                tracing::warn!(error = %e, "SQLite group commit: COMMIT failed; every write of the batch gets the error");
            }
            for (reply, result) in answers {
                // A write that failed on its own keeps its error; the others get COMMIT's.
                let _ = reply.send(match result {
                    Ok(_) => Err(e.clone()),
                    Err(own) => Err(own),
                });
            }
        }
    }
}

/// Run one write in a savepoint: `Ok(Ok)` when it ran (released), `Ok(Err)` when it failed and
/// was rolled back to the savepoint (the others go on), `Err` when the transaction is broken.
async fn run_in_savepoint(tx: &mut Transaction<'static, Sqlite>, op: &Op) -> Result<Result<Done>> {
    let mut sp = Acquire::begin(&mut *tx).await?;
    match run(&mut sp, op).await {
        Ok(done) => {
            sp.commit().await?;
            Ok(Ok(done))
        }
        Err(e) => {
            sp.rollback().await?;
            Ok(Err(e))
        }
    }
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

/// One write, inside the caller's transaction (or savepoint); the same SQL with or without
/// group commit.
pub(super) async fn run(tx: &mut Transaction<'_, Sqlite>, op: &Op) -> Result<Done> {
    match op {
        Op::Insert { cred, event } => insert_credential(tx, cred, event).await.map(Done::Version),
        Op::Update { cred, event } => update_credential(tx, cred, event).await.map(Done::Updated),
        Op::Revoke {
            org_id,
            id,
            at,
            by,
            event,
        } => revoke_credential(tx, *org_id, *id, *at, by, event)
            .await
            .map(Done::Revoked),
        Op::Consume {
            org_id,
            id,
            now,
            event,
            extra,
        } => consume_use(tx, *org_id, *id, *now, event, extra)
            .await
            .map(Done::Consumed),
        Op::Append { event } => append(tx, event).await.map(Done::Version),
    }
}

async fn insert_credential(tx: &mut Transaction<'_, Sqlite>, c: &Credential, event: &NewEvent) -> Result<i64> {
    sqlx::query(&format!(
        "INSERT INTO credentials ({CRED_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(c.id.to_string())
    .bind(c.org_id.to_string())
    .bind(c.kind.as_str())
    .bind(c.owner_id.map(|u| u.to_string()))
    .bind(&c.name)
    .bind(&c.prefix)
    .bind(&c.hash)
    .bind(to_json(&c.scopes)?)
    .bind(c.not_before.map(to_micros))
    .bind(c.expires_at.map(to_micros))
    .bind(c.max_uses)
    .bind(c.used_count)
    .bind(to_json(&c.allowed_users)?)
    .bind(to_json(&c.subject)?)
    .bind(to_json(&c.metadata)?)
    .bind(to_micros(c.created_at))
    .bind(&c.created_by)
    .bind(to_micros(c.updated_at))
    .bind(&c.updated_by)
    .bind(c.revoked_at.map(to_micros))
    .bind(&c.revoked_by)
    .execute(&mut **tx)
    .await?;
    append(tx, event).await
}

async fn update_credential(tx: &mut Transaction<'_, Sqlite>, c: &Credential, event: &NewEvent) -> Result<Option<i64>> {
    let n = sqlx::query(
        "UPDATE credentials SET name = ?, scopes = ?, not_before = ?, expires_at = ?, max_uses = ?, \
         allowed_users = ?, subject = ?, metadata = ?, updated_at = ?, updated_by = ? \
         WHERE org_id = ? AND id = ? AND revoked_at IS NULL",
    )
    .bind(&c.name)
    .bind(to_json(&c.scopes)?)
    .bind(c.not_before.map(to_micros))
    .bind(c.expires_at.map(to_micros))
    .bind(c.max_uses)
    .bind(to_json(&c.allowed_users)?)
    .bind(to_json(&c.subject)?)
    .bind(to_json(&c.metadata)?)
    .bind(to_micros(c.updated_at))
    .bind(&c.updated_by)
    .bind(c.org_id.to_string())
    .bind(c.id.to_string())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if n == 1 {
        Ok(Some(append(tx, event).await?))
    } else {
        Ok(None)
    }
}

async fn revoke_credential(
    tx: &mut Transaction<'_, Sqlite>,
    org_id: Uuid,
    id: Uuid,
    at: DateTime<Utc>,
    by: &str,
    event: &NewEvent,
) -> Result<Option<(Credential, Option<i64>)>> {
    let n = sqlx::query(
        "UPDATE credentials SET revoked_at = ?, revoked_by = ?, updated_at = ?, updated_by = ? \
         WHERE org_id = ? AND id = ? AND revoked_at IS NULL",
    )
    .bind(to_micros(at))
    .bind(by)
    .bind(to_micros(at))
    .bind(by)
    .bind(org_id.to_string())
    .bind(id.to_string())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let version = if n == 1 { Some(append(tx, event).await?) } else { None };
    let row = sqlx::query(&format!(
        "SELECT {CRED_COLS} FROM credentials WHERE org_id = ? AND id = ?"
    ))
    .bind(org_id.to_string())
    .bind(id.to_string())
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.as_ref().map(cred_from).transpose()?.map(|c| (c, version)))
}

async fn consume_use(
    tx: &mut Transaction<'_, Sqlite>,
    org_id: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
    event: &NewEvent,
    extra: &[NewEvent],
) -> Result<ConsumeOutcome> {
    let n = to_micros(now);
    let row = sqlx::query(&format!(
        "UPDATE credentials SET used_count = used_count + 1 \
         WHERE org_id = ?1 AND id = ?2 AND revoked_at IS NULL \
           AND (not_before IS NULL OR not_before <= ?3) AND (expires_at IS NULL OR expires_at > ?3) \
           AND (max_uses IS NULL OR used_count < max_uses) \
         RETURNING {CRED_COLS}"
    ))
    .bind(org_id.to_string())
    .bind(id.to_string())
    .bind(n)
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        Some(row) => {
            let cred = cred_from(&row)?;
            let mut e = event.clone();
            if let serde_json::Value::Object(m) = &mut e.data {
                let key = if m.contains_key("usedCount") {
                    "usedCount"
                } else {
                    "used_count"
                };
                m.insert(key.into(), cred.used_count.into());
            }
            let version = append(tx, &e).await?;
            for x in extra {
                append(tx, x).await?;
            }
            Ok(ConsumeOutcome::Used(cred, version))
        }
        None => {
            let row = sqlx::query(&format!(
                "SELECT {CRED_COLS} FROM credentials WHERE org_id = ? AND id = ?"
            ))
            .bind(org_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut **tx)
            .await?;
            Ok(ConsumeOutcome::Refused(row.as_ref().map(cred_from).transpose()?))
        }
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
        let s = SqliteStore::open_with(&url, false).await.unwrap();
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
        let now = Utc::now();
        Credential {
            id: Uuid::now_v7(),
            org_id: org,
            kind: Kind::Api,
            owner_id: None,
            name: "k".into(),
            prefix: "kg_1".into(),
            hash: Uuid::new_v4().as_bytes().to_vec(),
            scopes: vec![],
            not_before: None,
            expires_at: None,
            max_uses,
            used_count: 0,
            allowed_users: vec![],
            subject: json!(null),
            metadata: json!({}),
            created_at: now,
            created_by: "t".into(),
            updated_at: now,
            updated_by: "t".into(),
            revoked_at: None,
            revoked_by: None,
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

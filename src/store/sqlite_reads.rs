//! The SQLite store's hot reads without a thread hop.
//!
//! sqlx runs every SQLite statement on a worker thread of its own and hands rows back through
//! channels: for a lookup by primary key or digest, the two thread switches cost several times
//! the query. The reads every authenticated request makes (a key by digest, an API key, a ticket
//! or session, a user, an organization, one owner's keys) instead run here, on a few read-only
//! rusqlite connections, on the calling thread. Each is a lookup on an index of a database in WAL
//! mode, which no writer blocks: microseconds, like the bookkeeping of an `await`. Everything
//! else (listings, the event feed, writes) stays on sqlx's pools.
//!
//! # Read transactions held while nothing commits
//! A statement outside a transaction begins and ends a read transaction of its own: SQLite takes
//! a WAL read-mark lock (`fcntl`), checks the file's size (`fstat`) and, when the read ends,
//! gives both back; with keys that do not fit the credential cache, a tenth of a verify's CPU
//! or more (BENCHMARKS.md, issue 16's ninth part). So each connection here keeps its read
//! transaction open from one read to the next for as long as nothing has committed: before
//! every read it loads the WAL index's change counter (`sqlite_changes.rs`; every commit of any
//! connection in any process moves it before the commit returns) and ends the transaction and
//! begins a new one when the counter moved since the transaction began, so a read never answers
//! from a snapshot older than the last commit that returned. (The counter is loaded before
//! `BEGIN`, and a deferred `BEGIN` takes its snapshot at the first read after it: the snapshot is
//! never older than the value kept.)
//! An open read transaction keeps a checkpoint from resetting the WAL, so none is held longer
//! than [`HOLD`]: a read ends one that old, and a sweeper thread ends those of idle connections.
//! When the database's WAL index cannot be mapped (not in WAL mode), every read is a
//! transaction of its own, as before.
//!
//! Both drivers map rows through one set of functions (`Cols` and `FromCols` in sqlite.rs).

use crate::error::{Error, Result};
use crate::store::sqlite_changes::WalChangeCounter;
use rusqlite::{Connection, OpenFlags, Row};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

/// The longest a connection keeps a read transaction open (see the module's comment).
const HOLD: Duration = Duration::from_millis(100);

/// A parameter of a hot read, bound by either driver.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Text(String),
    Blob(&'a [u8]),
    Int(i64),
}

impl rusqlite::ToSql for Val<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Val::Text(s) => s.to_sql(),
            Val::Blob(b) => b.to_sql(),
            Val::Int(i) => i.to_sql(),
        }
    }
}

/// One read-only connection and the read transaction it holds.
#[derive(Debug)]
struct ReadConn {
    conn: Connection,
    /// While a read transaction is open: the change counter's value loaded before it began, and
    /// when it began.
    held: Option<(u32, Instant)>,
}

impl ReadConn {
    /// Ends the open read transaction, if any.
    fn end(&mut self) -> rusqlite::Result<()> {
        self.held = None;
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn.prepare_cached("COMMIT")?.execute([]).map(drop)
    }
}

/// Read-only connections to the database file, one per thread that may ask at once.
#[derive(Debug)]
pub(crate) struct Reads {
    /// The WAL index's change counter, mapped through `conns[0]` (open while `self` is); `None`
    /// when it cannot be, and then no read transaction is held.
    counter: Option<WalChangeCounter>,
    conns: Box<[Mutex<ReadConn>]>,
    next: AtomicUsize,
}

impl Reads {
    /// Connections to the database at `path`; `None` for an in-memory database (only sqlx's own
    /// connections can reach it). A sweeper thread ends the read transactions idle connections
    /// hold, until the last `Arc` is dropped.
    pub(crate) fn open(path: &Path, mmap_size: u64) -> Result<Option<Arc<Self>>> {
        if !super::is_file(path) {
            return Ok(None);
        }
        let n = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
        let conns = (0..n)
            .map(|_| {
                let c = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                // As sqlx's pools: a reader waits out a recovering writer rather than failing.
                c.busy_timeout(Duration::from_secs(10))?;
                c.set_prepared_statement_cache_capacity(32);
                if mmap_size > 0 {
                    // `sqlite_mmap_size` (an integer: nothing else reaches the statement).
                    c.execute_batch(&format!("PRAGMA mmap_size = {mmap_size}"))?;
                }
                Ok(Mutex::new(ReadConn { conn: c, held: None }))
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| Error::Unavailable(format!("cannot open the SQLite database: {e}")))?;
        let counter = conns
            .first()
            .and_then(|c| WalChangeCounter::map(&c.lock().unwrap_or_else(PoisonError::into_inner).conn));
        let reads = Arc::new(Reads {
            counter,
            conns: conns.into_boxed_slice(),
            next: AtomicUsize::new(0),
        });
        if reads.counter.is_some() {
            let weak = Arc::downgrade(&reads);
            std::thread::Builder::new()
                .name("sqlite-reads-sweeper".into())
                .spawn(move || sweep(&weak))
                .map_err(|e| Error::Unavailable(format!("cannot start the SQLite read sweeper: {e}")))?;
        }
        Ok(Some(reads))
    }

    /// A free connection if there is one, else the next in turn; in a read transaction that
    /// sees every commit that returned before this call.
    fn conn(&self) -> Result<MutexGuard<'_, ReadConn>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.conns.len();
        let mut rc = (0..n)
            .find_map(|i| self.conns[(start + i) % n].try_lock().ok())
            .unwrap_or_else(|| self.conns[start % n].lock().unwrap_or_else(PoisonError::into_inner));
        let Some(counter) = &self.counter else {
            return Ok(rc);
        };
        let now = counter.load();
        let current = rc
            .held
            .is_some_and(|(seen, since)| seen == now && since.elapsed() < HOLD);
        if current && !rc.conn.is_autocommit() {
            return Ok(rc);
        }
        rc.end()?;
        rc.conn.prepare_cached("BEGIN")?.execute([])?;
        rc.held = Some((now, Instant::now()));
        Ok(rc)
    }

    /// How many connections there are.
    #[cfg(test)]
    pub(crate) fn conns_len(&self) -> usize {
        self.conns.len()
    }

    /// Ends the read transactions older than [`HOLD`] on connections no one is using.
    fn release_idle(&self) {
        for c in &self.conns {
            let Ok(mut rc) = c.try_lock() else { continue };
            if rc.held.is_some_and(|(_, since)| since.elapsed() >= HOLD) {
                if let Err(e) = rc.end() {
                    tracing::warn!("cannot end an idle SQLite read transaction: {e}");
                }
            }
        }
    }

    /// The rows `sql` answers, mapped by `map`.
    pub(crate) fn all<T>(&self, sql: &str, params: &[Val<'_>], map: fn(&Row<'_>) -> Result<T>) -> Result<Vec<T>> {
        let rc = self.conn()?;
        let mut stmt = rc.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = vec![];
        while let Some(row) = rows.next()? {
            out.push(map(row)?);
        }
        Ok(out)
    }

    /// The first row `sql` answers, if any.
    pub(crate) fn one<T>(&self, sql: &str, params: &[Val<'_>], map: fn(&Row<'_>) -> Result<T>) -> Result<Option<T>> {
        let rc = self.conn()?;
        let mut stmt = rc.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        rows.next()?.map(map).transpose()
    }
}

/// The sweeper's loop: every [`HOLD`], end the read transactions idle connections hold, until
/// the `Reads` is gone.
fn sweep(reads: &Weak<Reads>) {
    loop {
        std::thread::sleep(HOLD);
        match reads.upgrade() {
            Some(r) => r.release_idle(),
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database file in WAL mode with one table, its writing connection, and the reads on it.
    fn setup(dir: &Path) -> (Connection, Arc<Reads>) {
        let (writer, path) = crate::store::sqlite_changes::tests::wal_file(dir);
        let reads = Reads::open(&path, 0).expect("open reads").expect("a file");
        assert!(reads.counter.is_some(), "a WAL database's index maps");
        (writer, reads)
    }

    fn count(reads: &Reads) -> i64 {
        reads
            .one("SELECT COUNT(*) FROM t", &[], |r| Ok(r.get(0)?))
            .expect("read")
            .expect("a row")
    }

    #[test]
    fn every_read_sees_every_commit_that_returned_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, reads) = setup(dir.path());
        for expected in 0..20 {
            // Every connection in turn, each holding the transaction of its previous read.
            for _ in 0..reads.conns.len() {
                assert_eq!(count(&reads), expected);
            }
            writer.execute("INSERT INTO t VALUES (1)", []).expect("insert");
        }
    }

    #[test]
    fn idle_connections_end_their_transactions_so_a_truncating_checkpoint_gets_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, reads) = setup(dir.path());
        writer.execute("INSERT INTO t VALUES (1)", []).expect("insert");
        for _ in 0..reads.conns.len() {
            assert_eq!(count(&reads), 1);
        }
        // The readers' snapshots include WAL frames: a checkpoint that resets the WAL must wait
        // until no read transaction is open. It is asked without waiting, again and again.
        writer.busy_timeout(Duration::ZERO).expect("busy timeout");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (busy, _, _): (i64, i64, i64) = writer
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .expect("checkpoint");
            if busy == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "idle read transactions still block the checkpoint"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            std::fs::metadata(dir.path().join("probe.db-wal")).expect("wal").len(),
            0
        );
        // And the next read still sees the data.
        assert_eq!(count(&reads), 1);
    }

    #[test]
    fn the_bundled_sqlite_gives_each_connection_its_own_page_cache() {
        // .cargo/config.toml's LIBSQLITE3_FLAGS: without it, all connections share one page
        // cache behind one mutex, which the hot reads on several threads wait on.
        let conn = Connection::open_in_memory().expect("open");
        let mut stmt = conn.prepare("PRAGMA compile_options").expect("prepare");
        let options = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .expect("query")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("options");
        assert!(options.iter().any(|o| o.starts_with("THREADSAFE")), "{options:?}");
        assert!(!options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
        assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{options:?}");
    }
}

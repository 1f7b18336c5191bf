//! The SQLite store's [`ChangeProbe`]: how the credential cache learns that another process
//! (the CLI, an operator's `sqlite3`) committed to the database file.
//!
//! - [`ChangeProbe::observed`] reads the WAL index's change counter (below), a load from
//!   shared memory, once per request. Every commit moves it: this process's and others'.
//! - [`ChangeProbe::others_committed`] asks `PRAGMA data_version` on the writer pool's
//!   connection. That number changes when a connection other than the one asking has committed
//!   since it last asked; this process writes through that one connection only, so it moves
//!   exactly when another process has committed. The pool is configured never to replace that
//!   connection (`SqliteStore::open`): a new connection would start counting afresh, and its
//!   first answer is taken as a change.
//!
//! # The WAL index's change counter
//! In WAL mode every connection to the file, in any process, shares the WAL index (the `-shm`
//! file, mapped into memory). Its header's `iChange` field is a counter the committing
//! connection increments as the last step of every commit, before its commit returns
//! (<https://www.sqlite.org/walformat.html>, "The WAL-Index Header"). So a load of that
//! counter after a commit returned sees the commit: the probe reads it from SQLite's own mapping
//! of the index (the VFS's `xShmMap` on a read-only connection of the probe's own), which stays
//! mapped while that connection is open. It replaced `PRAGMA data_version` on that connection,
//! which began and ended a read transaction (WAL read-mark locks, `fcntl`) and was 13% of a
//! cached verify's CPU. When the database is not in WAL mode, or the index cannot be mapped or
//! does not look like SQLite's (version 3007000, initialised), the probe falls back to that
//! pragma. The hot reads (`sqlite_reads.rs`) load the same counter to know when the read
//! transaction a connection holds has gone stale.

use super::cache::ChangeProbe;
use crate::error::{Error, Result};
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, ffi};
use sqlx::SqlitePool;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

#[derive(Debug)]
pub struct SqliteChanges {
    /// The mapped WAL index's change counter, when there is one (see the module's comment).
    /// Declared before `monitor`, whose open connection keeps the mapping alive.
    counter: Option<WalChangeCounter>,
    monitor: Mutex<Connection>,
    writer: SqlitePool,
    /// The writer connection's last answer; `None` before the first.
    writer_seen: tokio::sync::Mutex<Option<i64>>,
}

impl SqliteChanges {
    /// A probe of the database file at `path`, beside the store's `writer` pool. `None` for an
    /// in-memory database (no other process can reach it).
    pub fn open(path: &Path, writer: SqlitePool) -> Result<Option<Self>> {
        if !super::sqlite::is_file(path) {
            return Ok(None);
        }
        let monitor =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(|e| Error::Unavailable(format!("cannot open the SQLite database to watch it: {e}")))?;
        let counter = WalChangeCounter::map(&monitor);
        if counter.is_none() {
            tracing::info!(
                "the SQLite database's WAL index cannot be mapped; the credential cache asks PRAGMA data_version per request"
            );
        }
        Ok(Some(SqliteChanges {
            counter,
            monitor: Mutex::new(monitor),
            writer,
            writer_seen: tokio::sync::Mutex::new(None),
        }))
    }

    fn data_version(&self) -> Result<i64> {
        let conn = self.monitor.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stmt = conn.prepare_cached("PRAGMA data_version")?;
        stmt.query_row([], |r| r.get(0)).map_err(Error::from)
    }
}

#[async_trait]
impl ChangeProbe for SqliteChanges {
    fn observed(&self) -> Result<i64> {
        match &self.counter {
            Some(c) => Ok(i64::from(c.load())),
            None => self.data_version(),
        }
    }

    async fn others_committed(&self) -> Result<bool> {
        let mut seen = self.writer_seen.lock().await;
        let now: i64 = sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&self.writer)
            .await?;
        let changed = *seen != Some(now);
        *seen = Some(now);
        Ok(changed)
    }
}

/// The `iChange` field of the WAL index's header, in SQLite's own mapping of the index.
#[derive(Debug)]
pub(crate) struct WalChangeCounter(NonNull<AtomicU32>);

// SAFETY: the pointer is only ever read through an atomic load, from any thread; the memory it
// points to stays mapped while the connection it came from is open (see `WalChangeCounter::map`).
unsafe impl Send for WalChangeCounter {}
// SAFETY: as for `Send`: shared access is atomic loads only.
unsafe impl Sync for WalChangeCounter {}

/// The WAL index's region size (`WALINDEX_PGSZ` in SQLite): `xShmMap` must be asked for it.
const WAL_INDEX_REGION: i32 = 32 * 1024;
/// The header's `iVersion` for every WAL index SQLite has written since 3.7.0.
const WAL_INDEX_VERSION: u32 = 3_007_000;
/// Byte offsets in the header: `iChange` (u32) and `isInit` (u8), in the machine's byte order.
const I_CHANGE: usize = 8;
const IS_INIT: usize = 12;

impl WalChangeCounter {
    /// The counter of the WAL index `conn` uses, or `None` when the database is not in WAL
    /// mode or its index is not mapped memory shaped as documented. The caller must keep `conn`
    /// open (and in WAL mode, which no connection can leave while another has the file open)
    /// for as long as it uses the answer.
    pub(crate) fn map(conn: &Connection) -> Option<Self> {
        // A read opens the WAL index for this connection (in WAL mode); asking the mode first
        // keeps `xShmMap` from creating an index for a database in another mode.
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).ok()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return None;
        }
        let _: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok()?;
        let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
        let mut region: *mut std::ffi::c_void = std::ptr::null_mut();
        // SAFETY: `conn.handle()` is the live connection's handle, used on this thread only
        // while `conn` is borrowed. SQLITE_FCNTL_FILE_POINTER writes the main database's
        // `sqlite3_file` into `file` (documented opcode). Its methods table is SQLite's VFS's;
        // `xShmMap` exists from iVersion 2 and, asked for region 0 without extending, answers
        // the region this process already maps for the connection's WAL index (it opened it
        // above), or null. SQLite unmaps it only when the connection's last use of the index
        // ends, at close.
        let base = unsafe {
            let db = conn.handle();
            let rc = ffi::sqlite3_file_control(
                db,
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&raw mut file).cast(),
            );
            if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
                return None;
            }
            let methods = &*(*file).pMethods;
            let shm_map = methods.xShmMap.filter(|_| methods.iVersion >= 2)?;
            let rc = shm_map(file, 0, WAL_INDEX_REGION, 0, (&raw mut region).cast());
            // A read-only index answers SQLITE_READONLY with the region mapped.
            if rc != ffi::SQLITE_OK && rc != ffi::SQLITE_READONLY {
                return None;
            }
            NonNull::new(region.cast::<u8>())?
        };
        // SAFETY: `base` is the start of a mapped region of WAL_INDEX_REGION bytes, aligned to a
        // page; the header's fields read here lie in its first 48 bytes, `iChange` 4-aligned.
        let (version, is_init, counter) = unsafe {
            (
                (*base.as_ptr().cast::<AtomicU32>()).load(Ordering::Acquire),
                std::ptr::read_volatile(base.as_ptr().add(IS_INIT)),
                base.add(I_CHANGE).cast::<AtomicU32>(),
            )
        };
        (version == WAL_INDEX_VERSION && is_init == 1).then_some(WalChangeCounter(counter))
    }

    pub(crate) fn load(&self) -> u32 {
        // SAFETY: see `map` and the `Send`/`Sync` impls: mapped while the owner's connection is
        // open, aligned, and only read atomically here (the committing process writes it).
        unsafe { self.0.as_ref() }.load(Ordering::Acquire)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A database file in WAL mode with one table `t (x INTEGER)`, and its path (also used by
    /// `sqlite_reads.rs`'s tests).
    pub(crate) fn wal_file(dir: &Path) -> (Connection, std::path::PathBuf) {
        let path = dir.join("probe.db");
        let conn = Connection::open(&path).expect("open");
        conn.pragma_update(None, "journal_mode", "wal").expect("wal");
        conn.execute_batch("CREATE TABLE t (x INTEGER)").expect("create");
        (conn, path)
    }

    #[test]
    fn the_mapped_counter_moves_with_every_commit_of_any_connection_and_only_then() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (writer, path) = wal_file(dir.path());
        let monitor = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open read-only");
        let counter = WalChangeCounter::map(&monitor).expect("a WAL database's index maps");
        let before = counter.load();
        assert_eq!(counter.load(), before, "no commit, no change");
        // Reads (here and on the monitor) move nothing.
        let _: i64 = writer
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("read");
        assert_eq!(counter.load(), before);
        writer.execute("INSERT INTO t VALUES (1)", []).expect("insert");
        let after_one = counter.load();
        assert_ne!(after_one, before, "a commit moves the counter");
        // Another connection stands in for another process: it shares the file's index alone.
        let other = Connection::open(&path).expect("open");
        other.execute("UPDATE t SET x = 2", []).expect("update");
        assert_ne!(counter.load(), after_one, "another connection's commit moves it too");
        // A rolled-back transaction commits nothing.
        let settled = counter.load();
        other
            .execute_batch("BEGIN; INSERT INTO t VALUES (3); ROLLBACK;")
            .expect("rollback");
        assert_eq!(counter.load(), settled);
    }

    #[test]
    fn a_database_not_in_wal_mode_falls_back_to_the_pragma() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rollback.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("CREATE TABLE t (x INTEGER)").expect("create");
        assert!(WalChangeCounter::map(&conn).is_none());
        assert!(
            !dir.path().join("rollback.db-shm").exists(),
            "asking must not create a WAL index"
        );
    }
}

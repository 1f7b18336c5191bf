//! The SQLite store's [`ChangeProbe`]: how the credential cache learns that another process
//! (the CLI, an operator's `sqlite3`) committed to the database file.
//!
//! `PRAGMA data_version` answers a number that changes when a connection other than the one
//! asking has committed since that connection last asked.
//! - [`ChangeProbe::observed`] asks on a read-only connection of its own, opened with rusqlite
//!   so that the question costs a mutex and a read of the WAL index in shared memory, not a hop
//!   to a sqlx worker thread. Every commit moves it: this process's and others'.
//! - [`ChangeProbe::others_committed`] asks on the writer pool's connection. This process
//!   writes through that one connection only, so its number moves exactly when another process
//!   has committed. The pool is configured never to replace that connection (`SqliteStore::open`):
//!   a new connection would start counting afresh, and its first answer is taken as a change.

use super::cache::ChangeProbe;
use crate::error::{Error, Result};
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use sqlx::SqlitePool;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

#[derive(Debug)]
pub struct SqliteChanges {
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
        Ok(Some(SqliteChanges {
            monitor: Mutex::new(monitor),
            writer,
            writer_seen: tokio::sync::Mutex::new(None),
        }))
    }
}

#[async_trait]
impl ChangeProbe for SqliteChanges {
    fn observed(&self) -> Result<i64> {
        let conn = self.monitor.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stmt = conn.prepare_cached("PRAGMA data_version")?;
        stmt.query_row([], |r| r.get(0)).map_err(Error::from)
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

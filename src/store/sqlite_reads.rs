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
//! Both drivers map rows through one set of functions (`Cols` and `FromCols` in sqlite.rs).

use crate::error::{Error, Result};
use rusqlite::{Connection, OpenFlags, Row};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

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

/// Read-only connections to the database file, one per thread that may ask at once.
#[derive(Debug)]
pub(crate) struct Reads {
    conns: Box<[Mutex<Connection>]>,
    next: AtomicUsize,
}

impl Reads {
    /// Connections to the database at `path`; `None` for an in-memory database (only sqlx's own
    /// connections can reach it).
    pub(crate) fn open(path: &Path) -> Result<Option<Self>> {
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
                Ok(Mutex::new(c))
            })
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| Error::Unavailable(format!("cannot open the SQLite database: {e}")))?;
        Ok(Some(Reads {
            conns: conns.into_boxed_slice(),
            next: AtomicUsize::new(0),
        }))
    }

    /// A free connection if there is one, else the next in turn.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.conns.len();
        for i in 0..n {
            if let Ok(c) = self.conns[(start + i) % n].try_lock() {
                return c;
            }
        }
        self.conns[start % n].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The rows `sql` answers, mapped by `map`.
    pub(crate) fn all<T>(&self, sql: &str, params: &[Val<'_>], map: fn(&Row<'_>) -> Result<T>) -> Result<Vec<T>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = vec![];
        while let Some(row) = rows.next()? {
            out.push(map(row)?);
        }
        Ok(out)
    }

    /// The first row `sql` answers, if any.
    pub(crate) fn one<T>(&self, sql: &str, params: &[Val<'_>], map: fn(&Row<'_>) -> Result<T>) -> Result<Option<T>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        rows.next()?.map(map).transpose()
    }
}

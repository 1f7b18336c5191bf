//! The embedded default store: SQLite in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so transactions never race for the
//! write lock inside one process (no SQLITE_BUSY on lock upgrades); other processes (the CLI
//! against a running server's file) wait on the busy timeout. Reads use their own pool and are
//! never blocked by the writer in WAL mode.

use super::foreign_sqlite as f;
use std::sync::Arc;
#[path = "sqlite_batch.rs"]
pub mod batch;
#[path = "sqlite_reads.rs"]
mod reads;
use super::postgres::PoolSettings;
use super::{Bootstrap, ConsumeOutcome, CredentialFilter, Store};
use crate::clock::{from_micros, to_micros};
use crate::core::credential::{Credential, Kind};
use crate::core::event::{Event, NewEvent};
use crate::core::foreign::{
    DevicePath, DeviceTarget, ForeignApp, ForeignDevice, ForeignKey, KeyFilter, KeyMode, KeyWrite, Stamp,
};
use crate::error::{Error, Result};
use crate::model::{ApiKey, Lock, LoginToken, Organization, TokenKind, User};
use async_trait::async_trait;
use batch::{Op, Writes};
use chrono::{DateTime, Utc};
use reads::{Reads, Val};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The credential writes and event appends: in groups (`sqlite_group_commit`) or one by one.
    writes: Writes,
    /// The hot reads on the calling thread (`sqlite_reads.rs`); `None` for an in-memory database.
    reads: Option<std::sync::Arc<Reads>>,
}

/// The credential columns as a literal, for `concat!` in [`sql`].
macro_rules! cred_cols {
    () => {
        "id, org_id, kind, owner_id, name, prefix, hash, scopes, not_before, expires_at, max_uses, \
     used_count, allowed_users, subject, metadata, created_at, created_by, updated_at, updated_by, revoked_at, revoked_by"
    };
}

const CRED_COLS: &str = cred_cols!();

/// The position of each column in [`CRED_COLS`]: every credential read SELECTs exactly that list
/// (or RETURNs it), so `cred_from` reads by position, not by name (a name is looked up by
/// comparing it with every column's name, for every column of every row).
mod cred_col {
    pub const ID: usize = 0;
    pub const ORG_ID: usize = 1;
    pub const KIND: usize = 2;
    pub const OWNER_ID: usize = 3;
    pub const NAME: usize = 4;
    pub const PREFIX: usize = 5;
    pub const HASH: usize = 6;
    pub const SCOPES: usize = 7;
    pub const NOT_BEFORE: usize = 8;
    pub const EXPIRES_AT: usize = 9;
    pub const MAX_USES: usize = 10;
    pub const USED_COUNT: usize = 11;
    pub const ALLOWED_USERS: usize = 12;
    pub const SUBJECT: usize = 13;
    pub const METADATA: usize = 14;
    pub const CREATED_AT: usize = 15;
    pub const CREATED_BY: usize = 16;
    pub const UPDATED_AT: usize = 17;
    pub const UPDATED_BY: usize = 18;
    pub const REVOKED_AT: usize = 19;
    pub const REVOKED_BY: usize = 20;
    /// Each name at its position (checked against `CRED_COLS` by a test).
    #[cfg(test)]
    pub const NAMES: [(usize, &str); 21] = [
        (ID, "id"),
        (ORG_ID, "org_id"),
        (KIND, "kind"),
        (OWNER_ID, "owner_id"),
        (NAME, "name"),
        (PREFIX, "prefix"),
        (HASH, "hash"),
        (SCOPES, "scopes"),
        (NOT_BEFORE, "not_before"),
        (EXPIRES_AT, "expires_at"),
        (MAX_USES, "max_uses"),
        (USED_COUNT, "used_count"),
        (ALLOWED_USERS, "allowed_users"),
        (SUBJECT, "subject"),
        (METADATA, "metadata"),
        (CREATED_AT, "created_at"),
        (CREATED_BY, "created_by"),
        (UPDATED_AT, "updated_at"),
        (UPDATED_BY, "updated_by"),
        (REVOKED_AT, "revoked_at"),
        (REVOKED_BY, "revoked_by"),
    ];
}

/// The hot reads' SQL, public so that the query-plan test (`tests/store/hot_plans.rs`) explains
/// exactly what the store runs; each names the index it is meant to use (asserted there).
pub mod sql {
    /// `credentials.hash` UNIQUE (`sqlite_autoindex_credentials_2`).
    pub const FIND_CREDENTIAL_BY_HASH: &str = concat!("SELECT ", cred_cols!(), " FROM credentials WHERE hash = ?");
    /// A use, counted only while the key is usable (the writer's `consume_use`): the primary key
    /// (`sqlite_autoindex_credentials_1`, or `credentials_org`).
    pub const CONSUME_USE: &str = concat!(
        "UPDATE credentials SET used_count = used_count + 1 \
         WHERE org_id = ?1 AND id = ?2 AND revoked_at IS NULL \
           AND (not_before IS NULL OR not_before <= ?3) AND (expires_at IS NULL OR expires_at > ?3) \
           AND (max_uses IS NULL OR used_count < max_uses) \
         RETURNING ",
        cred_cols!()
    );
    /// The primary key (`sqlite_autoindex_credentials_1`).
    pub const FIND_CREDENTIAL: &str = concat!("SELECT ", cred_cols!(), " FROM credentials WHERE id = ?");
    /// The primary key (or `credentials_org`, whose prefix is the same single row).
    pub const GET_CREDENTIAL: &str = concat!("SELECT ", cred_cols!(), " FROM credentials WHERE org_id = ? AND id = ?");
    /// The digest filter's pages: `credentials.hash` UNIQUE (`sqlite_autoindex_credentials_2`),
    /// covering, in order.
    pub const CREDENTIAL_DIGESTS_AFTER: &str = "SELECT hash FROM credentials WHERE hash > ? ORDER BY hash LIMIT ?";
    pub const COUNT_CREDENTIALS: &str = "SELECT COUNT(*) FROM credentials";
    /// `api_keys.hash` UNIQUE (`sqlite_autoindex_api_keys_2`).
    pub const FIND_API_KEY: &str = "SELECT * FROM api_keys WHERE hash = ?";
    /// `api_keys_org_created` (migration 0005): in order, no sort.
    pub const LIST_API_KEYS: &str = "SELECT * FROM api_keys WHERE org_id = ? ORDER BY created_at, id";
    /// The primary key (`sqlite_autoindex_login_tokens_1`).
    pub const FIND_LOGIN_TOKEN: &str = "SELECT * FROM login_tokens WHERE hash = ? AND kind = ? AND expires_at > ?";
    /// The primary key (`sqlite_autoindex_users_1`).
    pub const GET_USER: &str = "SELECT * FROM users WHERE org_id = ? AND id = ?";
    pub const FIND_USER: &str = "SELECT * FROM users WHERE id = ?";
    /// `users.username` UNIQUE (`sqlite_autoindex_users_2`).
    pub const FIND_USER_BY_USERNAME: &str = "SELECT * FROM users WHERE username = ?";
    /// `users_org_created` (migration 0005): in order, no sort.
    pub const LIST_USERS: &str = "SELECT * FROM users WHERE org_id = ? ORDER BY created_at, id";
    /// The primary key (`sqlite_autoindex_organizations_1`).
    pub const GET_ORG: &str = "SELECT * FROM organizations WHERE id = ?";
    /// The rowid.
    pub const GET_LOCK: &str = "SELECT * FROM locks WHERE org_id = ? AND id = ?";
    pub const FIND_LOCK: &str = "SELECT * FROM locks WHERE id = ?";
    /// `locks_org`: in order, no sort.
    pub const LIST_LOCKS: &str = "SELECT * FROM locks WHERE org_id = ? ORDER BY id";
    /// `events_org_seq`: the feed after a position.
    pub const LIST_EVENTS: &str = "SELECT * FROM events WHERE org_id = ? AND seq > ? ORDER BY seq LIMIT ?";
    /// `UNIQUE (aggregate_id, version)` (`sqlite_autoindex_events_1`): in order, no sort.
    pub const EVENTS_OF: &str = "SELECT * FROM events WHERE org_id = ? AND aggregate_id = ? ORDER BY version";
}

/// The credential listing's SQL for the filters that are set: each one is an equality (or the
/// cursor's range) in the text, so the planner puts it on `credentials_owner`, `credentials_org_kind`
/// or `credentials_org`. (`(? IS NULL OR col = ?)` kept SQLite on `credentials_org`, reading every
/// credential of the organization to list one user's personal keys.) Parameters, in order:
/// org_id, then kind, owner_id and after when set, then the limit.
pub fn list_credentials_sql(f: &CredentialFilter) -> String {
    let mut sql = format!("SELECT {CRED_COLS} FROM credentials WHERE org_id = ?");
    if f.kind.is_some() {
        sql.push_str(" AND kind = ?");
    }
    if f.owner_id.is_some() {
        sql.push_str(" AND owner_id = ?");
    }
    if f.after.is_some() {
        sql.push_str(" AND id > ?");
    }
    sql.push_str(" ORDER BY id LIMIT ?");
    sql
}

/// The most `sqlite_mmap_size` can be: SQLite's `SQLITE_MAX_MMAP_SIZE` on Linux (a larger
/// `PRAGMA mmap_size` is cut down to it).
pub const MAX_MMAP_SIZE: u64 = 0x7fff_0000;

impl SqliteStore {
    /// Open with the default settings (group commit on, no memory map).
    pub async fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &PoolSettings::default()).await
    }

    /// Open with the `sqlite_` settings of `settings`: `sqlite_group_commit` puts concurrent
    /// credential writes and event appends in one transaction and one commit (see
    /// `sqlite_batch.rs`); `sqlite_mmap_size` is every connection's `PRAGMA mmap_size`.
    pub async fn open_with(url: &str, settings: &PoolSettings) -> Result<Self> {
        let group_commit = settings.sqlite_group_commit;
        let mmap_size = settings.sqlite_mmap_size.min(MAX_MMAP_SIZE);
        let mut opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::invalid("database", format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before it is answered, so a power cut cannot take back a
            // recorded use (which would let a key be used past max_uses) or its event.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if mmap_size > 0 {
            opts = opts.pragma("mmap_size", mmap_size.to_string());
        }
        private_files(opts.get_filename());
        // Exactly one writer connection, never closed or replaced while the store is open.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await
            .map_err(|e| Error::Unavailable(format!("cannot open the SQLite database: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone().read_only(true))
            .await
            .map_err(|e| Error::Unavailable(format!("cannot open the SQLite database: {e}")))?;
        let writes = Writes::new(writer.clone(), group_commit);
        let reads = Reads::open(opts.get_filename(), mmap_size)?;
        Ok(Self {
            writer,
            reader,
            writes,
            reads,
        })
    }

    /// The row a hot read answers: on the calling thread when it can (`sqlite_reads.rs`), else on
    /// sqlx's read pool.
    async fn read_one<T: FromCols>(&self, sql: &str, params: &[Val<'_>]) -> Result<Option<T>> {
        if let Some(r) = &self.reads {
            return r.one(sql, params, |row| T::from_cols(row));
        }
        bind(sqlx::query(sql), params)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(T::from_cols)
            .transpose()
    }

    /// The rows a hot read answers (see [`Self::read_one`]).
    async fn read_all<T: FromCols>(&self, sql: &str, params: &[Val<'_>]) -> Result<Vec<T>> {
        match &self.reads {
            Some(r) => r.all(sql, params, |row| T::from_cols(row)),
            None => self.pool_all(sql, params).await,
        }
    }

    /// The rows `sql` answers, read on sqlx's read pool.
    async fn pool_all<T: FromCols>(&self, sql: &str, params: &[Val<'_>]) -> Result<Vec<T>> {
        bind(sqlx::query(sql), params)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(T::from_cols)
            .collect()
    }
}

fn bind<'q>(
    mut q: sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    params: &'q [Val<'q>],
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for p in params {
        q = match p {
            Val::Text(s) => q.bind(s.as_str()),
            Val::Blob(b) => q.bind(*b),
            Val::Int(i) => q.bind(*i),
        };
    }
    q
}

/// Is the database at `path` a file (not `:memory:`, sqlx's name for `sqlite::memory:`, or a
/// nameless temporary database)?
pub(super) fn is_file(path: &std::path::Path) -> bool {
    let name = path.to_string_lossy();
    !(name.is_empty() || name.starts_with(':') || name.starts_with("file:sqlx-in-memory-"))
}

/// Keep the database and its WAL and shared-memory files readable by the owner only. A new
/// database file is created 0600 before SQLite opens it (SQLite gives its `-wal` and `-shm`
/// files the database file's mode); an existing one that others may read is narrowed, with one
/// log line. Failures are logged, never fatal: the files may belong to another user.
fn private_files(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if !is_file(path) {
            return;
        }
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        if created.is_ok() {
            return;
        }
        let mut narrowed = vec![];
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let p = std::path::PathBuf::from(p);
            let Ok(meta) = std::fs::metadata(&p) else { continue };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o700)) {
                    Ok(()) => narrowed.push(format!("{} ({mode:o} -> {:o})", p.display(), mode & 0o700)),
                    Err(e) => {
                        tracing::warn!(file = %p.display(), error = %e, "cannot narrow the database file's permissions")
                    }
                }
            }
        }
        if !narrowed.is_empty() {
            tracing::warn!(files = ?narrowed, "narrowed the database files' permissions to the owner only");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// A type both SQLite drivers decode a column into.
pub(super) trait ColType:
    for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite> + rusqlite::types::FromSql
{
}
impl<T> ColType for T where T: for<'r> sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite> + rusqlite::types::FromSql {}

/// A row of either SQLite driver: sqlx's (the pools) or rusqlite's (the synchronous hot reads of
/// `sqlite_reads.rs`), so that one function maps a row to a model for both.
pub(super) trait Cols {
    fn col<T: ColType>(&self, name: &str) -> Result<T>;
    /// The column at `idx` of the statement's result (for a fixed list such as [`CRED_COLS`]).
    fn col_at<T: ColType>(&self, idx: usize) -> Result<T>;
    /// The text column at `idx`, borrowed from the row (`None` for NULL), handed to `f`.
    fn text_at<R>(&self, idx: usize, f: impl FnOnce(Option<&str>) -> Result<R>) -> Result<R>;
}

impl Cols for SqliteRow {
    fn col<T: ColType>(&self, name: &str) -> Result<T> {
        Ok(self.try_get(name)?)
    }
    fn col_at<T: ColType>(&self, idx: usize) -> Result<T> {
        Ok(self.try_get(idx)?)
    }
    fn text_at<R>(&self, idx: usize, f: impl FnOnce(Option<&str>) -> Result<R>) -> Result<R> {
        f(self.try_get::<Option<&str>, _>(idx)?)
    }
}

impl Cols for rusqlite::Row<'_> {
    fn col<T: ColType>(&self, name: &str) -> Result<T> {
        Ok(self.get(name)?)
    }
    fn col_at<T: ColType>(&self, idx: usize) -> Result<T> {
        Ok(self.get(idx)?)
    }
    fn text_at<R>(&self, idx: usize, f: impl FnOnce(Option<&str>) -> Result<R>) -> Result<R> {
        use rusqlite::types::ValueRef;
        match self.get_ref(idx)? {
            ValueRef::Null => f(None),
            ValueRef::Text(t) => f(Some(std::str::from_utf8(t).map_err(Error::internal)?)),
            other => Err(Error::internal(format!(
                "column {idx}: expected text, found {}",
                other.data_type()
            ))),
        }
    }
}

/// The text column at `idx`, which must not be NULL, handed to `f`.
fn text_at<R>(row: &impl Cols, idx: usize, f: impl FnOnce(&str) -> Result<R>) -> Result<R> {
    row.text_at(idx, |t| {
        f(t.ok_or_else(|| Error::internal(format!("column {idx} is NULL")))?)
    })
}

fn uuid_at(row: &impl Cols, idx: usize) -> Result<Uuid> {
    text_at(row, idx, |s| Uuid::parse_str(s).map_err(Error::internal))
}

fn opt_uuid_at(row: &impl Cols, idx: usize) -> Result<Option<Uuid>> {
    row.text_at(idx, |s| {
        s.map(|s| Uuid::parse_str(s).map_err(Error::internal)).transpose()
    })
}

fn time_at(row: &impl Cols, idx: usize) -> Result<DateTime<Utc>> {
    Ok(from_micros(row.col_at::<i64>(idx)?))
}

fn opt_time_at(row: &impl Cols, idx: usize) -> Result<Option<DateTime<Utc>>> {
    Ok(row.col_at::<Option<i64>>(idx)?.map(from_micros))
}

/// A JSON array column; the usual empty `[]` without running the parser.
fn json_vec_at<T: serde::de::DeserializeOwned>(row: &impl Cols, idx: usize) -> Result<Vec<T>> {
    text_at(row, idx, |s| match s {
        "[]" => Ok(Vec::new()),
        s => serde_json::from_str(s).map_err(Error::internal),
    })
}

/// A JSON column of any value; the usual empty defaults (`null`, `{}`, `[]`) without running
/// the parser.
fn json_value_at(row: &impl Cols, idx: usize) -> Result<serde_json::Value> {
    text_at(row, idx, |s| match s {
        "null" => Ok(serde_json::Value::Null),
        "{}" => Ok(serde_json::Value::Object(serde_json::Map::new())),
        "[]" => Ok(serde_json::Value::Array(Vec::new())),
        s => serde_json::from_str(s).map_err(Error::internal),
    })
}

/// A model read from a row of either driver.
trait FromCols: Sized {
    fn from_cols(row: &impl Cols) -> Result<Self>;
}

macro_rules! from_cols {
    ($($t:ty => $f:ident),* $(,)?) => {
        $(impl FromCols for $t {
            fn from_cols(row: &impl Cols) -> Result<Self> {
                $f(row)
            }
        })*
    };
}
from_cols!(Organization => org_from, User => user_from, ApiKey => api_key_from, LoginToken => token_from, Credential => cred_from);

/// One stored digest (the digest filter's pages).
struct Digest(Vec<u8>);

impl FromCols for Digest {
    fn from_cols(row: &impl Cols) -> Result<Self> {
        row.col_at(0).map(Digest)
    }
}

pub(super) fn uuid_col(row: &impl Cols, col: &str) -> Result<Uuid> {
    let s: String = row.col(col)?;
    Uuid::parse_str(&s).map_err(Error::internal)
}

pub(super) fn opt_uuid_col(row: &impl Cols, col: &str) -> Result<Option<Uuid>> {
    let s: Option<String> = row.col(col)?;
    s.map(|s| Uuid::parse_str(&s).map_err(Error::internal)).transpose()
}

pub(super) fn time_col(row: &impl Cols, col: &str) -> Result<DateTime<Utc>> {
    Ok(from_micros(row.col::<i64>(col)?))
}

fn opt_time_col(row: &impl Cols, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(row.col::<Option<i64>>(col)?.map(from_micros))
}

fn json_col<T: serde::de::DeserializeOwned>(row: &impl Cols, col: &str) -> Result<T> {
    let s: String = row.col(col)?;
    serde_json::from_str(&s).map_err(Error::internal)
}

fn to_json(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(Error::internal)
}

fn org_from(row: &impl Cols) -> Result<Organization> {
    Ok(Organization {
        id: uuid_col(row, "id")?,
        name: row.col("name")?,
        is_system: row.col::<i64>("is_system")? != 0,
        created_at: time_col(row, "created_at")?,
    })
}

fn user_from(row: &impl Cols) -> Result<User> {
    Ok(User {
        id: uuid_col(row, "id")?,
        org_id: uuid_col(row, "org_id")?,
        username: row.col("username")?,
        password_hash: row.col("password_hash")?,
        person_id: row.col("person_id")?,
        is_admin: row.col::<i64>("is_admin")? != 0,
        created_at: time_col(row, "created_at")?,
        disabled: row.col::<i64>("disabled")? != 0,
        unlocked_at: opt_time_col(row, "unlocked_at")?,
    })
}

fn api_key_from(row: &impl Cols) -> Result<ApiKey> {
    Ok(ApiKey {
        id: uuid_col(row, "id")?,
        org_id: uuid_col(row, "org_id")?,
        name: row.col("name")?,
        prefix: row.col("prefix")?,
        hash: row.col("hash")?,
        created_at: time_col(row, "created_at")?,
        revoked_at: opt_time_col(row, "revoked_at")?,
    })
}

fn token_from(row: &impl Cols) -> Result<LoginToken> {
    Ok(LoginToken {
        hash: row.col("hash")?,
        user_id: uuid_col(row, "user_id")?,
        org_id: uuid_col(row, "org_id")?,
        xsrf_hash: row.col("xsrf_hash")?,
        created_at: time_col(row, "created_at")?,
        expires_at: time_col(row, "expires_at")?,
    })
}

/// A credential from a row of exactly [`CRED_COLS`], in that order (see [`cred_col`]).
fn cred_from(row: &impl Cols) -> Result<Credential> {
    use cred_col as c;
    Ok(Credential {
        id: uuid_at(row, c::ID)?,
        org_id: uuid_at(row, c::ORG_ID)?,
        kind: text_at(row, c::KIND, |k| {
            Kind::parse(k).ok_or_else(|| Error::internal(format!("unknown kind {k}")))
        })?,
        owner_id: opt_uuid_at(row, c::OWNER_ID)?,
        name: row.col_at(c::NAME)?,
        prefix: row.col_at(c::PREFIX)?,
        hash: row.col_at(c::HASH)?,
        scopes: json_vec_at(row, c::SCOPES)?,
        not_before: opt_time_at(row, c::NOT_BEFORE)?,
        expires_at: opt_time_at(row, c::EXPIRES_AT)?,
        max_uses: row.col_at(c::MAX_USES)?,
        used_count: row.col_at(c::USED_COUNT)?,
        allowed_users: json_vec_at(row, c::ALLOWED_USERS)?,
        subject: json_value_at(row, c::SUBJECT)?,
        metadata: json_value_at(row, c::METADATA)?,
        created_at: time_at(row, c::CREATED_AT)?,
        created_by: row.col_at(c::CREATED_BY)?,
        updated_at: time_at(row, c::UPDATED_AT)?,
        updated_by: row.col_at(c::UPDATED_BY)?,
        revoked_at: opt_time_at(row, c::REVOKED_AT)?,
        revoked_by: row.col_at(c::REVOKED_BY)?,
    })
}

fn lock_from(row: &impl Cols) -> Result<Lock> {
    Ok(Lock {
        id: row.col("id")?,
        uuid: uuid_col(row, "uuid")?,
        org_id: uuid_col(row, "org_id")?,
        name: row.col("name")?,
        owner_id: opt_uuid_col(row, "owner_id")?,
        doors: json_col(row, "doors")?,
        created_at: time_col(row, "created_at")?,
    })
}

fn event_from(row: &impl Cols) -> Result<Event> {
    Ok(Event {
        seq: row.col("seq")?,
        aggregate_type: row.col("aggregate_type")?,
        aggregate_id: uuid_col(row, "aggregate_id")?,
        version: row.col("version")?,
        event_type: row.col("type")?,
        data: json_col(row, "data")?,
        actor: row.col("actor")?,
        at: time_col(row, "at")?,
    })
}

/// An event with the next version of its aggregate; parameters: org_id, aggregate_type,
/// aggregate_id, type, data, actor, at. Also run by the group-commit writer (`sqlite_batch.rs`).
const APPEND_EVENT: &str = "INSERT INTO events (org_id, aggregate_type, aggregate_id, version, type, data, actor, at) \
     SELECT ?1, ?2, ?3, COALESCE(MAX(version), 0) + 1, ?4, ?5, ?6, ?7 FROM events WHERE aggregate_id = ?3 \
     RETURNING version";

/// Append an event with the next version of its aggregate, inside the caller's transaction;
/// returns that version.
pub(super) async fn append(tx: &mut Transaction<'_, Sqlite>, e: &NewEvent) -> Result<i64> {
    let version: i64 = sqlx::query_scalar(APPEND_EVENT)
        .bind(e.org_id.to_string())
        .bind(e.aggregate_type)
        .bind(e.aggregate_id.to_string())
        .bind(e.event_type)
        .bind(to_json(&e.data)?)
        .bind(&e.actor)
        .bind(to_micros(e.at))
        .fetch_one(&mut **tx)
        .await?;
    Ok(version)
}

async fn insert_org(tx: &mut Transaction<'_, Sqlite>, org: &Organization) -> Result<()> {
    sqlx::query("INSERT INTO organizations (id, name, is_system, created_at) VALUES (?, ?, ?, ?)")
        .bind(org.id.to_string())
        .bind(&org.name)
        .bind(org.is_system as i64)
        .bind(to_micros(org.created_at))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_user(tx: &mut Transaction<'_, Sqlite>, u: &User) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, org_id, username, password_hash, person_id, is_admin, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(u.id.to_string())
    .bind(u.org_id.to_string())
    .bind(&u.username)
    .bind(&u.password_hash)
    .bind(u.person_id)
    .bind(u.is_admin as i64)
    .bind(to_micros(u.created_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_api_key(tx: &mut Transaction<'_, Sqlite>, k: &ApiKey) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, name, prefix, hash, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(k.id.to_string())
    .bind(k.org_id.to_string())
    .bind(&k.name)
    .bind(&k.prefix)
    .bind(&k.hash)
    .bind(to_micros(k.created_at))
    .bind(k.revoked_at.map(to_micros))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn token_kind(k: TokenKind) -> &'static str {
    match k {
        TokenKind::Ticket => "ticket",
        TokenKind::Session => "session",
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("migrations/sqlite")
            .run(&self.writer)
            .await
            .map_err(|e| Error::internal(format!("migration failed: {e}")))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    fn change_probe(&self) -> Option<std::sync::Arc<dyn super::cache::ChangeProbe>> {
        let path = self.writer.connect_options().get_filename().to_path_buf();
        match super::sqlite_changes::SqliteChanges::open(&path, self.writer.clone()) {
            Ok(probe) => probe.map(|p| std::sync::Arc::new(p) as std::sync::Arc<dyn super::cache::ChangeProbe>),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the SQLite file for other processes' writes; the credential cache is off");
                None
            }
        }
    }

    async fn bootstrap(&self, b: &Bootstrap) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations WHERE is_system = 1")
            .fetch_one(&mut *tx)
            .await?;
        if n > 0 {
            return Ok(false);
        }
        insert_org(&mut tx, &b.org).await?;
        insert_user(&mut tx, &b.user).await?;
        for e in &b.events {
            append(&mut tx, e).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn create_org(&self, org: &Organization, api_key: &ApiKey, events: &[NewEvent]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        insert_org(&mut tx, org).await.map_err(|e| match e {
            Error::Conflict(_) => Error::Conflict(format!("an organization named {:?} already exists", org.name)),
            e => e,
        })?;
        insert_api_key(&mut tx, api_key).await?;
        for e in events {
            append(&mut tx, e).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_org(&self, id: Uuid) -> Result<Option<Organization>> {
        self.read_one(sql::GET_ORG, &[Val::Text(id.to_string())]).await
    }

    async fn get_org_by_name(&self, name: &str) -> Result<Option<Organization>> {
        sqlx::query("SELECT * FROM organizations WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(org_from)
            .transpose()
    }

    async fn list_orgs(&self) -> Result<Vec<Organization>> {
        sqlx::query("SELECT * FROM organizations ORDER BY created_at, id")
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(org_from)
            .collect()
    }

    async fn create_user(&self, user: &User, event: &NewEvent) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        insert_user(&mut tx, user).await.map_err(|e| match e {
            Error::Conflict(_) => Error::Conflict("a user with that username or person id already exists".into()),
            e => e,
        })?;
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_user(&self, org_id: Uuid, id: Uuid) -> Result<Option<User>> {
        self.read_one(
            sql::GET_USER,
            &[Val::Text(org_id.to_string()), Val::Text(id.to_string())],
        )
        .await
    }

    async fn find_user(&self, id: Uuid) -> Result<Option<User>> {
        self.read_one(sql::FIND_USER, &[Val::Text(id.to_string())]).await
    }

    async fn update_user(&self, user: &User, end_tokens: bool, event: &NewEvent) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query(
            "UPDATE users SET password_hash = ?, disabled = ?, unlocked_at = ? WHERE org_id = ? AND id = ?",
        )
        .bind(&user.password_hash)
        .bind(user.disabled as i64)
        .bind(user.unlocked_at.map(to_micros))
        .bind(user.org_id.to_string())
        .bind(user.id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        if end_tokens {
            sqlx::query("DELETE FROM login_tokens WHERE org_id = ? AND user_id = ?")
                .bind(user.org_id.to_string())
                .bind(user.id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>> {
        sqlx::query(sql::FIND_USER_BY_USERNAME)
            .bind(username)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    async fn list_users(&self, org_id: Uuid) -> Result<Vec<User>> {
        sqlx::query(sql::LIST_USERS)
            .bind(org_id.to_string())
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(user_from)
            .collect()
    }

    async fn create_api_key(&self, key: &ApiKey, event: &NewEvent) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        insert_api_key(&mut tx, key).await?;
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_api_key(&self, hash: &[u8]) -> Result<Option<ApiKey>> {
        self.read_one(sql::FIND_API_KEY, &[Val::Blob(hash)]).await
    }

    async fn list_api_keys(&self, org_id: Uuid) -> Result<Vec<ApiKey>> {
        sqlx::query(sql::LIST_API_KEYS)
            .bind(org_id.to_string())
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(api_key_from)
            .collect()
    }

    async fn revoke_api_key(
        &self,
        org_id: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
        event: &NewEvent,
    ) -> Result<Option<ApiKey>> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE org_id = ? AND id = ? AND revoked_at IS NULL")
            .bind(to_micros(at))
            .bind(org_id.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if done == 1 {
            append(&mut tx, event).await?;
        }
        let row = sqlx::query("SELECT * FROM api_keys WHERE org_id = ? AND id = ?")
            .bind(org_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.as_ref().map(api_key_from).transpose()
    }

    async fn create_login_token(&self, kind: TokenKind, t: &LoginToken, event: &NewEvent) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        // Expired tokens are swept on the way, so the table does not grow without bound.
        sqlx::query("DELETE FROM login_tokens WHERE expires_at <= ?")
            .bind(to_micros(t.created_at))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO login_tokens (hash, kind, user_id, org_id, xsrf_hash, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.hash)
        .bind(token_kind(kind))
        .bind(t.user_id.to_string())
        .bind(t.org_id.to_string())
        .bind(&t.xsrf_hash)
        .bind(to_micros(t.created_at))
        .bind(to_micros(t.expires_at))
        .execute(&mut *tx)
        .await?;
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_login_token(&self, kind: TokenKind, hash: &[u8], now: DateTime<Utc>) -> Result<Option<LoginToken>> {
        let params = [
            Val::Blob(hash),
            Val::Text(token_kind(kind).to_string()),
            Val::Int(to_micros(now)),
        ];
        self.read_one(sql::FIND_LOGIN_TOKEN, &params).await
    }

    async fn delete_login_token(&self, kind: TokenKind, hash: &[u8], event: &NewEvent) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query("DELETE FROM login_tokens WHERE hash = ? AND kind = ?")
            .bind(hash)
            .bind(token_kind(kind))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            append(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn insert_credential(&self, c: &Credential, event: &NewEvent) -> Result<i64> {
        self.writes
            .run(Op::Insert {
                cred: c.clone(),
                event: event.clone(),
            })
            .await?
            .version()
    }

    async fn get_credential(&self, org_id: Uuid, id: Uuid) -> Result<Option<Credential>> {
        self.read_one(
            sql::GET_CREDENTIAL,
            &[Val::Text(org_id.to_string()), Val::Text(id.to_string())],
        )
        .await
    }

    async fn find_credential_by_hash(&self, hash: &[u8]) -> Result<Option<Arc<Credential>>> {
        let found: Option<Credential> = self.read_one(sql::FIND_CREDENTIAL_BY_HASH, &[Val::Blob(hash)]).await?;
        Ok(found.map(Arc::new))
    }

    async fn count_credentials(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(sql::COUNT_CREDENTIALS)
            .fetch_one(&self.reader)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn credential_digests_after(&self, after: &[u8], limit: u32) -> Result<Vec<Vec<u8>>> {
        let page: Vec<Digest> = self
            .read_all(
                sql::CREDENTIAL_DIGESTS_AFTER,
                &[Val::Blob(after), Val::Int(i64::from(limit))],
            )
            .await?;
        Ok(page.into_iter().map(|d| d.0).collect())
    }

    async fn find_credential(&self, id: Uuid) -> Result<Option<Credential>> {
        self.read_one(sql::FIND_CREDENTIAL, &[Val::Text(id.to_string())]).await
    }

    async fn list_credentials(&self, org_id: Uuid, f: &CredentialFilter) -> Result<Vec<Credential>> {
        let sql = list_credentials_sql(f);
        let mut params = vec![Val::Text(org_id.to_string())];
        params.extend(f.kind.map(|k| Val::Text(k.as_str().to_string())));
        params.extend(f.owner_id.map(|o| Val::Text(o.to_string())));
        params.extend(f.after.map(|a| Val::Text(a.to_string())));
        params.push(Val::Int(i64::from(f.limit)));
        if f.owner_id.is_some() {
            // One owner's keys (the Tedee and personal-key lists): a short read on the calling
            // thread. Other listings may be long and stay on sqlx's pool.
            return self.read_all(&sql, &params).await;
        }
        self.pool_all(&sql, &params).await
    }

    async fn update_credential(&self, c: &Credential, event: &NewEvent) -> Result<Option<i64>> {
        self.writes
            .run(Op::Update {
                cred: c.clone(),
                event: event.clone(),
            })
            .await?
            .updated()
    }

    async fn revoke_credential(
        &self,
        org_id: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
        by: &str,
        event: &NewEvent,
    ) -> Result<Option<(Credential, Option<i64>)>> {
        self.writes
            .run(Op::Revoke {
                org_id,
                id,
                at,
                by: by.to_string(),
                event: event.clone(),
            })
            .await?
            .revoked()
    }

    async fn consume_use(
        &self,
        org_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        event: &NewEvent,
        extra: &[NewEvent],
    ) -> Result<ConsumeOutcome> {
        self.writes
            .run(Op::Consume {
                org_id,
                id,
                now,
                event: event.clone(),
                extra: extra.to_vec(),
            })
            .await?
            .consumed()
    }

    async fn create_lock(&self, lock: &Lock, event: &NewEvent) -> Result<Lock> {
        let mut tx = self.writer.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO locks (uuid, org_id, name, owner_id, doors, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(lock.uuid.to_string())
        .bind(lock.org_id.to_string())
        .bind(&lock.name)
        .bind(lock.owner_id.map(|u| u.to_string()))
        .bind(to_json(&lock.doors)?)
        .bind(to_micros(lock.created_at))
        .fetch_one(&mut *tx)
        .await?;
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(Lock { id, ..lock.clone() })
    }

    async fn get_lock(&self, org_id: Uuid, id: i64) -> Result<Option<Lock>> {
        sqlx::query(sql::GET_LOCK)
            .bind(org_id.to_string())
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(lock_from)
            .transpose()
    }

    async fn find_lock(&self, id: i64) -> Result<Option<Lock>> {
        sqlx::query(sql::FIND_LOCK)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(lock_from)
            .transpose()
    }

    async fn list_locks(&self, org_id: Uuid) -> Result<Vec<Lock>> {
        sqlx::query(sql::LIST_LOCKS)
            .bind(org_id.to_string())
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(lock_from)
            .collect()
    }

    async fn get_foreign_app(&self, org_id: Uuid, id: i32) -> Result<Option<ForeignApp>> {
        f::app_by_id(&self.reader, org_id, id).await
    }

    async fn get_foreign_app_by_name(&self, org_id: Uuid, name: &str) -> Result<Option<ForeignApp>> {
        f::app_by_name(&self.reader, org_id, name).await
    }

    async fn save_foreign_app(&self, id: i32, name: &str, stamp: &Stamp) -> Result<Option<ForeignApp>> {
        f::save_app(&self.writer, id, name, stamp).await
    }

    async fn delete_foreign_app(&self, id: i32, stamp: &Stamp) -> Result<bool> {
        f::delete_app(&self.writer, id, stamp).await
    }

    async fn list_foreign_devices(&self, org_id: Uuid, app_id: i32) -> Result<Vec<ForeignDevice>> {
        f::list_devices(&self.reader, org_id, app_id).await
    }

    async fn get_foreign_device(&self, org_id: Uuid, id: i32) -> Result<Option<ForeignDevice>> {
        f::device_by_id(&self.reader, org_id, id).await
    }

    async fn get_foreign_device_at(&self, org_id: Uuid, path: &DevicePath) -> Result<Option<ForeignDevice>> {
        f::device_at(&self.reader, org_id, path).await
    }

    async fn save_foreign_device(
        &self,
        app: &str,
        target: &DeviceTarget,
        rename: Option<(&str, &str)>,
        touch: bool,
        stamp: &Stamp,
    ) -> Result<Option<ForeignDevice>> {
        f::save_device(&self.writer, app, target, rename, touch, stamp).await
    }

    async fn delete_foreign_device(&self, app: &str, target: &DeviceTarget, stamp: &Stamp) -> Result<bool> {
        f::delete_device(&self.writer, app, target, stamp).await
    }

    async fn list_foreign_keys(
        &self,
        org_id: Uuid,
        device_id: i32,
        filter: &KeyFilter,
        limit: u32,
    ) -> Result<Vec<ForeignKey>> {
        f::keys_of_device(&self.reader, org_id, device_id, filter, i64::from(limit)).await
    }

    async fn list_app_foreign_keys(&self, org_id: Uuid, app_id: i32, limit: u32) -> Result<Vec<ForeignKey>> {
        f::list_app_keys(&self.reader, org_id, app_id, limit).await
    }

    async fn get_foreign_key_by_value(
        &self,
        org_id: Uuid,
        device_id: i32,
        key_name: &str,
        value: &str,
        table_name: Option<&str>,
    ) -> Result<Option<ForeignKey>> {
        f::key_by_value(&self.reader, org_id, device_id, key_name, value, table_name).await
    }

    async fn foreign_keys_on_entity(
        &self,
        org_id: Uuid,
        table_name: &str,
        record_id: i32,
        limit: u32,
    ) -> Result<Vec<(String, String, ForeignKey)>> {
        f::keys_on_entity(&self.reader, org_id, table_name, record_id, limit).await
    }

    async fn save_foreign_key(
        &self,
        path: &DevicePath,
        key: &KeyWrite,
        mode: KeyMode,
        stamp: &Stamp,
    ) -> Result<ForeignKey> {
        f::save_key(&self.writer, path, key, mode, stamp).await
    }

    async fn delete_foreign_keys(&self, path: &DevicePath, filter: &KeyFilter, stamp: &Stamp) -> Result<u64> {
        f::delete_keys(&self.writer, path, filter, stamp).await
    }

    async fn append_event(&self, event: &NewEvent) -> Result<i64> {
        self.writes.run(Op::Append { event: event.clone() }).await?.version()
    }

    async fn list_events(&self, org_id: Uuid, after: i64, limit: u32) -> Result<Vec<Event>> {
        sqlx::query(sql::LIST_EVENTS)
            .bind(org_id.to_string())
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(event_from)
            .collect()
    }

    async fn events_of(&self, org_id: Uuid, aggregate_id: Uuid) -> Result<Vec<Event>> {
        sqlx::query(sql::EVENTS_OF)
            .bind(org_id.to_string())
            .bind(aggregate_id.to_string())
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(event_from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cred_from` reads by position: the positions name `CRED_COLS` in order.
    #[test]
    fn credential_column_positions_match_the_select_list() {
        let names: Vec<&str> = CRED_COLS.split(',').map(str::trim).collect();
        assert_eq!(names.len(), cred_col::NAMES.len());
        for (idx, name) in cred_col::NAMES {
            assert_eq!(names[idx], name, "position {idx}");
        }
    }

    /// `sqlite_mmap_size` reaches every connection: the writer, sqlx's read pool and the hot
    /// reads; a size past SQLite's limit is cut down to it, and 0 maps nothing.
    #[tokio::test]
    async fn the_memory_map_size_reaches_every_connection() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kg.db", dir.path().display());
        for (asked, expected) in [(1 << 20, 1 << 20), (u64::MAX, MAX_MMAP_SIZE), (0, 0)] {
            let settings = PoolSettings {
                sqlite_mmap_size: asked,
                ..Default::default()
            };
            let s = SqliteStore::open_with(&url, &settings).await.unwrap();
            let expected = i64::try_from(expected).unwrap();
            for pool in [&s.writer, &s.reader] {
                let got: i64 = sqlx::query_scalar("PRAGMA mmap_size").fetch_one(pool).await.unwrap();
                assert_eq!(got, expected, "asked {asked}");
            }
            let reads = s.reads.as_ref().expect("a file has hot reads");
            for _ in 0..reads.conns_len() {
                let got: i64 = reads.one("PRAGMA mmap_size", &[], |r| Ok(r.get(0)?)).unwrap().unwrap();
                assert_eq!(got, expected, "asked {asked}");
            }
        }
    }

    /// The JSON columns decode alike with or without the shortcut for empty defaults, through
    /// both drivers (rusqlite's row and sqlx's).
    #[tokio::test]
    async fn json_columns_decode_alike_through_both_drivers() {
        let cases = ["null", "{}", "[]", r#"{"a":[1,2]}"#, r#"[ ]"#, r#""text""#];
        let db = rusqlite::Connection::open_in_memory().unwrap();
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        for case in cases {
            let expected: serde_json::Value = serde_json::from_str(case).unwrap();
            let got = db
                .query_row("SELECT ?", [case], |r| Ok(json_value_at(r, 0)))
                .unwrap()
                .unwrap();
            assert_eq!(got, expected, "{case}");
            let row = sqlx::query("SELECT ?").bind(case).fetch_one(&pool).await.unwrap();
            assert_eq!(json_value_at(&row, 0).unwrap(), expected, "{case}");
        }
        for case in ["[]", r#"["Account.Read","Device.Read"]"#] {
            let expected: Vec<String> = serde_json::from_str(case).unwrap();
            let got: Vec<String> = db
                .query_row("SELECT ?", [case], |r| Ok(json_vec_at(r, 0)))
                .unwrap()
                .unwrap();
            assert_eq!(got, expected, "{case}");
        }
        // NULL where text is required is an error, not a panic.
        assert!(db.query_row("SELECT NULL", [], |r| Ok(uuid_at(r, 0))).unwrap().is_err());
        assert_eq!(
            db.query_row("SELECT NULL", [], |r| Ok(opt_uuid_at(r, 0)))
                .unwrap()
                .unwrap(),
            None
        );
    }
}

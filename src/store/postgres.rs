//! The PostgreSQL store: several keygate nodes share one database.
//!
//! Semantics mirror the SQLite store exactly (same trait, same conformance suite). What makes
//! them hold across processes:
//! - `consume_use` is one conditional `UPDATE ... WHERE used_count < max_uses ... RETURNING`, so a
//!   use limit is exact however many nodes race for it (the row lock serializes the updates and
//!   each re-checks the condition on the latest row version).
//! - Every transaction that appends events first takes one transaction-scoped advisory lock
//!   ([`EVENTS_LOCK`]) and holds it until commit. Under it, `MAX(version) + 1` per aggregate is
//!   gap-free and unique, and `seq` values are handed out in commit order, so a reader paging
//!   the feed with `after` never skips an event that commits late. The `UNIQUE (aggregate_id,
//!   version)` constraint stays as the backstop.
//! - Bootstrap runs under its own advisory lock, so two nodes starting at once on an empty
//!   database create the system organization once.
//!
//! A database that cannot be reached answers [`Error::Unavailable`] (503) within the pool's
//! acquire timeout; the pool reconnects by itself when the database returns.

use super::foreign_postgres as f;
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
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Postgres, Row, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Pool settings for the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Most connections this node opens.
    pub max_connections: u32,
    /// How long a request waits for a connection before it answers 503.
    pub acquire_timeout: Duration,
    /// SQLite only: commit concurrent writes in groups (`sqlite_group_commit`).
    pub sqlite_group_commit: bool,
    /// SQLite only: bytes of the file each connection memory-maps (`sqlite_mmap_size`).
    pub sqlite_mmap_size: u64,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            sqlite_group_commit: true,
            sqlite_mmap_size: 0,
        }
    }
}

/// A pooled connection idle this long is pinged before it is handed out; one used more recently
/// is not. sqlx pings every connection when it is returned to the pool (and closes it if that
/// fails), so a ping on every checkout as well made each single-statement read three round trips
/// to the database (the query, the ping on release, the ping on checkout): the checkout's ping
/// was a fifth of keygate's CPU in an uncached verify (BENCHMARKS.md, issue 16's seventeenth
/// part). A connection that breaks within this long of passing its release ping fails the one
/// request that gets it (503, as for any lost database), and is closed.
pub const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Advisory lock key held by every transaction that appends events (until it commits).
pub const EVENTS_LOCK: i64 = 0x6b67_6576; // "kgev"
/// Advisory lock key held by bootstrap.
pub const BOOTSTRAP_LOCK: i64 = 0x6b67_6273; // "kgbs"

/// The credential listing's SQL for the filters that are set (see the SQLite store's): each one
/// an equality the planner can put on an index. Parameters, in order: org_id, then kind,
/// owner_id and after when set, then the limit.
pub fn list_credentials_sql(f: &CredentialFilter) -> String {
    let mut sql = format!("SELECT {CRED_COLS} FROM credentials WHERE org_id = $1");
    let mut n = 1;
    let mut and = |col: &str, op: &str| {
        n += 1;
        sql.push_str(&format!(" AND {col} {op} ${n}"));
    };
    if f.kind.is_some() {
        and("kind", "=");
    }
    if f.owner_id.is_some() {
        and("owner_id", "=");
    }
    if f.after.is_some() {
        and("id", ">");
    }
    sql.push_str(&format!(" ORDER BY id LIMIT ${}", n + 1));
    sql
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    opts: PgConnectOptions,
    acquire_timeout: Duration,
}

/// The credential columns as a literal, for `concat!` in [`sql`].
macro_rules! cred_cols {
    () => {
        "id, org_id, kind, owner_id, name, prefix, hash, scopes, not_before, expires_at, max_uses, \
     used_count, allowed_users, subject, metadata, created_at, created_by, updated_at, updated_by, revoked_at, revoked_by"
    };
}

const CRED_COLS: &str = cred_cols!();

/// The hot reads' SQL, public so that the query-plan test (`tests/store/hot_plans.rs`) explains
/// exactly what the store runs; each names the index it is meant to use (asserted there).
pub mod sql {
    /// `credentials_hash_key`.
    pub const FIND_CREDENTIAL_BY_HASH: &str = concat!("SELECT ", cred_cols!(), " FROM credentials WHERE hash = $1");
    /// A use, counted only while the key is usable: `credentials_pkey` (or `credentials_org`).
    /// One statement: the row lock serializes racing updates (from any node), and each
    /// re-evaluates the WHERE clause on the latest committed row before it counts.
    pub const CONSUME_USE: &str = concat!(
        "UPDATE credentials SET used_count = used_count + 1 \
         WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL \
           AND (not_before IS NULL OR not_before <= $3) AND (expires_at IS NULL OR expires_at > $3) \
           AND (max_uses IS NULL OR used_count < max_uses) \
         RETURNING ",
        cred_cols!()
    );
    /// `credentials_pkey`.
    pub const FIND_CREDENTIAL: &str = concat!("SELECT ", cred_cols!(), " FROM credentials WHERE id = $1");
    /// `credentials_pkey` (or `credentials_org`).
    pub const GET_CREDENTIAL: &str = concat!(
        "SELECT ",
        cred_cols!(),
        " FROM credentials WHERE org_id = $1 AND id = $2"
    );
    /// The digest filter's pages: `credentials_hash_key`, in order.
    pub const CREDENTIAL_DIGESTS_AFTER: &str = "SELECT hash FROM credentials WHERE hash > $1 ORDER BY hash LIMIT $2";
    pub const COUNT_CREDENTIALS: &str = "SELECT COUNT(*) FROM credentials";
    /// `api_keys_hash_key`.
    pub const FIND_API_KEY: &str = "SELECT * FROM api_keys WHERE hash = $1";
    /// `api_keys_org_created` (migration 0005): in order, no sort.
    pub const LIST_API_KEYS: &str = "SELECT * FROM api_keys WHERE org_id = $1 ORDER BY created_at, id";
    /// `login_tokens_pkey`.
    pub const FIND_LOGIN_TOKEN: &str = "SELECT * FROM login_tokens WHERE hash = $1 AND kind = $2 AND expires_at > $3";
    /// `users_pkey`.
    pub const GET_USER: &str = "SELECT * FROM users WHERE org_id = $1 AND id = $2";
    pub const FIND_USER: &str = "SELECT * FROM users WHERE id = $1";
    /// `users_username_key`.
    pub const FIND_USER_BY_USERNAME: &str = "SELECT * FROM users WHERE username = $1";
    /// `users_org_created` (migration 0005): in order, no sort.
    pub const LIST_USERS: &str = "SELECT * FROM users WHERE org_id = $1 ORDER BY created_at, id";
    /// `organizations_pkey`.
    pub const GET_ORG: &str = "SELECT * FROM organizations WHERE id = $1";
    /// `locks_pkey` (or `locks_org`).
    pub const GET_LOCK: &str = "SELECT * FROM locks WHERE org_id = $1 AND id = $2";
    pub const FIND_LOCK: &str = "SELECT * FROM locks WHERE id = $1";
    /// `locks_org`: in order, no sort.
    pub const LIST_LOCKS: &str = "SELECT * FROM locks WHERE org_id = $1 ORDER BY id";
    /// `events_org_seq`: the feed after a position.
    pub const LIST_EVENTS: &str = "SELECT * FROM events WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
    /// `events_aggregate_id_version_key`: in order, no sort.
    pub const EVENTS_OF: &str = "SELECT * FROM events WHERE org_id = $1 AND aggregate_id = $2 ORDER BY version";
}

impl PgStore {
    /// Connect lazily: the pool opens connections on demand, so a node starts (and later
    /// recovers) whatever the database's state; `migrate` is the first real round trip.
    pub async fn open(url: &str, pool_settings: &PoolSettings) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| Error::invalid("database", format!("bad PostgreSQL URL: {e}")))?
            .application_name("keygate");
        let pool = PgPoolOptions::new()
            .max_connections(pool_settings.max_connections.max(1))
            .acquire_timeout(pool_settings.acquire_timeout)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IDLE_AFTER {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_lazy_with(opts.clone());
        Ok(Self {
            pool,
            opts,
            acquire_timeout: pool_settings.acquire_timeout,
        })
    }

    /// The pool (for tests and tools).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

pub(super) fn time_col(row: &PgRow, col: &str) -> Result<DateTime<Utc>> {
    Ok(from_micros(row.try_get::<i64, _>(col)?))
}

fn opt_time_col(row: &PgRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_micros))
}

fn json_col<T: serde::de::DeserializeOwned>(row: &PgRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(Error::internal)
}

fn to_json(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(Error::internal)
}

fn org_from(row: &PgRow) -> Result<Organization> {
    Ok(Organization {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        is_system: row.try_get("is_system")?,
        created_at: time_col(row, "created_at")?,
    })
}

fn user_from(row: &PgRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        person_id: row.try_get("person_id")?,
        is_admin: row.try_get("is_admin")?,
        created_at: time_col(row, "created_at")?,
        disabled: row.try_get("disabled")?,
        unlocked_at: opt_time_col(row, "unlocked_at")?,
    })
}

fn api_key_from(row: &PgRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        hash: row.try_get("hash")?,
        created_at: time_col(row, "created_at")?,
        revoked_at: opt_time_col(row, "revoked_at")?,
    })
}

fn token_from(row: &PgRow) -> Result<LoginToken> {
    Ok(LoginToken {
        hash: row.try_get("hash")?,
        user_id: row.try_get("user_id")?,
        org_id: row.try_get("org_id")?,
        xsrf_hash: row.try_get("xsrf_hash")?,
        created_at: time_col(row, "created_at")?,
        expires_at: time_col(row, "expires_at")?,
    })
}

fn cred_from(row: &PgRow) -> Result<Credential> {
    let kind: String = row.try_get("kind")?;
    Ok(Credential {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        kind: Kind::parse(&kind).ok_or_else(|| Error::internal(format!("unknown kind {kind}")))?,
        owner_id: row.try_get("owner_id")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        hash: row.try_get("hash")?,
        scopes: json_col(row, "scopes")?,
        not_before: opt_time_col(row, "not_before")?,
        expires_at: opt_time_col(row, "expires_at")?,
        max_uses: row.try_get("max_uses")?,
        used_count: row.try_get("used_count")?,
        allowed_users: json_col(row, "allowed_users")?,
        subject: json_col(row, "subject")?,
        metadata: json_col(row, "metadata")?,
        created_at: time_col(row, "created_at")?,
        created_by: row.try_get("created_by")?,
        updated_at: time_col(row, "updated_at")?,
        updated_by: row.try_get("updated_by")?,
        revoked_at: opt_time_col(row, "revoked_at")?,
        revoked_by: row.try_get("revoked_by")?,
    })
}

fn lock_from(row: &PgRow) -> Result<Lock> {
    Ok(Lock {
        id: row.try_get("id")?,
        uuid: row.try_get("uuid")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        owner_id: row.try_get("owner_id")?,
        doors: json_col(row, "doors")?,
        created_at: time_col(row, "created_at")?,
    })
}

fn event_from(row: &PgRow) -> Result<Event> {
    Ok(Event {
        seq: row.try_get("seq")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        version: row.try_get("version")?,
        event_type: row.try_get("type")?,
        data: json_col(row, "data")?,
        actor: row.try_get("actor")?,
        at: time_col(row, "at")?,
    })
}

/// Append an event with the next version of its aggregate, inside the caller's transaction;
/// returns that version. Takes [`EVENTS_LOCK`] first (re-entrant within the transaction), so
/// concurrent writers of one aggregate, from any node, append one after the other.
pub(super) async fn append(tx: &mut Transaction<'_, Postgres>, e: &NewEvent) -> Result<i64> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(EVENTS_LOCK)
        .execute(&mut **tx)
        .await?;
    let version: i64 = sqlx::query_scalar(
        "INSERT INTO events (org_id, aggregate_type, aggregate_id, version, type, data, actor, at) \
         SELECT $1, $2, $3, COALESCE(MAX(version), 0) + 1, $4, $5, $6, $7 FROM events WHERE aggregate_id = $3 \
         RETURNING version",
    )
    .bind(e.org_id)
    .bind(e.aggregate_type)
    .bind(e.aggregate_id)
    .bind(e.event_type)
    .bind(to_json(&e.data)?)
    .bind(&e.actor)
    .bind(to_micros(e.at))
    .fetch_one(&mut **tx)
    .await?;
    Ok(version)
}

async fn insert_org(tx: &mut Transaction<'_, Postgres>, org: &Organization) -> Result<()> {
    sqlx::query("INSERT INTO organizations (id, name, is_system, created_at) VALUES ($1, $2, $3, $4)")
        .bind(org.id)
        .bind(&org.name)
        .bind(org.is_system)
        .bind(to_micros(org.created_at))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn insert_user(tx: &mut Transaction<'_, Postgres>, u: &User) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, org_id, username, password_hash, person_id, is_admin, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(u.id)
    .bind(u.org_id)
    .bind(&u.username)
    .bind(&u.password_hash)
    .bind(u.person_id)
    .bind(u.is_admin)
    .bind(to_micros(u.created_at))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn insert_api_key(tx: &mut Transaction<'_, Postgres>, k: &ApiKey) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, org_id, name, prefix, hash, created_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(k.id)
    .bind(k.org_id)
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
impl Store for PgStore {
    async fn migrate(&self) -> Result<()> {
        // sqlx holds a PostgreSQL advisory lock while migrating, so nodes starting together
        // apply each migration once.
        match sqlx::migrate!("migrations/postgres").run(&self.pool).await {
            Ok(()) => Ok(()),
            Err(sqlx::migrate::MigrateError::Execute(inner)) if crate::error::is_unavailable(&inner) => {
                // A pool timeout hides the cause; one direct attempt names it (refused, bad
                // password, no such database, TLS) for the operator at start-up.
                if matches!(inner, sqlx::Error::PoolTimedOut) {
                    let direct = sqlx::PgConnection::connect_with(&self.opts);
                    if let Ok(Err(cause)) = tokio::time::timeout(self.acquire_timeout, direct).await {
                        return Err(Error::from(cause));
                    }
                }
                Err(Error::from(inner))
            }
            Err(e) => Err(Error::internal(format!("migration failed: {e}"))),
        }
    }

    fn change_feed(&self) -> Option<std::sync::Arc<dyn super::cache::ChangeFeed>> {
        Some(std::sync::Arc::new(super::pg_notify::PgNotify::new(
            self.opts.clone(),
            self.pool.clone(),
        )))
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn bootstrap(&self, b: &Bootstrap) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(BOOTSTRAP_LOCK)
            .execute(&mut *tx)
            .await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organizations WHERE is_system")
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
        let mut tx = self.pool.begin().await?;
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
        sqlx::query(sql::GET_ORG)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(org_from)
            .transpose()
    }

    async fn get_org_by_name(&self, name: &str) -> Result<Option<Organization>> {
        sqlx::query("SELECT * FROM organizations WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(org_from)
            .transpose()
    }

    async fn list_orgs(&self) -> Result<Vec<Organization>> {
        sqlx::query("SELECT * FROM organizations ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(org_from)
            .collect()
    }

    async fn create_user(&self, user: &User, event: &NewEvent) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_user(&mut tx, user).await.map_err(|e| match e {
            Error::Conflict(_) => Error::Conflict("a user with that username or person id already exists".into()),
            e => e,
        })?;
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_user(&self, org_id: Uuid, id: Uuid) -> Result<Option<User>> {
        sqlx::query(sql::GET_USER)
            .bind(org_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    async fn find_user(&self, id: Uuid) -> Result<Option<User>> {
        sqlx::query(sql::FIND_USER)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    async fn update_user(&self, user: &User, end_tokens: bool, event: &NewEvent) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE users SET password_hash = $1, disabled = $2, unlocked_at = $3 WHERE org_id = $4 AND id = $5",
        )
        .bind(&user.password_hash)
        .bind(user.disabled)
        .bind(user.unlocked_at.map(to_micros))
        .bind(user.org_id)
        .bind(user.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        if end_tokens {
            sqlx::query("DELETE FROM login_tokens WHERE org_id = $1 AND user_id = $2")
                .bind(user.org_id)
                .bind(user.id)
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
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(user_from)
            .transpose()
    }

    async fn list_users(&self, org_id: Uuid) -> Result<Vec<User>> {
        sqlx::query(sql::LIST_USERS)
            .bind(org_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from)
            .collect()
    }

    async fn create_api_key(&self, key: &ApiKey, event: &NewEvent) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_api_key(&mut tx, key).await?;
        append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn find_api_key(&self, hash: &[u8]) -> Result<Option<ApiKey>> {
        sqlx::query(sql::FIND_API_KEY)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(api_key_from)
            .transpose()
    }

    async fn list_api_keys(&self, org_id: Uuid) -> Result<Vec<ApiKey>> {
        sqlx::query(sql::LIST_API_KEYS)
            .bind(org_id)
            .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL")
                .bind(to_micros(at))
                .bind(org_id)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if done == 1 {
            append(&mut tx, event).await?;
        }
        let row = sqlx::query("SELECT * FROM api_keys WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.as_ref().map(api_key_from).transpose()
    }

    async fn create_login_token(&self, kind: TokenKind, t: &LoginToken, event: &NewEvent) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Expired tokens are swept on the way, so the table does not grow without bound.
        sqlx::query("DELETE FROM login_tokens WHERE expires_at <= $1")
            .bind(to_micros(t.created_at))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO login_tokens (hash, kind, user_id, org_id, xsrf_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.hash)
        .bind(token_kind(kind))
        .bind(t.user_id)
        .bind(t.org_id)
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
        sqlx::query(sql::FIND_LOGIN_TOKEN)
            .bind(hash)
            .bind(token_kind(kind))
            .bind(to_micros(now))
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(token_from)
            .transpose()
    }

    async fn delete_login_token(&self, kind: TokenKind, hash: &[u8], event: &NewEvent) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM login_tokens WHERE hash = $1 AND kind = $2")
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO credentials ({CRED_COLS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
        ))
        .bind(c.id)
        .bind(c.org_id)
        .bind(c.kind.as_str())
        .bind(c.owner_id)
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
        .execute(&mut *tx)
        .await?;
        let version = append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(version)
    }

    async fn get_credential(&self, org_id: Uuid, id: Uuid) -> Result<Option<Credential>> {
        sqlx::query(sql::GET_CREDENTIAL)
            .bind(org_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(cred_from)
            .transpose()
    }

    async fn find_credential_by_hash(&self, hash: &[u8]) -> Result<Option<Arc<Credential>>> {
        sqlx::query(sql::FIND_CREDENTIAL_BY_HASH)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(|r| cred_from(r).map(Arc::new))
            .transpose()
    }

    async fn count_credentials(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(sql::COUNT_CREDENTIALS).fetch_one(&self.pool).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn credential_digests_after(&self, after: &[u8], limit: u32) -> Result<Vec<Vec<u8>>> {
        Ok(sqlx::query_scalar(sql::CREDENTIAL_DIGESTS_AFTER)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn find_credential(&self, id: Uuid) -> Result<Option<Credential>> {
        sqlx::query(sql::FIND_CREDENTIAL)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(cred_from)
            .transpose()
    }

    async fn list_credentials(&self, org_id: Uuid, f: &CredentialFilter) -> Result<Vec<Credential>> {
        let sql = list_credentials_sql(f);
        let mut q = sqlx::query(&sql).bind(org_id);
        if let Some(k) = f.kind {
            q = q.bind(k.as_str());
        }
        if let Some(o) = f.owner_id {
            q = q.bind(o);
        }
        if let Some(a) = f.after {
            q = q.bind(a);
        }
        q.bind(i64::from(f.limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(cred_from)
            .collect()
    }

    async fn update_credential(&self, c: &Credential, event: &NewEvent) -> Result<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE credentials SET name = $1, scopes = $2, not_before = $3, expires_at = $4, max_uses = $5, \
             allowed_users = $6, subject = $7, metadata = $8, updated_at = $9, updated_by = $10 \
             WHERE org_id = $11 AND id = $12 AND revoked_at IS NULL",
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
        .bind(c.org_id)
        .bind(c.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let version = if n == 1 {
            Some(append(&mut tx, event).await?)
        } else {
            None
        };
        tx.commit().await?;
        Ok(version)
    }

    async fn revoke_credential(
        &self,
        org_id: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
        by: &str,
        event: &NewEvent,
    ) -> Result<Option<(Credential, Option<i64>)>> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE credentials SET revoked_at = $1, revoked_by = $2, updated_at = $1, updated_by = $2 \
             WHERE org_id = $3 AND id = $4 AND revoked_at IS NULL",
        )
        .bind(to_micros(at))
        .bind(by)
        .bind(org_id)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let version = if n == 1 {
            Some(append(&mut tx, event).await?)
        } else {
            None
        };
        let row = sqlx::query(sql::GET_CREDENTIAL)
            .bind(org_id)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(row.as_ref().map(cred_from).transpose()?.map(|c| (c, version)))
    }

    async fn consume_use(
        &self,
        org_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        event: &NewEvent,
        extra: &[NewEvent],
    ) -> Result<ConsumeOutcome> {
        let mut tx = self.pool.begin().await?;
        let n = to_micros(now);
        let row = sqlx::query(sql::CONSUME_USE)
            .bind(org_id)
            .bind(id)
            .bind(n)
            .fetch_optional(&mut *tx)
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
                let version = append(&mut tx, &e).await?;
                for x in extra {
                    append(&mut tx, x).await?;
                }
                tx.commit().await?;
                Ok(ConsumeOutcome::Used(cred, version))
            }
            None => {
                let row = sqlx::query(sql::GET_CREDENTIAL)
                    .bind(org_id)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(ConsumeOutcome::Refused(row.as_ref().map(cred_from).transpose()?))
            }
        }
    }

    async fn create_lock(&self, lock: &Lock, event: &NewEvent) -> Result<Lock> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO locks (uuid, org_id, name, owner_id, doors, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(lock.uuid)
        .bind(lock.org_id)
        .bind(&lock.name)
        .bind(lock.owner_id)
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
            .bind(org_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(lock_from)
            .transpose()
    }

    async fn find_lock(&self, id: i64) -> Result<Option<Lock>> {
        sqlx::query(sql::FIND_LOCK)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(lock_from)
            .transpose()
    }

    async fn list_locks(&self, org_id: Uuid) -> Result<Vec<Lock>> {
        sqlx::query(sql::LIST_LOCKS)
            .bind(org_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(lock_from)
            .collect()
    }

    async fn get_foreign_app(&self, org_id: Uuid, id: i32) -> Result<Option<ForeignApp>> {
        f::app_by_id(&self.pool, org_id, id).await
    }

    async fn get_foreign_app_by_name(&self, org_id: Uuid, name: &str) -> Result<Option<ForeignApp>> {
        f::app_by_name(&self.pool, org_id, name).await
    }

    async fn save_foreign_app(&self, id: i32, name: &str, stamp: &Stamp) -> Result<Option<ForeignApp>> {
        f::save_app(&self.pool, id, name, stamp).await
    }

    async fn delete_foreign_app(&self, id: i32, stamp: &Stamp) -> Result<bool> {
        f::delete_app(&self.pool, id, stamp).await
    }

    async fn list_foreign_devices(&self, org_id: Uuid, app_id: i32) -> Result<Vec<ForeignDevice>> {
        f::list_devices(&self.pool, org_id, app_id).await
    }

    async fn get_foreign_device(&self, org_id: Uuid, id: i32) -> Result<Option<ForeignDevice>> {
        f::device_by_id(&self.pool, org_id, id).await
    }

    async fn get_foreign_device_at(&self, org_id: Uuid, path: &DevicePath) -> Result<Option<ForeignDevice>> {
        f::device_at(&self.pool, org_id, path).await
    }

    async fn save_foreign_device(
        &self,
        app: &str,
        target: &DeviceTarget,
        rename: Option<(&str, &str)>,
        touch: bool,
        stamp: &Stamp,
    ) -> Result<Option<ForeignDevice>> {
        f::save_device(&self.pool, app, target, rename, touch, stamp).await
    }

    async fn delete_foreign_device(&self, app: &str, target: &DeviceTarget, stamp: &Stamp) -> Result<bool> {
        f::delete_device(&self.pool, app, target, stamp).await
    }

    async fn list_foreign_keys(
        &self,
        org_id: Uuid,
        device_id: i32,
        filter: &KeyFilter,
        limit: u32,
    ) -> Result<Vec<ForeignKey>> {
        f::keys_of_device(&self.pool, org_id, device_id, filter, i64::from(limit)).await
    }

    async fn list_app_foreign_keys(&self, org_id: Uuid, app_id: i32, limit: u32) -> Result<Vec<ForeignKey>> {
        f::list_app_keys(&self.pool, org_id, app_id, limit).await
    }

    async fn get_foreign_key_by_value(
        &self,
        org_id: Uuid,
        device_id: i32,
        key_name: &str,
        value: &str,
        table_name: Option<&str>,
    ) -> Result<Option<ForeignKey>> {
        f::key_by_value(&self.pool, org_id, device_id, key_name, value, table_name).await
    }

    async fn foreign_keys_on_entity(
        &self,
        org_id: Uuid,
        table_name: &str,
        record_id: i32,
        limit: u32,
    ) -> Result<Vec<(String, String, ForeignKey)>> {
        f::keys_on_entity(&self.pool, org_id, table_name, record_id, limit).await
    }

    async fn save_foreign_key(
        &self,
        path: &DevicePath,
        key: &KeyWrite,
        mode: KeyMode,
        stamp: &Stamp,
    ) -> Result<ForeignKey> {
        f::save_key(&self.pool, path, key, mode, stamp).await
    }

    async fn delete_foreign_keys(&self, path: &DevicePath, filter: &KeyFilter, stamp: &Stamp) -> Result<u64> {
        f::delete_keys(&self.pool, path, filter, stamp).await
    }

    async fn append_event(&self, event: &NewEvent) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let v = append(&mut tx, event).await?;
        tx.commit().await?;
        Ok(v)
    }

    async fn list_events(&self, org_id: Uuid, after: i64, limit: u32) -> Result<Vec<Event>> {
        sqlx::query(sql::LIST_EVENTS)
            .bind(org_id)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(event_from)
            .collect()
    }

    async fn events_of(&self, org_id: Uuid, aggregate_id: Uuid) -> Result<Vec<Event>> {
        sqlx::query(sql::EVENTS_OF)
            .bind(org_id)
            .bind(aggregate_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(event_from)
            .collect()
    }
}

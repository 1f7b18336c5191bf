//! Storage behind a trait. Each mutating method is one transaction that also appends its
//! event(s), so the state and the audit log never disagree.
//!
//! # Tenancy in the query
//! Every method that reads or writes one organization's rows takes that organization's id and
//! puts it in its SQL `WHERE`, so a row of another organization is never even loaded. The only
//! exceptions are the lookups made before the organization is known, all named `find_*` and
//! all listed here; whatever follows one of them uses the organization of what it found:
//! - [`Store::find_credential_by_hash`]: a presented key, by its digest (verify, PersonalKey,
//!   CheckTemporaryKey, a collective key's PIN);
//! - [`Store::find_api_key`]: an `X-API-Key`, by its digest;
//! - [`Store::find_login_token`]: a ticket or session, by its digest;
//! - [`Store::find_user_by_username`]: a password login (a Basic login carries no organization);
//! - [`Store::find_user`]: a JWT's `sub` (a JWT carries no organization);
//! - [`Store::find_credential`]: a share key's public guest link, by its UUID;
//! - [`Store::count_credentials`], [`Store::credential_digests_after`]: the digest filter's
//!   build (store/digests.rs), which reads every organization's digests and nothing else;
//! - [`Store::find_lock`]: an entrance panel's `open-with-pin`, by the lock's id;
//! - [`Store::get_org`], [`Store::get_org_by_name`], [`Store::list_orgs`]: organizations
//!   themselves (the caller's own, or any for a system administrator and the CLI).

pub mod cache;
mod digests;
pub mod foreign_postgres;
pub mod foreign_sqlite;
pub mod pg_notify;
pub mod postgres;
pub mod sqlite;
pub mod sqlite_changes;

use crate::core::credential::{Credential, Kind};
use crate::core::event::{Event, NewEvent};
use crate::core::foreign::{
    DevicePath, DeviceTarget, ForeignApp, ForeignDevice, ForeignKey, KeyFilter, KeyMode, KeyWrite, Stamp,
};
use crate::error::Result;
use crate::model::{ApiKey, Lock, LoginToken, Organization, TokenKind, User};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use uuid::Uuid;

/// Filters for listing credentials.
#[derive(Debug, Clone, Default)]
pub struct CredentialFilter {
    pub kind: Option<Kind>,
    pub owner_id: Option<Uuid>,
    /// Return ids strictly after this one (UUIDv7 order).
    pub after: Option<Uuid>,
    pub limit: u32,
}

/// The result of trying to consume one use of a credential.
#[derive(Debug, Clone)]
pub enum ConsumeOutcome {
    /// One use was recorded: the credential after the update and the version of its event.
    Used(Credential, i64),
    /// No use was recorded: the credential (as it is now) was not usable at `now`.
    Refused(Option<Credential>),
}

/// What the first start creates.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub org: Organization,
    pub user: User,
    pub events: Vec<NewEvent>,
}

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Bring the schema up to date.
    async fn migrate(&self) -> Result<()>;
    /// Is the database reachable?
    async fn ping(&self) -> Result<()>;

    // --- organizations and users
    /// Create the system organization and its first admin if there is no system organization.
    /// Returns false (and writes nothing) when one exists.
    async fn bootstrap(&self, b: &Bootstrap) -> Result<bool>;
    async fn create_org(&self, org: &Organization, api_key: &ApiKey, events: &[NewEvent]) -> Result<()>;
    async fn get_org(&self, id: Uuid) -> Result<Option<Organization>>;
    async fn get_org_by_name(&self, name: &str) -> Result<Option<Organization>>;
    async fn list_orgs(&self) -> Result<Vec<Organization>>;
    async fn create_user(&self, user: &User, event: &NewEvent) -> Result<()>;
    async fn get_user(&self, org_id: Uuid, id: Uuid) -> Result<Option<User>>;
    /// Write a user's password hash, `disabled` and `unlocked_at` (in `user.org_id`), ending its
    /// tickets and sessions when `end_tokens`, and append `event`. False (nothing written) when
    /// there is no such user.
    async fn update_user(&self, user: &User, end_tokens: bool, event: &NewEvent) -> Result<bool>;
    /// Pre-tenancy: a JWT's subject, in any organization.
    async fn find_user(&self, id: Uuid) -> Result<Option<User>>;
    /// Pre-tenancy: a password login, in any organization (usernames are global).
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>>;
    async fn list_users(&self, org_id: Uuid) -> Result<Vec<User>>;

    // --- organization API keys
    async fn create_api_key(&self, key: &ApiKey, event: &NewEvent) -> Result<()>;
    /// Pre-tenancy: an `X-API-Key` by its digest.
    async fn find_api_key(&self, hash: &[u8]) -> Result<Option<ApiKey>>;
    async fn list_api_keys(&self, org_id: Uuid) -> Result<Vec<ApiKey>>;
    /// Revoke if not yet revoked; returns the key as it is after the call.
    async fn revoke_api_key(
        &self,
        org_id: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
        event: &NewEvent,
    ) -> Result<Option<ApiKey>>;

    // --- tickets and sessions
    async fn create_login_token(&self, kind: TokenKind, token: &LoginToken, event: &NewEvent) -> Result<()>;
    /// Pre-tenancy: an unexpired token of that kind, by its digest.
    async fn find_login_token(&self, kind: TokenKind, hash: &[u8], now: DateTime<Utc>) -> Result<Option<LoginToken>>;
    async fn delete_login_token(&self, kind: TokenKind, hash: &[u8], event: &NewEvent) -> Result<bool>;

    // --- credentials
    /// Returns the version of the appended event.
    async fn insert_credential(&self, cred: &Credential, event: &NewEvent) -> Result<i64>;
    async fn get_credential(&self, org_id: Uuid, id: Uuid) -> Result<Option<Credential>>;
    /// Pre-tenancy: a presented key by its digest, in any organization. Shared: the cache hands
    /// out the row it holds rather than a copy (cloning it was 4% of a CheckTemporaryKey).
    async fn find_credential_by_hash(&self, hash: &[u8]) -> Result<Option<Arc<Credential>>>;
    /// Pre-tenancy: a credential by id in any organization (a share key's public guest link).
    async fn find_credential(&self, id: Uuid) -> Result<Option<Credential>>;
    async fn list_credentials(&self, org_id: Uuid, filter: &CredentialFilter) -> Result<Vec<Credential>>;
    /// Pre-tenancy: how many credentials are stored, in every organization (sizes the digest
    /// filter, store/digests.rs).
    async fn count_credentials(&self) -> Result<u64>;
    /// Pre-tenancy: the stored credentials' digests greater than `after` (bytewise), in order,
    /// at most `limit`: the pages the digest filter is built from. Digests only, never a row.
    async fn credential_digests_after(&self, after: &[u8], limit: u32) -> Result<Vec<Vec<u8>>>;
    /// Replace the mutable policy of an unrevoked credential (name, scopes, not_before, expires_at,
    /// max_uses, allowed_users, subject, metadata, updated_at, updated_by), appending `event`.
    /// Returns the version of the appended event, or `None` (and writes nothing) when it does not
    /// exist in `cred.org_id` or is revoked.
    async fn update_credential(&self, cred: &Credential, event: &NewEvent) -> Result<Option<i64>>;
    /// Revoke if not yet revoked (appending `event` only then); returns the credential after the
    /// call and, when this call revoked it, the version of the appended event.
    async fn revoke_credential(
        &self,
        org_id: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
        by: &str,
        event: &NewEvent,
    ) -> Result<Option<(Credential, Option<i64>)>>;
    /// Atomically record one use if the credential is unrevoked, inside its window and under
    /// its use limit at `now`. `event.data` gets the new count: in its `usedCount` member when
    /// it has one (SmartphoneKey events), else in `used_count`. `extra` events are appended in
    /// the same transaction, only when the use is recorded.
    async fn consume_use(
        &self,
        org_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        event: &NewEvent,
        extra: &[NewEvent],
    ) -> Result<ConsumeOutcome>;

    // --- locks
    /// Insert a lock (its `id` is ignored and assigned); returns it with its id.
    async fn create_lock(&self, lock: &Lock, event: &NewEvent) -> Result<Lock>;
    async fn get_lock(&self, org_id: Uuid, id: i64) -> Result<Option<Lock>>;
    /// Pre-tenancy: a lock by id in any organization (an entrance panel's `open-with-pin`).
    async fn find_lock(&self, id: i64) -> Result<Option<Lock>>;
    async fn list_locks(&self, org_id: Uuid) -> Result<Vec<Lock>>;

    // --- the ForeignSystem mapping store (see `core::foreign` for how rows are identified).
    // Every method is scoped to one organization: reads take `org_id`, writes `stamp.org_id`.
    // Each write appends its events (built by `core::foreign`) in its own transaction.
    async fn get_foreign_app(&self, org_id: Uuid, id: i32) -> Result<Option<ForeignApp>>;
    async fn get_foreign_app_by_name(&self, org_id: Uuid, name: &str) -> Result<Option<ForeignApp>>;
    /// Create an application (`id == 0`) or rename one. `None` (nothing written) when `id` names
    /// no application of the organization; `Conflict` when the name is taken.
    async fn save_foreign_app(&self, id: i32, name: &str, stamp: &Stamp) -> Result<Option<ForeignApp>>;
    /// Delete an application with its devices and keys; false when there is none.
    async fn delete_foreign_app(&self, id: i32, stamp: &Stamp) -> Result<bool>;
    async fn list_foreign_devices(&self, org_id: Uuid, app_id: i32) -> Result<Vec<ForeignDevice>>;
    async fn get_foreign_device(&self, org_id: Uuid, id: i32) -> Result<Option<ForeignDevice>>;
    async fn get_foreign_device_at(&self, org_id: Uuid, path: &DevicePath) -> Result<Option<ForeignDevice>>;
    /// Add or save a device of the application named `app`. By path, the application and the
    /// device are created when missing; an existing one is left as it is when `touch` is false,
    /// else stamped as updated (and renamed to `rename`). By id, the device must belong to that
    /// application: `None` (nothing written) otherwise.
    async fn save_foreign_device(
        &self,
        app: &str,
        target: &DeviceTarget,
        rename: Option<(&str, &str)>,
        touch: bool,
        stamp: &Stamp,
    ) -> Result<Option<ForeignDevice>>;
    /// Delete a device of the application named `app` with its keys; false when there is none.
    async fn delete_foreign_device(&self, app: &str, target: &DeviceTarget, stamp: &Stamp) -> Result<bool>;
    /// A device's keys matching `filter`, oldest first, at most `limit`.
    async fn list_foreign_keys(
        &self,
        org_id: Uuid,
        device_id: i32,
        filter: &KeyFilter,
        limit: u32,
    ) -> Result<Vec<ForeignKey>>;
    /// Every key of an application's devices, oldest first, at most `limit`.
    async fn list_app_foreign_keys(&self, org_id: Uuid, app_id: i32, limit: u32) -> Result<Vec<ForeignKey>>;
    /// The oldest key of a device with this name and exactly this value (and table, when given).
    async fn get_foreign_key_by_value(
        &self,
        org_id: Uuid,
        device_id: i32,
        key_name: &str,
        value: &str,
        table_name: Option<&str>,
    ) -> Result<Option<ForeignKey>>;
    /// The keys on one record of one table, with their application's and device's names.
    async fn foreign_keys_on_entity(
        &self,
        org_id: Uuid,
        table_name: &str,
        record_id: i32,
        limit: u32,
    ) -> Result<Vec<(String, String, ForeignKey)>>;
    /// Add or save a key at `path` (creating the application and device when missing). Add
    /// answers `Conflict` (nothing written) when the address is taken; Save updates its value.
    async fn save_foreign_key(
        &self,
        path: &DevicePath,
        key: &KeyWrite,
        mode: KeyMode,
        stamp: &Stamp,
    ) -> Result<ForeignKey>;
    /// Delete the keys of the device at `path` that match `filter`; returns how many.
    async fn delete_foreign_keys(&self, path: &DevicePath, filter: &KeyFilter, stamp: &Stamp) -> Result<u64>;

    // --- events
    /// Append an event that records no change of state (the start-up repair's completion).
    async fn append_event(&self, event: &NewEvent) -> Result<i64>;
    async fn list_events(&self, org_id: Uuid, after: i64, limit: u32) -> Result<Vec<Event>>;
    /// One aggregate's events in the organization, by version.
    async fn events_of(&self, org_id: Uuid, aggregate_id: Uuid) -> Result<Vec<Event>>;

    /// How a cache in front of this store learns of other processes' commits (see
    /// `cache.rs`); `None` when it cannot (PostgreSQL, an in-memory database), and then no cache
    /// is put in front, unless the store has a [`Store::change_feed`] and the setting asks for it.
    fn change_probe(&self) -> Option<Arc<dyn cache::ChangeProbe>> {
        None
    }

    /// How a cache in front of this store hears of other writers' commits as they happen
    /// (PostgreSQL: LISTEN/NOTIFY, see `pg_notify.rs`); `None` when it cannot.
    fn change_feed(&self) -> Option<Arc<dyn cache::ChangeFeed>> {
        None
    }
}

pub type SharedStore = Arc<dyn Store>;

/// Open the store a database URL names, with the default pool settings.
pub async fn open(url: &str) -> Result<SharedStore> {
    open_with(url, &postgres::PoolSettings::default()).await
}

/// Open the store a database URL names: `sqlite:...` or `postgres://` / `postgresql://`.
/// `pool` applies to PostgreSQL (SQLite sizes its own pools), but for its `sqlite_` settings.
pub async fn open_with(url: &str, pool: &postgres::PoolSettings) -> Result<SharedStore> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open_with(url, pool).await?))
    } else if is_postgres_url(url) {
        Ok(Arc::new(postgres::PgStore::open(url, pool).await?))
    } else {
        Err(crate::error::Error::invalid(
            "database",
            "unsupported database URL; expected sqlite://PATH or postgres://USER@HOST/DB",
        ))
    }
}

/// Does this URL name a PostgreSQL database?
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

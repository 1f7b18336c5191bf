//! The credential lookups every authenticated request makes, held in memory with exact
//! invalidation: a revoked, deleted, used-up or changed credential, a revoked API key, an ended
//! ticket or session and a disabled user are seen by the very next request.
//!
//! # What is cached
//! Five lookups, hits and misses alike (an unknown key is asked about as often as a known one):
//! a presented key by digest ([`Store::find_credential_by_hash`]), an `X-API-Key` by digest, a
//! ticket or session by digest, a user by id and an organization by id. Each cache is bounded
//! in entries. Everything else goes to the database as before.
//!
//! # Invalidation: one path
//! Every write goes through this decorator. After the inner store has committed it (and before
//! the caller is answered), [`CachedStore`] drops the entries the write touched, found from
//! what the write returns (a credential's digest, a user's id, ...); when it cannot tell (an
//! error after the commit may have happened) it drops the whole cache concerned. A lookup that
//! read the database while an invalidation ran does not store what it read: a generation
//! counter, bumped under the fill lock by every invalidation, is compared before the insert.
//!
//! # Writes by other processes
//! The CLI (`user disable`, `passwd`, ...) writes to the same SQLite file while the server
//! runs. A [`ChangeProbe`] gives a number that changes whenever any connection commits
//! ([`ChangeProbe::observed`], cheap) and tells whether another process has committed since it
//! last asked ([`ChangeProbe::others_committed`]). A lookup uses the cache only while the
//! observed number equals the last one reconciled; otherwise it reads the database and wakes
//! the reconciler, which reads the number, asks whether another process committed (dropping
//! every cache if so), and records the number. So after a commit of another process, no lookup
//! uses an entry older than that commit. This process's own commits move the number too; they
//! cost a reconcile, not a flush.
//!
//! PostgreSQL has no such probe and several nodes write, so the server does not put this cache
//! in front of it (see `wrap`).

use super::{Bootstrap, ConsumeOutcome, CredentialFilter, SharedStore, Store};
use crate::core::credential::Credential;
use crate::core::event::{Event, NewEvent};
use crate::core::foreign::{
    DevicePath, DeviceTarget, ForeignApp, ForeignDevice, ForeignKey, KeyFilter, KeyMode, KeyWrite, Stamp,
};
use crate::error::Result;
use crate::model::{ApiKey, Lock, LoginToken, Organization, TokenKind, User};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use moka::sync::Cache;
use std::hash::Hash;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use uuid::Uuid;

/// Detects commits to the database, including other processes' (see the module's comment).
#[async_trait]
pub trait ChangeProbe: Send + Sync + std::fmt::Debug {
    /// A number that differs from the last one read whenever any connection committed between
    /// the two reads. Called on every cached lookup: it must be cheap.
    fn observed(&self) -> Result<i64>;
    /// Whether a connection of another process committed since the last call (true on the
    /// first call).
    async fn others_committed(&self) -> Result<bool>;
}

/// A value the cache never holds as `observed`, so the first lookup reconciles.
const UNRECONCILED: i64 = i64::MIN;

struct Caches {
    credentials: Cache<Vec<u8>, Option<Credential>>,
    api_keys: Cache<Vec<u8>, Option<ApiKey>>,
    tokens: Cache<(TokenKind, Vec<u8>), Option<LoginToken>>,
    /// By (organization, id) for `get_user`, by (None, id) for `find_user`.
    users: Cache<(Option<Uuid>, Uuid), Option<User>>,
    orgs: Cache<Uuid, Option<Organization>>,
    /// Fills hold it shared, invalidations exclusively (see `fill`).
    fill: RwLock<()>,
    generation: AtomicU64,
    probe: Option<Arc<dyn ChangeProbe>>,
    /// The probe's number as of the last reconcile.
    reconciled: AtomicI64,
    wake: tokio::sync::Notify,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("credentials", &self.credentials.entry_count())
            .field("probe", &self.probe)
            .finish_non_exhaustive()
    }
}

/// Which cache an invalidation drops entries of.
enum Evict<'a> {
    Credential(&'a [u8]),
    ApiKey(&'a [u8]),
    Token(TokenKind, &'a [u8]),
    /// A user's id and organization.
    User(Uuid, Uuid),
    Org(Uuid),
    AllCredentials,
    AllApiKeys,
    AllTokens,
    Everything,
}

impl Caches {
    fn new(entries: u64, probe: Option<Arc<dyn ChangeProbe>>) -> Self {
        Caches {
            credentials: Cache::new(entries),
            api_keys: Cache::new(entries),
            tokens: Cache::new(entries),
            users: Cache::new(entries),
            orgs: Cache::new(entries),
            fill: RwLock::new(()),
            generation: AtomicU64::new(0),
            probe,
            reconciled: AtomicI64::new(UNRECONCILED),
            wake: tokio::sync::Notify::new(),
        }
    }

    /// May a lookup use (and fill) the cache now? Not while another process's commit may be
    /// unreconciled: then it wakes the reconciler and reads the database.
    fn trusted(&self) -> bool {
        let Some(probe) = &self.probe else { return true };
        match probe.observed() {
            Ok(v) if v == self.reconciled.load(Ordering::Acquire) => true,
            Ok(_) => {
                self.wake.notify_one();
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "the cache cannot read the database's change counter; reading the database");
                false
            }
        }
    }

    fn invalidate(&self, what: &[Evict<'_>]) {
        let _exclusive = self.fill.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        for d in what {
            match d {
                Evict::Credential(h) => self.credentials.invalidate(*h),
                Evict::ApiKey(h) => self.api_keys.invalidate(*h),
                Evict::Token(k, h) => self.tokens.invalidate(&(*k, h.to_vec())),
                Evict::User(id, org) => {
                    self.users.invalidate(&(None, *id));
                    self.users.invalidate(&(Some(*org), *id));
                }
                Evict::Org(id) => self.orgs.invalidate(id),
                Evict::AllCredentials => self.credentials.invalidate_all(),
                Evict::AllApiKeys => self.api_keys.invalidate_all(),
                Evict::AllTokens => self.tokens.invalidate_all(),
                Evict::Everything => {
                    self.credentials.invalidate_all();
                    self.api_keys.invalidate_all();
                    self.tokens.invalidate_all();
                    self.users.invalidate_all();
                    self.orgs.invalidate_all();
                }
            }
        }
    }

    /// One reconcile: see the module's comment. The number is read before asking about other
    /// processes, so a commit between the two is caught by the question.
    async fn reconcile(&self) -> Result<()> {
        let Some(probe) = &self.probe else { return Ok(()) };
        let v = probe.observed()?;
        if probe.others_committed().await? {
            self.invalidate(&[Evict::Everything]);
            metrics::counter!("keygate_cache_flushes_total").increment(1);
        }
        self.reconciled.store(v, Ordering::Release);
        Ok(())
    }
}

/// The reconciler: one task per cache, ending when the cache is dropped.
async fn reconciler(caches: Weak<Caches>) {
    loop {
        let Some(c) = caches.upgrade() else { return };
        // Wait for a lookup that saw the number move; the timeout lets the task notice that
        // the cache is gone.
        let woken = tokio::time::timeout(std::time::Duration::from_secs(5), c.wake.notified()).await;
        if woken.is_err() {
            continue;
        }
        if let Err(e) = c.reconcile().await {
            tracing::warn!(error = %e, "the cache could not reconcile with the database; lookups read the database");
            drop(c);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// A store with the credential cache in front (see the module's comment).
#[derive(Debug)]
pub struct CachedStore {
    inner: SharedStore,
    c: Arc<Caches>,
}

impl CachedStore {
    /// Put a cache of `entries` entries per lookup in front of `inner`. Must run inside the
    /// Tokio runtime (it spawns the reconciler when there is a probe).
    pub fn new(inner: SharedStore, entries: u64, probe: Option<Arc<dyn ChangeProbe>>) -> Self {
        let c = Arc::new(Caches::new(entries, probe));
        if c.probe.is_some() {
            tokio::spawn(reconciler(Arc::downgrade(&c)));
        }
        CachedStore { inner, c }
    }

    /// A lookup through `cache`: a trusted hit answers at once; otherwise `load` reads the
    /// database, and what it read is kept unless an invalidation ran meanwhile.
    async fn cached<K, V>(
        &self,
        name: &'static str,
        cache: &Cache<K, V>,
        key: K,
        load: impl std::future::Future<Output = Result<V>>,
    ) -> Result<V>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        let trusted = self.c.trusted();
        if trusted {
            if let Some(v) = cache.get(&key) {
                metrics::counter!("keygate_cache_lookups_total", "cache" => name, "outcome" => "hit").increment(1);
                return Ok(v);
            }
        }
        let generation = self.c.generation.load(Ordering::Acquire);
        let v = load.await?;
        let outcome = if trusted {
            let _shared = self.c.fill.read().unwrap_or_else(PoisonError::into_inner);
            if self.c.generation.load(Ordering::Acquire) == generation {
                cache.insert(key, v.clone());
            }
            "miss"
        } else {
            "bypass"
        };
        metrics::counter!("keygate_cache_lookups_total", "cache" => name, "outcome" => outcome).increment(1);
        Ok(v)
    }

    fn drop_credential_of<T>(&self, r: &Result<T>, hash: impl FnOnce(&T) -> Option<Vec<u8>>) {
        match r {
            Ok(v) => {
                if let Some(h) = hash(v) {
                    self.c.invalidate(&[Evict::Credential(&h)]);
                }
            }
            Err(_) => self.c.invalidate(&[Evict::AllCredentials]),
        }
    }
}

#[async_trait]
impl Store for CachedStore {
    async fn migrate(&self) -> Result<()> {
        let r = self.inner.migrate().await;
        self.c.invalidate(&[Evict::Everything]);
        r
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    async fn bootstrap(&self, b: &Bootstrap) -> Result<bool> {
        let r = self.inner.bootstrap(b).await;
        self.c.invalidate(&[Evict::Everything]);
        r
    }
    async fn create_org(&self, org: &Organization, api_key: &ApiKey, events: &[NewEvent]) -> Result<()> {
        let r = self.inner.create_org(org, api_key, events).await;
        self.c.invalidate(&[Evict::Org(org.id), Evict::ApiKey(&api_key.hash)]);
        r
    }
    async fn get_org(&self, id: Uuid) -> Result<Option<Organization>> {
        self.cached("org", &self.c.orgs, id, self.inner.get_org(id)).await
    }
    async fn get_org_by_name(&self, name: &str) -> Result<Option<Organization>> {
        self.inner.get_org_by_name(name).await
    }
    async fn list_orgs(&self) -> Result<Vec<Organization>> {
        self.inner.list_orgs().await
    }
    async fn create_user(&self, user: &User, event: &NewEvent) -> Result<()> {
        let r = self.inner.create_user(user, event).await;
        self.c.invalidate(&[Evict::User(user.id, user.org_id)]);
        r
    }
    async fn get_user(&self, org_id: Uuid, id: Uuid) -> Result<Option<User>> {
        self.cached(
            "user",
            &self.c.users,
            (Some(org_id), id),
            self.inner.get_user(org_id, id),
        )
        .await
    }
    async fn update_user(&self, user: &User, end_tokens: bool, event: &NewEvent) -> Result<bool> {
        let r = self.inner.update_user(user, end_tokens, event).await;
        if end_tokens || r.is_err() {
            self.c
                .invalidate(&[Evict::User(user.id, user.org_id), Evict::AllTokens]);
        } else {
            self.c.invalidate(&[Evict::User(user.id, user.org_id)]);
        }
        r
    }
    async fn find_user(&self, id: Uuid) -> Result<Option<User>> {
        self.cached("user", &self.c.users, (None, id), self.inner.find_user(id))
            .await
    }
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>> {
        // Not cached: a password login reads the user afresh (the verified-password cache in
        // service/logins.rs is keyed by the stored hash it reads here).
        self.inner.find_user_by_username(username).await
    }
    async fn list_users(&self, org_id: Uuid) -> Result<Vec<User>> {
        self.inner.list_users(org_id).await
    }

    async fn create_api_key(&self, key: &ApiKey, event: &NewEvent) -> Result<()> {
        let r = self.inner.create_api_key(key, event).await;
        self.c.invalidate(&[Evict::ApiKey(&key.hash)]);
        r
    }
    async fn find_api_key(&self, hash: &[u8]) -> Result<Option<ApiKey>> {
        self.cached(
            "api_key",
            &self.c.api_keys,
            hash.to_vec(),
            self.inner.find_api_key(hash),
        )
        .await
    }
    async fn list_api_keys(&self, org_id: Uuid) -> Result<Vec<ApiKey>> {
        self.inner.list_api_keys(org_id).await
    }
    async fn revoke_api_key(
        &self,
        org_id: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
        event: &NewEvent,
    ) -> Result<Option<ApiKey>> {
        let r = self.inner.revoke_api_key(org_id, id, at, event).await;
        match &r {
            Ok(Some(k)) => self.c.invalidate(&[Evict::ApiKey(&k.hash)]),
            Ok(None) => {}
            Err(_) => self.c.invalidate(&[Evict::AllApiKeys]),
        }
        r
    }

    async fn create_login_token(&self, kind: TokenKind, token: &LoginToken, event: &NewEvent) -> Result<()> {
        let r = self.inner.create_login_token(kind, token, event).await;
        self.c.invalidate(&[Evict::Token(kind, &token.hash)]);
        r
    }
    async fn find_login_token(&self, kind: TokenKind, hash: &[u8], now: DateTime<Utc>) -> Result<Option<LoginToken>> {
        // The row is cached; its expiry is checked against `now` on every lookup, as the query
        // does. (A miss stays a miss: an expired token never comes back.)
        let found = self
            .cached(
                "token",
                &self.c.tokens,
                (kind, hash.to_vec()),
                self.inner.find_login_token(kind, hash, now),
            )
            .await?;
        Ok(found.filter(|t| t.expires_at > now))
    }
    async fn delete_login_token(&self, kind: TokenKind, hash: &[u8], event: &NewEvent) -> Result<bool> {
        let r = self.inner.delete_login_token(kind, hash, event).await;
        self.c.invalidate(&[Evict::Token(kind, hash)]);
        r
    }

    async fn insert_credential(&self, cred: &Credential, event: &NewEvent) -> Result<i64> {
        let r = self.inner.insert_credential(cred, event).await;
        self.c.invalidate(&[Evict::Credential(&cred.hash)]);
        r
    }
    async fn get_credential(&self, org_id: Uuid, id: Uuid) -> Result<Option<Credential>> {
        self.inner.get_credential(org_id, id).await
    }
    async fn find_credential_by_hash(&self, hash: &[u8]) -> Result<Option<Credential>> {
        self.cached(
            "credential",
            &self.c.credentials,
            hash.to_vec(),
            self.inner.find_credential_by_hash(hash),
        )
        .await
    }
    async fn find_credential(&self, id: Uuid) -> Result<Option<Credential>> {
        self.inner.find_credential(id).await
    }
    async fn list_credentials(&self, org_id: Uuid, filter: &CredentialFilter) -> Result<Vec<Credential>> {
        self.inner.list_credentials(org_id, filter).await
    }
    async fn update_credential(&self, cred: &Credential, event: &NewEvent) -> Result<Option<i64>> {
        let r = self.inner.update_credential(cred, event).await;
        // The digest never changes; drop by the one the caller had (and everything on error).
        self.drop_credential_of(&r, |_| Some(cred.hash.clone()));
        r
    }
    async fn revoke_credential(
        &self,
        org_id: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
        by: &str,
        event: &NewEvent,
    ) -> Result<Option<(Credential, Option<i64>)>> {
        let r = self.inner.revoke_credential(org_id, id, at, by, event).await;
        self.drop_credential_of(&r, |v| v.as_ref().map(|(c, _)| c.hash.clone()));
        r
    }
    async fn consume_use(
        &self,
        org_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        event: &NewEvent,
        extra: &[NewEvent],
    ) -> Result<ConsumeOutcome> {
        let r = self.inner.consume_use(org_id, id, now, event, extra).await;
        self.drop_credential_of(&r, |o| match o {
            ConsumeOutcome::Used(c, _) | ConsumeOutcome::Refused(Some(c)) => Some(c.hash.clone()),
            ConsumeOutcome::Refused(None) => None,
        });
        r
    }

    async fn create_lock(&self, lock: &Lock, event: &NewEvent) -> Result<Lock> {
        self.inner.create_lock(lock, event).await
    }
    async fn get_lock(&self, org_id: Uuid, id: i64) -> Result<Option<Lock>> {
        self.inner.get_lock(org_id, id).await
    }
    async fn find_lock(&self, id: i64) -> Result<Option<Lock>> {
        self.inner.find_lock(id).await
    }
    async fn list_locks(&self, org_id: Uuid) -> Result<Vec<Lock>> {
        self.inner.list_locks(org_id).await
    }

    async fn get_foreign_app(&self, org_id: Uuid, id: i32) -> Result<Option<ForeignApp>> {
        self.inner.get_foreign_app(org_id, id).await
    }
    async fn get_foreign_app_by_name(&self, org_id: Uuid, name: &str) -> Result<Option<ForeignApp>> {
        self.inner.get_foreign_app_by_name(org_id, name).await
    }
    async fn save_foreign_app(&self, id: i32, name: &str, stamp: &Stamp) -> Result<Option<ForeignApp>> {
        self.inner.save_foreign_app(id, name, stamp).await
    }
    async fn delete_foreign_app(&self, id: i32, stamp: &Stamp) -> Result<bool> {
        self.inner.delete_foreign_app(id, stamp).await
    }
    async fn list_foreign_devices(&self, org_id: Uuid, app_id: i32) -> Result<Vec<ForeignDevice>> {
        self.inner.list_foreign_devices(org_id, app_id).await
    }
    async fn get_foreign_device(&self, org_id: Uuid, id: i32) -> Result<Option<ForeignDevice>> {
        self.inner.get_foreign_device(org_id, id).await
    }
    async fn get_foreign_device_at(&self, org_id: Uuid, path: &DevicePath) -> Result<Option<ForeignDevice>> {
        self.inner.get_foreign_device_at(org_id, path).await
    }
    async fn save_foreign_device(
        &self,
        app: &str,
        target: &DeviceTarget,
        rename: Option<(&str, &str)>,
        touch: bool,
        stamp: &Stamp,
    ) -> Result<Option<ForeignDevice>> {
        self.inner.save_foreign_device(app, target, rename, touch, stamp).await
    }
    async fn delete_foreign_device(&self, app: &str, target: &DeviceTarget, stamp: &Stamp) -> Result<bool> {
        self.inner.delete_foreign_device(app, target, stamp).await
    }
    async fn list_foreign_keys(
        &self,
        org_id: Uuid,
        device_id: i32,
        filter: &KeyFilter,
        limit: u32,
    ) -> Result<Vec<ForeignKey>> {
        self.inner.list_foreign_keys(org_id, device_id, filter, limit).await
    }
    async fn list_app_foreign_keys(&self, org_id: Uuid, app_id: i32, limit: u32) -> Result<Vec<ForeignKey>> {
        self.inner.list_app_foreign_keys(org_id, app_id, limit).await
    }
    async fn get_foreign_key_by_value(
        &self,
        org_id: Uuid,
        device_id: i32,
        key_name: &str,
        value: &str,
        table_name: Option<&str>,
    ) -> Result<Option<ForeignKey>> {
        self.inner
            .get_foreign_key_by_value(org_id, device_id, key_name, value, table_name)
            .await
    }
    async fn foreign_keys_on_entity(
        &self,
        org_id: Uuid,
        table_name: &str,
        record_id: i32,
        limit: u32,
    ) -> Result<Vec<(String, String, ForeignKey)>> {
        self.inner
            .foreign_keys_on_entity(org_id, table_name, record_id, limit)
            .await
    }
    async fn save_foreign_key(
        &self,
        path: &DevicePath,
        key: &KeyWrite,
        mode: KeyMode,
        stamp: &Stamp,
    ) -> Result<ForeignKey> {
        self.inner.save_foreign_key(path, key, mode, stamp).await
    }
    async fn delete_foreign_keys(&self, path: &DevicePath, filter: &KeyFilter, stamp: &Stamp) -> Result<u64> {
        self.inner.delete_foreign_keys(path, filter, stamp).await
    }

    async fn append_event(&self, event: &NewEvent) -> Result<i64> {
        self.inner.append_event(event).await
    }
    async fn list_events(&self, org_id: Uuid, after: i64, limit: u32) -> Result<Vec<Event>> {
        self.inner.list_events(org_id, after, limit).await
    }
    async fn events_of(&self, org_id: Uuid, aggregate_id: Uuid) -> Result<Vec<Event>> {
        self.inner.events_of(org_id, aggregate_id).await
    }

    fn change_probe(&self) -> Option<Arc<dyn ChangeProbe>> {
        self.c.probe.clone()
    }
}

/// The store the server runs on: `inner` with the credential cache in front when the database
/// has a change probe (SQLite) and `entries` is not 0. PostgreSQL runs uncached.
pub fn wrap(inner: SharedStore, entries: u64) -> SharedStore {
    match inner.change_probe() {
        Some(probe) if entries > 0 => Arc::new(CachedStore::new(inner, entries, Some(probe))),
        _ => inner,
    }
}

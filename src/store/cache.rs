//! The credential lookups every authenticated request makes, held in memory with exact
//! invalidation: a revoked, deleted, used-up or changed credential, a revoked API key, an ended
//! ticket or session and a disabled user are seen by the very next request.
//!
//! # What is cached
//! Six lookups, hits and misses alike (an unknown key is asked about as often as a known one):
//! a presented key by digest ([`Store::find_credential_by_hash`]), an `X-API-Key` by digest, a
//! ticket or session by digest, a user by id, an organization by id, and one owner's credentials
//! ([`Store::list_credentials`] with `owner_id` set: the Tedee and personal-key lists), held by
//! (organization, owner) with the last few filters asked for. Each cache is bounded in entries
//! (the lists in rows held). Everything else goes to the database as before.
//!
//! # Invalidation: one path
//! Every write goes through this decorator. After the inner store has committed it (and before
//! the caller is answered), [`CachedStore`] drops the entries the write touched, found from
//! what the write returns (a credential's digest, a user's id, ...); a credential write drops its
//! owner's lists too. When it cannot tell (an error after the commit may have happened) it drops
//! the whole cache concerned (every credential and every list). A credential announced by the
//! PostgreSQL feed (digest only, owner unknown) drops every list. A lookup that
//! read the database while an invalidation ran does not store what it read: a generation
//! counter, bumped under the fill lock by every invalidation, is compared before the insert.
//! A write and its invalidation run to their end on a task of their own
//! ([`CachedStore::write`]): a request that times out, or whose client goes away, drops its
//! handler's future, while the write it started may still commit.
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
//! cost a reconcile, not a flush. Within one request the number is read once, at its first
//! cached lookup, and serves its later lookups ([`RequestView`]).
//!
//! # Writes by other nodes (PostgreSQL, opt-in)
//! PostgreSQL has no such probe and several nodes write, so by default the server does not put
//! this cache in front of it (see [`wrap`]). With `postgres_credential_cache` on, a
//! [`ChangeFeed`] (store/pg_notify.rs: `LISTEN keygate_cache`, fed by the triggers of migration
//! 0006 on every commit of any writer) delivers what changed; each announcement goes through the
//! same `Caches::invalidate` as this process's own writes (bumping the generation alike), and an
//! announcement that cannot be read drops everything. While the feed is not connected (before its
//! first `LISTEN`, after any error) lookups bypass the cache: they read the database and fill
//! nothing. On (re)connect the feed listens first, then every cache is dropped, then lookups
//! trust the cache again, so no entry older than the reconnect survives. This node's own writes
//! still invalidate synchronously (exact on the next request); another node's are seen after
//! the propagation delay of a notification (README, "Credential cache").

use super::digests::DigestFilter;
use super::{Bootstrap, ConsumeOutcome, CredentialFilter, SharedStore, Store};
use crate::core::credential::{Credential, Kind};
use crate::core::event::{Event, NewEvent};
use crate::core::foreign::{
    DevicePath, DeviceTarget, ForeignApp, ForeignDevice, ForeignKey, KeyFilter, KeyMode, KeyWrite, Stamp,
};
use crate::error::{Error, Result};
use crate::model::{ApiKey, Lock, LoginToken, Organization, TokenKind, User};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use quick_cache::sync::Cache;
use std::cell::Cell;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, Weak};
use uuid::Uuid;

/// Detects commits to the database, including other processes' (see the module's comment).
#[async_trait]
pub trait ChangeProbe: Send + Sync + std::fmt::Debug {
    /// A number that differs from the last one read whenever any connection committed between
    /// the two reads. Called once per request (and per lookup outside one): it must be cheap.
    fn observed(&self) -> Result<i64>;
    /// Whether a connection of another process committed since the last call (true on the
    /// first call).
    async fn others_committed(&self) -> Result<bool>;
}

/// Delivers other writers' commits to a cache (PostgreSQL: store/pg_notify.rs).
pub trait ChangeFeed: Send + Sync + std::fmt::Debug {
    /// Start delivering to `sink`: spawns a task that lives as long as the sink's cache. Until
    /// it calls [`FeedSink::connected`], the cache is bypassed.
    fn start(&self, sink: FeedSink);
}

/// What a [`ChangeFeed`] drives: the cache's one invalidation path and its bypass.
#[derive(Debug, Clone)]
pub struct FeedSink(Weak<Caches>);

impl FeedSink {
    /// Is the cache still there? (The feed's task ends when it is not.)
    pub fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }

    /// The feed listens (call after `LISTEN` succeeded): drop every cache, then trust it again.
    pub fn connected(&self) {
        let Some(c) = self.0.upgrade() else { return };
        c.invalidate(&[Evict::Everything]);
        metrics::counter!("keygate_cache_flushes_total").increment(1);
        if let Some(l) = &c.listening {
            l.store(true, Ordering::Release);
        }
        metrics::gauge!("keygate_cache_listener_connected").set(1.0);
    }

    /// The feed lost its connection: lookups bypass the cache until `connected`.
    pub fn disconnected(&self) {
        if let Some(c) = self.0.upgrade() {
            if let Some(l) = &c.listening {
                l.store(false, Ordering::Release);
            }
        }
        metrics::gauge!("keygate_cache_listener_connected").set(0.0);
    }

    /// One announcement (see migrations/postgres/0006_cache_notify.sql): `c:<hex>` a
    /// credential's digest, `a:<hex>` an API key's, `t:<ticket|session>:<hex>` a token's,
    /// `u:<id>:<org>` a user, `o:<id>` an organization, `p` a liveness ping (nothing changed).
    /// Anything else drops every cache.
    pub fn changed(&self, payload: &str) {
        let Some(c) = self.0.upgrade() else { return };
        match Announcement::parse(payload) {
            // The listener is alive: restate the gauge (a value set before the server installed
            // its metrics recorder, at start-up, is lost).
            Some(Announcement::Ping) => metrics::gauge!("keygate_cache_listener_connected").set(1.0),
            Some(a) => {
                c.invalidate(&[a.evict()]);
                metrics::counter!("keygate_cache_notifications_total").increment(1);
            }
            None => {
                tracing::warn!(
                    payload_len = payload.len(),
                    "an unreadable cache notification; dropping every cache"
                );
                c.invalidate(&[Evict::Everything]);
                metrics::counter!("keygate_cache_flushes_total").increment(1);
            }
        }
    }
}

/// A parsed notification (owned: [`Evict`] borrows from it).
#[derive(Debug, PartialEq, Eq)]
enum Announcement {
    Credential(Vec<u8>),
    ApiKey(Vec<u8>),
    Token(TokenKind, Vec<u8>),
    User(Uuid, Uuid),
    Org(Uuid),
    Ping,
}

impl Announcement {
    fn parse(payload: &str) -> Option<Self> {
        let (tag, rest) = payload.split_once(':').unwrap_or((payload, ""));
        Some(match tag {
            "p" if rest.is_empty() => Announcement::Ping,
            "c" => Announcement::Credential(unhex(rest)?),
            "a" => Announcement::ApiKey(unhex(rest)?),
            "t" => {
                let (kind, h) = rest.split_once(':')?;
                let kind = match kind {
                    "ticket" => TokenKind::Ticket,
                    "session" => TokenKind::Session,
                    _ => return None,
                };
                Announcement::Token(kind, unhex(h)?)
            }
            "u" => {
                let (id, org) = rest.split_once(':')?;
                Announcement::User(id.parse().ok()?, org.parse().ok()?)
            }
            "o" => Announcement::Org(rest.parse().ok()?),
            _ => return None,
        })
    }

    fn evict(&self) -> Evict<'_> {
        match self {
            // The digest does not tell whose lists the credential is in.
            Announcement::Credential(h) => Evict::CredentialAnyOwner(h),
            Announcement::ApiKey(h) => Evict::ApiKey(h),
            Announcement::Token(k, h) => Evict::Token(*k, h),
            Announcement::User(id, org) => Evict::User(*id, *org),
            Announcement::Org(id) => Evict::Org(*id),
            Announcement::Ping => Evict::Everything,
        }
    }
}

/// Lower-case or upper-case hex (PostgreSQL's `encode(.., 'hex')`) to bytes.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() % 2 != 0 {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some((digit(p[0])? * 16 + digit(p[1])?) as u8))
        .collect()
}

tokio::task_local! {
    /// The change probe's reading taken for the request being served (see [`RequestView`]).
    static REQUEST_OBSERVED: Cell<Option<i64>>;
}

/// One request's reading of the change probe, so that its cached lookups (an API key, then a
/// key, a user, an organization...) ask the probe once between them, not once each. That is as
/// exact as a reading per lookup: the reading is taken during the request, after every commit
/// that finished before the request arrived, and commits that race with the request may be seen
/// or not either way. (This process's own writes invalidate directly, whatever the reading.)
/// The server keeps one per request and polls the request's handler inside [`RequestView::enter`].
#[derive(Debug, Default)]
pub struct RequestView(Option<i64>);

impl RequestView {
    /// Run `f` (one poll of the request's handler) with this request's reading in reach of the
    /// cache's lookups, and keep what they read.
    pub fn enter<R>(&mut self, f: impl FnOnce() -> R) -> R {
        REQUEST_OBSERVED.sync_scope(Cell::new(self.0), || {
            let r = f();
            self.0 = REQUEST_OBSERVED.with(Cell::get);
            r
        })
    }
}

/// The cached lookups, as `keygate_cache_lookups_total` names them (`cache` label).
#[derive(Clone, Copy)]
enum Lookup {
    Credential,
    ApiKey,
    Token,
    User,
    Org,
    List,
}

/// A lookup's outcome (`outcome` label).
#[derive(Clone, Copy)]
enum Outcome {
    Hit,
    Miss,
    Bypass,
    /// Not in the digest filter (store/digests.rs): unknown without a read.
    Absent,
}

/// `keygate_cache_lookups_total`'s handles by (cache, outcome), made on first use (after the
/// server installed its metrics recorder), so that a lookup does not look the series up again.
#[derive(Default)]
struct LookupCounters([[OnceLock<metrics::Counter>; 4]; 6]);

impl LookupCounters {
    const CACHES: [&'static str; 6] = ["credential", "api_key", "token", "user", "org", "list"];
    const OUTCOMES: [&'static str; 4] = ["hit", "miss", "bypass", "absent"];

    fn increment(&self, lookup: Lookup, outcome: Outcome) {
        let (c, o) = (lookup as usize, outcome as usize);
        self.0[c][o]
            .get_or_init(|| {
                metrics::counter!("keygate_cache_lookups_total", "cache" => Self::CACHES[c], "outcome" => Self::OUTCOMES[o])
            })
            .increment(1);
    }
}

/// A value the cache never holds as `observed`, so the first lookup reconciles.
const UNRECONCILED: i64 = i64::MIN;

struct Caches {
    credentials: Cache<Vec<u8>, Option<Arc<Credential>>>,
    api_keys: Cache<Vec<u8>, Option<ApiKey>>,
    tokens: Cache<(TokenKind, Vec<u8>), Option<LoginToken>>,
    /// By (organization, id) for `get_user`, by (None, id) for `find_user`.
    users: Cache<(Option<Uuid>, Uuid), Option<User>>,
    orgs: Cache<Uuid, Option<Organization>>,
    /// One owner's credential lists, by (organization, owner): the last [`LISTS_PER_OWNER`]
    /// filters asked for, so that a write drops all of that owner's lists at once. Bounded in
    /// rows held (not entries).
    lists: Cache<(Uuid, Uuid), OwnerLists, ListRows>,
    /// Every stored credential digest (store/digests.rs): a presented key outside it is unknown
    /// without a read. Declared stale by every flush; rebuilt by `digest_builder`.
    digests: DigestFilter,
    /// Wakes `digest_builder`.
    build_wake: tokio::sync::Notify,
    /// Fills hold it shared, invalidations exclusively (see `fill`).
    fill: RwLock<()>,
    generation: AtomicU64,
    probe: Option<Arc<dyn ChangeProbe>>,
    /// With a [`ChangeFeed`]: whether it is connected (lookups bypass the cache while not).
    listening: Option<AtomicBool>,
    /// The probe's number as of the last reconcile.
    reconciled: AtomicI64,
    wake: tokio::sync::Notify,
    counters: LookupCounters,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("credentials", &self.credentials.len())
            .field("probe", &self.probe)
            .finish_non_exhaustive()
    }
}

/// One owner's cached lists: each filter (kind, cursor, limit) with the rows it answered.
type OwnerLists = Arc<[(ListQuery, Arc<[Credential]>)]>;

/// What an owner-filtered listing asks for besides its organization and owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ListQuery {
    kind: Option<Kind>,
    after: Option<Uuid>,
    limit: u32,
}

/// Weighs an owner's lists in the rows they hold, plus one.
#[derive(Clone)]
struct ListRows;

impl quick_cache::Weighter<(Uuid, Uuid), OwnerLists> for ListRows {
    fn weight(&self, _: &(Uuid, Uuid), v: &OwnerLists) -> u64 {
        let rows: usize = v.iter().map(|(_, rows)| rows.len()).sum();
        u64::try_from(rows).map_or(u64::MAX, |r| r.saturating_add(1))
    }
}

/// How many filters a cached owner's lists keep (the newest).
const LISTS_PER_OWNER: usize = 4;

/// Which cache an invalidation drops entries of.
enum Evict<'a> {
    Credential(&'a [u8]),
    /// A credential of unknown owner (a PostgreSQL announcement): it and every list.
    CredentialAnyOwner(&'a [u8]),
    /// One owner's lists: (organization, owner).
    Lists(Uuid, Uuid),
    ApiKey(&'a [u8]),
    Token(TokenKind, &'a [u8]),
    /// Every token that expired by then: what a sweep (`create_login_token`) deleted.
    TokensExpiredBy(DateTime<Utc>),
    /// A user's id and organization.
    User(Uuid, Uuid),
    Org(Uuid),
    /// Every credential and every list.
    AllCredentials,
    AllApiKeys,
    AllTokens,
    Everything,
}

impl Caches {
    fn new(entries: u64, probe: Option<Arc<dyn ChangeProbe>>, feed: bool) -> Self {
        let n = usize::try_from(entries).unwrap_or(usize::MAX);
        Caches {
            credentials: Cache::new(n),
            api_keys: Cache::new(n),
            tokens: Cache::new(n),
            users: Cache::new(n),
            orgs: Cache::new(n),
            // Weighed in rows (and one per owner), so that the lists hold at most as many
            // credentials as the other caches hold entries.
            lists: Cache::with_weighter(n, entries, ListRows),
            digests: DigestFilter::default(),
            build_wake: tokio::sync::Notify::new(),
            fill: RwLock::new(()),
            generation: AtomicU64::new(0),
            probe,
            listening: feed.then(|| AtomicBool::new(false)),
            reconciled: AtomicI64::new(UNRECONCILED),
            wake: tokio::sync::Notify::new(),
            counters: LookupCounters::default(),
        }
    }

    /// May a lookup use (and fill) the cache now? Not while the change feed is disconnected,
    /// nor while another process's commit may be unreconciled: then it wakes the reconciler
    /// and reads the database.
    fn trusted(&self) -> bool {
        if let Some(l) = &self.listening {
            if !l.load(Ordering::Acquire) {
                return false;
            }
        }
        let Some(probe) = &self.probe else { return true };
        // One reading per request (see `RequestView`); a lookup outside a request reads anew.
        let observed = match REQUEST_OBSERVED.try_with(Cell::get) {
            Ok(Some(v)) => Ok(v),
            _ => probe.observed().inspect(|v| {
                let _ = REQUEST_OBSERVED.try_with(|c| c.set(Some(*v)));
            }),
        };
        match observed {
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
                Evict::Credential(h) => {
                    self.credentials.remove(*h);
                }
                Evict::CredentialAnyOwner(h) => {
                    self.credentials.remove(*h);
                    self.lists.clear();
                }
                Evict::Lists(org, owner) => {
                    self.lists.remove(&(*org, *owner));
                }
                Evict::ApiKey(h) => {
                    self.api_keys.remove(*h);
                }
                Evict::Token(k, h) => {
                    self.tokens.remove(&(*k, h.to_vec()));
                }
                Evict::TokensExpiredBy(at) => self.tokens.retain(|_, t| t.as_ref().is_none_or(|t| t.expires_at > *at)),
                Evict::User(id, org) => {
                    self.users.remove(&(None, *id));
                    self.users.remove(&(Some(*org), *id));
                }
                Evict::Org(id) => {
                    self.orgs.remove(id);
                }
                Evict::AllCredentials => {
                    self.credentials.clear();
                    self.lists.clear();
                }
                Evict::AllApiKeys => self.api_keys.clear(),
                Evict::AllTokens => self.tokens.clear(),
                Evict::Everything => {
                    // Others may have stored keys the digest filter lacks.
                    self.digests.stale();
                    self.build_wake.notify_one();
                    self.credentials.clear();
                    self.api_keys.clear();
                    self.tokens.clear();
                    self.users.clear();
                    self.orgs.clear();
                    self.lists.clear();
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

/// Builds the digest filter whenever it needs one (at start, after every flush, once it has
/// outgrown its size): one task per cache, ending when the cache is dropped.
async fn digest_builder(caches: Weak<Caches>, inner: SharedStore) {
    loop {
        let Some(c) = caches.upgrade() else { return };
        if !c.digests.needs_build() {
            // The timeout lets the task notice that the cache is gone.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), c.build_wake.notified()).await;
            continue;
        }
        let started = std::time::Instant::now();
        match build_digests(&c, &inner).await {
            Ok(Some(bytes)) => tracing::debug!(
                bytes,
                elapsed_ms = started.elapsed().as_millis(),
                "built the credential digest filter"
            ),
            // Went stale while it was built: build again.
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not build the credential digest filter; unknown keys read the database");
                drop(c);
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

/// Digests per page of a build.
const DIGEST_PAGE: u32 = 4096;

/// One build of the digest filter (store/digests.rs): sized by a count, then every digest,
/// page by page, each page read after the build began (which is all the filter's proof needs:
/// every key committed before the build began is read, every later one is added by its write).
async fn build_digests(c: &Caches, inner: &SharedStore) -> Result<Option<usize>> {
    let expected = inner.count_credentials().await?;
    let build = c.digests.begin(expected);
    let mut after = Vec::new();
    loop {
        let page = match inner.credential_digests_after(&after, DIGEST_PAGE).await {
            Ok(page) => page,
            Err(e) => {
                c.digests.abandon(build);
                return Err(e);
            }
        };
        for d in &page {
            build.fill(d);
        }
        match page.last() {
            Some(last) if page.len() == DIGEST_PAGE as usize => after.clone_from(last),
            _ => break,
        }
        tokio::task::yield_now().await;
    }
    Ok(c.digests.finish(build))
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
        Self::with_sources(inner, entries, probe, None)
    }

    /// As `new`, with a [`ChangeFeed`] of other writers' commits too: the cache is bypassed
    /// until the feed connects.
    pub fn with_sources(
        inner: SharedStore,
        entries: u64,
        probe: Option<Arc<dyn ChangeProbe>>,
        feed: Option<Arc<dyn ChangeFeed>>,
    ) -> Self {
        let c = Arc::new(Caches::new(entries, probe, feed.is_some()));
        if c.probe.is_some() {
            tokio::spawn(reconciler(Arc::downgrade(&c)));
            // Only with a probe (SQLite): it sees another process's commit before the next
            // request does. Behind a change feed (PostgreSQL) another node's new key would be
            // refused here until its notification arrived, where a read finds it at once; so
            // there the filter is never built, and answers "maybe" to everything.
            tokio::spawn(digest_builder(Arc::downgrade(&c), inner.clone()));
        }
        if let Some(feed) = feed {
            metrics::gauge!("keygate_cache_listener_connected").set(0.0);
            feed.start(FeedSink(Arc::downgrade(&c)));
        }
        CachedStore { inner, c }
    }

    /// A lookup through `cache`: a trusted hit answers at once; otherwise `load` reads the
    /// database, and what it read is kept unless an invalidation ran meanwhile. `load` makes its
    /// future only on a miss: a store's future is boxed, and making one to drop it cost every
    /// hit an allocation and a copy.
    async fn cached<K, V, L>(&self, lookup: Lookup, cache: &Cache<K, V>, key: K, load: impl FnOnce() -> L) -> Result<V>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        L: std::future::Future<Output = Result<V>>,
    {
        self.cached_as(self.c.trusted(), lookup, cache, key, load).await
    }

    /// [`Self::cached`] with the caller's own reading of [`Caches::trusted`] (taken once for
    /// a lookup that also consults the digest filter).
    async fn cached_as<K, V, L>(
        &self,
        trusted: bool,
        lookup: Lookup,
        cache: &Cache<K, V>,
        key: K,
        load: impl FnOnce() -> L,
    ) -> Result<V>
    where
        K: Hash + Eq + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        L: std::future::Future<Output = Result<V>>,
    {
        if trusted {
            if let Some(v) = cache.get(&key) {
                self.c.counters.increment(lookup, Outcome::Hit);
                return Ok(v);
            }
        }
        let generation = self.c.generation.load(Ordering::Acquire);
        let v = load().await?;
        let outcome = if trusted {
            let _shared = self.c.fill.read().unwrap_or_else(PoisonError::into_inner);
            if self.c.generation.load(Ordering::Acquire) == generation {
                cache.insert(key, v.clone());
            }
            Outcome::Miss
        } else {
            Outcome::Bypass
        };
        self.c.counters.increment(lookup, outcome);
        Ok(v)
    }

    /// One owner's credentials (`filter.owner_id` set), as [`Self::cached`] does a lookup: the
    /// entry of (organization, owner) holds the rows of its last few filters; a fill adds its
    /// filter to what the entry holds (under the fill lock, so the entry is as current as the
    /// rows read).
    async fn cached_list(&self, org_id: Uuid, owner: Uuid, filter: &CredentialFilter) -> Result<Vec<Credential>> {
        let key = (org_id, owner);
        let query = ListQuery {
            kind: filter.kind,
            after: filter.after,
            limit: filter.limit,
        };
        let trusted = self.c.trusted();
        if trusted {
            if let Some(rows) = self
                .c
                .lists
                .get(&key)
                .and_then(|e| e.iter().find(|(q, _)| *q == query).map(|(_, rows)| rows.clone()))
            {
                self.c.counters.increment(Lookup::List, Outcome::Hit);
                return Ok(rows.to_vec());
            }
        }
        let generation = self.c.generation.load(Ordering::Acquire);
        let rows = self.inner.list_credentials(org_id, filter).await?;
        let outcome = if trusted {
            let _shared = self.c.fill.read().unwrap_or_else(PoisonError::into_inner);
            if self.c.generation.load(Ordering::Acquire) == generation {
                // Two fills of one owner at once may each drop the other's filter: a later miss.
                let held = self.c.lists.get(&key);
                let kept = held
                    .iter()
                    .flat_map(|e| e.iter())
                    .filter(|(q, _)| *q != query)
                    .take(LISTS_PER_OWNER - 1)
                    .cloned();
                let entry: OwnerLists = std::iter::once((query, Arc::from(rows.as_slice())))
                    .chain(kept)
                    .collect();
                self.c.lists.insert(key, entry);
            }
            Outcome::Miss
        } else {
            Outcome::Bypass
        };
        self.c.counters.increment(Lookup::List, outcome);
        Ok(rows)
    }

    /// Run `write`, then `after` with its outcome, to the end even when the caller stops
    /// waiting. A handler's future is dropped when its request times out or its connection
    /// closes, but a write it started may still commit (SQLite's writer thread, PostgreSQL's
    /// server): an invalidation skipped after that commit would leave, say, a revoked key
    /// answering from the cache. So the two run as one future that, dropped before it is done,
    /// goes on on a task of its own ([`ToTheEnd`]). A write that panics answers an internal
    /// error and drops everything cached (what it changed is unknown).
    async fn write<T, W, A>(&self, write: W, after: A) -> Result<T>
    where
        T: Send + 'static,
        W: std::future::Future<Output = Result<T>> + Send + 'static,
        A: FnOnce(&Caches, &Result<T>) + Send + 'static,
    {
        let c = self.c.clone();
        ToTheEnd::new(async move {
            let mut write = std::pin::pin!(write);
            let outcome = std::future::poll_fn(|cx| {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write.as_mut().poll(cx))) {
                    Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
                    Ok(std::task::Poll::Ready(r)) => std::task::Poll::Ready(Some(r)),
                    Err(_) => std::task::Poll::Ready(None),
                }
            })
            .await;
            match outcome {
                Some(r) => {
                    after(&c, &r);
                    r
                }
                None => {
                    c.invalidate(&[Evict::Everything]);
                    Err(Error::internal("a store write panicked"))
                }
            }
        })
        .await
    }
}

/// A future that runs to its end even when its caller stops waiting: dropped before it is
/// done, it goes on on a task of its own. Awaited to the end (the usual case), it runs in its
/// caller's task and spawns nothing: with a task spawned for every write, the create row's
/// slowest request took over 100 ms in half the runs, against a fifth to a quarter without
/// (BENCHMARKS.md, issue 16's eighth part).
struct ToTheEnd<F: std::future::Future + Send + 'static>
where
    F::Output: Send + 'static,
{
    fut: Option<std::pin::Pin<Box<F>>>,
}

impl<F: std::future::Future + Send + 'static> ToTheEnd<F>
where
    F::Output: Send + 'static,
{
    fn new(fut: F) -> Self {
        Self {
            fut: Some(Box::pin(fut)),
        }
    }
}

impl<F: std::future::Future + Send + 'static> std::future::Future for ToTheEnd<F>
where
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        let Some(fut) = self.fut.as_mut() else {
            // Polled again after it was done: nothing more will come.
            return std::task::Poll::Pending;
        };
        let out = std::task::ready!(fut.as_mut().poll(cx));
        self.fut = None;
        std::task::Poll::Ready(out)
    }
}

impl<F: std::future::Future + Send + 'static> Drop for ToTheEnd<F>
where
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let Some(fut) = self.fut.take() {
            // Outside a runtime (it is going away), nothing can run it any more.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(fut);
            }
        }
    }
}

impl Caches {
    /// After a credential write: drop the credential and its owner's lists, found by `of` from
    /// what the write returned (digest, organization, owner); everything on error.
    fn drop_credential_of<T>(&self, r: &Result<T>, of: impl FnOnce(&T) -> Option<(&[u8], Uuid, Option<Uuid>)>) {
        match r {
            Ok(v) => {
                if let Some((h, org, owner)) = of(v) {
                    self.drop_credential(h, org, owner);
                }
            }
            Err(_) => self.invalidate(&[Evict::AllCredentials]),
        }
    }

    /// Drop a credential (by digest) and its owner's lists.
    fn drop_credential(&self, hash: &[u8], org_id: Uuid, owner: Option<Uuid>) {
        match owner {
            Some(owner) => self.invalidate(&[Evict::Credential(hash), Evict::Lists(org_id, owner)]),
            None => self.invalidate(&[Evict::Credential(hash)]),
        }
    }
}

#[async_trait]
impl Store for CachedStore {
    async fn migrate(&self) -> Result<()> {
        let inner = self.inner.clone();
        self.write(async move { inner.migrate().await }, |c, _| {
            c.invalidate(&[Evict::Everything]);
        })
        .await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    async fn bootstrap(&self, b: &Bootstrap) -> Result<bool> {
        let (inner, b) = (self.inner.clone(), b.clone());
        self.write(async move { inner.bootstrap(&b).await }, |c, _| {
            c.invalidate(&[Evict::Everything]);
        })
        .await
    }
    async fn create_org(&self, org: &Organization, api_key: &ApiKey, events: &[NewEvent]) -> Result<()> {
        let (inner, org, api_key, events) = (self.inner.clone(), org.clone(), api_key.clone(), events.to_vec());
        let (id, hash) = (org.id, api_key.hash.clone());
        self.write(
            async move { inner.create_org(&org, &api_key, &events).await },
            move |c, _| {
                c.invalidate(&[Evict::Org(id), Evict::ApiKey(&hash)]);
            },
        )
        .await
    }
    async fn get_org(&self, id: Uuid) -> Result<Option<Organization>> {
        self.cached(Lookup::Org, &self.c.orgs, id, || self.inner.get_org(id))
            .await
    }
    async fn get_org_by_name(&self, name: &str) -> Result<Option<Organization>> {
        self.inner.get_org_by_name(name).await
    }
    async fn list_orgs(&self) -> Result<Vec<Organization>> {
        self.inner.list_orgs().await
    }
    async fn create_user(&self, user: &User, event: &NewEvent) -> Result<()> {
        let (inner, user, event) = (self.inner.clone(), user.clone(), event.clone());
        let (id, org) = (user.id, user.org_id);
        self.write(async move { inner.create_user(&user, &event).await }, move |c, _| {
            c.invalidate(&[Evict::User(id, org)]);
        })
        .await
    }
    async fn get_user(&self, org_id: Uuid, id: Uuid) -> Result<Option<User>> {
        self.cached(Lookup::User, &self.c.users, (Some(org_id), id), || {
            self.inner.get_user(org_id, id)
        })
        .await
    }
    async fn update_user(&self, user: &User, end_tokens: bool, event: &NewEvent) -> Result<bool> {
        let (inner, user, event) = (self.inner.clone(), user.clone(), event.clone());
        let (id, org) = (user.id, user.org_id);
        self.write(
            async move { inner.update_user(&user, end_tokens, &event).await },
            move |c, r| {
                if end_tokens || r.is_err() {
                    c.invalidate(&[Evict::User(id, org), Evict::AllTokens]);
                } else {
                    c.invalidate(&[Evict::User(id, org)]);
                }
            },
        )
        .await
    }
    async fn find_user(&self, id: Uuid) -> Result<Option<User>> {
        self.cached(Lookup::User, &self.c.users, (None, id), || self.inner.find_user(id))
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
        let (inner, key, event) = (self.inner.clone(), key.clone(), event.clone());
        let hash = key.hash.clone();
        self.write(async move { inner.create_api_key(&key, &event).await }, move |c, _| {
            c.invalidate(&[Evict::ApiKey(&hash)]);
        })
        .await
    }
    async fn find_api_key(&self, hash: &[u8]) -> Result<Option<ApiKey>> {
        self.cached(Lookup::ApiKey, &self.c.api_keys, hash.to_vec(), || {
            self.inner.find_api_key(hash)
        })
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
        let (inner, event) = (self.inner.clone(), event.clone());
        self.write(
            async move { inner.revoke_api_key(org_id, id, at, &event).await },
            |c, r| match r {
                Ok(Some(k)) => c.invalidate(&[Evict::ApiKey(&k.hash)]),
                Ok(None) => {}
                Err(_) => c.invalidate(&[Evict::AllApiKeys]),
            },
        )
        .await
    }

    async fn create_login_token(&self, kind: TokenKind, token: &LoginToken, event: &NewEvent) -> Result<()> {
        let (inner, token, event) = (self.inner.clone(), token.clone(), event.clone());
        let (hash, created_at) = (token.hash.clone(), token.created_at);
        self.write(
            async move { inner.create_login_token(kind, &token, &event).await },
            move |c, _| {
                // The new token, and what the store swept on the way: every token expired by its
                // creation (held ones would still answer to a lookup with an earlier `now`).
                c.invalidate(&[Evict::Token(kind, &hash), Evict::TokensExpiredBy(created_at)]);
            },
        )
        .await
    }
    async fn find_login_token(&self, kind: TokenKind, hash: &[u8], now: DateTime<Utc>) -> Result<Option<LoginToken>> {
        // The row is cached; its expiry is checked against `now` on every lookup, as the query
        // does. (A miss stays a miss: an expired token never comes back.)
        let found = self
            .cached(Lookup::Token, &self.c.tokens, (kind, hash.to_vec()), || {
                self.inner.find_login_token(kind, hash, now)
            })
            .await?;
        Ok(found.filter(|t| t.expires_at > now))
    }
    async fn delete_login_token(&self, kind: TokenKind, hash: &[u8], event: &NewEvent) -> Result<bool> {
        let (inner, hash, event) = (self.inner.clone(), hash.to_vec(), event.clone());
        let held = hash.clone();
        self.write(
            async move { inner.delete_login_token(kind, &hash, &event).await },
            move |c, _| c.invalidate(&[Evict::Token(kind, &held)]),
        )
        .await
    }

    async fn insert_credential(&self, cred: &Credential, event: &NewEvent) -> Result<i64> {
        let (inner, cred, event) = (self.inner.clone(), cred.clone(), event.clone());
        let (hash, org, owner) = (cred.hash.clone(), cred.org_id, cred.owner_id);
        self.write(
            async move { inner.insert_credential(&cred, &event).await },
            // Whatever the outcome, the new row is the caller's: its digest and owner. The
            // digest joins the filter after the commit (store/digests.rs), before the caller
            // is answered.
            move |c, _| {
                c.digests.add(&hash);
                c.drop_credential(&hash, org, owner);
            },
        )
        .await
    }
    async fn get_credential(&self, org_id: Uuid, id: Uuid) -> Result<Option<Credential>> {
        self.inner.get_credential(org_id, id).await
    }
    async fn find_credential_by_hash(&self, hash: &[u8]) -> Result<Option<Arc<Credential>>> {
        // Trusted first: once the cache has accounted for another process's commit, the filter
        // read after it is the one that commit made stale (or a build after it).
        let trusted = self.c.trusted();
        if trusted && !self.c.digests.may_hold(hash) {
            self.c.counters.increment(Lookup::Credential, Outcome::Absent);
            return Ok(None);
        }
        self.cached_as(trusted, Lookup::Credential, &self.c.credentials, hash.to_vec(), || {
            self.inner.find_credential_by_hash(hash)
        })
        .await
    }
    async fn find_credential(&self, id: Uuid) -> Result<Option<Credential>> {
        self.inner.find_credential(id).await
    }
    async fn list_credentials(&self, org_id: Uuid, filter: &CredentialFilter) -> Result<Vec<Credential>> {
        match filter.owner_id {
            // One owner's keys (the Tedee and personal-key lists): cached.
            Some(owner) => self.cached_list(org_id, owner, filter).await,
            None => self.inner.list_credentials(org_id, filter).await,
        }
    }
    async fn count_credentials(&self) -> Result<u64> {
        self.inner.count_credentials().await
    }
    async fn credential_digests_after(&self, after: &[u8], limit: u32) -> Result<Vec<Vec<u8>>> {
        self.inner.credential_digests_after(after, limit).await
    }
    async fn update_credential(&self, cred: &Credential, event: &NewEvent) -> Result<Option<i64>> {
        let (inner, cred, event) = (self.inner.clone(), cred.clone(), event.clone());
        let (hash, org, owner) = (cred.hash.clone(), cred.org_id, cred.owner_id);
        self.write(
            async move { inner.update_credential(&cred, &event).await },
            // The digest, organization and owner never change (the update is by organization
            // and id and writes none of them); drop by the ones the caller had (everything on
            // error).
            move |c, r| match r {
                Ok(_) => c.drop_credential(&hash, org, owner),
                Err(_) => c.invalidate(&[Evict::AllCredentials]),
            },
        )
        .await
    }
    async fn revoke_credential(
        &self,
        org_id: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
        by: &str,
        event: &NewEvent,
    ) -> Result<Option<(Credential, Option<i64>)>> {
        let (inner, by, event) = (self.inner.clone(), by.to_string(), event.clone());
        self.write(
            async move { inner.revoke_credential(org_id, id, at, &by, &event).await },
            |c, r| c.drop_credential_of(r, |v| v.as_ref().map(|(k, _)| (&k.hash[..], k.org_id, k.owner_id))),
        )
        .await
    }
    async fn consume_use(
        &self,
        org_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        event: &NewEvent,
        extra: &[NewEvent],
    ) -> Result<ConsumeOutcome> {
        let (inner, event, extra) = (self.inner.clone(), event.clone(), extra.to_vec());
        self.write(
            async move { inner.consume_use(org_id, id, now, &event, &extra).await },
            |c, r| {
                c.drop_credential_of(r, |o| match o {
                    ConsumeOutcome::Used(k, _) | ConsumeOutcome::Refused(Some(k)) => {
                        Some((&k.hash[..], k.org_id, k.owner_id))
                    }
                    ConsumeOutcome::Refused(None) => None,
                })
            },
        )
        .await
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

/// The store the server runs on: `inner` with the credential cache in front when `entries` is
/// not 0 and the database has a change probe (SQLite), or, when `postgres_cache` is on, a
/// change feed (PostgreSQL's LISTEN/NOTIFY). Otherwise (PostgreSQL by default) uncached.
pub fn wrap(inner: SharedStore, entries: u64, postgres_cache: bool) -> SharedStore {
    if entries == 0 {
        return inner;
    }
    if let Some(probe) = inner.change_probe() {
        return Arc::new(CachedStore::new(inner, entries, Some(probe)));
    }
    match inner.change_feed() {
        Some(feed) if postgres_cache => Arc::new(CachedStore::with_sources(inner, entries, None, Some(feed))),
        _ => inner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcements_parse_or_flush() {
        assert_eq!(
            Announcement::parse("c:00ff10"),
            Some(Announcement::Credential(vec![0, 255, 16]))
        );
        assert_eq!(Announcement::parse("a:AB"), Some(Announcement::ApiKey(vec![0xab])));
        assert_eq!(
            Announcement::parse("t:session:01"),
            Some(Announcement::Token(TokenKind::Session, vec![1]))
        );
        let (id, org) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(
            Announcement::parse(&format!("u:{id}:{org}")),
            Some(Announcement::User(id, org))
        );
        assert_eq!(Announcement::parse(&format!("o:{org}")), Some(Announcement::Org(org)));
        assert_eq!(Announcement::parse("p"), Some(Announcement::Ping));
        for bad in ["", "c:", "c:0", "c:zz", "t:other:00", "u:x:y", "o:1", "x:00", "p:1"] {
            assert_eq!(Announcement::parse(bad), None, "{bad}");
        }
    }

    /// A probe that counts its readings and answers `value`; nobody else writes.
    #[derive(Debug, Default)]
    struct Counting {
        readings: std::sync::atomic::AtomicUsize,
        value: AtomicI64,
    }

    #[async_trait]
    impl ChangeProbe for Counting {
        fn observed(&self) -> Result<i64> {
            self.readings.fetch_add(1, Ordering::SeqCst);
            Ok(self.value.load(Ordering::SeqCst))
        }
        async fn others_committed(&self) -> Result<bool> {
            Ok(false)
        }
    }

    /// Polls `f` inside a [`RequestView`], as the server's request tracking does.
    struct InView<F> {
        view: RequestView,
        f: std::pin::Pin<Box<F>>,
    }

    impl<F: std::future::Future> std::future::Future for InView<F> {
        type Output = F::Output;
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
            let this = &mut *self;
            this.view.enter(|| this.f.as_mut().poll(cx))
        }
    }

    fn new_event(org: Uuid, id: Uuid) -> NewEvent {
        NewEvent {
            org_id: org,
            aggregate_type: "key",
            aggregate_id: id,
            event_type: "KeyCreated",
            data: serde_json::json!({}),
            actor: "tester".into(),
            at: Utc::now(),
        }
    }

    fn personal(org: Uuid, owner: Uuid) -> Credential {
        Credential {
            owner_id: Some(owner),
            name: "laptop".into(),
            prefix: "pk_1".into(),
            hash: Uuid::new_v4().as_bytes().to_vec(),
            scopes: vec!["Account.Read".into()],
            created_by: format!("user:{owner}"),
            ..Credential::fixture(org, Kind::Personal, Utc::now())
        }
    }

    /// A fresh SQLite file (kept in the returned directory) behind a cache of 100 entries with a
    /// counting probe nobody else moves, reconciled once; and the store behind it.
    async fn cached_sqlite() -> (tempfile::TempDir, SharedStore, CachedStore, Arc<Counting>) {
        let dir = tempfile::tempdir().unwrap();
        let inner = crate::store::open(&format!("sqlite://{}/kg.db", dir.path().display()))
            .await
            .unwrap();
        inner.migrate().await.unwrap();
        let probe = Arc::new(Counting::default());
        let store = CachedStore::new(inner.clone(), 100, Some(probe.clone()));
        store.c.reconcile().await.unwrap();
        (dir, inner, store, probe)
    }

    /// An organization (created at `at`) with an API key, created through `store`.
    async fn org_in(store: &CachedStore, at: DateTime<Utc>) -> Organization {
        let org = Organization {
            id: Uuid::now_v7(),
            name: "acme".into(),
            is_system: false,
            created_at: at,
        };
        let api_key = ApiKey {
            id: Uuid::now_v7(),
            org_id: org.id,
            name: "k".into(),
            prefix: "kg".into(),
            hash: vec![1; 32],
            created_at: at,
            revoked_at: None,
        };
        store.create_org(&org, &api_key, &[]).await.unwrap();
        org
    }

    /// One owner's list is cached (a row written past the decorator is not seen), and every
    /// credential write through it, a PostgreSQL announcement and a flush are seen at once;
    /// another owner's list survives that owner's neighbour's writes.
    #[tokio::test]
    async fn owner_lists_are_cached_and_dropped_by_every_write() {
        let (_dir, inner, store, _) = cached_sqlite().await;
        let org = org_in(&store, Utc::now()).await;
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let filter = |owner| CredentialFilter {
            kind: Some(Kind::Personal),
            owner_id: Some(owner),
            after: None,
            limit: 100,
        };
        let names = |v: Vec<Credential>| v.into_iter().map(|c| c.name).collect::<Vec<_>>();
        let list = |owner| {
            let (store, f) = (&store, filter(owner));
            async move { store.list_credentials(org.id, &f).await.unwrap() }
        };

        let first = personal(org.id, alice);
        store
            .insert_credential(&first, &new_event(org.id, first.id))
            .await
            .unwrap();
        assert_eq!(names(list(alice).await), ["laptop"]);
        assert!(list(bob).await.is_empty());

        // Cached: a row written behind the decorator's back is not seen...
        let hidden = personal(org.id, alice);
        inner
            .insert_credential(&hidden, &new_event(org.id, hidden.id))
            .await
            .unwrap();
        assert_eq!(list(alice).await.len(), 1);
        // ... until a write through it (here bob's) drops the lists it touches: not alice's.
        let bobs = personal(org.id, bob);
        store
            .insert_credential(&bobs, &new_event(org.id, bobs.id))
            .await
            .unwrap();
        assert_eq!(list(bob).await.len(), 1);
        assert_eq!(list(alice).await.len(), 1);
        // A write of alice's: a create.
        let second = personal(org.id, alice);
        store
            .insert_credential(&second, &new_event(org.id, second.id))
            .await
            .unwrap();
        assert_eq!(list(alice).await.len(), 3);

        // An update (rename).
        let mut renamed = second.clone();
        renamed.name = "phone".into();
        assert!(
            store
                .update_credential(&renamed, &new_event(org.id, second.id))
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(names(list(alice).await), ["laptop", "laptop", "phone"]);

        // A revoke.
        let r = store
            .revoke_credential(org.id, first.id, Utc::now(), "t", &new_event(org.id, first.id))
            .await
            .unwrap();
        assert!(r.is_some());
        let l = list(alice).await;
        assert!(l.iter().find(|c| c.id == first.id).unwrap().revoked_at.is_some());

        // A use.
        let used = store
            .consume_use(org.id, second.id, Utc::now(), &new_event(org.id, second.id), &[])
            .await
            .unwrap();
        assert!(matches!(used, ConsumeOutcome::Used(..)));
        assert_eq!(
            list(alice).await.iter().find(|c| c.id == second.id).unwrap().used_count,
            1
        );

        // Several filters of one owner are held, and dropped together.
        let all_kinds = CredentialFilter {
            kind: None,
            ..filter(alice)
        };
        assert_eq!(store.list_credentials(org.id, &all_kinds).await.unwrap().len(), 3);
        let hidden = personal(org.id, alice);
        inner
            .insert_credential(&hidden, &new_event(org.id, hidden.id))
            .await
            .unwrap();
        assert_eq!(list(alice).await.len(), 3);
        assert_eq!(store.list_credentials(org.id, &all_kinds).await.unwrap().len(), 3);

        // A PostgreSQL announcement of any credential (digest only) drops every list.
        FeedSink(Arc::downgrade(&store.c)).changed("c:00ff");
        assert_eq!(list(alice).await.len(), 4);
        assert_eq!(store.list_credentials(org.id, &all_kinds).await.unwrap().len(), 4);
        assert_eq!(list(bob).await.len(), 1);

        // And so does a flush (another process committed).
        let hidden = personal(org.id, bob);
        inner
            .insert_credential(&hidden, &new_event(org.id, hidden.id))
            .await
            .unwrap();
        assert_eq!(list(bob).await.len(), 1);
        store.c.invalidate(&[Evict::Everything]);
        assert_eq!(list(bob).await.len(), 2);
    }

    /// A new ticket or session sweeps the tokens expired by its creation from the database; the
    /// cache drops what it held of them at once (a lookup with an earlier `now` would otherwise
    /// still find them), and keeps the tokens the sweep left.
    #[tokio::test]
    async fn a_token_swept_by_a_later_creation_is_gone_from_the_cache() {
        let (_dir, _, store, _) = cached_sqlite().await;
        let t0 = Utc::now();
        let org = org_in(&store, t0).await;
        let user = User {
            id: Uuid::now_v7(),
            org_id: org.id,
            username: "alice".into(),
            password_hash: "$argon2id$v=19$not-a-real-hash".into(),
            person_id: None,
            is_admin: false,
            created_at: t0,
            disabled: false,
            unlocked_at: None,
        };
        store.create_user(&user, &new_event(org.id, user.id)).await.unwrap();
        let token = |hash: &[u8], created: DateTime<Utc>, secs: i64| LoginToken {
            hash: hash.to_vec(),
            user_id: user.id,
            org_id: org.id,
            xsrf_hash: None,
            created_at: created,
            expires_at: created + chrono::Duration::seconds(secs),
        };
        let find = |hash: &'static [u8]| store.find_login_token(TokenKind::Ticket, hash, t0);
        for (hash, secs) in [(&b"short"[..], 60), (&b"long"[..], 3600)] {
            store
                .create_login_token(TokenKind::Ticket, &token(hash, t0, secs), &new_event(org.id, user.id))
                .await
                .unwrap();
        }
        assert!(find(b"short").await.unwrap().is_some());
        assert!(find(b"long").await.unwrap().is_some());
        // Two minutes later a session is made: the store sweeps "short" (expired by then).
        let later = t0 + chrono::Duration::seconds(120);
        store
            .create_login_token(TokenKind::Session, &token(b"s", later, 60), &new_event(org.id, user.id))
            .await
            .unwrap();
        assert_eq!(find(b"short").await.unwrap(), None);
        assert!(find(b"long").await.unwrap().is_some());
    }

    /// Wait until the digest filter is built (the builder runs on its own task).
    async fn filter_built(store: &CachedStore) {
        for _ in 0..1000 {
            if store.c.digests.settled() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the digest filter was not built within 10 s");
    }

    /// A request that times out or loses its connection drops the handler's future, perhaps
    /// after its write reached the store: the write still commits, and its invalidation must
    /// still run, or the revoked key keeps answering from the cache.
    #[tokio::test]
    async fn a_write_whose_caller_gave_up_still_invalidates() {
        let (_dir, inner, store, _) = cached_sqlite().await;
        let org = org_in(&store, Utc::now()).await;
        let key = personal(org.id, Uuid::now_v7());
        store.insert_credential(&key, &new_event(org.id, key.id)).await.unwrap();
        for _ in 0..3 {
            let held = store.find_credential_by_hash(&key.hash).await.unwrap().unwrap();
            assert!(held.revoked_at.is_none());
        }
        // Polled exactly once, then dropped, as a request timeout does.
        let event = new_event(org.id, key.id);
        let mut revoke = Box::pin(store.revoke_credential(org.id, key.id, Utc::now(), "t", &event));
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(revoke.as_mut().poll(cx))).await;
        assert!(
            first.is_pending(),
            "the write waits for the writer thread: the first poll only starts it"
        );
        drop(revoke);
        let mut committed = false;
        for _ in 0..1000 {
            if inner
                .get_credential(org.id, key.id)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
            {
                committed = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(committed, "the revoke never committed");
        // The invalidation runs right after the commit, in the write handed to a task at the drop.
        let mut seen = false;
        for _ in 0..100 {
            let found = store.find_credential_by_hash(&key.hash).await.unwrap().unwrap();
            if found.revoked_at.is_some() {
                seen = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(
            seen,
            "the cache still answers the key unrevoked after the revoke committed"
        );
    }

    /// A write that panics (a bug in a store) answers an internal error to its caller, whose
    /// task goes on, and drops everything cached: what the write changed is unknown.
    #[tokio::test]
    async fn a_write_that_panics_answers_an_error_and_drops_the_cache() {
        let (_dir, _inner, store, _) = cached_sqlite().await;
        let org = org_in(&store, Utc::now()).await;
        let key = personal(org.id, Uuid::now_v7());
        store.insert_credential(&key, &new_event(org.id, key.id)).await.unwrap();
        store.find_credential_by_hash(&key.hash).await.unwrap().unwrap();
        assert!(!store.c.credentials.is_empty(), "the key is cached");
        let r: Result<()> = store
            .write(
                async {
                    tokio::task::yield_now().await;
                    panic!("a bug in a store write")
                },
                |_, _| {},
            )
            .await;
        assert!(matches!(r, Err(Error::Internal(_))), "{r:?}");
        assert_eq!(store.c.credentials.len(), 0, "the cache was dropped");
    }

    /// The digest filter answers an unknown key without reading the database, holds every key
    /// written through the store at once, and is not used after a flush (another process's
    /// commit) until it was built again.
    #[tokio::test]
    async fn the_digest_filter_answers_unknown_keys_and_holds_every_write() {
        let (_dir, inner, store, _) = cached_sqlite().await;
        let org = org_in(&store, Utc::now()).await;
        // A key stored by another process: the reconciler flushes the cache for its commit.
        let seeded = personal(org.id, Uuid::now_v7());
        inner
            .insert_credential(&seeded, &new_event(org.id, seeded.id))
            .await
            .unwrap();
        store.c.invalidate(&[Evict::Everything]);
        filter_built(&store).await;
        // Built from the database: that key is found.
        assert!(store.find_credential_by_hash(&seeded.hash).await.unwrap().is_some());
        // A key written through the store is found on the next lookup.
        let mine = personal(org.id, Uuid::now_v7());
        store
            .insert_credential(&mine, &new_event(org.id, mine.id))
            .await
            .unwrap();
        assert!(store.find_credential_by_hash(&mine.hash).await.unwrap().is_some());
        // A key written behind the decorator's back, never asked about: without the filter the
        // lookup would read it from the database. The filter answers "unknown" without a read.
        let hidden = personal(org.id, Uuid::now_v7());
        inner
            .insert_credential(&hidden, &new_event(org.id, hidden.id))
            .await
            .unwrap();
        assert!(store.find_credential_by_hash(&hidden.hash).await.unwrap().is_none());
        // A flush (what the reconciler does when another process committed): the filter is
        // not used until rebuilt, so the key is found at once, and still after the rebuild.
        store.c.invalidate(&[Evict::Everything]);
        assert!(store.find_credential_by_hash(&hidden.hash).await.unwrap().is_some());
        filter_built(&store).await;
        assert!(store.find_credential_by_hash(&hidden.hash).await.unwrap().is_some());
        assert!(store.find_credential_by_hash(&[9; 32]).await.unwrap().is_none());
    }

    /// Keys created while the filter is rebuilt again and again are each found by the lookup
    /// right after their creation returned (the build's proof in store/digests.rs).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_created_during_builds_are_never_refused() {
        let (_dir, inner, store, _) = cached_sqlite().await;
        let store = Arc::new(store);
        let org = org_in(&store, Utc::now()).await;
        filter_built(&store).await;
        let done = Arc::new(AtomicBool::new(false));
        let builder = {
            let (store, inner, done) = (store.clone(), inner.clone(), done.clone());
            tokio::spawn(async move {
                let mut builds = 0;
                while !done.load(Ordering::Acquire) {
                    if build_digests(&store.c, &inner).await.unwrap().is_some() {
                        builds += 1;
                    }
                }
                builds
            })
        };
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    for _ in 0..60 {
                        let k = personal(org.id, Uuid::now_v7());
                        store.insert_credential(&k, &new_event(org.id, k.id)).await.unwrap();
                        assert!(
                            store.find_credential_by_hash(&k.hash).await.unwrap().is_some(),
                            "a key created during a build was refused"
                        );
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap();
        }
        done.store(true, Ordering::Release);
        let builds = builder.await.unwrap();
        assert!(builds > 1, "the builds raced the writes ({builds} builds)");
    }

    #[tokio::test]
    async fn one_reading_per_request_and_one_per_lookup_outside() {
        let (_dir, _, store, probe) = cached_sqlite().await;
        let id = Uuid::now_v7();
        let readings = || probe.readings.load(Ordering::SeqCst);

        // Outside a request: a reading per lookup.
        let before = readings();
        for _ in 0..3 {
            assert!(store.get_org(id).await.unwrap().is_none());
        }
        assert_eq!(readings() - before, 3);

        // Inside one: one reading for all of its lookups, across its polls.
        let before = readings();
        let request = async {
            for _ in 0..3 {
                assert!(store.get_org(id).await.unwrap().is_none());
                tokio::task::yield_now().await;
                assert!(store.find_user(id).await.unwrap().is_none());
            }
        };
        InView {
            view: RequestView::default(),
            f: Box::pin(request),
        }
        .await;
        assert_eq!(readings() - before, 1);

        // The next request reads again, and sees a commit made since: it bypasses the cache
        // until the reconciler caught up.
        probe.value.store(1, Ordering::SeqCst);
        let before = readings();
        let c = &store.c;
        InView {
            view: RequestView::default(),
            f: Box::pin(async { assert!(!c.trusted()) }),
        }
        .await;
        assert_eq!(readings() - before, 1);
    }
}

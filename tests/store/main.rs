//! Store conformance: the same assertions against every backend, calling the `Store` trait
//! directly. Each case runs twice: on a fresh SQLite file and on a fresh PostgreSQL database
//! (see tests/support/pg.rs for how the server is found). Cases that race use two store
//! handles (two pools) on one PostgreSQL database, the way two nodes would.

#[path = "../support/pg.rs"]
mod pg;

mod batch;
mod bulk;
mod cache;
mod credential_plans;
mod explain;
mod foreign;
mod hot_plans;
mod plans;

use foreign::*;

use chrono::{DateTime, Duration, TimeZone, Utc};
use keygate::core::credential::{Credential, Kind};
use keygate::core::event::NewEvent;
use keygate::error::Error;
use keygate::model::{ApiKey, Lock, LoginToken, Organization, TokenKind, User};
use keygate::store::{self, Bootstrap, ConsumeOutcome, CredentialFilter, SharedStore};
use serde_json::json;
use sqlx::Connection;
use std::collections::BTreeSet;
use uuid::Uuid;

/// One fresh database and a way to open more handles on it.
struct Fx {
    url: String,
    store: SharedStore,
    _dir: Option<tempfile::TempDir>,
}

impl Fx {
    async fn sqlite() -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/kg.db", dir.path().display());
        let store = store::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        Fx {
            url,
            store,
            _dir: Some(dir),
        }
    }

    /// SQLite with the server's credential cache in front (store/cache.rs): every conformance
    /// case holds through it as well.
    async fn sqlite_cached() -> Fx {
        let fx = Fx::sqlite().await;
        Fx {
            store: store::cache::wrap(fx.store, 1_000, false),
            ..fx
        }
    }

    async fn postgres(test: &str) -> Option<Fx> {
        let admin = pg::admin_url(test)?;
        let url = pg::fresh_database(&admin).await;
        let store = store::open(&url).await.unwrap();
        store.migrate().await.unwrap();
        Some(Fx { url, store, _dir: None })
    }

    /// PostgreSQL with the opt-in credential cache in front (`postgres_credential_cache`,
    /// invalidated by LISTEN/NOTIFY): every conformance case holds through it as well. A
    /// second handle (`reopen`) is another node without the cache.
    async fn postgres_cached(test: &str) -> Option<Fx> {
        let fx = Fx::postgres(test).await?;
        let store = store::cache::wrap(fx.store, 1_000, true);
        // Until its listener has listened and the triggers exist, the cache is bypassed: wait
        // for both, so that the case runs through the cache.
        let mut db = sqlx::PgConnection::connect(&fx.url).await.unwrap();
        for _ in 0..200 {
            let ready: bool = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM pg_trigger WHERE tgname = 'keygate_cache_notify') = 5 \
                 AND EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = 'keygate-cache-listener' AND query ILIKE 'LISTEN%')",
            )
            .fetch_one(&mut db)
            .await
            .unwrap();
            if ready {
                // `connected` follows the triggers' commit at once.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                return Some(Fx { store, ..fx });
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the cache's listener did not connect within 10 s");
    }

    /// Another handle on the same database: on PostgreSQL its own pool, as another node would
    /// have. SQLite is one node's embedded database: the same handle (its single writer
    /// connection is what serializes writers; two processes racing a read-then-write
    /// transaction can get SQLITE_BUSY, which is outside SQLite's contract here).
    async fn reopen(&self) -> SharedStore {
        if self._dir.is_some() {
            return self.store.clone();
        }
        let s = store::open(&self.url).await.unwrap();
        s.migrate().await.unwrap();
        s
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(super::Fx::sqlite().await).await;
                }
            )*
        }
        mod sqlite_cached {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(super::Fx::sqlite_cached().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(fx) = super::Fx::postgres(stringify!($case)).await {
                        super::$case(fx).await;
                    }
                }
            )*
        }
        mod postgres_cached {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(fx) = super::Fx::postgres_cached(stringify!($case)).await {
                        super::$case(fx).await;
                    }
                }
            )*
        }
    };
}

conformance!(
    bootstrap_once,
    bootstrap_race,
    orgs_and_users,
    api_keys,
    login_tokens,
    user_updates,
    credential_crud,
    credential_lists,
    update_and_revoke,
    consume_refusals,
    consume_exact_under_concurrency,
    event_versions_gap_free_under_concurrency,
    concurrent_logins_of_one_user,
    locks,
    events_paging,
    foreign_apps,
    foreign_devices,
    foreign_key_lists,
    foreign_key_by_value,
    foreign_key_deletes,
    foreign_tenancy,
);

/// A fixed time with whole microseconds (the storage precision).
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5).unwrap() + Duration::microseconds(123_456)
}

fn ev(org: Uuid, agg: Uuid, ty: &'static str, data: serde_json::Value) -> NewEvent {
    NewEvent {
        org_id: org,
        aggregate_type: "test",
        aggregate_id: agg,
        event_type: ty,
        data,
        actor: "tester".into(),
        at: t0(),
    }
}

fn org(name: &str, system: bool) -> Organization {
    Organization {
        id: Uuid::now_v7(),
        name: name.into(),
        is_system: system,
        created_at: t0(),
    }
}

fn user(org_id: Uuid, name: &str, person_id: Option<i64>) -> User {
    User {
        id: Uuid::now_v7(),
        org_id,
        username: name.into(),
        password_hash: "$argon2id$v=19$not-a-real-hash".into(),
        person_id,
        is_admin: false,
        created_at: t0(),
        disabled: false,
        unlocked_at: None,
    }
}

fn api_key(org_id: Uuid) -> ApiKey {
    ApiKey {
        id: Uuid::now_v7(),
        org_id,
        name: "k".into(),
        prefix: "kg_ab".into(),
        hash: Uuid::new_v4().as_bytes().to_vec(),
        created_at: t0(),
        revoked_at: None,
    }
}

fn cred(org_id: Uuid, kind: Kind, owner: Option<Uuid>) -> Credential {
    Credential {
        id: Uuid::now_v7(),
        org_id,
        kind,
        owner_id: owner,
        name: "key \u{e6}\u{f8}\u{e5} \"quoted\"".into(),
        prefix: "kg_1234".into(),
        hash: [
            Uuid::new_v4().as_bytes().as_slice(),
            Uuid::new_v4().as_bytes().as_slice(),
        ]
        .concat(),
        scopes: vec!["read".into(), "Lock.Operate".into()],
        not_before: Some(t0() - Duration::hours(1)),
        expires_at: Some(t0() + Duration::days(1)),
        max_uses: None,
        used_count: 0,
        allowed_users: vec![Uuid::now_v7()],
        subject: json!({"domain": "Person", "target": 7, "nested": {"b": [1, 2], "a": null}}),
        metadata: json!({"z": 1, "a": "x"}),
        created_at: t0(),
        created_by: "user:1".into(),
        updated_at: t0(),
        updated_by: "user:1".into(),
        revoked_at: None,
        revoked_by: None,
    }
}

/// An organization with its API key, ready for credentials.
async fn seed_org(s: &SharedStore, name: &str) -> Organization {
    let o = org(name, false);
    s.create_org(&o, &api_key(o.id), &[ev(o.id, o.id, "OrganizationCreated", json!({}))])
        .await
        .unwrap();
    o
}

async fn insert(s: &SharedStore, c: &Credential) -> i64 {
    s.insert_credential(c, &ev(c.org_id, c.id, "KeyIssued", json!({"name": c.name})))
        .await
        .unwrap()
}

fn versions(events: &[keygate::core::event::Event]) -> Vec<i64> {
    events.iter().map(|e| e.version).collect()
}

fn bootstrap_of(name: &str) -> Bootstrap {
    let o = org(name, true);
    let u = User {
        is_admin: true,
        ..user(o.id, "admin", None)
    };
    Bootstrap {
        events: vec![
            ev(o.id, o.id, "OrganizationCreated", json!({"name": name})),
            ev(o.id, u.id, "UserCreated", json!({"username": "admin"})),
        ],
        org: o,
        user: u,
    }
}

async fn bootstrap_once(fx: Fx) {
    let s = &fx.store;
    let b = bootstrap_of("default");
    assert!(s.bootstrap(&b).await.unwrap());
    assert!(!s.bootstrap(&bootstrap_of("other")).await.unwrap());
    let orgs = s.list_orgs().await.unwrap();
    assert_eq!(orgs, vec![b.org.clone()]);
    assert_eq!(s.find_user_by_username("admin").await.unwrap(), Some(b.user.clone()));
    assert_eq!(versions(&s.events_of(b.org.id, b.org.id).await.unwrap()), vec![1]);
    assert_eq!(versions(&s.events_of(b.user.org_id, b.user.id).await.unwrap()), vec![1]);
    assert!(s.get_org_by_name("other").await.unwrap().is_none());
}

async fn bootstrap_race(fx: Fx) {
    let other = fx.reopen().await;
    let mut tasks = vec![];
    for i in 0..8 {
        let s = if i % 2 == 0 { fx.store.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            s.bootstrap(&bootstrap_of(&format!("default{i}"))).await.unwrap()
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += t.await.unwrap() as usize;
    }
    assert_eq!(created, 1, "exactly one bootstrap creates the system organization");
    let orgs = fx.store.list_orgs().await.unwrap();
    assert_eq!(orgs.iter().filter(|o| o.is_system).count(), 1);
    assert_eq!(fx.store.list_users(orgs[0].id).await.unwrap().len(), 1);
}

async fn orgs_and_users(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let b = seed_org(s, "beta").await;
    assert_eq!(s.get_org(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(s.get_org_by_name("beta").await.unwrap(), Some(b.clone()));
    assert_eq!(s.get_org(Uuid::now_v7()).await.unwrap(), None);
    assert_eq!(s.list_orgs().await.unwrap(), vec![a.clone(), b.clone()]);
    // A duplicate name conflicts and writes nothing (not its API key, not its event).
    let dup = org("acme", false);
    let k = api_key(dup.id);
    let e = s
        .create_org(&dup, &k, &[ev(dup.id, dup.id, "OrganizationCreated", json!({}))])
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    assert!(s.find_api_key(&k.hash).await.unwrap().is_none());
    assert!(s.events_of(dup.id, dup.id).await.unwrap().is_empty());

    let u1 = user(a.id, "alice", Some(7));
    s.create_user(&u1, &ev(a.id, u1.id, "UserCreated", json!({})))
        .await
        .unwrap();
    let u2 = user(a.id, "bob", None);
    s.create_user(&u2, &ev(a.id, u2.id, "UserCreated", json!({})))
        .await
        .unwrap();
    // The same person id in another organization is fine; in the same one it conflicts.
    let u3 = user(b.id, "carol", Some(7));
    s.create_user(&u3, &ev(b.id, u3.id, "UserCreated", json!({})))
        .await
        .unwrap();
    for bad in [user(a.id, "alice", None), user(a.id, "dave", Some(7))] {
        let e = s
            .create_user(&bad, &ev(a.id, bad.id, "UserCreated", json!({})))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e:?}");
        assert!(s.get_user(bad.org_id, bad.id).await.unwrap().is_none());
        assert!(s.events_of(bad.org_id, bad.id).await.unwrap().is_empty());
    }
    assert_eq!(s.get_user(u1.org_id, u1.id).await.unwrap(), Some(u1.clone()));
    assert_eq!(s.get_user(Uuid::now_v7(), u1.id).await.unwrap(), None);
    assert_eq!(s.find_user(u1.id).await.unwrap(), Some(u1.clone()));
    assert_eq!(s.find_user_by_username("bob").await.unwrap(), Some(u2.clone()));
    assert_eq!(s.list_users(a.id).await.unwrap(), vec![u1, u2]);
    assert_eq!(s.list_users(b.id).await.unwrap(), vec![u3]);
}

async fn api_keys(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let b = seed_org(s, "beta").await;
    let k = api_key(a.id);
    s.create_api_key(&k, &ev(a.id, k.id, "ApiKeyCreated", json!({})))
        .await
        .unwrap();
    assert_eq!(s.find_api_key(&k.hash).await.unwrap(), Some(k.clone()));
    assert_eq!(s.find_api_key(b"no such digest").await.unwrap(), None);
    let listed = s.list_api_keys(a.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], k);
    // Revoking through another organization finds nothing.
    assert_eq!(
        s.revoke_api_key(b.id, k.id, t0(), &ev(b.id, k.id, "ApiKeyRevoked", json!({})))
            .await
            .unwrap(),
        None
    );
    let at = t0() + Duration::seconds(5);
    let r = s
        .revoke_api_key(a.id, k.id, at, &ev(a.id, k.id, "ApiKeyRevoked", json!({})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.revoked_at, Some(at));
    // Twice is harmless: same revocation time, no second event.
    let r2 = s
        .revoke_api_key(
            a.id,
            k.id,
            at + Duration::seconds(9),
            &ev(a.id, k.id, "ApiKeyRevoked", json!({})),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r2.revoked_at, Some(at));
    assert_eq!(versions(&s.events_of(k.org_id, k.id).await.unwrap()), vec![1, 2]);
    assert!(s.events_of(Uuid::now_v7(), k.id).await.unwrap().is_empty());
    assert_eq!(s.find_api_key(&k.hash).await.unwrap().unwrap().revoked_at, Some(at));
}

async fn login_tokens(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let u = user(a.id, "alice", None);
    s.create_user(&u, &ev(a.id, u.id, "UserCreated", json!({})))
        .await
        .unwrap();
    let tok = |hash: &[u8], created: DateTime<Utc>, ttl: i64| LoginToken {
        hash: hash.to_vec(),
        user_id: u.id,
        org_id: a.id,
        xsrf_hash: Some(b"xsrf-digest".to_vec()),
        created_at: created,
        expires_at: created + Duration::seconds(ttl),
    };
    let t = tok(b"ticket-1", t0(), 60);
    s.create_login_token(TokenKind::Ticket, &t, &ev(a.id, u.id, "TicketIssued", json!({})))
        .await
        .unwrap();
    assert_eq!(
        s.find_login_token(TokenKind::Ticket, b"ticket-1", t0() + Duration::seconds(59))
            .await
            .unwrap(),
        Some(t.clone())
    );
    // Expiry is exclusive; the kind must match.
    assert_eq!(
        s.find_login_token(TokenKind::Ticket, b"ticket-1", t0() + Duration::seconds(60))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.find_login_token(TokenKind::Session, b"ticket-1", t0()).await.unwrap(),
        None
    );
    // A session created later sweeps the expired ticket away.
    let later = t0() + Duration::seconds(120);
    let sess = tok(b"session-1", later, 3600);
    s.create_login_token(TokenKind::Session, &sess, &ev(a.id, u.id, "SessionCreated", json!({})))
        .await
        .unwrap();
    assert_eq!(
        s.find_login_token(TokenKind::Ticket, b"ticket-1", t0()).await.unwrap(),
        None
    );
    assert_eq!(
        s.find_login_token(TokenKind::Session, b"session-1", later)
            .await
            .unwrap(),
        Some(sess)
    );
    assert!(
        !s.delete_login_token(TokenKind::Ticket, b"session-1", &ev(a.id, u.id, "X", json!({})))
            .await
            .unwrap()
    );
    assert!(
        s.delete_login_token(
            TokenKind::Session,
            b"session-1",
            &ev(a.id, u.id, "SessionEnded", json!({}))
        )
        .await
        .unwrap()
    );
    assert!(
        !s.delete_login_token(
            TokenKind::Session,
            b"session-1",
            &ev(a.id, u.id, "SessionEnded", json!({}))
        )
        .await
        .unwrap()
    );
    // UserCreated, TicketIssued, SessionCreated, SessionEnded: failed deletes append nothing.
    assert_eq!(versions(&s.events_of(u.org_id, u.id).await.unwrap()), vec![1, 2, 3, 4]);
}

async fn user_updates(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let b = seed_org(s, "bravo").await;
    let u = user(a.id, "alice", None);
    s.create_user(&u, &ev(a.id, u.id, "UserCreated", json!({})))
        .await
        .unwrap();
    let tok = |hash: &[u8]| LoginToken {
        hash: hash.to_vec(),
        user_id: u.id,
        org_id: a.id,
        xsrf_hash: None,
        created_at: t0(),
        expires_at: t0() + Duration::seconds(600),
    };
    for (kind, h) in [(TokenKind::Ticket, b"t-1"), (TokenKind::Session, b"s-1")] {
        s.create_login_token(kind, &tok(h), &ev(a.id, u.id, "TokenIssued", json!({})))
            .await
            .unwrap();
    }
    // Unlocking keeps the tickets and sessions.
    let unlocked = User {
        unlocked_at: Some(t0()),
        ..u.clone()
    };
    assert!(
        s.update_user(&unlocked, false, &ev(a.id, u.id, "UserUnlocked", json!({})))
            .await
            .unwrap()
    );
    assert_eq!(s.get_user(a.id, u.id).await.unwrap(), Some(unlocked.clone()));
    assert!(
        s.find_login_token(TokenKind::Ticket, b"t-1", t0())
            .await
            .unwrap()
            .is_some()
    );
    // Another organization's id for the user changes nothing and appends nothing.
    let foreign = User {
        org_id: b.id,
        disabled: true,
        ..unlocked.clone()
    };
    assert!(
        !s.update_user(&foreign, true, &ev(b.id, u.id, "UserUpdated", json!({})))
            .await
            .unwrap()
    );
    assert!(s.events_of(b.id, u.id).await.unwrap().is_empty());
    assert!(!s.get_user(a.id, u.id).await.unwrap().unwrap().disabled);
    // Disabling with a new password ends every ticket and session of the user.
    let changed = User {
        password_hash: "$argon2id$v=19$another".into(),
        disabled: true,
        ..unlocked
    };
    assert!(
        s.update_user(&changed, true, &ev(a.id, u.id, "UserUpdated", json!({})))
            .await
            .unwrap()
    );
    assert_eq!(s.get_user(a.id, u.id).await.unwrap(), Some(changed));
    assert!(
        s.find_login_token(TokenKind::Ticket, b"t-1", t0())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.find_login_token(TokenKind::Session, b"s-1", t0())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(versions(&s.events_of(a.id, u.id).await.unwrap()), vec![1, 2, 3, 4, 5]);
}

async fn credential_crud(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let b = seed_org(s, "beta").await;
    let mut c = cred(a.id, Kind::Api, None);
    c.max_uses = Some(3);
    assert_eq!(insert(s, &c).await, 1);
    assert_eq!(s.get_credential(a.id, c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(s.get_credential(b.id, c.id).await.unwrap(), None, "tenancy");
    assert_eq!(s.find_credential_by_hash(&c.hash).await.unwrap().as_deref(), Some(&c));
    assert_eq!(s.find_credential_by_hash(b"nope").await.unwrap(), None);
    assert_eq!(s.find_credential(c.id).await.unwrap(), Some(c.clone()));
    assert_eq!(s.find_credential(Uuid::now_v7()).await.unwrap(), None);
    // A credential with every optional field empty round-trips too.
    let bare = Credential {
        not_before: None,
        expires_at: None,
        allowed_users: vec![],
        scopes: vec![],
        subject: serde_json::Value::Null,
        metadata: json!({}),
        ..cred(a.id, Kind::Temporary, Some(Uuid::now_v7()))
    };
    insert(s, &bare).await;
    assert_eq!(s.get_credential(a.id, bare.id).await.unwrap(), Some(bare.clone()));
    // A second credential with the same digest conflicts and writes nothing.
    let dup = Credential {
        hash: c.hash.clone(),
        ..cred(a.id, Kind::Api, None)
    };
    let e = s
        .insert_credential(&dup, &ev(a.id, dup.id, "KeyIssued", json!({})))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e:?}");
    assert!(s.events_of(dup.org_id, dup.id).await.unwrap().is_empty());
    let ev1 = s.events_of(c.org_id, c.id).await.unwrap();
    assert_eq!(ev1.len(), 1);
    assert_eq!(ev1[0].data, json!({"name": c.name}));
    assert_eq!(ev1[0].at, t0());
    assert_eq!(ev1[0].aggregate_id, c.id);
}

async fn credential_lists(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let b = seed_org(s, "beta").await;
    let owner = Uuid::now_v7();
    let mut mine = vec![];
    for i in 0..7 {
        let kind = if i % 2 == 0 { Kind::Api } else { Kind::Personal };
        let c = cred(a.id, kind, (i < 3).then_some(owner));
        insert(s, &c).await;
        mine.push(c);
    }
    insert(s, &cred(b.id, Kind::Api, Some(owner))).await;
    let all = |f: CredentialFilter| async move { s.list_credentials(a.id, &f).await.unwrap() };
    let ids = |v: &[Credential]| v.iter().map(|c| c.id).collect::<Vec<_>>();
    let everything = all(CredentialFilter {
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(everything, mine, "all of the organization's credentials, in id order");
    let apis = all(CredentialFilter {
        kind: Some(Kind::Api),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(
        ids(&apis),
        ids(&[mine[0].clone(), mine[2].clone(), mine[4].clone(), mine[6].clone()])
    );
    let owned = all(CredentialFilter {
        owner_id: Some(owner),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&owned), ids(&mine[..3]));
    let owned_personal = all(CredentialFilter {
        kind: Some(Kind::Personal),
        owner_id: Some(owner),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&owned_personal), vec![mine[1].id]);
    // Pages of 3 via the cursor cover everything once, in order.
    let mut pages = vec![];
    let mut after = None;
    loop {
        let page = all(CredentialFilter {
            after,
            limit: 3,
            ..Default::default()
        })
        .await;
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        after = page.last().map(|c| c.id);
        pages.push(ids(&page));
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 1]);
    assert_eq!(pages.concat(), ids(&mine));
}

async fn update_and_revoke(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let b = seed_org(s, "beta").await;
    let c = cred(a.id, Kind::Share, None);
    insert(s, &c).await;
    let changed = Credential {
        name: "renamed".into(),
        scopes: vec!["write".into()],
        not_before: None,
        expires_at: Some(t0() + Duration::days(3)),
        max_uses: Some(9),
        allowed_users: vec![],
        subject: json!({"lock": 1}),
        metadata: json!({"pin": false}),
        updated_at: t0() + Duration::seconds(1),
        updated_by: "user:2".into(),
        // Not part of the mutable policy: must be ignored.
        used_count: 5,
        prefix: "ignored".into(),
        ..c.clone()
    };
    let upd = ev(a.id, c.id, "KeyUpdated", json!({}));
    assert_eq!(s.update_credential(&changed, &upd).await.unwrap(), Some(2));
    let got = s.get_credential(a.id, c.id).await.unwrap().unwrap();
    assert_eq!(
        got,
        Credential {
            used_count: 0,
            prefix: c.prefix.clone(),
            ..changed.clone()
        }
    );
    // Another organization cannot update it.
    let foreign = Credential {
        org_id: b.id,
        ..changed.clone()
    };
    assert_eq!(s.update_credential(&foreign, &upd).await.unwrap(), None);

    let at = t0() + Duration::seconds(10);
    let revoke_ev = ev(a.id, c.id, "KeyRevoked", json!({}));
    assert!(
        s.revoke_credential(b.id, c.id, at, "user:9", &revoke_ev)
            .await
            .unwrap()
            .is_none()
    );
    let (r, v) = s
        .revoke_credential(a.id, c.id, at, "user:3", &revoke_ev)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v, Some(3));
    assert_eq!(r.revoked_at, Some(at));
    assert_eq!(r.revoked_by.as_deref(), Some("user:3"));
    assert_eq!((r.updated_at, r.updated_by.as_str()), (at, "user:3"));
    // Idempotent: no second event, the first revocation stands.
    let (r2, v2) = s
        .revoke_credential(a.id, c.id, at + Duration::seconds(1), "user:4", &revoke_ev)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v2, None);
    assert_eq!(r2, r);
    // A revoked credential cannot be updated.
    assert_eq!(s.update_credential(&changed, &upd).await.unwrap(), None);
    assert!(
        s.revoke_credential(a.id, Uuid::now_v7(), at, "user:3", &revoke_ev)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(versions(&s.events_of(c.org_id, c.id).await.unwrap()), vec![1, 2, 3]);
}

fn used(o: &ConsumeOutcome) -> bool {
    matches!(o, ConsumeOutcome::Used(..))
}

async fn consume_refusals(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let b = seed_org(s, "beta").await;
    let now = t0();
    let use_ev = |id| ev(a.id, id, "KeyUsed", json!({"used_count": null}));
    // Before its window, after it, revoked, other org, missing: refused, nothing written.
    let early = Credential {
        not_before: Some(now + Duration::seconds(1)),
        ..cred(a.id, Kind::Api, None)
    };
    let late = Credential {
        expires_at: Some(now),
        ..cred(a.id, Kind::Api, None)
    };
    let revoked = cred(a.id, Kind::Api, None);
    for c in [&early, &late, &revoked] {
        insert(s, c).await;
    }
    s.revoke_credential(
        a.id,
        revoked.id,
        now,
        "x",
        &ev(a.id, revoked.id, "KeyRevoked", json!({})),
    )
    .await
    .unwrap();
    let extra = [ev(a.id, Uuid::now_v7(), "LockOpenRequested", json!({}))];
    for c in [&early, &late, &revoked] {
        match s.consume_use(a.id, c.id, now, &use_ev(c.id), &extra).await.unwrap() {
            ConsumeOutcome::Refused(Some(got)) => assert_eq!(got.used_count, 0),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    assert!(matches!(
        s.consume_use(b.id, early.id, now + Duration::seconds(2), &use_ev(early.id), &extra)
            .await
            .unwrap(),
        ConsumeOutcome::Refused(None)
    ));
    assert!(matches!(
        s.consume_use(a.id, Uuid::now_v7(), now, &use_ev(early.id), &extra)
            .await
            .unwrap(),
        ConsumeOutcome::Refused(None)
    ));
    assert!(
        s.events_of(extra[0].org_id, extra[0].aggregate_id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(versions(&s.events_of(early.org_id, early.id).await.unwrap()), vec![1]);
    // Inside the window it works (not_before inclusive); the count goes into the event, and
    // the extra events are appended with it.
    let ok = s
        .consume_use(a.id, early.id, now + Duration::seconds(1), &use_ev(early.id), &extra)
        .await
        .unwrap();
    let ConsumeOutcome::Used(c, v) = ok else {
        panic!("expected a use, got {ok:?}")
    };
    assert_eq!((c.used_count, v), (1, 2));
    let evs = s.events_of(early.org_id, early.id).await.unwrap();
    assert_eq!(evs[1].data, json!({"used_count": 1}));
    assert_eq!(
        versions(&s.events_of(extra[0].org_id, extra[0].aggregate_id).await.unwrap()),
        vec![1]
    );
    // SmartphoneKey events carry the count as usedCount.
    let sk = cred(a.id, Kind::Share, None);
    insert(s, &sk).await;
    let sk_ev = ev(a.id, sk.id, "TempKeyUsed", json!({"usedCount": 0, "lockId": 3}));
    assert!(used(&s.consume_use(a.id, sk.id, now, &sk_ev, &[]).await.unwrap()));
    assert_eq!(
        s.events_of(sk.org_id, sk.id).await.unwrap()[1].data,
        json!({"usedCount": 1, "lockId": 3})
    );
}

async fn consume_exact_under_concurrency(fx: Fx) {
    const N: i64 = 10;
    let s = fx.store.clone();
    let other = fx.reopen().await;
    let a = seed_org(&s, "acme").await;
    let c = Credential {
        max_uses: Some(N),
        ..cred(a.id, Kind::Api, None)
    };
    insert(&s, &c).await;
    let mut tasks = vec![];
    for i in 0..64 {
        let st = if i % 2 == 0 { s.clone() } else { other.clone() };
        let e = ev(a.id, c.id, "KeyUsed", json!({"used_count": null}));
        tasks.push(tokio::spawn(async move {
            st.consume_use(a.id, c.id, t0(), &e, &[]).await.unwrap()
        }));
    }
    let mut counts = vec![];
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            ConsumeOutcome::Used(c, _) => counts.push(c.used_count),
            ConsumeOutcome::Refused(Some(c)) => {
                assert_eq!(c.used_count, N);
                refused += 1;
            }
            ConsumeOutcome::Refused(None) => panic!("the credential vanished"),
        }
    }
    counts.sort();
    assert_eq!(counts, (1..=N).collect::<Vec<_>>(), "each use saw its own count");
    assert_eq!(refused, 64 - N);
    assert_eq!(s.get_credential(a.id, c.id).await.unwrap().unwrap().used_count, N);
    let evs = s.events_of(c.org_id, c.id).await.unwrap();
    assert_eq!(versions(&evs), (1..=N + 1).collect::<Vec<_>>(), "gap-free versions");
    let recorded: BTreeSet<i64> = evs[1..]
        .iter()
        .map(|e| e.data["used_count"].as_i64().unwrap())
        .collect();
    assert_eq!(recorded, (1..=N).collect());
}

async fn event_versions_gap_free_under_concurrency(fx: Fx) {
    let s = fx.store.clone();
    let other = fx.reopen().await;
    let a = seed_org(&s, "acme").await;
    let c = cred(a.id, Kind::Api, None);
    insert(&s, &c).await;
    let mut tasks = vec![];
    for i in 0..48 {
        let st = if i % 2 == 0 { s.clone() } else { other.clone() };
        let mut changed = c.clone();
        changed.name = format!("name {i}");
        // Updates, uses and appends of another aggregate interleave.
        tasks.push(tokio::spawn(async move {
            let e = ev(changed.org_id, changed.id, "KeyUpdated", json!({"i": i}));
            let v = st.update_credential(&changed, &e).await.unwrap().unwrap();
            let e = ev(changed.org_id, changed.id, "KeyUsed", json!({}));
            let ConsumeOutcome::Used(_, v2) = st.consume_use(changed.org_id, changed.id, t0(), &e, &[]).await.unwrap()
            else {
                panic!("unlimited key refused")
            };
            vec![v, v2]
        }));
    }
    let mut got = vec![];
    for t in tasks {
        got.extend(t.await.unwrap());
    }
    got.sort();
    assert_eq!(got, (2..=97).collect::<Vec<_>>(), "every returned version is unique");
    assert_eq!(
        versions(&s.events_of(c.org_id, c.id).await.unwrap()),
        (1..=97).collect::<Vec<_>>()
    );
    // The feed's order agrees with the versions: seq grows with version for one aggregate.
    let feed = s.list_events(a.id, 0, 500).await.unwrap();
    let of_c: Vec<i64> = feed
        .iter()
        .filter(|e| e.aggregate_id == c.id)
        .map(|e| e.version)
        .collect();
    assert_eq!(of_c, (1..=97).collect::<Vec<_>>());
}

/// Tickets append to the user's aggregate without touching the user's row: nothing but the
/// store's append discipline keeps the versions unique when logins race (from two nodes).
async fn concurrent_logins_of_one_user(fx: Fx) {
    let s = fx.store.clone();
    let other = fx.reopen().await;
    let a = seed_org(&s, "acme").await;
    let u = user(a.id, "alice", None);
    s.create_user(&u, &ev(a.id, u.id, "UserCreated", json!({})))
        .await
        .unwrap();
    let mut tasks = vec![];
    for i in 0..48u32 {
        let st = if i % 2 == 0 { s.clone() } else { other.clone() };
        let t = LoginToken {
            hash: format!("ticket-{i}").into_bytes(),
            user_id: u.id,
            org_id: a.id,
            xsrf_hash: None,
            created_at: t0(),
            expires_at: t0() + Duration::hours(8),
        };
        let e = ev(a.id, u.id, "TicketIssued", json!({}));
        tasks.push(tokio::spawn(async move {
            st.create_login_token(TokenKind::Ticket, &t, &e).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        versions(&s.events_of(u.org_id, u.id).await.unwrap()),
        (1..=49).collect::<Vec<_>>()
    );
    for i in 0..48 {
        let h = format!("ticket-{i}").into_bytes();
        assert!(s.find_login_token(TokenKind::Ticket, &h, t0()).await.unwrap().is_some());
    }
}

async fn locks(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let b = seed_org(s, "beta").await;
    let mk = |org_id, name: &str| Lock {
        id: 0,
        uuid: Uuid::now_v7(),
        org_id,
        name: name.into(),
        owner_id: Some(Uuid::now_v7()),
        doors: json!([{"id": 1, "name": "front"}]),
        created_at: t0(),
    };
    let l1 = s
        .create_lock(&mk(a.id, "one"), &ev(a.id, Uuid::now_v7(), "LockCreated", json!({})))
        .await
        .unwrap();
    let l2 = s
        .create_lock(&mk(b.id, "two"), &ev(b.id, Uuid::now_v7(), "LockCreated", json!({})))
        .await
        .unwrap();
    let l3 = s
        .create_lock(&mk(a.id, "three"), &ev(a.id, Uuid::now_v7(), "LockCreated", json!({})))
        .await
        .unwrap();
    assert!(
        l1.id >= 1 && l1.id < l2.id && l2.id < l3.id,
        "ids are assigned, increasing"
    );
    assert_eq!(s.get_lock(l2.org_id, l2.id).await.unwrap(), Some(l2.clone()));
    assert_eq!(s.get_lock(l3.org_id, l3.id + 100).await.unwrap(), None);
    // Tenancy in the query: another organization's lock is not found by id, only by the
    // pre-tenancy lookup of an entrance panel.
    assert_eq!(s.get_lock(Uuid::now_v7(), l2.id).await.unwrap(), None);
    assert_eq!(s.find_lock(l2.id).await.unwrap(), Some(l2.clone()));
    assert_eq!(s.list_locks(a.id).await.unwrap(), vec![l1, l3]);
    assert_eq!(s.list_locks(b.id).await.unwrap(), vec![l2]);
}

async fn events_paging(fx: Fx) {
    let s = &fx.store;
    let a = seed_org(s, "acme").await;
    let b = seed_org(s, "beta").await;
    for i in 0..5 {
        insert(s, &cred(a.id, Kind::Api, None)).await;
        if i % 2 == 0 {
            insert(s, &cred(b.id, Kind::Api, None)).await;
        }
    }
    let all = s.list_events(a.id, 0, 100).await.unwrap();
    assert_eq!(all.len(), 6, "the organization's creation and five keys");
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq), "oldest first");
    assert_eq!(all[0].event_type, "OrganizationCreated");
    assert_eq!(all[0].actor, "tester");
    assert_eq!(all[0].aggregate_type, "test");
    let mut paged = vec![];
    let mut after = 0;
    loop {
        let page = s.list_events(a.id, after, 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = page.last().unwrap().seq;
        paged.extend(page.into_iter().map(|e| e.seq));
    }
    assert_eq!(paged, all.iter().map(|e| e.seq).collect::<Vec<_>>());
    assert_eq!(s.list_events(b.id, 0, 100).await.unwrap().len(), 4);
    assert!(s.list_events(a.id, all[5].seq, 100).await.unwrap().is_empty());
    s.ping().await.unwrap();
}

//! The credential cache (store/cache.rs) in front of SQLite: misses are forgotten when the key
//! is created, another connection's commits (another process, as far as the cache can tell)
//! are seen on the next lookup, and lookups racing invalidations never keep a stale entry.
//! The conformance cases also run through the cache (`mod sqlite_cached` in main.rs).

use super::*;

async fn cached_and_other() -> (Fx, SharedStore, SharedStore) {
    let fx = Fx::sqlite().await;
    let cached = store::cache::wrap(store::open(&fx.url).await.unwrap(), 1_000, false);
    // A second handle with its own pools: its writer is another connection, like the CLI's.
    let other = fx.store.clone();
    (fx, cached, other)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cache_is_only_in_front_of_a_file_database() {
    let fx = Fx::sqlite().await;
    assert!(fx.store.change_probe().is_some());
    let wrapped = store::cache::wrap(fx.store.clone(), 1_000, false);
    assert!(!std::sync::Arc::ptr_eq(&wrapped, &fx.store));
    // Off with 0 entries.
    let off = store::cache::wrap(fx.store.clone(), 0, false);
    assert!(std::sync::Arc::ptr_eq(&off, &fx.store));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_remembered_miss_is_forgotten_when_the_key_is_created() {
    let (_fx, s, _) = cached_and_other().await;
    let a = seed_org(&s, "acme").await;
    let c = cred(a.id, Kind::Api, None);
    for _ in 0..5 {
        assert_eq!(s.find_credential_by_hash(&c.hash).await.unwrap(), None);
    }
    insert(&s, &c).await;
    assert_eq!(s.find_credential_by_hash(&c.hash).await.unwrap().as_deref(), Some(&c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_connections_commits_are_seen_on_the_next_lookup() {
    let (_fx, s, other) = cached_and_other().await;
    let a = seed_org(&s, "acme").await;
    let c = cred(a.id, Kind::Api, None);
    insert(&s, &c).await;
    let u = user(a.id, "alice", None);
    s.create_user(&u, &ev(a.id, u.id, "UserCreated", json!({})))
        .await
        .unwrap();
    for _ in 0..20 {
        assert!(
            s.find_credential_by_hash(&c.hash)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_none()
        );
        assert!(!s.get_user(a.id, u.id).await.unwrap().unwrap().disabled);
    }
    // Revoked through the other handle: the cached one sees it at once.
    other
        .revoke_credential(a.id, c.id, t0(), "cli", &ev(a.id, c.id, "KeyRevoked", json!({})))
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.find_credential_by_hash(&c.hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    // And a user disabled there.
    let disabled = User {
        disabled: true,
        ..u.clone()
    };
    assert!(
        other
            .update_user(&disabled, true, &ev(a.id, u.id, "UserDisabled", json!({})))
            .await
            .unwrap()
    );
    assert!(s.get_user(a.id, u.id).await.unwrap().unwrap().disabled);
    assert!(s.find_user(u.id).await.unwrap().unwrap().disabled);
    // A key created there is found here, though its miss was remembered.
    let d = cred(a.id, Kind::Api, None);
    assert_eq!(s.find_credential_by_hash(&d.hash).await.unwrap(), None);
    insert(&other, &d).await;
    assert_eq!(s.find_credential_by_hash(&d.hash).await.unwrap().as_deref(), Some(&d));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lookups_racing_writes_never_keep_a_stale_entry() {
    let (_fx, s, _) = cached_and_other().await;
    let a = seed_org(&s, "acme").await;
    let creds: Vec<Credential> = (0..8)
        .map(|_| Credential {
            max_uses: Some(1_000),
            ..cred(a.id, Kind::Api, None)
        })
        .collect();
    for c in &creds {
        insert(&s, c).await;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (s, creds, stop) = (s.clone(), creds.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for c in &creds {
                        s.find_credential_by_hash(&c.hash).await.unwrap();
                    }
                    // A cache hit never waits: give the runtime's threads back to the writer.
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    // Each use returns the new count; the next lookup must show at least that count.
    for round in 1..=40 {
        for c in &creds {
            let e = ev(a.id, c.id, "KeyUsed", json!({}));
            match s.consume_use(a.id, c.id, t0(), &e, &[]).await.unwrap() {
                ConsumeOutcome::Used(after, _) => {
                    assert_eq!(after.used_count, round);
                    let seen = s.find_credential_by_hash(&c.hash).await.unwrap().unwrap();
                    assert_eq!(seen.used_count, round, "a stale entry after use {round}");
                }
                other => panic!("refused: {other:?}"),
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
}

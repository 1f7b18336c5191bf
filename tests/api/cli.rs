//! The CLI works against a running server's database file.

use crate::common::*;
use reqwest::Method;
use serde_json::Value;

#[tokio::test]
async fn org_and_user_create_against_a_running_server() {
    let s = Server::start().await;
    let (ok, v, err) = cli(&s, &["org", "create", "acme", "--json"], None);
    assert!(ok, "{err}");
    let key = v["apiKey"].as_str().unwrap();
    assert!(v["id"].as_str().is_some());
    // The running server accepts the new organization's key at once.
    let me = json(
        s.req(Method::GET, "/v1/me")
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me["org_id"], v["id"]);

    let (ok, u, err) = cli(
        &s,
        &[
            "user",
            "create",
            "tje0",
            "--password-stdin",
            "--org",
            "acme",
            "--admin",
            "--person-id",
            "798",
            "--json",
        ],
        Some("a-long-password\n"),
    );
    assert!(ok, "{err}");
    let uid = u["id"].as_str().unwrap();
    let me = json(
        s.req(Method::GET, "/v1/me")
            .basic_auth("tje0", Some("a-long-password"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me["user_id"], uid);
    assert_eq!(me["is_admin"], true);
    assert_eq!(me["org_id"], v["id"]);
    let user = json(
        s.req(Method::GET, &format!("/v1/users/{uid}"))
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(user["person_id"], 798);

    // Without --org: the system organization.
    let (ok, _, err) = cli(
        &s,
        &["user", "create", "ops", "--password-stdin", "--json"],
        Some("another-password"),
    );
    assert!(ok, "{err}");
    let me = json(
        s.req(Method::GET, "/v1/me")
            .basic_auth("ops", Some("another-password"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let sys = json(s.admin(Method::GET, "/v1/me").send().await.unwrap()).await;
    assert_eq!(me["org_id"], sys["org_id"]);
    assert_eq!(me["is_admin"], false);

    // Refusals: duplicate org, unknown org, weak password, no --password-stdin.
    assert!(!cli(&s, &["org", "create", "acme", "--json"], None).0);
    assert!(
        !cli(
            &s,
            &["user", "create", "x", "--password-stdin", "--org", "nope"],
            Some("long-password")
        )
        .0
    );
    let (ok, _, err) = cli(&s, &["user", "create", "weak", "--password-stdin"], Some("short"));
    assert!(!ok);
    assert!(err.contains("password"), "{err}");
    assert!(!cli(&s, &["user", "create", "nopw"], None).0);

    let (ok, v, err) = cli(&s, &["migrate", "--json"], None);
    assert!(ok, "{err}");
    assert_eq!(v["migrated"], true);
}

#[test]
fn migrate_creates_a_fresh_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .args(["migrate", "--json", "--database", "sqlite://fresh.db"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("fresh.db").exists());
    assert!(dir.path().join("fresh.db.secret").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("fresh.db.secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret file must be private");
    }
}

/// Keys that `POST /v1/keys` could mint before it followed each kind's rule, written the way
/// that route wrote them (a row and its KeyCreated event), are revoked by `keygate migrate` and at
/// start-up, with an event each that says why; keys within the rules are left alone.
#[tokio::test]
async fn keys_minted_through_the_old_holes_are_revoked_with_an_event() {
    use chrono::{Duration, Months, Utc};
    use keygate::core::credential::{Credential, Kind};
    use keygate::core::event::NewEvent;
    use keygate::store::Store;
    use serde_json::json;
    use uuid::Uuid;

    let mut s = Server::start().await;
    let (a_org, a_key) = s.create_org("alpha").await;
    let (b_org, _) = s.create_org("bravo").await;
    let alice = s.create_user(&a_key, "alice", "alice-password", false).await;
    let lock = json(
        s.req(Method::POST, "/v1/locks")
            .header("X-API-Key", &a_key)
            .json(&json!({"name": "A's door"}))
            .send()
            .await
            .unwrap(),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let keys = json(
        s.req(Method::GET, "/v1/api-keys")
            .header("X-API-Key", &a_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let api_key_actor = format!("api_key:{}", keys[0]["id"].as_str().unwrap());
    let dir = s.take_dir();
    drop(s);

    let (a_org, b_org, alice) = (
        Uuid::parse_str(&a_org).unwrap(),
        Uuid::parse_str(&b_org).unwrap(),
        Uuid::parse_str(&alice).unwrap(),
    );
    let url = format!("sqlite://{}", dir.path().join("keygate.db").display());
    // The server's start ran the repair on an empty database and recorded it; make the database
    // one that a version before the repair wrote.
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let n = sqlx::query("DELETE FROM events WHERE type = 'RepairCompleted'")
            .execute(&mut c)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(n, 1, "the first start records its repair");
    }
    let store = keygate::store::sqlite::SqliteStore::open(&url).await.unwrap();
    let now = Utc::now();
    let me = format!("user:{alice}");
    let cred = |org: Uuid, kind: Kind, by: &str| Credential {
        id: Uuid::now_v7(),
        org_id: org,
        kind,
        owner_id: Some(alice),
        name: "hole".into(),
        prefix: "hole".into(),
        hash: Uuid::new_v4().as_bytes().repeat(2),
        scopes: vec!["Account.Read".into()],
        not_before: None,
        expires_at: Some(now + Duration::days(30)),
        max_uses: None,
        used_count: 0,
        allowed_users: vec![],
        subject: json!({}),
        metadata: json!({}),
        created_at: now,
        created_by: by.to_string(),
        updated_at: now,
        updated_by: by.to_string(),
        revoked_at: None,
        revoked_by: None,
    };
    let mut bad = vec![];
    // 1. A personal key for alice, made by the organization's API key.
    bad.push(cred(a_org, Kind::Personal, &api_key_actor));
    // 2. alice's own, with a scope outside the catalogue, with none, for six years.
    let mut c = cred(a_org, Kind::Personal, &me);
    c.scopes = vec!["superpower".into()];
    bad.push(c);
    let mut c = cred(a_org, Kind::Personal, &me);
    c.expires_at = None;
    bad.push(c);
    let mut c = cred(a_org, Kind::Personal, &me);
    c.expires_at = now.checked_add_months(Months::new(72));
    bad.push(c);
    // 3. B's share key on A's lock.
    let mut c = cred(b_org, Kind::Share, "api_key:b");
    c.owner_id = None;
    c.subject = json!({"lock_id": lock});
    bad.push(c);
    let good = cred(a_org, Kind::Personal, &me);
    for c in bad.iter().chain([&good]) {
        let e = NewEvent {
            org_id: c.org_id,
            aggregate_type: "key",
            aggregate_id: c.id,
            event_type: "KeyCreated",
            data: json!({"kind": c.kind.as_str()}),
            actor: c.created_by.clone(),
            at: now,
        };
        store.insert_credential(c, &e).await.unwrap();
    }
    drop(store);

    let migrate = |dir: &std::path::Path| {
        let out = command(dir)
            .args(["migrate", "--json"])
            .env("KEYGATE_DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = migrate(dir.path());
    assert_eq!(
        first["revoked"],
        json!({"personal_keys": 4, "share_keys": 1}),
        "{first}"
    );
    // Idempotent: a second run (or another node's start) finds nothing more.
    assert_eq!(
        migrate(dir.path())["revoked"],
        json!({"personal_keys": 0, "share_keys": 0})
    );

    let store = keygate::store::sqlite::SqliteStore::open(&url).await.unwrap();
    for c in &bad {
        let now_c = store.get_credential(c.org_id, c.id).await.unwrap().unwrap();
        assert!(now_c.revoked_at.is_some(), "{:?} still live", c.subject);
        let evs = store.events_of(c.org_id, c.id).await.unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[1].event_type, "KeyRevoked");
        assert_eq!(evs[1].actor, "system");
        assert!(evs[1].data["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    let good_now = store.get_credential(a_org, good.id).await.unwrap().unwrap();
    assert!(good_now.revoked_at.is_none());
}

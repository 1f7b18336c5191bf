//! The authorization review's four findings, each over the real wire: no credential obtains a
//! key stronger than itself through `POST /v1/keys`, another tenant's lock cannot carry a share
//! key, and a share key's UUID is not a secret that verifies.

use crate::common::*;
use chrono::{Duration, Months, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Finding 1: an organization API key (here the system organization's) asks `POST /v1/keys` for a
/// personal key that acts as the system administrator. It must be refused, and nothing made with
/// it may create an organization.
#[tokio::test]
async fn an_api_key_cannot_mint_a_personal_key_that_acts_as_a_user() {
    let s = Server::start().await;
    let me = json(s.admin(Method::GET, "/v1/me").send().await.unwrap()).await;
    let admin_id = me["user_id"].as_str().unwrap().to_string();
    let r = s
        .admin(Method::POST, "/v1/api-keys")
        .json(&json!({"name": "automation"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let sys_key = json(r).await["apiKey"].as_str().unwrap().to_string();
    let before = s.snapshot().await;
    let r = s
        .req(Method::POST, "/v1/keys")
        .header("X-API-Key", &sys_key)
        .json(&json!({
            "kind": "personal", "name": "root", "owner": admin_id,
            "scopes": ["Organization.ReadWrite", "Account.ReadWrite"],
            "expires_at": iso(Utc::now() + Duration::days(30)),
        }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = json(r).await;
    if let Some(k) = body["key"].as_str() {
        // Had it been minted: it must still not act as the system administrator.
        let r = s
            .req(Method::POST, "/v1/orgs")
            .header("Authorization", format!("PersonalKey {k}"))
            .json(&json!({"name": "pwned"}))
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 201, "an API key became a superuser");
    }
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden");
    // Nor may an administrator mint one for another user of the organization.
    let (_, org) = s.create_org("acme").await;
    let alice = s.create_user(&org, "alice", "alice-password", false).await;
    s.create_user(&org, "boss", "boss-password", true).await;
    let before_acme = s.snapshot().await;
    let r = s
        .req(Method::POST, "/v1/keys")
        .basic_auth("boss", Some("boss-password"))
        .json(&json!({
            "kind": "personal", "name": "as alice", "owner": alice,
            "scopes": ["Organization.Read"], "expires_at": iso(Utc::now() + Duration::days(30)),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(s.snapshot().await, before_acme);
    // The refused requests changed nothing (the org and users above came after `before`).
    assert!(before.iter().zip(before_acme.iter()).all(|(a, b)| a.1 <= b.1));
}

/// Finding 2: a personal key holding only `Organization.ReadWrite` asks `POST /v1/keys` for a
/// personal key with any scopes and no expiry. The Tedee rules hold on this route too.
#[tokio::test]
async fn a_personal_key_cannot_mint_a_stronger_personal_key() {
    let s = Server::start().await;
    let (_, org) = s.create_org("acme").await;
    s.create_user(&org, "alice", "alice-password", false).await;
    let make = |scopes: Value| {
        s.req(Method::POST, "/api/v37/my/personalaccesskey")
            .basic_auth("alice", Some("alice-password"))
            .json(&json!({"name": "k", "validTo": iso(Utc::now() + Duration::days(30)), "scopes": scopes}))
    };
    let r = make(json!(["Organization.ReadWrite"])).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let weak = format!("PersonalKey {}", json(r).await["result"]["key"].as_str().unwrap());
    let r = make(json!(["Account.ReadWrite", "Organization.Read"]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let account = format!("PersonalKey {}", json(r).await["result"]["key"].as_str().unwrap());
    let before = s.snapshot().await;
    let far = iso(Utc::now().checked_add_months(Months::new(61)).unwrap());
    let soon = iso(Utc::now() + Duration::days(10));
    let attempts = [
        // Lacks Account.ReadWrite, which creating a personal key needs.
        (
            &weak,
            json!({"kind": "personal", "name": "x", "scopes": ["Account.ReadWrite", "Organization.ReadWrite", "Device.ReadWrite"]}),
        ),
        (
            &weak,
            json!({"kind": "personal", "name": "x", "scopes": ["superpower"], "expires_at": soon}),
        ),
        // Holds Account.ReadWrite, but asks for a scope it lacks, for no expiry, for too long,
        // for a scope outside the catalogue.
        (
            &account,
            json!({"kind": "personal", "name": "x", "scopes": ["Organization.ReadWrite"], "expires_at": soon}),
        ),
        (
            &account,
            json!({"kind": "personal", "name": "x", "scopes": ["Organization.Read"]}),
        ),
        (
            &account,
            json!({"kind": "personal", "name": "x", "scopes": ["Organization.Read"], "expires_at": far}),
        ),
        (
            &account,
            json!({"kind": "personal", "name": "x", "scopes": ["superpower"], "expires_at": soon}),
        ),
    ];
    for (auth, body) in attempts {
        let r = s
            .req(Method::POST, "/v1/keys")
            .header("Authorization", auth.as_str())
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(
            status == 400 || status == 403,
            "{body}: {status} {}",
            r.text().await.unwrap()
        );
    }
    assert_eq!(s.snapshot().await, before, "a refused request wrote something");
    // Within its rights the route works, and the key is what the Tedee route would make.
    let r = s
        .req(Method::POST, "/v1/keys")
        .header("Authorization", account.as_str())
        .json(&json!({"kind": "personal", "name": "ok", "scopes": ["Organization.Read"], "expires_at": soon}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let k = json(r).await;
    assert_eq!(k["kind"], "personal");
    let listed = json(
        s.req(Method::GET, "/api/v37/my/personalaccesskey")
            .header("Authorization", account.as_str())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        listed["result"].as_array().unwrap().iter().any(|x| x["id"] == k["id"]),
        "{listed}"
    );
}

/// Finding 3: organization B puts a share key on organization A's lock through `POST /v1/keys`,
/// then opens A's door with it, appending to A's lock.
#[tokio::test]
async fn another_tenant_cannot_put_a_share_key_on_a_lock() {
    let s = Server::start().await;
    let (_, a) = s.create_org("alpha").await;
    let (_, b) = s.create_org("bravo").await;
    s.create_user(&b, "bob", "bob-password", true).await;
    let r = s
        .req(Method::POST, "/v1/locks")
        .header("X-API-Key", &a)
        .json(&json!({"name": "A's front door"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let lock = json(r).await;
    let lock_id = lock["id"].as_i64().unwrap();
    let feed = |key: &str| {
        s.req(Method::GET, "/v1/events?limit=500")
            .header("X-API-Key", key.to_string())
            .send()
    };
    let a_before = json(feed(&a).await.unwrap()).await;
    for who in ["api_key", "user"] {
        let req = s.req(Method::POST, "/v1/keys").json(&json!({
            "kind": "share", "name": "mine now", "subject": {"lock_id": lock_id},
            "expires_at": iso(Utc::now() + Duration::days(1)),
        }));
        let req = match who {
            "api_key" => req.header("X-API-Key", &b),
            _ => req.basic_auth("bob", Some("bob-password")),
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body = json(r).await;
        if let Some(id) = body["id"].as_str() {
            // Had it been made: the guest flow must not open A's door with it.
            let no_redirect = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let r = no_redirect
                .post(s.url(&format!("/temp-keys/{id}/open")))
                .send()
                .await
                .unwrap();
            let opened = r.status().as_u16();
            assert_ne!(
                opened, 303,
                "B made a share key on A's lock ({status}) and opened A's door with it"
            );
        }
        assert_eq!(status, 404, "{who}: {body}");
    }
    assert_eq!(json(feed(&a).await.unwrap()).await, a_before, "A's events changed");
    let b_feed = json(feed(&b).await.unwrap()).await;
    let lock_uuid = lock["uuid"].as_str().unwrap();
    assert!(
        b_feed["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["aggregate_id"] != lock_uuid),
        "B's feed holds an event of A's lock: {b_feed}"
    );
}

/// Finding 4: a share key's UUID (it is in the guest link) presented as `share:<uuid>` verifies
/// and spends a use. Share keys have no secret: verify answers NOT_FOUND as for an unknown key.
#[tokio::test]
async fn a_share_keys_uuid_is_not_a_secret_that_verifies() {
    let s = Server::start().await;
    let (_, org) = s.create_org("homes").await;
    let r = s
        .req(Method::POST, "/v1/locks")
        .header("X-API-Key", &org)
        .json(&json!({"name": "Front door"}))
        .send()
        .await
        .unwrap();
    let lock = json(r).await["id"].as_i64().unwrap();
    let uuid = uuid::Uuid::new_v4().to_string();
    let r = s
        .req(Method::POST, &format!("/locks/{lock}/create-temp-key"))
        .header("X-API-Key", &org)
        .json(&json!({
            "tempKeyUuid": uuid, "accessMode": "public", "allowedUserIds": [],
            "validFrom": iso(Utc::now() - Duration::minutes(1)),
            "validUntil": iso(Utc::now() + Duration::days(1)),
            "maxUses": 2, "description": "plumber",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let before = s.snapshot().await;
    for presented in [format!("share:{uuid}"), uuid.clone()] {
        for consume in [false, true] {
            let r = s
                .req(Method::POST, "/v1/keys/verify")
                .header("X-API-Key", &org)
                .json(&json!({"key": presented, "consume": consume}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let v = json(r).await;
            assert_eq!(v["valid"], false, "{v}");
            assert_eq!(v["code"], "NOT_FOUND", "{v}");
            assert!(v["key"].is_null(), "{v}");
        }
    }
    assert_eq!(s.snapshot().await, before, "verify spent a use or wrote an event");
    let list = json(
        s.req(Method::GET, &format!("/locks/{lock}/temp-keys"))
            .header("X-API-Key", &org)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["tempKeys"][0]["usedCount"], 0, "{list}");
}

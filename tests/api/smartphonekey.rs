//! SmartphoneKey lock temp keys (seed 003): validation, B2C/B2B authorization, event-sourced
//! writes with versions, listing with status, exact uses, and rebuilding state from events.

use crate::common::*;
use chrono::{Duration, SecondsFormat, Utc};
use reqwest::Method;
use serde_json::{Value, json};

/// The seed's curl sample, verbatim (headers and body).
const SEED_BODY: &str = r#"{
"tempKeyUuid": "example_string",
"accessMode": "public",
"allowedUserIds": [
"example_string"
],
"validFrom": "2024-12-25T10:00:00Z",
"validUntil": "2024-12-25T10:00:00Z",
"maxUses": "null",
"description": "example_string"
}"#;

struct World {
    s: Server,
    org_key: String,
    owner: String,
    owner_jwt: String,
    other: String,
    other_jwt: String,
    lock: i64,
}

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn world() -> World {
    world_with(Options::default()).await
}

async fn world_with(opts: Options) -> World {
    let s = Server::start_with(opts).await;
    let (_, org_key) = s.create_org("homes").await;
    let owner = s.create_user(&org_key, "olivia", "olivia-password", false).await;
    let other = s.create_user(&org_key, "oscar", "oscar-password", false).await;
    let jwt = |u: &str| hs256(json!({"sub": u, "exp": now_ts() + 3600}));
    let r = s
        .req(Method::POST, "/v1/locks")
        .header("X-API-Key", &org_key)
        .json(&json!({"name": "Front door", "owner": owner, "doors": [{"id": 1, "name": "Main"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let lock = json(r).await["id"].as_i64().unwrap();
    World {
        owner_jwt: jwt(&owner),
        other_jwt: jwt(&other),
        s,
        org_key,
        owner,
        other,
        lock,
    }
}

impl World {
    fn post(&self, path: &str, auth: Auth<'_>) -> reqwest::RequestBuilder {
        auth.apply(self.s.req(Method::POST, path))
    }

    async fn create(&self, auth: Auth<'_>, body: Value) -> (u16, Value) {
        let r = self
            .post(&format!("/locks/{}/create-temp-key", self.lock), auth)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), json(r).await)
    }

    fn key_body(&self, uuid: &str) -> Value {
        json!({
            "tempKeyUuid": uuid,
            "accessMode": "public",
            "validFrom": iso(Utc::now() - Duration::minutes(1)),
            "validUntil": iso(Utc::now() + Duration::days(1)),
            "maxUses": null,
            "description": "for the plumber",
        })
    }
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    Jwt(&'a str),
    Key(&'a str),
    None,
}

impl Auth<'_> {
    fn apply(self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::Jwt(t) => r.bearer_auth(t),
            Auth::Key(k) => r.header("X-API-Key", k),
            Auth::None => r,
        }
    }
}

fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn detail_fields(v: &Value) -> Vec<String> {
    v["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_seed_sample_verbatim_names_each_invalid_field() {
    let w = world().await;
    let before = w.s.snapshot().await;
    // Verbatim, its placeholder credentials are refused before the body is looked at.
    let r =
        w.s.req(Method::POST, "/locks/123/create-temp-key")
            .header("Content-Type", "application/json")
            .header("Authorization", "Bearer YOUR_API_TOKEN (JWT)")
            .header("X-API-Key", "YOUR_API_KEY")
            .body(SEED_BODY)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
    assert!(json(r).await.get("details").is_none());
    // With real credentials, the seed's body gets every invalid field named.
    let r =
        w.s.req(Method::POST, "/locks/123/create-temp-key")
            .header("Content-Type", "application/json")
            .header("Authorization", format!("Bearer {}", w.owner_jwt))
            .header("X-API-Key", &w.org_key)
            .body(SEED_BODY)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    let v = json(r).await;
    insta::assert_json_snapshot!("spk_seed_verbatim_400", v);
    assert_eq!(v["error"], "Bad Request");
    assert_eq!(v["code"], 400);
    let fields = detail_fields(&v);
    assert!(fields.contains(&"tempKeyUuid".to_string()));
    assert!(fields.contains(&"allowedUserIds[0]".to_string()));
    assert!(fields.contains(&"validUntil".to_string()));
    assert!(!fields.iter().any(|f| f == "maxUses"), "\"null\" is accepted as null");
    assert_eq!(before, w.s.snapshot().await);
}

#[tokio::test]
async fn the_seed_sample_with_real_values_works_for_the_owner_and_the_organization() {
    let w = world().await;
    let mut body: Value = serde_json::from_str(SEED_BODY).unwrap();
    let uuid = new_uuid();
    body["tempKeyUuid"] = json!(uuid);
    body["allowedUserIds"] = json!([w.owner]);
    body["validFrom"] = json!(iso(Utc::now()));
    body["validUntil"] = json!(iso(Utc::now() + Duration::days(2)));
    let (status, v) = w.create(Auth::Jwt(&w.owner_jwt), body.clone()).await;
    assert_eq!(status, 200, "{v}");
    insta::assert_json_snapshot!("spk_create_200", v, {
        ".aggregateId" => "[uuid]", ".tempKeyUuid" => "[uuid]", ".event.data.tempKeyUuid" => "[uuid]",
        ".event.data.lockUuid" => "[uuid]", ".event.data.createdBy" => "[user]", ".event.data.timestamp" => "[time]",
        ".event.data.validFrom" => "[time]", ".event.data.validUntil" => "[time]", ".event.data.allowedUserIds[]" => "[uuid]",
    });
    assert_eq!(v["success"], true);
    assert_eq!(v["aggregateId"], uuid.as_str());
    assert_eq!(v["tempKeyUuid"], uuid.as_str());
    assert_eq!(v["version"], 1);
    assert_eq!(v["event"]["type"], "TempKeyCreated");
    assert_eq!(v["event"]["data"]["maxUses"], Value::Null);
    assert_eq!(v["event"]["data"]["createdBy"], format!("user:{}", w.owner));
    // Again with the organization's X-API-Key (B2B).
    body["tempKeyUuid"] = json!(new_uuid());
    let (status, v) = w.create(Auth::Key(&w.org_key), body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"], 1);
}

#[tokio::test]
async fn b2c_owner_b2b_organization_and_everyone_else() {
    let w = world().await;
    // A user who does not own the lock: 403.
    let (status, v) = w.create(Auth::Jwt(&w.other_jwt), w.key_body(&new_uuid())).await;
    assert_eq!(status, 403);
    assert_eq!(v["error"], "Forbidden");
    // No credentials: 401; bad ones: 401.
    let (status, v) = w.create(Auth::None, w.key_body(&new_uuid())).await;
    assert_eq!((status, v["error"].as_str().unwrap()), (401, "Unauthorized"));
    let (status, _) = w.create(Auth::Key("kgo_fake.fake"), w.key_body(&new_uuid())).await;
    assert_eq!(status, 401);
    // Another organization's API key: the lock does not exist for it.
    let (_, foreign) = w.s.create_org("elsewhere").await;
    let (status, _) = w.create(Auth::Key(&foreign), w.key_body(&new_uuid())).await;
    assert_eq!(status, 404);
    let r =
        w.s.req(Method::GET, &format!("/locks/{}/temp-keys", w.lock))
            .header("X-API-Key", &foreign)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 404);
    // Unknown lock: 404; duplicate tempKeyUuid: 409.
    let r = w
        .post("/locks/999999/create-temp-key", Auth::Key(&w.org_key))
        .json(&w.key_body(&new_uuid()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let uuid = new_uuid();
    assert_eq!(w.create(Auth::Key(&w.org_key), w.key_body(&uuid)).await.0, 200);
    let (status, v) = w.create(Auth::Jwt(&w.owner_jwt), w.key_body(&uuid)).await;
    assert_eq!((status, v["error"].as_str().unwrap()), (409, "Conflict"));
}

#[tokio::test]
async fn every_validation_error_and_nothing_written() {
    let w = world().await;
    let good = w.key_body(&new_uuid());
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = good.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (without("tempKeyUuid"), "tempKeyUuid"),
        (with("tempKeyUuid", json!(42)), "tempKeyUuid"),
        (without("accessMode"), "accessMode"),
        (with("accessMode", json!("everyone")), "accessMode"),
        (with("allowedUserIds", json!("x")), "allowedUserIds"),
        (with("allowedUserIds", json!(["x"])), "allowedUserIds[0]"),
        (without("validFrom"), "validFrom"),
        (with("validFrom", json!("25/12/2024")), "validFrom"),
        (without("validUntil"), "validUntil"),
        (
            with("validUntil", json!(iso(Utc::now() - Duration::days(3)))),
            "validUntil",
        ),
        (with("maxUses", json!(0)), "maxUses"),
        (with("maxUses", json!(-1)), "maxUses"),
        (with("maxUses", json!(1.5)), "maxUses"),
        (with("maxUses", json!("ten")), "maxUses"),
        (with("description", json!("d".repeat(2001))), "description"),
        (with("description", json!(5)), "description"),
        (with("accessMode", json!("user-whitelist")), "allowedUserIds"),
        (
            with("allowedUserIds", json!([uuid::Uuid::new_v4()])),
            "allowedUserIds[0]",
        ),
    ];
    let before = w.s.snapshot().await;
    for (body, field) in cases {
        let (status, v) = w.create(Auth::Key(&w.org_key), body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(detail_fields(&v).contains(&field.to_string()), "{body} -> {v}");
    }
    // A future window in the past is refused, the lock id must be numeric, the body JSON.
    let r = w
        .post("/locks/abc/create-temp-key", Auth::Key(&w.org_key))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(detail_fields(&json(r).await).contains(&"id".to_string()));
    let r = w
        .post(&format!("/locks/{}/create-temp-key", w.lock), Auth::Key(&w.org_key))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json(r).await["details"][0]["field"], "body");
    assert_eq!(before, w.s.snapshot().await);
}

#[tokio::test]
async fn update_delete_list_and_use_are_versioned_events() {
    let w = world().await;
    let k = Auth::Key(&w.org_key);
    let uuid = new_uuid();
    let mut body = w.key_body(&uuid);
    body["accessMode"] = json!("user-whitelist");
    body["allowedUserIds"] = json!([w.owner]);
    body["maxUses"] = json!(2);
    assert_eq!(w.create(k, body).await.0, 200);
    let lock = w.lock;
    // Update: version 2, with the changes.
    let r = w
        .post(&format!("/locks/{lock}/update-temp-key"), k)
        .json(&json!({"tempKeyUuid": uuid, "maxUses": 3, "allowedUserIds": [w.owner, w.other]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = json(r).await;
    assert_eq!(v["version"], 2);
    assert_eq!(v["event"]["type"], "TempKeyUpdated");
    assert_eq!(v["event"]["data"]["changes"]["maxUses"], 3);
    assert!(v.get("tempKeyUuid").is_none());
    // An update that would end before it starts is refused.
    let r = w
        .post(&format!("/locks/{lock}/update-temp-key"), k)
        .json(&json!({"tempKeyUuid": uuid, "validFrom": iso(Utc::now() + Duration::days(5))}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Use: whitelisted users only, versions go on.
    let use_as = |user: &str| {
        w.post(&format!("/locks/{lock}/use-temp-key"), k)
            .json(&json!({"tempKeyUuid": uuid, "userId": user}))
            .send()
    };
    let r = use_as(&w.other).await.unwrap();
    let v = json(r).await;
    assert_eq!(
        (v["version"].as_i64(), v["event"]["type"].as_str()),
        (Some(3), Some("TempKeyUsed"))
    );
    assert_eq!(v["event"]["data"]["usedCount"], 1);
    assert_eq!(v["event"]["data"]["userId"], w.other.as_str());
    let stranger = uuid::Uuid::new_v4().to_string();
    assert_eq!(use_as(&stranger).await.unwrap().status(), 403);
    // List shows status and usedCount.
    let list = json(
        w.s.req(Method::GET, &format!("/locks/{lock}/temp-keys"))
            .bearer_auth(&w.owner_jwt)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let item = &list["tempKeys"].as_array().unwrap()[0];
    assert_eq!(
        (
            item["status"].as_str(),
            item["usedCount"].as_i64(),
            item["maxUses"].as_i64()
        ),
        (Some("valid"), Some(1), Some(3))
    );
    assert_eq!(item["lockId"], lock);
    // Delete: version 4; then gone from the list and unusable.
    let r = w
        .post(&format!("/locks/{lock}/delete-temp-key"), k)
        .json(&json!({"tempKeyUuid": uuid}))
        .send()
        .await
        .unwrap();
    let v = json(r).await;
    assert_eq!(
        (v["version"].as_i64(), v["event"]["type"].as_str()),
        (Some(4), Some("TempKeyDeleted"))
    );
    let list = json(
        w.s.req(Method::GET, &format!("/locks/{lock}/temp-keys"))
            .header("X-API-Key", &w.org_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list, json!({"tempKeys": []}));
    assert_eq!(use_as(&w.owner).await.unwrap().status(), 404);
    let r = w
        .post(&format!("/locks/{lock}/delete-temp-key"), k)
        .json(&json!({"tempKeyUuid": uuid}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = w
        .post(&format!("/locks/{lock}/update-temp-key"), k)
        .json(&json!({"tempKeyUuid": uuid, "maxUses": 9}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn status_follows_the_window_and_uses() {
    let w = world().await;
    let k = Auth::Key(&w.org_key);
    let later = new_uuid();
    let mut b = w.key_body(&later);
    b["validFrom"] = json!(iso(Utc::now() + Duration::hours(1)));
    b["validUntil"] = json!(iso(Utc::now() + Duration::hours(3)));
    w.create(k, b).await;
    let once = new_uuid();
    let mut b = w.key_body(&once);
    b["maxUses"] = json!(1);
    w.create(k, b).await;
    let r = w
        .post(&format!("/locks/{}/use-temp-key", w.lock), k)
        .json(&json!({"tempKeyUuid": once}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = w
        .post(&format!("/locks/{}/use-temp-key", w.lock), k)
        .json(&json!({"tempKeyUuid": once}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        json(r).await["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("used up")
    );
    let statuses = || async {
        let list = json(
            w.s.req(Method::GET, &format!("/locks/{}/temp-keys", w.lock))
                .header("X-API-Key", &w.org_key)
                .send()
                .await
                .unwrap(),
        )
        .await;
        list["tempKeys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["uuid"].as_str().unwrap().to_string(),
                    k["status"].as_str().unwrap().to_string(),
                )
            })
            .collect::<std::collections::HashMap<_, _>>()
    };
    let s1 = statuses().await;
    assert_eq!(s1[&later], "not-yet-valid");
    assert_eq!(s1[&once], "used-up");
    w.s.advance(2 * 3600).await;
    assert_eq!(statuses().await[&later], "valid");
    w.s.advance(2 * 3600).await;
    assert_eq!(statuses().await[&later], "expired");
    let r = w
        .post(&format!("/locks/{}/use-temp-key", w.lock), k)
        .json(&json!({"tempKeyUuid": later}))
        .send()
        .await
        .unwrap();
    assert!(
        json(r).await["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn max_uses_is_exact_under_64_concurrent_uses() {
    let w = world().await;
    let uuid = new_uuid();
    let mut b = w.key_body(&uuid);
    b["maxUses"] = json!(10);
    assert_eq!(w.create(Auth::Key(&w.org_key), b).await.0, 200);
    let mut tasks = vec![];
    for _ in 0..64 {
        let url = w.s.url(&format!("/locks/{}/use-temp-key", w.lock));
        let (key, uuid) = (w.org_key.clone(), uuid.clone());
        tasks.push(tokio::spawn(async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("X-API-Key", key)
                .json(&json!({"tempKeyUuid": uuid}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }));
    }
    let mut versions = vec![];
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            (200, v) => versions.push(v["version"].as_i64().unwrap()),
            (400, v) => {
                assert!(v["details"][0]["message"].as_str().unwrap().contains("used up"));
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    versions.sort();
    assert_eq!(versions, (2..=11).collect::<Vec<_>>(), "ten uses, each its own version");
    assert_eq!(refused, 54);
    let list = json(
        w.s.req(Method::GET, &format!("/locks/{}/temp-keys", w.lock))
            .header("X-API-Key", &w.org_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["tempKeys"][0]["usedCount"], 10);
    assert_eq!(list["tempKeys"][0]["status"], "used-up");
}

#[tokio::test]
async fn state_rebuilt_from_the_events_equals_the_projection() {
    let w = world().await;
    let k = Auth::Key(&w.org_key);
    let lock = w.lock;
    let mut uuids = vec![];
    for i in 0..4 {
        let uuid = new_uuid();
        let mut b = w.key_body(&uuid);
        b["maxUses"] = json!(5);
        if i % 2 == 1 {
            b["accessMode"] = json!("user-whitelist");
            b["allowedUserIds"] = json!([w.owner]);
        }
        if i == 3 {
            b["schedule"] = json!({"days": ["sat", "sun"], "from": "10:00", "until": "12:00", "timeZone": "UTC"});
        }
        assert_eq!(w.create(k, b).await.0, 200);
        uuids.push(uuid);
    }
    for _ in 0..2 {
        w.post(&format!("/locks/{lock}/use-temp-key"), k)
            .json(&json!({"tempKeyUuid": uuids[0], "userId": w.owner}))
            .send()
            .await
            .unwrap();
    }
    w.post(&format!("/locks/{lock}/update-temp-key"), k)
        .json(&json!({"tempKeyUuid": uuids[1], "accessMode": "public", "maxUses": null, "validUntil": iso(Utc::now() + Duration::days(9)), "description": "changed"}))
        .send()
        .await
        .unwrap();
    w.post(&format!("/locks/{lock}/use-temp-key"), k)
        .json(&json!({"tempKeyUuid": uuids[1]}))
        .send()
        .await
        .unwrap();
    let r = w
        .post(&format!("/locks/{lock}/update-temp-key"), k)
        .json(&json!({"tempKeyUuid": uuids[0], "schedule": {"days": ["mon"], "from": "00:00", "until": "23:59", "timeZone": "Asia/Tokyo"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    w.post(&format!("/locks/{lock}/delete-temp-key"), k)
        .json(&json!({"tempKeyUuid": uuids[2]}))
        .send()
        .await
        .unwrap();
    // A collective key, used by its link and its PIN.
    let (status, v) = w
        .collective(k, json!([{"lockId": lock, "label": "Front", "accessMethod": "both"}]))
        .await;
    assert_eq!(status, 201);
    let collective = v["uuid"].as_str().unwrap().to_string();
    assert_eq!(w.open(&collective, Auth::None).await.status(), 303);
    let pin = v["pin"].as_str().unwrap();
    assert_eq!(w.pin(lock, json!({"pin": pin}), "127.0.0.1").await.0, 200);
    uuids.push(collective);
    // Read the events and the projection straight from the database, and fold.
    let store = keygate::store::sqlite::SqliteStore::open(&format!("sqlite://{}", w.s.db_path().display()))
        .await
        .unwrap();
    use keygate::store::Store;
    let org = json(
        w.s.req(Method::GET, "/v1/me")
            .header("X-API-Key", &w.org_key)
            .send()
            .await
            .unwrap(),
    )
    .await["org_id"]
        .as_str()
        .unwrap()
        .to_string();
    let org = uuid::Uuid::parse_str(&org).unwrap();
    for u in &uuids {
        let id = uuid::Uuid::parse_str(u).unwrap();
        let events = store.events_of(org, id).await.unwrap();
        let versions: Vec<i64> = events.iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=events.len() as i64).collect::<Vec<_>>());
        let rebuilt = keygate::core::share::fold(&events).expect("fold");
        let cred = store.get_credential(org, id).await.unwrap().unwrap();
        let projected = keygate::core::share::ShareState::from_credential(&cred).unwrap();
        assert_eq!(rebuilt, projected, "{u}");
    }
    let deleted = keygate::core::share::fold(
        &store
            .events_of(org, uuid::Uuid::parse_str(&uuids[2]).unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(deleted.deleted);
    let updated = keygate::core::share::fold(
        &store
            .events_of(org, uuid::Uuid::parse_str(&uuids[1]).unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        updated.description.as_deref(),
        Some("changed"),
        "the fold reads the stored description"
    );
    let collective = keygate::core::share::fold(
        &store
            .events_of(org, uuid::Uuid::parse_str(&uuids[4]).unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(collective.used_count, 2);
    assert_eq!(collective.lock_id, None);
    assert_eq!(collective.doors[0]["label"], "Front");
}

#[tokio::test]
async fn locks_over_v1_and_the_cli() {
    let w = world().await;
    // Users see the locks they own; only administrators create.
    let mine = json(
        w.s.req(Method::GET, "/v1/locks")
            .bearer_auth(&w.owner_jwt)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["doors"], json!([{"id": 1, "name": "Main"}]));
    let theirs = json(
        w.s.req(Method::GET, "/v1/locks")
            .bearer_auth(&w.other_jwt)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(theirs, json!([]));
    let r =
        w.s.req(Method::POST, "/v1/locks")
            .bearer_auth(&w.owner_jwt)
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 403);
    let r =
        w.s.req(Method::GET, &format!("/v1/locks/{}", w.lock))
            .bearer_auth(&w.other_jwt)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 403);
    let r =
        w.s.req(Method::POST, "/v1/locks")
            .header("X-API-Key", &w.org_key)
            .json(&json!({"name": "y", "doors": [{"id": "one"}]}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    // CLI, against the running server's database.
    let out = command(w.s.dir.path())
        .args([
            "lock", "create", "Garage", "--org", "homes", "--owner", &w.other, "--json",
        ])
        .env("KEYGATE_DATABASE_URL", format!("sqlite://{}", w.s.db_path().display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["id"].as_i64().unwrap();
    assert!(uuid::Uuid::parse_str(v["uuid"].as_str().unwrap()).is_ok());
    let got = json(
        w.s.req(Method::GET, &format!("/v1/locks/{id}"))
            .bearer_auth(&w.other_jwt)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got["name"], "Garage");
    // The new owner manages its temp keys.
    let r =
        w.s.req(Method::POST, &format!("/locks/{id}/create-temp-key"))
            .bearer_auth(&w.other_jwt)
            .json(&w.key_body(&new_uuid()))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let bad = command(w.s.dir.path())
        .args(["lock", "create", "X", "--org", "nope", "--json"])
        .env("KEYGATE_DATABASE_URL", format!("sqlite://{}", w.s.db_path().display()))
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

impl World {
    async fn open(&self, uuid: &str, auth: Auth<'_>) -> reqwest::Response {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        auth.apply(client.post(self.s.url(&format!("/temp-keys/{uuid}/open"))))
            .send()
            .await
            .unwrap()
    }

    async fn guest_page(&self, uuid: &str, auth: Auth<'_>) -> (u16, String) {
        let r = auth
            .apply(self.s.req(Method::GET, &format!("/temp-keys/{uuid}")))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        (status, r.text().await.unwrap())
    }

    async fn event_types(&self) -> Vec<(String, String)> {
        let v = json(
            self.s
                .req(Method::GET, "/v1/events?limit=500")
                .header("X-API-Key", &self.org_key)
                .send()
                .await
                .unwrap(),
        )
        .await;
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["aggregate_id"].as_str().unwrap().to_string(),
                    e["type"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn guest_page_for_public_and_whitelisted_keys() {
    let w = world().await;
    let k = Auth::Key(&w.org_key);
    let public = new_uuid();
    assert_eq!(w.create(k, w.key_body(&public)).await.0, 200);
    let (status, html) = w.guest_page(&public, Auth::None).await;
    assert_eq!(status, 200);
    assert!(html.contains("Front door"), "{html}");
    assert!(html.contains("for the plumber"));
    assert!(html.contains(&format!("action=\"/temp-keys/{public}/open\"")));
    assert!(html.contains("<dd id=\"status\">valid</dd>"));

    let listed = new_uuid();
    let mut b = w.key_body(&listed);
    b["accessMode"] = json!("user-whitelist");
    b["allowedUserIds"] = json!([w.owner]);
    b["description"] = json!("<script>alert(1)</script>");
    assert_eq!(w.create(k, b).await.0, 200);
    assert_eq!(w.guest_page(&listed, Auth::None).await.0, 401);
    assert_eq!(w.guest_page(&listed, Auth::Jwt(&w.other_jwt)).await.0, 403);
    assert_eq!(w.guest_page(&listed, Auth::Jwt("not-a-jwt")).await.0, 401);
    let (status, html) = w.guest_page(&listed, Auth::Jwt(&w.owner_jwt)).await;
    assert_eq!(status, 200);
    assert!(!html.contains("<script>alert"), "descriptions are escaped");
    assert!(html.contains("&lt;script&gt;"));

    // Unknown and malformed ids: 404, the same page either way.
    assert_eq!(w.guest_page(&new_uuid(), Auth::None).await.0, 404);
    assert_eq!(w.guest_page("example_string", Auth::None).await.0, 404);
    // A user from another organization is not on any whitelist here.
    let (_, foreign_key) = w.s.create_org("elsewhere").await;
    let stranger = w.s.create_user(&foreign_key, "sven", "sven-password", false).await;
    let stranger_jwt = hs256(json!({"sub": stranger, "exp": now_ts() + 3600}));
    assert_eq!(w.guest_page(&listed, Auth::Jwt(&stranger_jwt)).await.0, 401);
}

#[tokio::test]
async fn open_answers_303_400_403_and_records_both_events() {
    let w = world().await;
    let k = Auth::Key(&w.org_key);
    let public = new_uuid();
    let mut b = w.key_body(&public);
    b["maxUses"] = json!(1);
    assert_eq!(w.create(k, b).await.0, 200);
    let r = w.open(&public, Auth::None).await;
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("/temp-keys/{public}/confirmation"));
    let page = w.s.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("asked to open"));
    let events = w.event_types().await;
    assert!(events.contains(&(public.clone(), "TempKeyUsed".into())));
    let lock_uuid = json(
        w.s.req(Method::GET, &format!("/v1/locks/{}", w.lock))
            .header("X-API-Key", &w.org_key)
            .send()
            .await
            .unwrap(),
    )
    .await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(events.contains(&(lock_uuid.clone(), "LockOpenRequested".into())));

    // Used up: 400 in SmartphoneKey's JSON shape, or HTML for a browser; nothing written.
    let before = w.s.snapshot().await;
    let r = w.open(&public, Auth::None).await;
    assert_eq!(r.status(), 400);
    let v = json(r).await;
    assert_eq!(v["code"], 400);
    assert!(v["details"][0]["message"].as_str().unwrap().contains("used up"), "{v}");
    let r =
        w.s.req(Method::POST, &format!("/temp-keys/{public}/open"))
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("used up"));
    assert_eq!(w.s.snapshot().await, before);

    // Not yet valid, and deleted.
    let later = new_uuid();
    let mut b = w.key_body(&later);
    b["validFrom"] = json!(iso(Utc::now() + Duration::hours(1)));
    assert_eq!(w.create(k, b).await.0, 200);
    let r = w.open(&later, Auth::None).await;
    assert_eq!(r.status(), 400);
    assert!(
        json(r).await["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not valid yet")
    );
    let gone = new_uuid();
    assert_eq!(w.create(k, w.key_body(&gone)).await.0, 200);
    w.post(&format!("/locks/{}/delete-temp-key", w.lock), k)
        .json(&json!({"tempKeyUuid": gone}))
        .send()
        .await
        .unwrap();
    assert_eq!(w.open(&gone, Auth::None).await.status(), 400);
    // Expired.
    w.s.advance(2 * 86400).await;
    let r = w.open(&later, Auth::None).await;
    assert_eq!(r.status(), 400);
    assert!(
        json(r).await["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    // Whitelisted: the visitor's JWT is required, and must be on the list.
    let listed = new_uuid();
    let mut b = w.key_body(&listed);
    b["validFrom"] = json!(iso(Utc::now() + Duration::days(2)));
    b["validUntil"] = json!(iso(Utc::now() + Duration::days(4)));
    b["accessMode"] = json!("user-whitelist");
    b["allowedUserIds"] = json!([w.owner]);
    assert_eq!(w.create(k, b).await.0, 200);
    assert_eq!(w.open(&listed, Auth::None).await.status(), 401);
    let owner_jwt = hs256(json!({"sub": w.owner, "exp": now_ts() + 3 * 86400}));
    let other_jwt = hs256(json!({"sub": w.other, "exp": now_ts() + 3 * 86400}));
    let r = w.open(&listed, Auth::Jwt(&other_jwt)).await;
    assert_eq!(r.status(), 403);
    assert_eq!(json(r).await["code"], 403);
    assert_eq!(w.open(&listed, Auth::Jwt(&owner_jwt)).await.status(), 303);
    // A session cookie alone is never used to open (no cross-site forgery).
    let r =
        w.s.req(Method::POST, &format!("/temp-keys/{listed}/open"))
            .header("Cookie", "keygate_session=whatever; XSRF-TOKEN=x")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(w.open(&new_uuid(), Auth::None).await.status(), 404);
}

#[tokio::test]
async fn max_uses_is_exact_under_64_concurrent_opens() {
    let w = world().await;
    let uuid = new_uuid();
    let mut b = w.key_body(&uuid);
    b["maxUses"] = json!(10);
    assert_eq!(w.create(Auth::Key(&w.org_key), b).await.0, 200);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let opens = (0..64)
        .map(|_| client.post(w.s.url(&format!("/temp-keys/{uuid}/open"))))
        .collect();
    let statuses = statuses_at_once(opens).await;
    assert_eq!(count(&statuses, 303), 10);
    assert_eq!(count(&statuses, 400), 54);
    let events = w.event_types().await;
    assert_eq!(events.iter().filter(|(_, t)| t == "LockOpenRequested").count(), 10);
    assert_eq!(
        events.iter().filter(|(a, t)| *a == uuid && t == "TempKeyUsed").count(),
        10
    );
}

#[tokio::test]
async fn schedules_refuse_outside_their_days_and_hours() {
    let w = world().await;
    let k = Auth::Key(&w.org_key);
    // Monday 2026-11-23 08:00 UTC is 09:00 in Oslo.
    let r =
        w.s.req(Method::POST, "/_test/clock")
            .json(&json!({"set": "2026-11-23T08:00:00Z"}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let uuid = new_uuid();
    let mut b = w.key_body(&uuid);
    b["validFrom"] = json!("2026-11-23T00:00:00Z");
    b["validUntil"] = json!("2026-12-31T00:00:00Z");
    b["schedule"] = json!({"days": ["mon", "wed"], "from": "08:00", "until": "17:00", "timeZone": "Europe/Oslo"});
    assert_eq!(w.create(k, b.clone()).await.0, 200);
    let use_key = || async {
        let r = w
            .post(&format!("/locks/{}/use-temp-key", w.lock), k)
            .json(&json!({"tempKeyUuid": uuid}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), json(r).await)
    };
    assert_eq!(use_key().await.0, 200);
    // 18:00 in Oslo: after hours.
    w.s.advance(9 * 3600).await;
    let (status, v) = use_key().await;
    assert_eq!(status, 400);
    assert!(
        v["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("outside its schedule"),
        "{v}"
    );
    assert_eq!(w.open(&uuid, Auth::None).await.status(), 400);
    // Tuesday 09:00 in Oslo: not a scheduled day.
    w.s.advance(15 * 3600).await;
    assert_eq!(use_key().await.0, 400);
    // Wednesday 09:00: open again.
    w.s.advance(24 * 3600).await;
    assert_eq!(use_key().await.0, 200);
    assert_eq!(w.open(&uuid, Auth::None).await.status(), 303);
    // The native view shows the schedule (SmartphoneKey's list has no member for it); an
    // update can lift it.
    let view = json(
        w.s.req(Method::GET, &format!("/v1/keys/{uuid}"))
            .header("X-API-Key", &w.org_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(view["subject"]["schedule"]["timeZone"], "Europe/Oslo");
    assert_eq!(view["subject"]["schedule"]["days"], json!(["mon", "wed"]));
    w.s.advance(24 * 3600).await;
    assert_eq!(use_key().await.0, 400, "Thursday");
    let r = w
        .post(&format!("/locks/{}/update-temp-key", w.lock), k)
        .json(&json!({"tempKeyUuid": uuid, "schedule": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = json(r).await;
    // A change the closed TempKeyUpdated cannot hold: appended (the stored event says it), and
    // rendered with empty changes.
    assert_eq!(v["event"]["data"]["changes"], json!({}), "{v}");
    assert_eq!(use_key().await.0, 200);
    // A bad schedule is named field by field.
    let mut bad = w.key_body(&new_uuid());
    bad["validFrom"] = json!("2026-11-23T00:00:00Z");
    bad["validUntil"] = json!("2026-12-31T00:00:00Z");
    bad["schedule"] = json!({"days": ["mon"], "from": "08:00", "until": "17:00", "timeZone": "Mars/Olympus"});
    let (status, v) = w.create(k, bad).await;
    assert_eq!(status, 400);
    assert_eq!(detail_fields(&v), vec!["schedule.timeZone".to_string()]);
}

// ------------------------------------------------------------------ collective keys and PINs

impl World {
    async fn second_lock(&self) -> i64 {
        let r = self
            .s
            .req(Method::POST, "/v1/locks")
            .header("X-API-Key", &self.org_key)
            .json(&json!({"name": "Garage", "owner": self.owner}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        json(r).await["id"].as_i64().unwrap()
    }

    async fn collective(&self, auth: Auth<'_>, doors: Value) -> (u16, Value) {
        let r = auth
            .apply(self.s.req(Method::POST, "/temp-keys"))
            .json(&json!({
                "validFrom": iso(Utc::now() - Duration::minutes(1)),
                "validUntil": iso(Utc::now() + Duration::days(1)),
                "description": "cleaners",
                "doors": doors,
            }))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status == 201 {
            assert_eq!(r.headers()["cache-control"], "no-store");
        }
        (status, json(r).await)
    }

    async fn pin(&self, lock: i64, body: Value, from: &str) -> (u16, Option<String>, Value) {
        let client = reqwest::Client::builder()
            .local_address(from.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap();
        let r = client
            .post(self.s.url(&format!("/locks/{lock}/open-with-pin")))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        (status, retry, json(r).await)
    }
}

/// A PIN that is not `pin` (same length).
fn wrong(pin: &str, i: u32) -> String {
    let n: u64 = pin.parse().unwrap();
    format!(
        "{:0width$}",
        (n + 1 + i as u64) % 10u64.pow(pin.len() as u32),
        width = pin.len()
    )
}

#[tokio::test]
async fn collective_keys_over_several_doors_with_link_and_pin() {
    let w = world().await;
    let k = Auth::Key(&w.org_key);
    let garage = w.second_lock().await;
    let doors = json!([
        {"lockId": w.lock, "label": "Front door", "accessMethod": "both"},
        {"lockId": garage, "label": "Garage", "accessMethod": "code"},
    ]);
    let (status, v) = w.collective(k, doors.clone()).await;
    assert_eq!(status, 201, "{v}");
    let uuid = v["uuid"].as_str().unwrap().to_string();
    let pin = v["pin"].as_str().unwrap().to_string();
    assert_eq!(pin.len(), 8);
    assert!(pin.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(v["url"], format!("{}/temp-keys/{uuid}", w.s.base));
    assert_eq!(v["doors"][1]["accessMethod"], "code");
    assert_eq!(v["doors"][1]["lockId"], garage.to_string());
    assert!(v.get("event").is_none());
    let events = json(
        w.s.req(Method::GET, "/v1/events?limit=500")
            .header("X-API-Key", &w.org_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(!events.to_string().contains(&pin), "the PIN is not in an event");

    // Listed without the PIN; the PIN is nowhere in the database.
    let list = json(
        w.s.req(Method::GET, "/temp-keys")
            .header("X-API-Key", &w.org_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["tempKeys"].as_array().unwrap().len(), 1);
    assert_eq!(list["tempKeys"][0]["uuid"], uuid.as_str());
    assert_eq!(list["tempKeys"][0]["revokedAt"], Value::Null);
    assert!(list["tempKeys"][0].get("pin").is_none());
    let db = std::fs::read(w.s.db_path()).unwrap();
    let wal = std::fs::read(w.s.db_path().with_extension("db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(pin.len()).any(|x| x == pin.as_bytes()),
            "PIN stored in plaintext"
        );
    }
    // The per-lock list does not mix them in.
    let per_lock = json(
        w.s.req(Method::GET, &format!("/locks/{}/temp-keys", w.lock))
            .header("X-API-Key", &w.org_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(per_lock, json!({"tempKeys": []}));

    // The guest page offers the link door only, through its door route.
    let (status, html) = w.guest_page(&uuid, Auth::None).await;
    assert_eq!(status, 200);
    assert!(html.contains("Front door") && html.contains("Garage"));
    assert!(html.contains(&format!("action=\"/temp-keys/{uuid}/doors/1/open\"")));
    assert!(!html.contains(&format!("action=\"/temp-keys/{uuid}/doors/2/open\"")));
    let form = |lock: i64| {
        w.s.req(Method::POST, &format!("/temp-keys/{uuid}/open"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("lockId={lock}"))
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client
        .post(w.s.url(&format!("/temp-keys/{uuid}/open")))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("lockId={}", w.lock))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = form(garage).send().await.unwrap();
    assert_eq!(r.status(), 400, "the garage takes the PIN only");
    // Without a choice, the first door that opens through the link.
    assert_eq!(w.open(&uuid, Auth::None).await.status(), 303);

    // The PIN opens both code doors; a door id must be one of the lock's doors.
    let (status, _, v) = w.pin(garage, json!({"pin": pin}), "127.0.0.1").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"success": true, "offline": false}));
    let (status, _, _) = w.pin(w.lock, json!({"pin": pin, "doorId": 1}), "127.0.0.1").await;
    assert_eq!(status, 200);
    let (status, _, _) = w.pin(w.lock, json!({"pin": pin, "doorId": 99}), "127.0.0.1").await;
    assert_eq!(status, 401);
    let events = w.event_types().await;
    assert_eq!(
        events.iter().filter(|(a, t)| *a == uuid && t == "TempKeyUsed").count(),
        4
    );
    assert_eq!(events.iter().filter(|(_, t)| t == "LockOpenRequested").count(), 4);

    // Bad PIN requests are 400 (they say nothing about PINs) and change nothing.
    let before = w.s.snapshot().await;
    for body in [
        json!({}),
        json!({"pin": 12345678}),
        json!({"pin": "12ab"}),
        json!({"pin": "1234", "doorId": "x"}),
    ] {
        assert_eq!(w.pin(garage, body, "127.0.0.1").await.0, 400);
    }
    assert_eq!(w.s.snapshot().await, before);

    // Delete: once, then alreadyRevoked; the PIN and the link stop working.
    let del = || async {
        let r =
            w.s.req(Method::DELETE, &format!("/temp-keys/{uuid}"))
                .header("X-API-Key", &w.org_key)
                .send()
                .await
                .unwrap();
        (r.status().as_u16(), json(r).await)
    };
    let (status, v) = del().await;
    assert_eq!(status, 200);
    assert_eq!(v, json!({"success": true, "alreadyRevoked": false}));
    let (status, v) = del().await;
    assert_eq!(status, 200);
    assert_eq!(v["alreadyRevoked"], true);
    assert_eq!(w.pin(garage, json!({"pin": pin}), "127.0.0.1").await.0, 401);
    assert_eq!(w.open(&uuid, Auth::None).await.status(), 400);
    let list = json(
        w.s.req(Method::GET, "/temp-keys")
            .header("X-API-Key", &w.org_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list, json!({"tempKeys": []}));
    let r =
        w.s.req(Method::DELETE, &format!("/temp-keys/{}", new_uuid()))
            .header("X-API-Key", &w.org_key)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn collective_keys_are_validated_and_authorized_like_temp_keys() {
    let w = world().await;
    let k = Auth::Key(&w.org_key);
    let before = w.s.snapshot().await;
    let r =
        w.s.req(Method::POST, "/temp-keys")
            .header("X-API-Key", &w.org_key)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    let v = json(r).await;
    assert_eq!(detail_fields(&v), vec!["validFrom", "validUntil", "doors"]);
    let long = "x".repeat(121);
    let (status, v) = w
        .collective(
            k,
            json!([
                {"lockId": "one", "label": "A", "accessMethod": "key"},
                {"lockId": w.lock, "label": long, "accessMethod": "key"},
                {"lockId": w.lock, "label": "C", "accessMethod": "teleport"},
                "door",
            ]),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        detail_fields(&v),
        vec!["doors[0].lockId", "doors[1].label", "doors[2].accessMethod", "doors[3]"]
    );
    let (status, v) = w
        .collective(k, json!([{"lockId": w.lock, "label": "A", "accessMethod": "key"}, {"lockId": w.lock, "label": "B", "accessMethod": "code"}]))
        .await;
    assert_eq!(status, 400);
    assert_eq!(detail_fields(&v), vec!["doors[1].lockId"]);
    assert_eq!(w.s.snapshot().await, before, "nothing written");

    let door = json!([{"lockId": w.lock, "label": "Front", "accessMethod": "both"}]);
    assert_eq!(w.collective(Auth::None, door.clone()).await.0, 401);
    assert_eq!(
        w.collective(Auth::Jwt(&w.other_jwt), door.clone()).await.0,
        403,
        "not the owner"
    );
    let (_, foreign_key) = w.s.create_org("elsewhere").await;
    assert_eq!(
        w.collective(Auth::Key(&foreign_key), door.clone()).await.0,
        404,
        "another organization's lock"
    );
    let (status, v) = w.collective(Auth::Jwt(&w.owner_jwt), door.clone()).await;
    assert_eq!(status, 201);
    let uuid = v["uuid"].as_str().unwrap().to_string();
    // The owner sees their key; another user of the organization neither sees nor deletes it.
    let list = |jwt: &str| {
        let r = w.s.req(Method::GET, "/temp-keys").bearer_auth(jwt).send();
        async move { json(r.await.unwrap()).await }
    };
    assert_eq!(list(&w.owner_jwt).await["tempKeys"].as_array().unwrap().len(), 1);
    assert_eq!(list(&w.other_jwt).await, json!({"tempKeys": []}));
    let r =
        w.s.req(Method::DELETE, &format!("/temp-keys/{uuid}"))
            .bearer_auth(&w.other_jwt)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 403);
    let r =
        w.s.req(Method::DELETE, &format!("/temp-keys/{uuid}"))
            .header("X-API-Key", &foreign_key)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 404);
    // A PIN of one organization's key does nothing at another organization's lock.
    let pin = v["pin"].as_str().unwrap();
    let foreign_owner = w.s.create_user(&foreign_key, "fay", "fay-password", false).await;
    let r =
        w.s.req(Method::POST, "/v1/locks")
            .header("X-API-Key", &foreign_key)
            .json(&json!({"name": "Shed", "owner": foreign_owner}))
            .send()
            .await
            .unwrap();
    let shed = json(r).await["id"].as_i64().unwrap();
    assert_eq!(w.pin(shed, json!({"pin": pin}), "127.0.0.1").await.0, 401);
    assert_eq!(w.pin(w.lock, json!({"pin": pin}), "127.0.0.1").await.0, 200);
}

#[tokio::test]
async fn pin_probing_gets_only_401_then_429_per_source() {
    let w = world().await;
    let door = json!([{"lockId": w.lock, "label": "Front", "accessMethod": "code"}]);
    let (_, v) = w.collective(Auth::Key(&w.org_key), door).await;
    let pin = v["pin"].as_str().unwrap().to_string();
    let before = w.s.snapshot().await;
    // Five refusals, for a wrong PIN or an unknown lock, all the same answer.
    let mut answers = vec![];
    for i in 0..4 {
        let (status, retry, v) = w.pin(w.lock, json!({"pin": wrong(&pin, i)}), "127.0.0.1").await;
        answers.push((status, retry, v));
    }
    answers.push(w.pin(999_999, json!({"pin": pin}), "127.0.0.1").await);
    for a in &answers {
        assert_eq!(a, &answers[0]);
    }
    assert_eq!(answers[0].0, 401);
    assert_eq!(answers[0].2, json!({"error": "Invalid PIN"}));
    assert_eq!(w.s.snapshot().await, before, "refusals write nothing");
    // Then 429, even for the right PIN, with Retry-After.
    let (status, retry, v) = w.pin(w.lock, json!({"pin": pin}), "127.0.0.1").await;
    assert_eq!(status, 429, "{v}");
    let retry: u64 = retry.unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 901, "{retry}");
    assert_eq!(v["code"], 429);
    // Another source is not blocked (the lock allows 10 failures).
    assert_eq!(w.pin(w.lock, json!({"pin": pin}), "127.0.0.2").await.0, 200);
    // Once the window has passed the source may try again.
    w.s.advance(901).await;
    assert_eq!(w.pin(w.lock, json!({"pin": pin}), "127.0.0.1").await.0, 200);
    // A burst of concurrent guesses gets no more tries than one after another.
    w.s.advance(901).await;
    let guesses = (0..20)
        .map(|i| {
            w.s.req(Method::POST, &format!("/locks/{}/open-with-pin", w.lock))
                .json(&json!({"pin": wrong(&pin, i)}))
        })
        .collect();
    let statuses = statuses_at_once(guesses).await;
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 15, "{statuses:?}");
    // An expired key's PIN is refused like any other.
    w.s.advance(2 * 86400).await;
    assert_eq!(w.pin(w.lock, json!({"pin": pin}), "127.0.0.1").await.0, 401);
}

#[tokio::test]
async fn pin_probing_from_many_sources_is_limited_per_lock() {
    let opts = Options::default()
        .env("KEYGATE_PIN_MAX_FAILURES_PER_LOCK", "3")
        .env("KEYGATE_PIN_MAX_FAILURES_PER_SOURCE", "100");
    let w = world_with(opts).await;
    let garage = w.second_lock().await;
    let doors = json!([
        {"lockId": w.lock, "label": "Front", "accessMethod": "code"},
        {"lockId": garage, "label": "Garage", "accessMethod": "code"},
    ]);
    let (_, v) = w.collective(Auth::Key(&w.org_key), doors).await;
    let pin = v["pin"].as_str().unwrap().to_string();
    for (i, src) in ["127.0.0.2", "127.0.0.3", "127.0.0.4"].iter().enumerate() {
        assert_eq!(w.pin(w.lock, json!({"pin": wrong(&pin, i as u32)}), src).await.0, 401);
    }
    let (status, retry, _) = w.pin(w.lock, json!({"pin": pin}), "127.0.0.5").await;
    assert_eq!(status, 429);
    assert!(retry.is_some());
    // The other lock is not affected.
    assert_eq!(w.pin(garage, json!({"pin": pin}), "127.0.0.5").await.0, 200);
}

// ------------------------------------------------------------------ wire fidelity

/// A closed shape from SmartphoneKey's public openapi.yaml and event-schemas.json: every member,
/// and those that may be absent.
type Shape = (&'static [&'static str], &'static [&'static str]);

const TEMP_KEY_CREATED: Shape = (
    &[
        "tempKeyUuid",
        "lockId",
        "lockUuid",
        "accessMode",
        "allowedUserIds",
        "validFrom",
        "validUntil",
        "maxUses",
        "createdBy",
        "timestamp",
    ],
    &["allowedUserIds", "maxUses"],
);
const TEMP_KEY_UPDATED: Shape = (
    &["tempKeyUuid", "lockId", "lockUuid", "changes", "updatedBy", "timestamp"],
    &[],
);
const TEMP_KEY_CHANGES: Shape = (
    &["accessMode", "allowedUserIds", "maxUses", "validFrom", "validUntil"],
    &["accessMode", "allowedUserIds", "maxUses", "validFrom", "validUntil"],
);
const TEMP_KEY_DELETED: Shape = (&["tempKeyUuid", "lockId", "lockUuid", "deletedBy", "timestamp"], &[]);
const TEMP_KEY_USED: Shape = (
    &["tempKeyUuid", "lockId", "lockUuid", "userId", "usedCount", "timestamp"],
    &["userId"],
);
const WRITE: Shape = (&["success", "aggregateId", "version", "event"], &[]);
const LIST_ITEM: Shape = (
    &[
        "uuid",
        "lockId",
        "lockUuid",
        "accessMode",
        "allowedUserIds",
        "validFrom",
        "validUntil",
        "maxUses",
        "usedCount",
        "createdAt",
        "createdBy",
        "status",
    ],
    &[],
);
const COLLECTIVE_ITEM: Shape = (
    &[
        "uuid",
        "url",
        "validFrom",
        "validUntil",
        "description",
        "createdBy",
        "createdAt",
        "revokedAt",
        "doors",
    ],
    &[],
);
const COLLECTIVE_CREATED: Shape = (
    &["success", "uuid", "url", "validFrom", "validUntil", "doors", "pin"],
    &[],
);
const DOOR: Shape = (&["id", "lockId", "lockUuid", "label", "accessMethod"], &["label"]);

/// `v` is an object whose members are the shape's, every one not optional present.
fn assert_shape(what: &str, v: &Value, (all, optional): Shape) {
    use std::collections::BTreeSet;
    let got: BTreeSet<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    let all: BTreeSet<&str> = all.iter().copied().collect();
    let required: BTreeSet<&str> = all.iter().copied().filter(|f| !optional.contains(f)).collect();
    let extra: Vec<_> = got.difference(&all).collect();
    let missing: Vec<_> = required.difference(&got).collect();
    assert!(extra.is_empty(), "{what}: members outside the reference {extra:?}: {v}");
    assert!(missing.is_empty(), "{what}: missing members {missing:?}: {v}");
}

/// A write answer, and its event's data against the event type's shape.
fn assert_write(v: &Value, event_type: &str, shape: Shape) {
    assert_shape("write answer", &without(v, "tempKeyUuid"), WRITE);
    assert_eq!(v["event"]["type"], event_type, "{v}");
    assert_shape(&format!("{event_type} event"), &v["event"], (&["type", "data"], &[]));
    assert_shape(&format!("{event_type} data"), &v["event"]["data"], shape);
    if event_type == "TempKeyUpdated" {
        assert_shape(
            "TempKeyUpdated.changes",
            &v["event"]["data"]["changes"],
            TEMP_KEY_CHANGES,
        );
    }
    assert!(v["event"]["data"]["lockId"].is_i64(), "{v}");
}

fn without(v: &Value, member: &str) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove(member);
    v
}

impl World {
    async fn spk(&self, method: Method, path: &str, auth: Auth<'_>, body: Option<Value>) -> (u16, Value) {
        let mut r = auth.apply(self.s.req(method, path));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), json(r).await)
    }

    /// The stored events of one aggregate, from keygate's own feed.
    async fn stored_events(&self, aggregate: &str) -> Vec<Value> {
        let v = json(
            self.s
                .req(Method::GET, "/v1/events?limit=500")
                .header("X-API-Key", &self.org_key)
                .send()
                .await
                .unwrap(),
        )
        .await;
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["aggregate_id"] == aggregate)
            .cloned()
            .collect()
    }

    fn no_redirects(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }
}

#[tokio::test]
async fn every_event_answered_has_exactly_the_references_members() {
    let w = world().await;
    let lock = w.lock;
    let path = |verb: &str| format!("/locks/{lock}/{verb}");
    // Created with every extra fact keygate stores: a description and a schedule.
    let uuid = new_uuid();
    let mut body = w.key_body(&uuid);
    body["accessMode"] = json!("user-whitelist");
    body["allowedUserIds"] = json!([w.owner]);
    body["maxUses"] = json!(5);
    body["schedule"] = json!({"days": ["mon"], "from": "08:00", "until": "17:00", "timeZone": "UTC"});
    let (status, v) = w.create(Auth::Jwt(&w.owner_jwt), body).await;
    assert_eq!(status, 200, "{v}");
    assert_write(&v, "TempKeyCreated", TEMP_KEY_CREATED);
    assert_eq!(v["tempKeyUuid"], uuid.as_str());
    // And a bare one (maxUses null, no whitelist) by the organization.
    let bare = new_uuid();
    let mut b = w.key_body(&bare);
    b.as_object_mut().unwrap().remove("description");
    let (_, v) = w.create(Auth::Key(&w.org_key), b).await;
    assert_write(&v, "TempKeyCreated", TEMP_KEY_CREATED);
    assert_eq!(v["event"]["data"]["maxUses"], Value::Null);

    // An update of closed members and of keygate's own (schedule, description).
    let until = iso(Utc::now() + Duration::days(3));
    let (status, v) = w
        .spk(
            Method::POST,
            &path("update-temp-key"),
            Auth::Jwt(&w.owner_jwt),
            Some(json!({"tempKeyUuid": uuid, "maxUses": 7, "validUntil": until, "description": "new words", "schedule": null})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_write(&v, "TempKeyUpdated", TEMP_KEY_UPDATED);
    let changes = &v["event"]["data"]["changes"];
    assert_eq!(changes["maxUses"], 7);
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(changes["validUntil"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339(&until).unwrap()
    );
    assert_eq!(v["version"], 2);

    // Uses, with and without a user.
    let (status, v) = w
        .spk(
            Method::POST,
            &path("use-temp-key"),
            Auth::Key(&w.org_key),
            Some(json!({"tempKeyUuid": uuid, "userId": w.owner})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_write(&v, "TempKeyUsed", TEMP_KEY_USED);
    assert_eq!(v["event"]["data"]["userId"], w.owner.as_str());
    assert_eq!(v["event"]["data"]["usedCount"], 1);
    let (_, v) = w
        .spk(
            Method::POST,
            &path("use-temp-key"),
            Auth::Key(&w.org_key),
            Some(json!({"tempKeyUuid": bare})),
        )
        .await;
    assert_write(&v, "TempKeyUsed", TEMP_KEY_USED);
    assert!(v["event"]["data"].get("userId").is_none());

    // A guest open (TempKeyUsed with a LockOpenRequested beside it) answers 303, no envelope.
    let r = w.open(&bare, Auth::None).await;
    assert_eq!(r.status(), 303);

    let (status, v) = w
        .spk(
            Method::POST,
            &path("delete-temp-key"),
            Auth::Jwt(&w.owner_jwt),
            Some(json!({"tempKeyUuid": uuid})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_write(&v, "TempKeyDeleted", TEMP_KEY_DELETED);
    assert_eq!(v["version"], 4);

    // The stored events keep every fact, and keygate's own feed shows them.
    let stored = w.stored_events(&uuid).await;
    let types: Vec<&str> = stored.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["TempKeyCreated", "TempKeyUpdated", "TempKeyUsed", "TempKeyDeleted"]
    );
    assert_eq!(stored[0]["data"]["description"], "for the plumber");
    assert_eq!(stored[0]["data"]["schedule"]["days"], json!(["mon"]));
    assert_eq!(stored[1]["data"]["changes"]["description"], "new words");
    assert_eq!(stored[1]["data"]["changes"]["schedule"], Value::Null);
    assert_eq!(stored[1]["data"]["changes"]["maxUses"], 7);
}

#[tokio::test]
async fn lists_are_wrapped_with_exactly_the_references_members() {
    let w = world().await;
    let garage = w.second_lock().await;
    let uuid = new_uuid();
    let mut b = w.key_body(&uuid);
    b["schedule"] = json!({"days": ["mon"], "from": "08:00", "until": "17:00", "timeZone": "UTC"});
    assert_eq!(w.create(Auth::Key(&w.org_key), b).await.0, 200);
    assert_eq!(w.create(Auth::Jwt(&w.owner_jwt), w.key_body(&new_uuid())).await.0, 200);
    let (status, list) = w
        .spk(
            Method::GET,
            &format!("/locks/{}/temp-keys", w.lock),
            Auth::Jwt(&w.owner_jwt),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_shape("per-lock list", &list, (&["tempKeys"], &[]));
    let items = list["tempKeys"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for item in items {
        assert_shape("per-lock list item", item, LIST_ITEM);
        assert_eq!(item["lockId"], w.lock);
        assert_eq!(item["status"], "valid");
    }
    // An unknown lock: 404 {error, message}.
    let (status, v) = w
        .spk(Method::GET, "/locks/999999/temp-keys", Auth::Key(&w.org_key), None)
        .await;
    assert_eq!(status, 404);
    assert!(v["error"].is_string() && v["message"].is_string(), "{v}");

    // Collective keys: one by the organization, one by the owner over the garage.
    let front = json!([{"lockId": w.lock, "label": "Front", "accessMethod": "both"}]);
    let (status, mine) = w.collective(Auth::Key(&w.org_key), front).await;
    assert_eq!(status, 201, "{mine}");
    let garage_door = json!([{"lockId": garage.to_string(), "label": "Garage", "accessMethod": "key"}]);
    let (status, theirs) = w.collective(Auth::Jwt(&w.owner_jwt), garage_door).await;
    assert_eq!(status, 201, "{theirs}");
    let (status, list) = w.spk(Method::GET, "/temp-keys", Auth::Key(&w.org_key), None).await;
    assert_eq!(status, 200);
    assert_shape("collective list", &list, (&["tempKeys"], &[]));
    let items = list["tempKeys"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the keys the caller created: {list}");
    let item = &items[0];
    assert_shape("collective list item", item, COLLECTIVE_ITEM);
    assert_eq!(item["uuid"], mine["uuid"]);
    assert_eq!(item["description"], "cleaners");
    assert_eq!(item["revokedAt"], Value::Null);
    assert_eq!(item["url"], mine["url"]);
    assert!(item["createdBy"].as_str().unwrap().starts_with("api_key:"), "{item}");
    for d in item["doors"].as_array().unwrap() {
        assert_shape("collective door", d, DOOR);
    }
    assert_eq!(item["doors"][0]["id"], 1);
    assert_eq!(item["doors"][0]["lockId"], w.lock.to_string());
    // With ?lockId=: every key with a door on that lock, whoever created it.
    let (status, list) = w
        .spk(
            Method::GET,
            &format!("/temp-keys?lockId={garage}"),
            Auth::Key(&w.org_key),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["tempKeys"].as_array().unwrap().len(), 1);
    assert_eq!(list["tempKeys"][0]["uuid"], theirs["uuid"]);
    assert_eq!(
        list["tempKeys"][0]["createdBy"],
        format!("user:{}", w.owner),
        "the same actor format as everywhere"
    );
    let (status, _) = w
        .spk(Method::GET, "/temp-keys?lockId=abc", Auth::Key(&w.org_key), None)
        .await;
    assert_eq!(status, 400);
    let (status, _) = w
        .spk(Method::GET, "/temp-keys?lockId=999999", Auth::Key(&w.org_key), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = w
        .spk(
            Method::GET,
            &format!("/temp-keys?lockId={garage}"),
            Auth::Jwt(&w.other_jwt),
            None,
        )
        .await;
    assert_eq!(status, 403, "not the garage's owner");
}

#[tokio::test]
async fn one_actor_format_on_the_surface() {
    let w = world().await;
    let lock = w.lock;
    let owner = format!("user:{}", w.owner);
    let uuid = new_uuid();
    let (_, v) = w.create(Auth::Jwt(&w.owner_jwt), w.key_body(&uuid)).await;
    assert_eq!(v["event"]["data"]["createdBy"], owner);
    let (_, v) = w
        .spk(
            Method::POST,
            &format!("/locks/{lock}/update-temp-key"),
            Auth::Jwt(&w.owner_jwt),
            Some(json!({"tempKeyUuid": uuid, "maxUses": 2})),
        )
        .await;
    assert_eq!(v["event"]["data"]["updatedBy"], owner);
    let by_key = new_uuid();
    let (_, v) = w.create(Auth::Key(&w.org_key), w.key_body(&by_key)).await;
    let api_key = v["event"]["data"]["createdBy"].as_str().unwrap().to_string();
    assert!(api_key.starts_with("api_key:"), "{api_key}");
    assert!(uuid::Uuid::parse_str(&api_key["api_key:".len()..]).is_ok());
    // The list names the same actors the events do.
    let (_, list) = w
        .spk(
            Method::GET,
            &format!("/locks/{lock}/temp-keys"),
            Auth::Key(&w.org_key),
            None,
        )
        .await;
    let by: std::collections::HashMap<&str, &str> = list["tempKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["uuid"].as_str().unwrap(), k["createdBy"].as_str().unwrap()))
        .collect();
    assert_eq!(by[uuid.as_str()], owner);
    assert_eq!(by[by_key.as_str()], api_key);
    let (_, v) = w
        .spk(
            Method::POST,
            &format!("/locks/{lock}/delete-temp-key"),
            Auth::Key(&w.org_key),
            Some(json!({"tempKeyUuid": uuid})),
        )
        .await;
    assert_eq!(v["event"]["data"]["deletedBy"], api_key);
    // Stored events are not rewritten: keygate's feed keeps what was written.
    let stored = w.stored_events(&uuid).await;
    assert_eq!(stored[0]["data"]["createdBy"], w.owner.as_str());
    assert_eq!(stored[0]["actor"], owner);
}

#[tokio::test]
async fn open_with_pin_answers_as_specified() {
    let w = world().await;
    let garage = w.second_lock().await;
    let k = Auth::Key(&w.org_key);
    let (_, v) = w
        .collective(k, json!([{"lockId": w.lock, "label": "Front", "accessMethod": "code"}]))
        .await;
    let pin = v["pin"].as_str().unwrap().to_string();
    let (status, retry, v) = w.pin(w.lock, json!({"pin": pin}), "127.0.0.1").await;
    assert_eq!((status, retry), (200, None));
    assert_eq!(v, json!({"success": true, "offline": false}));

    // A malformed PIN (not 4 to 8 digits) or body: 400 {error}, nothing written.
    let before = w.s.snapshot().await;
    for body in [
        json!({}),
        json!({"pin": "123"}),
        json!({"pin": "123456789"}),
        json!({"pin": "12a4"}),
        json!({"pin": " 1234"}),
        json!({"pin": 1234}),
        json!({"pin": null}),
    ] {
        let (status, _, v) = w.pin(w.lock, body.clone(), "127.0.0.2").await;
        assert_eq!(status, 400, "{body}");
        assert!(v["error"].is_string(), "{body}: {v}");
    }
    assert_eq!(w.s.snapshot().await, before);

    // Every refusal alike: 401 {"error": "Invalid PIN"} and nothing else.
    let (status, later) = w
        .spk(
            Method::POST,
            "/temp-keys",
            k,
            Some(json!({
                "validFrom": iso(Utc::now() + Duration::hours(2)), "validUntil": iso(Utc::now() + Duration::days(1)),
                "doors": [{"lockId": w.lock, "accessMethod": "code"}],
            })),
        )
        .await;
    assert_eq!(status, 201, "{later}");
    let later_pin = later["pin"].as_str().unwrap().to_string();
    let (_, gone) = w
        .collective(k, json!([{"lockId": w.lock, "label": "Side", "accessMethod": "both"}]))
        .await;
    let gone_pin = gone["pin"].as_str().unwrap().to_string();
    let gone_uuid = gone["uuid"].as_str().unwrap();
    let r =
        w.s.req(Method::DELETE, &format!("/temp-keys/{gone_uuid}"))
            .header("X-API-Key", &w.org_key)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let before = w.s.snapshot().await;
    let refusals = [
        (w.lock, wrong(&pin, 0), "wrong PIN"),
        (999_999, pin.clone(), "unknown lock"),
        (garage, pin.clone(), "a lock the key does not cover"),
        (w.lock, later_pin, "not yet valid"),
        (w.lock, gone_pin, "deleted"),
    ];
    for (i, (lock, p, why)) in refusals.iter().enumerate() {
        let (status, retry, v) = w.pin(*lock, json!({"pin": p}), &format!("127.0.1.{}", i + 1)).await;
        assert_eq!((status, retry), (401, None), "{why}");
        assert_eq!(v, json!({"error": "Invalid PIN"}), "{why}");
    }
    assert_eq!(w.s.snapshot().await, before, "refusals write nothing");

    // Repeated failures from one source: 429 {error} with Retry-After, even for the right PIN.
    for i in 0..5 {
        assert_eq!(w.pin(garage, json!({"pin": wrong(&pin, i)}), "127.0.0.3").await.0, 401);
    }
    let (status, retry, v) = w.pin(w.lock, json!({"pin": pin}), "127.0.0.3").await;
    assert_eq!(status, 429, "{v}");
    assert!(retry.unwrap().parse::<u64>().unwrap() > 0);
    assert!(v["error"].is_string(), "{v}");

    // An expired key's PIN: the same 401.
    w.s.advance(2 * 86400).await;
    let (status, _, v) = w.pin(w.lock, json!({"pin": pin}), "127.0.0.4").await;
    assert_eq!((status, v), (401, json!({"error": "Invalid PIN"})));
}

#[tokio::test]
async fn door_routes_and_the_newer_collective_name() {
    let w = world().await;
    let garage = w.second_lock().await;
    let shed = w.second_lock().await;
    let k = Auth::Key(&w.org_key);
    // Created under the newer name; lock ids as strings or numbers; label and accessMethod
    // may be left out (accessMethod defaults to key).
    let (status, v) = w
        .spk(
            Method::POST,
            "/collective-temp-keys",
            k,
            Some(json!({
                "validFrom": iso(Utc::now() - Duration::minutes(1)),
                "validUntil": iso(Utc::now() + Duration::days(1)),
                "description": "cleaners",
                "doors": [
                    {"lockId": w.lock.to_string(), "label": "Front", "accessMethod": "key"},
                    {"lockId": garage, "label": "Garage", "accessMethod": "code"},
                    {"lockId": shed.to_string()},
                ],
            })),
        )
        .await;
    assert_eq!(status, 201, "{v}");
    assert_shape("collective create", &v, COLLECTIVE_CREATED);
    let uuid = v["uuid"].as_str().unwrap().to_string();
    assert_eq!(v["url"], format!("{}/temp-keys/{uuid}", w.s.base));
    assert_eq!(v["pin"].as_str().unwrap().len(), 8);
    let doors = v["doors"].as_array().unwrap();
    for d in doors {
        assert_shape("collective door", d, DOOR);
    }
    let ids: Vec<i64> = doors.iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [1, 2, 3]);
    let lock_ids: Vec<&str> = doors.iter().map(|d| d["lockId"].as_str().unwrap()).collect();
    assert_eq!(lock_ids, [w.lock.to_string(), garage.to_string(), shed.to_string()]);
    assert_eq!(doors[2]["label"], Value::Null);
    assert_eq!(doors[2]["accessMethod"], "key");

    // One door at a time: 303 to the confirmation under the name used.
    let client = w.no_redirects();
    let open = |prefix: &str, key: &str, door: &str| {
        client
            .post(w.s.url(&format!("/{prefix}/{key}/doors/{door}/open")))
            .send()
    };
    let r = open("temp-keys", &uuid, "1").await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], format!("/temp-keys/{uuid}/confirmation"));
    let r = open("collective-temp-keys", &uuid, "3").await.unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(location, format!("/collective-temp-keys/{uuid}/confirmation"));
    let page = w.s.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("asked to open"));
    let events = w.event_types().await;
    assert_eq!(
        events.iter().filter(|(a, t)| *a == uuid && t == "TempKeyUsed").count(),
        2
    );
    assert_eq!(events.iter().filter(|(_, t)| t == "LockOpenRequested").count(), 2);

    // The code-only door: 400; unknown doors and keys: 404; nothing written.
    let before = w.s.snapshot().await;
    for prefix in ["temp-keys", "collective-temp-keys"] {
        let r = open(prefix, &uuid, "2").await.unwrap();
        assert_eq!(r.status(), 400);
        let v = json(r).await;
        assert!(v["error"].is_string(), "{v}");
        assert!(v.to_string().contains("PIN"), "{v}");
        for door in ["4", "0", "-1", "abc"] {
            assert_eq!(
                open(prefix, &uuid, door).await.unwrap().status(),
                404,
                "{prefix} door {door}"
            );
        }
        assert_eq!(open(prefix, &new_uuid(), "1").await.unwrap().status(), 404);
        assert_eq!(open(prefix, "example_string", "1").await.unwrap().status(), 404);
    }
    assert_eq!(w.s.snapshot().await, before);

    // A per-lock key has one door, 1.
    let single = new_uuid();
    assert_eq!(w.create(k, w.key_body(&single)).await.0, 200);
    assert_eq!(open("temp-keys", &single, "1").await.unwrap().status(), 303);
    assert_eq!(open("temp-keys", &single, "2").await.unwrap().status(), 404);

    // The rest of the collective routes under the newer name.
    let (status, list) = w.spk(Method::GET, "/collective-temp-keys", k, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["tempKeys"][0]["uuid"], uuid.as_str());
    assert_shape("collective list item", &list["tempKeys"][0], COLLECTIVE_ITEM);
    let r =
        w.s.req(Method::GET, &format!("/collective-temp-keys/{uuid}"))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Front") && html.contains("Garage") && html.contains("door 3"),
        "{html}"
    );
    assert!(html.contains(&format!("action=\"/temp-keys/{uuid}/doors/3/open\"")));
    let (status, v) = w
        .spk(Method::DELETE, &format!("/collective-temp-keys/{uuid}"), k, None)
        .await;
    assert_eq!((status, v), (200, json!({"success": true, "alreadyRevoked": false})));
    let (status, v) = w.spk(Method::DELETE, &format!("/temp-keys/{uuid}"), k, None).await;
    assert_eq!((status, v), (200, json!({"success": true, "alreadyRevoked": true})));
    assert_eq!(open("collective-temp-keys", &uuid, "1").await.unwrap().status(), 400);
    let (status, _) = w
        .spk(
            Method::DELETE,
            &format!("/collective-temp-keys/{}", new_uuid()),
            k,
            None,
        )
        .await;
    assert_eq!(status, 404);

    // A key whose doors all open through the link has no PIN.
    let (status, v) = w
        .collective(k, json!([{"lockId": w.lock, "label": "Front", "accessMethod": "key"}]))
        .await;
    assert_eq!(status, 201);
    assert_eq!(v["pin"], Value::Null);

    // Bad lock ids, as strings or otherwise.
    for bad in [
        json!("abc"),
        json!("0"),
        json!("-1"),
        json!(""),
        json!(1.5),
        json!(null),
        json!(true),
    ] {
        let (status, v) = w
            .collective(k, json!([{"lockId": bad, "label": "X", "accessMethod": "key"}]))
            .await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(detail_fields(&v), ["doors[0].lockId"], "{bad}");
    }
}

#[tokio::test]
async fn updates_that_change_nothing_append_nothing() {
    let w = world().await;
    let k = Auth::Key(&w.org_key);
    let path = format!("/locks/{}/update-temp-key", w.lock);
    let uuid = new_uuid();
    let mut body = w.key_body(&uuid);
    body["maxUses"] = json!(3);
    body["validFrom"] = json!("2026-01-01T00:00:00Z");
    body["validUntil"] = json!(iso(Utc::now() + Duration::days(1)));
    assert_eq!(w.create(k, body.clone()).await.0, 200);
    let before = w.s.snapshot().await;
    for same in [
        json!({"tempKeyUuid": uuid}),
        json!({"tempKeyUuid": uuid, "maxUses": 3, "accessMode": "public", "allowedUserIds": []}),
        // The same instant, written another way.
        json!({"tempKeyUuid": uuid, "validFrom": "2026-01-01T01:00:00.000+01:00", "validUntil": body["validUntil"]}),
        json!({"tempKeyUuid": uuid, "description": "for the plumber", "schedule": null}),
    ] {
        let (status, v) = w.spk(Method::POST, &path, k, Some(same.clone())).await;
        assert_eq!(status, 200, "{same}: {v}");
        assert_eq!(
            v,
            json!({"success": true, "aggregateId": uuid, "version": 1, "event": null}),
            "{same}"
        );
    }
    assert_eq!(w.s.snapshot().await, before, "nothing appended");

    // A change is only what differs.
    let (_, v) = w
        .spk(
            Method::POST,
            &path,
            k,
            Some(json!({"tempKeyUuid": uuid, "maxUses": 4, "validFrom": "2026-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(v["version"], 2);
    assert_eq!(v["event"]["data"]["changes"], json!({"maxUses": 4}));

    // description is stored (a keygate extension), never accepted and dropped.
    let (status, v) = w
        .spk(
            Method::POST,
            &path,
            k,
            Some(json!({"tempKeyUuid": uuid, "description": "for the electrician"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["version"], 3);
    assert_write(&v, "TempKeyUpdated", TEMP_KEY_UPDATED);
    assert_eq!(v["event"]["data"]["changes"], json!({}));
    let stored = w.stored_events(&uuid).await;
    assert_eq!(
        stored[2]["data"]["changes"],
        json!({"description": "for the electrician"})
    );
    let (_, html) = w.guest_page(&uuid, Auth::None).await;
    assert!(html.contains("for the electrician"), "{html}");
    let view = json(
        w.s.req(Method::GET, &format!("/v1/keys/{uuid}"))
            .header("X-API-Key", &w.org_key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(view["metadata"]["description"], "for the electrician");
    // Bad descriptions are refused and change nothing.
    let before = w.s.snapshot().await;
    for bad in [json!("d".repeat(2001)), json!(5), json!(["x"])] {
        let (status, v) = w
            .spk(
                Method::POST,
                &path,
                k,
                Some(json!({"tempKeyUuid": uuid, "description": bad})),
            )
            .await;
        assert_eq!(status, 400);
        assert_eq!(detail_fields(&v), ["description"]);
    }
    assert_eq!(w.s.snapshot().await, before);
    // null clears it.
    let (_, v) = w
        .spk(
            Method::POST,
            &path,
            k,
            Some(json!({"tempKeyUuid": uuid, "description": null})),
        )
        .await;
    assert_eq!(v["version"], 4);
    let (_, html) = w.guest_page(&uuid, Auth::None).await;
    assert!(!html.contains("for the electrician"));
}

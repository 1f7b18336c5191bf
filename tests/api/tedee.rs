//! Tedee-compatible personal access keys (seed 004).

use crate::common::*;
use chrono::{Duration, Months, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const API: &str = "/api/v37/my/personalaccesskey";

/// A JWT for the bootstrap admin, as the seed's sample sends `Authorization: Bearer <<access token>>`.
async fn admin_jwt(s: &Server) -> String {
    let me = json(s.admin(Method::GET, "/v1/me").send().await.unwrap()).await;
    hs256(json!({"sub": me["user_id"], "exp": now_ts() + 3600}))
}

fn iso(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The seed's request: its headers and body, with validTo given.
fn seed_request(s: &Server, auth: &str, valid_to: &str) -> reqwest::RequestBuilder {
    s.req(Method::POST, API)
        .header("accept", "application/json")
        .header("Content-Type", "application/json-patch+json")
        .header("Authorization", auth)
        .body(format!(
            r#"{{
            "name": "SomeExampleKeyName",
            "validTo": "{valid_to}",
            "scopes": [
                "Device.Read",
                "Organization.ReadWrite"
            ]
        }}"#
        ))
}

async fn create(s: &Server, auth: &str, name: &str, scopes: &[&str]) -> Value {
    let r = s
        .req(Method::POST, API)
        .header("Authorization", auth)
        .json(&json!({"name": name, "validTo": iso(Utc::now() + Duration::days(30)), "scopes": scopes}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    json(r).await
}

fn pk(key: &Value) -> String {
    format!("PersonalKey {}", key["result"]["key"].as_str().unwrap())
}

async fn envelope_error(r: reqwest::Response, status: u16) -> String {
    assert_eq!(r.status().as_u16(), status);
    let v = json(r).await;
    assert_eq!(v["success"], false, "{v}");
    assert_eq!(v["statusCode"], status);
    let msgs = v["errorMessages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1);
    msgs[0].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_seed_sample_creates_a_key_that_then_authenticates() {
    let s = Server::start().await;
    let bearer = format!("Bearer {}", admin_jwt(&s).await);
    let valid_to = iso(Utc::now() + Duration::days(90));
    let r = seed_request(&s, &bearer, &valid_to).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let v = json(r).await;
    insta::assert_json_snapshot!("tedee_create_201", v, {".result.id" => "[uuid]", ".result.key" => "[key]"});
    let key = v["result"]["key"].as_str().unwrap();
    // The sample's shape: 6 lowercase letters, a dot, 32 bytes in base64 (43 characters, no padding).
    let (prefix, secret) = key.split_once('.').unwrap();
    assert!(
        prefix.len() == 6 && prefix.chars().all(|c| c.is_ascii_lowercase()),
        "{key}"
    );
    assert_eq!(secret.len(), 43);
    assert!(
        secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
    );
    // It works as `Authorization: PersonalKey` on the list route.
    let r = s
        .req(Method::GET, API)
        .header("Authorization", format!("PersonalKey {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list = json(r).await;
    assert_eq!(list["success"], true);
    assert_eq!(list["statusCode"], 200);
    let items = list["result"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "SomeExampleKeyName");
    assert_eq!(items[0]["prefix"], prefix);
    assert_eq!(items[0]["scopes"], json!(["Device.Read", "Organization.ReadWrite"]));
    assert_eq!(items[0]["validTo"], valid_to);
    assert!(
        !list.to_string().contains(secret),
        "the list must not reveal the secret"
    );
    insta::assert_json_snapshot!("tedee_list_200", list, {".result[].id" => "[uuid]", ".result[].prefix" => "[prefix]", ".result[].validTo" => "[date]"});
}

#[tokio::test]
async fn the_seed_sample_verbatim_is_refused_for_its_past_date() {
    let s = Server::start().await;
    let bearer = format!("Bearer {}", admin_jwt(&s).await);
    let before = s.snapshot().await;
    let r = seed_request(&s, &bearer, "2021-04-26T06:02:04.197Z")
        .send()
        .await
        .unwrap();
    let msg = envelope_error(r, 400).await;
    assert!(msg.contains("validTo") && msg.contains("future"), "{msg}");
    assert_eq!(before, s.snapshot().await);
}

#[tokio::test]
async fn bad_requests_answer_400_in_the_envelope_and_create_nothing() {
    let s = Server::start().await;
    let auth = format!("Bearer {}", admin_jwt(&s).await);
    let now = Utc::now();
    let five_years = now.checked_add_months(Months::new(60)).unwrap();
    let ok_scopes = json!(["Account.Read"]);
    let cases: Vec<(String, &str)> = vec![
        (
            json!({"name": "k", "validTo": iso(five_years + Duration::days(1)), "scopes": ok_scopes}).to_string(),
            "validTo",
        ),
        (
            json!({"name": "k", "validTo": iso(now - Duration::hours(1)), "scopes": ok_scopes}).to_string(),
            "validTo",
        ),
        (
            json!({"name": "k", "validTo": "next week", "scopes": ok_scopes}).to_string(),
            "validTo",
        ),
        (json!({"name": "k", "scopes": ok_scopes}).to_string(), "validTo"),
        (
            json!({"name": "k", "validTo": iso(now + Duration::days(1)), "scopes": ["Lock.Fly"]}).to_string(),
            "scopes[0]",
        ),
        (
            json!({"name": "k", "validTo": iso(now + Duration::days(1)), "scopes": ["user_impersonation"]}).to_string(),
            "scopes[0]",
        ),
        (
            json!({"name": "k", "validTo": iso(now + Duration::days(1)), "scopes": []}).to_string(),
            "scopes",
        ),
        (
            json!({"name": "k", "validTo": iso(now + Duration::days(1))}).to_string(),
            "scopes",
        ),
        (
            json!({"name": "", "validTo": iso(now + Duration::days(1)), "scopes": ok_scopes}).to_string(),
            "name",
        ),
        (
            json!({"name": "n".repeat(101), "validTo": iso(now + Duration::days(1)), "scopes": ok_scopes}).to_string(),
            "name",
        ),
        (
            json!({"validTo": iso(now + Duration::days(1)), "scopes": ok_scopes}).to_string(),
            "name",
        ),
        (
            json!({"name": 7, "validTo": iso(now + Duration::days(1)), "scopes": ok_scopes}).to_string(),
            "name",
        ),
        ("{\"name\": \"k\", ".to_string(), "body"),
        ("not json".to_string(), "body"),
    ];
    let before = s.snapshot().await;
    for (body, field) in cases {
        let r = s
            .req(Method::POST, API)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let msg = envelope_error(r, 400).await;
        assert!(msg.starts_with(&format!("{field}:")), "{body} -> {msg}");
    }
    // Exactly five years ahead is allowed.
    let r = s
        .req(Method::POST, API)
        .header("Authorization", &auth)
        .json(&json!({"name": "max", "validTo": iso(five_years - Duration::minutes(1)), "scopes": ok_scopes}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let after = s.snapshot().await;
    assert_eq!(
        before.iter().find(|(t, _)| t == "credentials").unwrap().1 + 1,
        after.iter().find(|(t, _)| t == "credentials").unwrap().1
    );
    // Wrong media type: 415 in the envelope.
    let r = s
        .req(Method::POST, API)
        .header("Authorization", &auth)
        .header("Content-Type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    envelope_error(r, 415).await;
}

#[tokio::test]
async fn unauthenticated_and_unknown_routes_use_the_envelope() {
    let s = Server::start().await;
    let r = s.req(Method::GET, API).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], "Bearer, PersonalKey");
    envelope_error(r, 401).await;
    let r = s
        .req(Method::GET, API)
        .header(
            "Authorization",
            "PersonalKey smnxaz.IWA6u00VLQmA8tlfioDXcH+bSiI6u8LgTG9cv3Evh/E",
        )
        .send()
        .await
        .unwrap();
    envelope_error(r, 401).await;
    let r = s.admin(Method::GET, "/api/v37/my/nothing").send().await.unwrap();
    envelope_error(r, 404).await;
    let r = s
        .admin(Method::GET, "/api/latest/my/personalaccesskey")
        .send()
        .await
        .unwrap();
    envelope_error(r, 404).await;
    // Organization API keys are not users.
    let (_, org) = s.create_org("b2b").await;
    let r = s.req(Method::GET, API).header("X-API-Key", &org).send().await.unwrap();
    envelope_error(r, 403).await;
}

#[tokio::test]
async fn put_changes_and_delete_stops_the_key_at_once() {
    let s = Server::start().await;
    let (_, org) = s.create_org("home").await;
    s.create_user(&org, "alice", "alice-password", false).await;
    let basic = |u: &str, p: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let alice = basic("alice", "alice-password");
    let a = create(&s, &alice, "manager", &["Account.ReadWrite"]).await;
    let b = create(&s, &alice, "reader", &["Account.Read"]).await;
    let a_id = a["result"]["id"].as_str().unwrap();
    // PUT with the key itself cannot add a scope the key does not hold...
    let new_to = iso(Utc::now() + Duration::days(400));
    let body = json!({"name": "renamed", "validTo": new_to, "scopes": ["Account.ReadWrite", "Device.Read"]});
    let r = s
        .req(Method::PUT, &format!("{API}/{a_id}"))
        .header("Authorization", pk(&a))
        .json(&body)
        .send()
        .await
        .unwrap();
    envelope_error(r, 403).await;
    // ...but its owner can: rename, move validTo, change scopes.
    let r = s
        .req(Method::PUT, &format!("{API}/{a_id}"))
        .header("Authorization", &alice)
        .header("Content-Type", "application/json-patch+json")
        .body(json!({"name": "renamed", "validTo": new_to, "scopes": ["Account.ReadWrite", "Device.Read"]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let list = json(
        s.req(Method::GET, API)
            .header("Authorization", pk(&b))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let item = list["result"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == a_id)
        .unwrap()
        .clone();
    assert_eq!(item["name"], "renamed");
    assert_eq!(item["validTo"], new_to);
    assert_eq!(item["scopes"], json!(["Account.ReadWrite", "Device.Read"]));
    // The reader key cannot create or change keys.
    let r = s
        .req(Method::POST, API)
        .header("Authorization", pk(&b))
        .json(&json!({"name": "x", "validTo": iso(Utc::now() + Duration::days(1)), "scopes": ["Account.Read"]}))
        .send()
        .await
        .unwrap();
    envelope_error(r, 403).await;
    let r = s
        .req(Method::DELETE, &format!("{API}/{a_id}"))
        .header("Authorization", pk(&b))
        .send()
        .await
        .unwrap();
    envelope_error(r, 403).await;
    // A manager key cannot hand out scopes it does not hold.
    let r = s
        .req(Method::POST, API)
        .header("Authorization", pk(&a))
        .json(
            &json!({"name": "x", "validTo": iso(Utc::now() + Duration::days(1)), "scopes": ["Organization.ReadWrite"]}),
        )
        .send()
        .await
        .unwrap();
    envelope_error(r, 403).await;
    // DELETE: the key stops at once; the other key is unaffected.
    let r = s
        .req(Method::DELETE, &format!("{API}/{a_id}"))
        .header("Authorization", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = s
        .req(Method::GET, API)
        .header("Authorization", pk(&a))
        .send()
        .await
        .unwrap();
    envelope_error(r, 401).await;
    let list = json(
        s.req(Method::GET, API)
            .header("Authorization", pk(&b))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["result"].as_array().unwrap().len(), 1);
    let r = s
        .req(Method::DELETE, &format!("{API}/{a_id}"))
        .header("Authorization", &alice)
        .send()
        .await
        .unwrap();
    envelope_error(r, 404).await;
}

#[tokio::test]
async fn users_manage_only_their_own_keys() {
    let s = Server::start().await;
    let (_, org) = s.create_org("flat").await;
    s.create_user(&org, "alice", "alice-password", false).await;
    s.create_user(&org, "bob", "bob-password-1", true).await;
    let basic = |u: &str, p: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let a = create(&s, &basic("alice", "alice-password"), "alice key", &["Account.Read"]).await;
    let a_id = a["result"]["id"].as_str().unwrap();
    let bob = basic("bob", "bob-password-1");
    // Even an administrator gets 404 for another user's key here.
    let r = s
        .req(Method::PUT, &format!("{API}/{a_id}"))
        .header("Authorization", &bob)
        .json(&json!({"name": "mine now", "validTo": iso(Utc::now() + Duration::days(1)), "scopes": ["Account.Read"]}))
        .send()
        .await
        .unwrap();
    envelope_error(r, 404).await;
    let r = s
        .req(Method::DELETE, &format!("{API}/{a_id}"))
        .header("Authorization", &bob)
        .send()
        .await
        .unwrap();
    envelope_error(r, 404).await;
    let r = s
        .req(Method::DELETE, &format!("{API}/not-a-uuid"))
        .header("Authorization", &bob)
        .send()
        .await
        .unwrap();
    envelope_error(r, 404).await;
    let list = json(
        s.req(Method::GET, API)
            .header("Authorization", &bob)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["result"], json!([]));
    // Alice's key still works.
    assert_eq!(
        s.req(Method::GET, API)
            .header("Authorization", pk(&a))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn personal_keys_expire_and_are_limited_to_their_scopes_everywhere() {
    let s = Server::start().await;
    let auth = format!("Bearer {}", admin_jwt(&s).await);
    let account = create(&s, &auth, "account only", &["Account.Read"]).await;
    let org_read = create(&s, &auth, "org read", &["Organization.Read"]).await;
    let org_write = create(&s, &auth, "org write", &["Organization.ReadWrite"]).await;
    let get = |path: &str, key: &Value| s.req(Method::GET, path).header("Authorization", pk(key)).send();
    // Account.Read: who am I, but not the organization's keys.
    let me = json(get("/v1/me", &account).await.unwrap()).await;
    assert_eq!(me["auth"], "personal_key");
    assert_eq!(get("/v1/keys", &account).await.unwrap().status(), 403);
    // Organization.Read: list and verify, but not issue.
    assert_eq!(get("/v1/keys", &org_read).await.unwrap().status(), 200);
    let r = s
        .req(Method::POST, "/v1/keys")
        .header("Authorization", pk(&org_read))
        .json(&json!({"name": "n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Organization.ReadWrite: issue, for no longer than the personal key itself lives.
    let r = s
        .req(Method::POST, "/v1/keys")
        .header("Authorization", pk(&org_write))
        .json(&json!({"name": "n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json(r).await["field"], "expires_at");
    for (days, status) in [(40, 400), (20, 201)] {
        let r = s
            .req(Method::POST, "/v1/keys")
            .header("Authorization", pk(&org_write))
            .json(&json!({"name": "n", "expires_at": iso(Utc::now() + Duration::days(days))}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{days} days");
    }
    // A personal key cannot mint an unlimited ticket.
    let r = s
        .req(Method::POST, "/v1/tickets")
        .header("Authorization", pk(&org_write))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The native verify sees personal keys too.
    let v = verify(&s, json!({"key": account["result"]["key"], "scope": "Account.Read"})).await;
    assert_eq!(v["code"], "VALID");
    assert_eq!(v["key"]["kind"], "personal");
    let feed = json(s.admin(Method::GET, "/v1/events?limit=500").send().await.unwrap()).await;
    assert!(
        feed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "KeyCreated" && e["data"]["kind"] == "personal")
    );
    assert!(!feed.to_string().contains(account["result"]["key"].as_str().unwrap()));
    // Past validTo the key stops working.
    s.advance(31 * 86400).await;
    let r = s
        .req(Method::GET, API)
        .header("Authorization", pk(&account))
        .send()
        .await
        .unwrap();
    envelope_error(r, 401).await;
}

//! Tedee-compatible personal access keys (seed 004).

use crate::common::*;
use chrono::{Duration, Months, SecondsFormat, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

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
    // It authenticates as `Authorization: PersonalKey`, within its scopes: Organization.ReadWrite
    // reads the organization's keys, but (as in Tedee) not the account's personal keys, which
    // need Account.Read.
    let r = s
        .req(Method::GET, "/v1/keys")
        .header("Authorization", format!("PersonalKey {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .req(Method::GET, API)
        .header("Authorization", format!("PersonalKey {key}"))
        .send()
        .await
        .unwrap();
    let msg = envelope_error(r, 403).await;
    assert!(msg.contains("Account.Read"), "{msg}");
    let r = s
        .req(Method::GET, API)
        .header("Authorization", &bearer)
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

/// Tedee's wire headers on one answer: `X-Correlation-ID` is a fresh UUID and
/// `API-Supported-Versions` names the versions served. Returns the correlation id.
fn wire_headers(r: &reqwest::Response) -> Uuid {
    let h = r.headers();
    assert_eq!(
        h.get("api-supported-versions").map(|v| v.to_str().unwrap()),
        Some("1-999"),
        "{} {}",
        r.status(),
        r.url()
    );
    let id = h
        .get("x-correlation-id")
        .unwrap_or_else(|| panic!("no X-Correlation-ID: {} {}", r.status(), r.url()));
    Uuid::parse_str(id.to_str().unwrap()).expect("X-Correlation-ID is a UUID")
}

/// The methods each Tedee route takes, read from the server's route table (the catch-all
/// `ANY /api/{version}/my/{*rest}` takes every method and answers 404).
fn tedee_routes() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in keygate::server::routes() {
        if r.surface == "tedee" && r.method != "ANY" {
            out.entry(r.path.clone()).or_default().insert(r.method.clone());
        }
    }
    out
}

#[tokio::test]
async fn a_wrong_method_answers_405_in_the_envelope_with_allow_on_every_route() {
    let s = Server::start().await;
    let routes = tedee_routes();
    assert!(routes.contains_key("/api/{version}/my/personalaccesskey"), "{routes:?}");
    assert!(
        routes.contains_key("/api/{version}/my/personalaccesskey/{id}"),
        "{routes:?}"
    );
    let before = s.snapshot().await;
    let mut ids = BTreeSet::new();
    let mut checked = 0;
    let mut answers = 0;
    for (pattern, taken) in &routes {
        // axum serves HEAD wherever GET is served, and says so in Allow.
        let mut allowed = taken.clone();
        if allowed.contains("GET") {
            allowed.insert("HEAD".into());
        }
        let path = pattern
            .replace("{version}", "v37")
            .replace("{id}", &Uuid::new_v4().to_string());
        for m in ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            if allowed.contains(m) {
                continue;
            }
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            // With and without credentials, and with a body the route would accept: the method
            // is refused before anything else.
            let body = json!({"name": "k", "validTo": iso(Utc::now() + Duration::days(1)), "scopes": ["Account.Read"]});
            for authed in [true, false] {
                let req = if authed {
                    s.admin(method.clone(), &path)
                } else {
                    s.req(method.clone(), &path)
                };
                let r = req.json(&body).send().await.unwrap();
                assert_eq!(r.status(), 405, "{m} {path}");
                ids.insert(wire_headers(&r));
                answers += 1;
                let allow: BTreeSet<String> = r.headers()["allow"]
                    .to_str()
                    .unwrap()
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .collect();
                assert_eq!(allow, allowed, "Allow for {m} {path}");
                if m == "HEAD" {
                    continue;
                }
                let v = json(r).await;
                assert_eq!(v["success"], false, "{v}");
                assert_eq!(v["statusCode"], 405, "{v}");
                let msgs = v["errorMessages"].as_array().unwrap();
                assert_eq!(msgs.len(), 1, "{v}");
                assert!(msgs[0].as_str().unwrap().contains(m), "{v}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "{checked}");
    // Each answer had its own correlation id.
    assert_eq!(ids.len(), answers, "{ids:?}");
    assert_eq!(s.snapshot().await, before, "a refused method wrote something");

    // The issue's two examples, verbatim.
    let r = s.admin(Method::PATCH, API).send().await.unwrap();
    let allow = r.headers()["allow"].to_str().unwrap().to_string();
    assert_eq!(
        envelope_error(r, 405).await,
        "The method PATCH is not allowed for this resource"
    );
    // In the route table's order.
    assert_eq!(allow, "POST,GET,HEAD");
    let r = s
        .admin(Method::POST, &format!("{API}/{}", Uuid::new_v4()))
        .json(&json!({"name": "k", "validTo": iso(Utc::now() + Duration::days(1)), "scopes": ["Account.Read"]}))
        .send()
        .await
        .unwrap();
    let allow = r.headers()["allow"].to_str().unwrap().to_string();
    envelope_error(r, 405).await;
    assert_eq!(allow, "PUT,DELETE");
    // Paths are matched without regard to case (as Tedee's are): the same 405 there.
    let r = s
        .admin(Method::PATCH, "/API/V37/My/PersonalAccessKey")
        .send()
        .await
        .unwrap();
    wire_headers(&r);
    assert_eq!(r.headers()["allow"], "POST,GET,HEAD");
    envelope_error(r, 405).await;
    // Unknown paths under /my/ keep their 404, whatever the method.
    for m in [Method::GET, Method::PATCH, Method::POST] {
        let r = s.admin(m, "/api/v37/my/nothing").send().await.unwrap();
        wire_headers(&r);
        assert!(r.headers().get("allow").is_none());
        envelope_error(r, 404).await;
    }
    let r = s
        .admin(Method::GET, &format!("{API}/{}/more", Uuid::new_v4()))
        .send()
        .await
        .unwrap();
    envelope_error(r, 404).await;
    assert_eq!(s.snapshot().await, before);
}

#[tokio::test]
async fn every_tedee_answer_carries_a_correlation_id_and_the_supported_versions() {
    let s = Server::start().await;
    let auth = format!("Bearer {}", admin_jwt(&s).await);
    let mut ids = vec![];
    let mut seen = |r: &reqwest::Response| ids.push(wire_headers(r));
    let body = |name: &str| json!({"name": name, "validTo": iso(Utc::now() + Duration::days(5)), "scopes": ["Account.ReadWrite"]});
    // 201, 200, 204, 204.
    let r = s
        .req(Method::POST, API)
        .header("Authorization", &auth)
        .json(&body("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    seen(&r);
    let key = json(r).await;
    let id = key["result"]["id"].as_str().unwrap().to_string();
    let r = s
        .req(Method::GET, API)
        .header("Authorization", pk(&key))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    seen(&r);
    let r = s
        .req(Method::PUT, &format!("{API}/{id}"))
        .header("Authorization", &auth)
        .json(&body("b"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    seen(&r);
    let r = s
        .req(Method::DELETE, &format!("{API}/{id}"))
        .header("Authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    seen(&r);
    // 400, 401, 403, 404 (route, key, version), 405, 415.
    let (_, org) = s.create_org("wire").await;
    let refusals: Vec<(reqwest::RequestBuilder, u16)> = vec![
        (
            s.req(Method::POST, API)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .body("{"),
            400,
        ),
        (s.req(Method::GET, API), 401),
        (s.req(Method::GET, API).header("X-API-Key", &org), 403),
        (
            s.req(Method::GET, "/api/v37/my/lock").header("Authorization", &auth),
            404,
        ),
        (
            s.req(Method::DELETE, &format!("{API}/{id}"))
                .header("Authorization", &auth),
            404,
        ),
        (
            s.req(Method::GET, "/api/latest/my/personalaccesskey")
                .header("Authorization", &auth),
            404,
        ),
        (s.req(Method::PATCH, API).header("Authorization", &auth), 405),
        (
            s.req(Method::POST, API)
                .header("Authorization", &auth)
                .header("Content-Type", "text/plain")
                .body("{}"),
            415,
        ),
        // A version that is not valid UTF-8 is refused by the path parser: still the envelope.
        (
            s.req(Method::GET, "/api/v%FF/my/personalaccesskey")
                .header("Authorization", &auth),
            400,
        ),
    ];
    for (req, status) in refusals {
        let r = req.send().await.unwrap();
        seen(&r);
        envelope_error(r, status).await;
    }
    // A client's own X-Correlation-ID is not echoed: keygate names every request itself.
    let r = s
        .req(Method::GET, API)
        .header("Authorization", &auth)
        .header("X-Correlation-ID", "client-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    seen(&r);
    let last = *ids.last().unwrap();
    let distinct: BTreeSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "correlation ids repeat: {ids:?}");
    // The id is on the request's log line.
    let found = s
        .logged(|log| {
            log.lines()
                .any(|l| l.contains(&last.to_string()) && l.contains("route") && l.contains("status"))
        })
        .await;
    assert!(found, "the correlation id {last} is not in the log:\n{}", s.logs());
    assert!(!s.logs().contains("client-chosen-id"));
    // Versions: v1 to v999 (the `v` in any case); others are not routes.
    for v in ["v1", "v37", "V37", "v999"] {
        let r = s
            .req(Method::GET, &format!("/api/{v}/my/personalaccesskey"))
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{v}");
        wire_headers(&r);
    }
    for v in ["v0", "v037", "v1000", "37", "v3.7"] {
        let r = s
            .req(Method::GET, &format!("/api/{v}/my/personalaccesskey"))
            .header("Authorization", &auth)
            .send()
            .await
            .unwrap();
        wire_headers(&r);
        assert!(envelope_error(r, 404).await.contains("API version"), "{v}");
    }
}

#[tokio::test]
async fn organization_scopes_do_not_cover_the_account() {
    let s = Server::start().await;
    let auth = format!("Bearer {}", admin_jwt(&s).await);
    let me = json(s.admin(Method::GET, "/v1/me").send().await.unwrap()).await;
    let own_user = format!("/v1/users/{}", me["user_id"].as_str().unwrap());
    let org_read = create(&s, &auth, "org read", &["Organization.Read"]).await;
    let org_write = create(&s, &auth, "org write", &["Organization.ReadWrite"]).await;
    let account = create(&s, &auth, "account", &["Account.Read"]).await;
    let both = create(&s, &auth, "both", &["Organization.Read", "Account.Read"]).await;
    let get = |path: String, key: &Value| s.req(Method::GET, &path).header("Authorization", pk(key)).send();
    for key in [&org_read, &org_write] {
        // The organization's data: yes.
        assert_eq!(get("/v1/keys".into(), key).await.unwrap().status(), 200);
        // One's own account: no, as Tedee's Organization scopes do not include Account.Read.
        let r = get("/v1/me".into(), key).await.unwrap();
        assert_eq!(r.status(), 403);
        assert!(
            json(r).await["message"]
                .as_str()
                .unwrap_or_default()
                .contains("Account.Read")
        );
        assert_eq!(get(own_user.clone(), key).await.unwrap().status(), 403);
        let msg = envelope_error(get(API.into(), key).await.unwrap(), 403).await;
        assert!(msg.contains("Account.Read"), "{msg}");
    }
    for key in [&account, &both] {
        assert_eq!(get("/v1/me".into(), key).await.unwrap().status(), 200);
        assert_eq!(get(own_user.clone(), key).await.unwrap().status(), 200);
        assert_eq!(get(API.into(), key).await.unwrap().status(), 200);
    }
    assert_eq!(get("/v1/keys".into(), &account).await.unwrap().status(), 403);
    assert_eq!(get("/v1/keys".into(), &both).await.unwrap().status(), 200);
}

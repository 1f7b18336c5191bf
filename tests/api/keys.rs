//! Key create / verify / use / revoke with every reason code, exact use limits under
//! concurrency, listing, and the event feed.

use crate::common::*;
use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn create_shows_the_secret_once_and_verify_is_valid() {
    let s = Server::start().await;
    let k = create_key(
        &s,
        json!({"name": "ci deploy", "scopes": ["deploy"], "metadata": {"team": "ops"}}),
    )
    .await;
    let secret = k["key"].as_str().unwrap();
    let prefix = k["prefix"].as_str().unwrap();
    assert!(secret.starts_with(&format!("{prefix}.")), "{secret}");
    assert!(prefix.starts_with("kg_"));
    assert_eq!(k["kind"], "api");
    assert_eq!(k["metadata"]["team"], "ops");
    let id = k["id"].as_str().unwrap();
    // Never again: not in get, list or verify.
    let got = json(s.admin(Method::GET, &format!("/v1/keys/{id}")).send().await.unwrap()).await;
    assert_eq!(got["prefix"], prefix);
    assert!(got.get("key").is_none());
    assert!(!got.to_string().contains(secret));
    let list = json(s.admin(Method::GET, "/v1/keys").send().await.unwrap()).await;
    assert!(!list.to_string().contains(secret));
    let v = verify(&s, json!({"key": secret, "scope": "deploy"})).await;
    assert_eq!(v["valid"], true);
    assert_eq!(v["code"], "VALID");
    assert_eq!(v["key"]["id"], id);
    assert!(!v.to_string().contains(secret));
}

#[tokio::test]
async fn every_reason_code() {
    let s = Server::start().await;
    let (_, org_key) = s.create_org("codes").await;
    let alice = s.create_user(&org_key, "alice", "alice-password", false).await;
    let bob = s.create_user(&org_key, "bob", "bob-password-1", false).await;
    let as_org = |m: Method, p: &str| s.req(m, p).header("X-API-Key", &org_key);
    let mk = |body: Value| async move {
        let r = as_org(Method::POST, "/v1/keys").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        json(r).await
    };
    let check = |body: Value| async move {
        let r = as_org(Method::POST, "/v1/keys/verify")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        json(r).await
    };
    let now = Utc::now();

    // NOT_FOUND: unknown secret, garbage.
    assert_eq!(check(json!({"key": "kg_nothing0.AAAA"})).await["code"], "NOT_FOUND");
    assert_eq!(check(json!({"key": "x"})).await["code"], "NOT_FOUND");

    // VALID and INSUFFICIENT_SCOPE.
    let scoped = mk(json!({"name": "scoped", "scopes": ["read", "keys.*"]})).await;
    let sk = scoped["key"].as_str().unwrap();
    assert_eq!(check(json!({"key": sk, "scope": "read"})).await["code"], "VALID");
    assert_eq!(check(json!({"key": sk, "scope": "keys.rotate"})).await["code"], "VALID");
    assert_eq!(
        check(json!({"key": sk, "scope": "write"})).await["code"],
        "INSUFFICIENT_SCOPE"
    );

    // FORBIDDEN: whitelisted for alice only.
    let wl = mk(json!({"name": "wl", "allowed_users": [alice]})).await;
    let wk = wl["key"].as_str().unwrap();
    assert_eq!(check(json!({"key": wk, "user": alice})).await["code"], "VALID");
    let v = check(json!({"key": wk, "user": bob})).await;
    assert_eq!(v["code"], "FORBIDDEN");
    assert_eq!(v["valid"], false);
    assert_eq!(check(json!({"key": wk})).await["code"], "FORBIDDEN");

    // NOT_YET_VALID then VALID then EXPIRED, by moving the server's clock.
    let windowed = mk(json!({
        "name": "windowed",
        "not_before": (now + Duration::hours(1)).to_rfc3339(),
        "expires_at": (now + Duration::hours(2)).to_rfc3339(),
    }))
    .await;
    let wink = windowed["key"].as_str().unwrap();
    assert_eq!(check(json!({"key": wink})).await["code"], "NOT_YET_VALID");
    s.advance(3600 + 5).await;
    assert_eq!(check(json!({"key": wink})).await["code"], "VALID");
    s.advance(3600).await;
    assert_eq!(check(json!({"key": wink})).await["code"], "EXPIRED");
    // An expired key cannot be used either.
    let r = json(
        as_org(
            Method::POST,
            &format!("/v1/keys/{}/use", windowed["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(r["code"], "EXPIRED");

    // USAGE_EXCEEDED after max_uses uses.
    let limited = mk(json!({"name": "twice", "max_uses": 2})).await;
    let lid = limited["id"].as_str().unwrap();
    let lk = limited["key"].as_str().unwrap();
    for n in 1..=2 {
        let u = json(
            as_org(Method::POST, &format!("/v1/keys/{lid}/use"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(u["code"], "VALID");
        assert_eq!(u["key"]["used_count"], n);
    }
    let u = json(
        as_org(Method::POST, &format!("/v1/keys/{lid}/use"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(u["code"], "USAGE_EXCEEDED");
    assert_eq!(u["key"]["used_count"], 2);
    assert_eq!(check(json!({"key": lk})).await["code"], "USAGE_EXCEEDED");

    // Verify with consume spends a use.
    let once = mk(json!({"name": "once", "max_uses": 1})).await;
    let ok = once["key"].as_str().unwrap();
    assert_eq!(check(json!({"key": ok})).await["code"], "VALID");
    let c = check(json!({"key": ok, "consume": true})).await;
    assert_eq!(c["code"], "VALID");
    assert_eq!(c["key"]["remaining"], 0);
    assert_eq!(
        check(json!({"key": ok, "consume": true})).await["code"],
        "USAGE_EXCEEDED"
    );

    // REVOKED, immediately; revoking twice is harmless.
    let rev = mk(json!({"name": "revoke me"})).await;
    let rid = rev["id"].as_str().unwrap();
    assert_eq!(check(json!({"key": rev["key"]})).await["code"], "VALID");
    let r = as_org(Method::DELETE, &format!("/v1/keys/{rid}")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = json(r).await;
    assert!(body["revoked_at"].is_string());
    assert!(body["revoked_by"].as_str().unwrap().starts_with("api_key:"));
    assert_eq!(check(json!({"key": rev["key"]})).await["code"], "REVOKED");
    assert_eq!(
        as_org(Method::DELETE, &format!("/v1/keys/{rid}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let u = json(
        as_org(Method::POST, &format!("/v1/keys/{rid}/use"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(u["code"], "REVOKED");

    // Unknown id: 404 for get, use and revoke.
    let ghost = "01900000-0000-7000-8000-000000000000";
    assert_eq!(
        as_org(Method::GET, &format!("/v1/keys/{ghost}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        as_org(Method::POST, &format!("/v1/keys/{ghost}/use"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        as_org(Method::DELETE, &format!("/v1/keys/{ghost}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn a_revoked_key_outranks_its_window_but_outsiders_learn_nothing() {
    let s = Server::start().await;
    let (_, org) = s.create_org("order").await;
    let alice = s.create_user(&org, "alice", "alice-password", false).await;
    let bob = s.create_user(&org, "bob", "bob-password-1", false).await;
    let now = Utc::now();
    let r = s
        .req(Method::POST, "/v1/keys")
        .header("X-API-Key", &org)
        .json(&json!({"name": "k", "allowed_users": [alice], "expires_at": (now + Duration::minutes(5)).to_rfc3339()}))
        .send()
        .await
        .unwrap();
    let k = json(r).await;
    s.req(Method::DELETE, &format!("/v1/keys/{}", k["id"].as_str().unwrap()))
        .header("X-API-Key", &org)
        .send()
        .await
        .unwrap();
    s.advance(600).await;
    let check = |user: &str| {
        s.req(Method::POST, "/v1/keys/verify")
            .header("X-API-Key", &org)
            .json(&json!({"key": k["key"], "user": user}))
            .send()
    };
    assert_eq!(json(check(&alice).await.unwrap()).await["code"], "REVOKED");
    // Bob is not whitelisted: he is told FORBIDDEN, not that it is revoked or expired.
    assert_eq!(json(check(&bob).await.unwrap()).await["code"], "FORBIDDEN");
}

#[tokio::test]
async fn max_uses_is_exact_under_64_concurrent_users() {
    exactly_ten_of_64_concurrent_uses(&Server::start().await).await;
}

#[tokio::test]
async fn list_filters_and_cursor_pagination() {
    let s = Server::start().await;
    let (_, org) = s.create_org("pages").await;
    let alice = s.create_user(&org, "alice", "alice-password", false).await;
    let h = |r: reqwest::RequestBuilder| r.header("X-API-Key", &org);
    let exp = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    for i in 0..7 {
        // A temporary key belongs to whoever creates it: alice's are created by alice.
        let body = if i % 2 == 0 {
            let owner = if i < 3 { json!(alice) } else { Value::Null };
            json!({"name": format!("k{i}"), "owner": owner})
        } else {
            json!({"name": format!("k{i}"), "kind": "temporary", "expires_at": exp,
                   "subject": {"domain": "PublicFaq", "target_id": i, "person_id": 0}})
        };
        let req = if i == 1 {
            s.req(Method::POST, "/v1/keys")
                .basic_auth("alice", Some("alice-password"))
        } else {
            h(s.req(Method::POST, "/v1/keys"))
        };
        let r = req.json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let mut names = vec![];
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/keys?limit=3&cursor={c}"),
            None => "/v1/keys?limit=3".to_string(),
        };
        let page = json(h(s.req(Method::GET, &path)).send().await.unwrap()).await;
        pages += 1;
        for it in page["items"].as_array().unwrap() {
            names.push(it["name"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("k{i}")).collect::<Vec<_>>());
    assert_eq!(pages, 3);
    let temp = json(h(s.req(Method::GET, "/v1/keys?kind=temporary")).send().await.unwrap()).await;
    assert_eq!(temp["items"].as_array().unwrap().len(), 3);
    let mine = json(
        h(s.req(Method::GET, &format!("/v1/keys?owner={alice}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 3);
    let both = json(
        h(s.req(Method::GET, &format!("/v1/keys?owner={alice}&kind=api")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(both["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn every_mutation_appends_a_versioned_event_without_secrets() {
    let s = Server::start().await;
    let (org_id, org) = s.create_org("audit").await;
    let h = |r: reqwest::RequestBuilder| r.header("X-API-Key", &org);
    let k = json(
        h(s.req(Method::POST, "/v1/keys"))
            .json(&json!({"name": "a", "max_uses": 3}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = k["id"].as_str().unwrap();
    h(s.req(Method::POST, &format!("/v1/keys/{id}/use")))
        .send()
        .await
        .unwrap();
    h(s.req(Method::DELETE, &format!("/v1/keys/{id}")))
        .send()
        .await
        .unwrap();
    let user = s.create_user(&org, "carol", "carol-password", true).await;
    let feed = json(h(s.req(Method::GET, "/v1/events")).send().await.unwrap()).await;
    let items = feed["items"].as_array().unwrap();
    let types: Vec<&str> = items.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "OrganizationCreated",
            "ApiKeyCreated",
            "KeyCreated",
            "KeyUsed",
            "KeyRevoked",
            "UserCreated"
        ]
    );
    let key_events: Vec<(i64, &str)> = items
        .iter()
        .filter(|e| e["aggregate_id"] == id)
        .map(|e| (e["version"].as_i64().unwrap(), e["aggregate_type"].as_str().unwrap()))
        .collect();
    assert_eq!(key_events, [(1, "key"), (2, "key"), (3, "key")]);
    assert_eq!(items[0]["aggregate_id"], org_id.as_str());
    assert_eq!(items[5]["aggregate_id"], user.as_str());
    assert!(items[2]["actor"].as_str().unwrap().starts_with("api_key:"));
    let text = feed.to_string();
    assert!(!text.contains(k["key"].as_str().unwrap()));
    assert!(!text.contains(&org));
    assert!(!text.contains("carol-password"));
    // The cursor continues from where it stopped; the admin's own org sees none of it.
    let after = items[3]["seq"].as_i64().unwrap();
    let rest = json(
        h(s.req(Method::GET, &format!("/v1/events?after={after}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
    assert_eq!(rest["next_cursor"], items[5]["seq"]);
    let sys = json(s.admin(Method::GET, "/v1/events").send().await.unwrap()).await;
    assert!(sys["items"].as_array().unwrap().iter().all(|e| e["aggregate_id"] != id));
}

#[tokio::test]
async fn admins_issue_keys_for_users_but_users_only_for_themselves() {
    let s = Server::start().await;
    let (_, org) = s.create_org("owners").await;
    let alice = s.create_user(&org, "alice", "alice-password", false).await;
    let bob = s.create_user(&org, "bob", "bob-password-1", false).await;
    let r = s
        .req(Method::POST, "/v1/keys")
        .header("X-API-Key", &org)
        .json(&json!({"name": "for alice", "owner": alice}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(json(r).await["owner_id"], alice.as_str());
    let r = s
        .req(Method::POST, "/v1/keys")
        .basic_auth("alice", Some("alice-password"))
        .json(&json!({"name": "for bob", "owner": bob}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = s
        .req(Method::POST, "/v1/keys")
        .basic_auth("alice", Some("alice-password"))
        .json(&json!({"name": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(r).await["owner_id"], alice.as_str());
}

//! What a locked-out or compromised account needs: changing and setting passwords, disabling and
//! enabling users, and unlocking them, over the API and the CLI; only for signed-in people.

use crate::common::*;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

struct Org {
    s: Server,
    key: String,
    alice: String,
}

async fn org() -> Org {
    let s = Server::start().await;
    let (_, key) = s.create_org("acme").await;
    s.create_user(&key, "boss", "boss-password", true).await;
    let alice = s.create_user(&key, "alice", "alice-password", false).await;
    Org { s, key, alice }
}

impl Org {
    fn boss(&self, m: Method, path: &str) -> RequestBuilder {
        self.s.req(m, path).basic_auth("boss", Some("boss-password"))
    }

    async fn me(&self, r: RequestBuilder) -> u16 {
        r.send().await.unwrap().status().as_u16()
    }

    fn alice_basic(&self, pw: &str) -> RequestBuilder {
        self.s
            .req(Method::GET, "/v1/me")
            .basic_auth("alice", Some(pw.to_string()))
    }

    /// The keygate CLI on the running server's database.
    fn cli(&self, args: &[&str], stdin: Option<&str>) -> (bool, Value) {
        let (ok, v, _) = cli(&self.s, args, stdin);
        (ok, v)
    }
}

/// A ticket and a cookie session of alice: (ticket, session cookie header).
async fn ticket_and_session(o: &Org, pw: &str) -> (String, String) {
    let t = json(
        o.s.req(Method::POST, "/v1/tickets")
            .basic_auth("alice", Some(pw))
            .send()
            .await
            .unwrap(),
    )
    .await["ticket"]
        .as_str()
        .unwrap()
        .to_string();
    let r =
        o.s.req(Method::POST, "/v1/sessions")
            .json(&json!({"username": "alice", "password": pw}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 201);
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    (t, cookie)
}

#[tokio::test]
async fn a_password_change_takes_effect_at_once_and_ends_sessions_and_tickets() {
    let o = org().await;
    // Many successes: the verified password is remembered.
    for _ in 0..10 {
        assert_eq!(o.me(o.alice_basic("alice-password")).await, 200);
    }
    let (ticket, cookie) = ticket_and_session(&o, "alice-password").await;
    let with_ticket = || {
        o.s.req(Method::GET, "/v1/me")
            .header("Authorization", format!("SOTicket {ticket}"))
    };
    let with_cookie = || o.s.req(Method::GET, "/v1/me").header("Cookie", cookie.clone());
    assert_eq!(o.me(with_ticket()).await, 200);
    assert_eq!(o.me(with_cookie()).await, 200);
    let change = |current: &str, new: &str| {
        o.s.req(Method::POST, "/v1/me/password")
            .basic_auth("alice", Some("alice-password"))
            .json(&json!({"current_password": current, "new_password": new}))
    };
    assert_eq!(o.me(change("not-it", "alice-second-pw")).await, 403);
    assert_eq!(o.me(change("alice-password", "short")).await, 400);
    assert_eq!(o.me(change("alice-password", "alice-second-pw")).await, 204);
    assert_eq!(o.me(o.alice_basic("alice-password")).await, 401);
    assert_eq!(o.me(with_ticket()).await, 401);
    assert_eq!(o.me(with_cookie()).await, 401);
    assert_eq!(o.me(o.alice_basic("alice-second-pw")).await, 200);
    // An administrator sets it.
    let r = o
        .boss(Method::PATCH, &format!("/v1/users/{}", o.alice))
        .json(&json!({"password": "alice-third-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(o.me(o.alice_basic("alice-second-pw")).await, 401);
    assert_eq!(o.me(o.alice_basic("alice-third-pw")).await, 200);
    let feed = json(
        o.s.req(Method::GET, "/v1/events?limit=500")
            .header("X-API-Key", &o.key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let changes = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "UserPasswordChanged" && e["aggregate_id"] == o.alice.as_str())
        .count();
    assert_eq!(changes, 2);
    assert!(!feed.to_string().contains("alice-third-pw"));
}

#[tokio::test]
async fn a_disabled_users_every_credential_is_refused_on_the_next_request() {
    let o = org().await;
    let (ticket, cookie) = ticket_and_session(&o, "alice-password").await;
    let jwt = hs256(json!({"sub": o.alice, "exp": now_ts() + 600}));
    let pk = json(
        o.s.req(Method::POST, "/api/v37/my/personalaccesskey")
            .basic_auth("alice", Some("alice-password"))
            .json(&json!({"name": "k", "validTo": (chrono::Utc::now() + chrono::Duration::days(9)).to_rfc3339(), "scopes": ["Account.Read"]}))
            .send()
            .await
            .unwrap(),
    )
    .await["result"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let all = || {
        vec![
            o.alice_basic("alice-password"),
            o.s.req(Method::GET, "/v1/me")
                .header("Authorization", format!("SOTicket {ticket}")),
            o.s.req(Method::GET, "/v1/me").header("Cookie", cookie.clone()),
            o.s.req(Method::GET, "/v1/me").bearer_auth(&jwt),
            o.s.req(Method::GET, "/v1/me")
                .header("Authorization", format!("PersonalKey {pk}")),
        ]
    };
    for r in all() {
        assert_eq!(o.me(r).await, 200);
    }
    let r = o
        .boss(Method::PATCH, &format!("/v1/users/{}", o.alice))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["disabled"], true);
    for (i, r) in all().into_iter().enumerate() {
        assert_eq!(o.me(r).await, 401, "credential {i}");
    }
    // Enabled again: the password and the JWT work; the ended ticket and session do not return.
    let r = o
        .boss(Method::PATCH, &format!("/v1/users/{}", o.alice))
        .json(&json!({"disabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let statuses: Vec<u16> = futures::future::join_all(all().into_iter().map(|r| o.me(r))).await;
    assert_eq!(statuses, vec![200, 401, 401, 200, 200]);
    // Nobody disables themselves.
    let me = json(o.boss(Method::GET, "/v1/me").send().await.unwrap()).await;
    let r = o
        .boss(Method::PATCH, &format!("/v1/users/{}", me["user_id"].as_str().unwrap()))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn unlock_lifts_a_lock_out_over_the_api_and_the_cli() {
    let o = org().await;
    for round in 0..2 {
        for i in 0..5 {
            assert_eq!(o.me(o.alice_basic(&format!("wrong-{i}"))).await, 401);
        }
        assert_eq!(o.me(o.alice_basic("alice-password")).await, 429, "round {round}");
        if round == 0 {
            let r = o
                .boss(Method::POST, &format!("/v1/users/{}/unlock", o.alice))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        } else {
            let (ok, v) = o.cli(&["user", "unlock", "alice", "--json"], None);
            assert!(ok, "{v}");
        }
        assert_eq!(o.me(o.alice_basic("alice-password")).await, 200, "round {round}");
    }
}

#[tokio::test]
async fn the_cli_sets_passwords_and_disables_and_enables_users() {
    let o = org().await;
    let (ok, v) = o.cli(&["user", "disable", "alice", "--json"], None);
    assert!(ok);
    assert_eq!(v["disabled"], true);
    assert_eq!(o.me(o.alice_basic("alice-password")).await, 401);
    let (ok, _) = o.cli(&["user", "enable", "alice", "--json"], None);
    assert!(ok);
    assert_eq!(o.me(o.alice_basic("alice-password")).await, 200);
    let (ok, _) = o.cli(
        &["user", "passwd", "alice", "--password-stdin", "--json"],
        Some("alice-cli-password\n"),
    );
    assert!(ok);
    assert_eq!(o.me(o.alice_basic("alice-password")).await, 401);
    assert_eq!(o.me(o.alice_basic("alice-cli-password")).await, 200);
    let (ok, _) = o.cli(&["user", "passwd", "alice", "--password-stdin"], Some("short\n"));
    assert!(!ok, "the password rule holds on the CLI too");
    let (ok, _) = o.cli(&["user", "disable", "nobody"], None);
    assert!(!ok);
}

#[tokio::test]
async fn api_keys_and_personal_keys_cannot_manage_accounts() {
    let o = org().await;
    let pk = json(
        o.boss(Method::POST, "/api/v37/my/personalaccesskey")
            .json(
                &json!({"name": "all", "validTo": (chrono::Utc::now() + chrono::Duration::days(9)).to_rfc3339(),
                          "scopes": keygate::service::personal::CATALOGUE}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await["result"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let before = o.s.snapshot().await;
    let routes = [
        (
            Method::PATCH,
            format!("/v1/users/{}", o.alice),
            json!({"password": "taken-over-pw"}),
        ),
        (
            Method::PATCH,
            format!("/v1/users/{}", o.alice),
            json!({"disabled": true}),
        ),
        (Method::POST, format!("/v1/users/{}/unlock", o.alice), json!({})),
        (
            Method::POST,
            "/v1/me/password".to_string(),
            json!({"current_password": "boss-password", "new_password": "taken-over-pw"}),
        ),
    ];
    for (m, path, body) in routes {
        for auth in [
            ("X-API-Key", o.key.clone()),
            ("Authorization", format!("PersonalKey {pk}")),
        ] {
            let r =
                o.s.req(m.clone(), &path)
                    .header(auth.0, &auth.1)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
            assert_eq!(r.status(), 403, "{m} {path} with {}", auth.0);
        }
    }
    // A user who is not an administrator may not manage others either.
    let r =
        o.s.req(Method::POST, &format!("/v1/users/{}/unlock", o.alice))
            .basic_auth("alice", Some("alice-password"))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(o.s.snapshot().await, before);
}

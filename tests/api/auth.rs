//! Every authentication scheme: good, bad, expired and wrong tenant.

use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn me_status(s: &Server, f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder) -> (u16, Value) {
    let r = f(s.req(Method::GET, "/v1/me")).send().await.unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn anonymous_gets_401_with_a_challenge() {
    let s = Server::start().await;
    let r = s.req(Method::GET, "/v1/keys").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    let v = json(r).await;
    assert_eq!(v["error"], "unauthenticated");
}

#[tokio::test]
async fn basic_good_bad_and_unknown_scheme() {
    let s = Server::start().await;
    let (st, me) = me_status(&s, |r| r.basic_auth("admin", Some(&s.admin_password))).await;
    assert_eq!(st, 200);
    assert_eq!(me["auth"], "basic");
    assert_eq!(me["is_system_admin"], true);
    assert_eq!(
        me_status(&s, |r| r.basic_auth("admin", Some("wrong-password"))).await.0,
        401
    );
    assert_eq!(
        me_status(&s, |r| r.basic_auth("nobody", Some("whatever-pw"))).await.0,
        401
    );
    assert_eq!(
        me_status(&s, |r| r.header("Authorization", "Basic !!!notbase64"))
            .await
            .0,
        401
    );
    assert_eq!(
        me_status(&s, |r| r.header("Authorization", "Negotiate abc")).await.0,
        401
    );
    assert_eq!(me_status(&s, |r| r.header("Authorization", "Basic")).await.0, 401);
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_user_then_released() {
    let s = Server::start().await;
    for _ in 0..5 {
        assert_eq!(
            me_status(&s, |r| r.basic_auth("admin", Some("bad-password"))).await.0,
            401
        );
    }
    // Blocked now, even with the right password.
    let r = s
        .req(Method::GET, "/v1/me")
        .basic_auth("admin", Some(&s.admin_password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 301, "{retry}");
    // The session login is limited by the same counter.
    let r = s
        .req(Method::POST, "/v1/sessions")
        .json(&json!({"username": "admin", "password": s.admin_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    s.advance(301).await;
    assert_eq!(
        me_status(&s, |r| r.basic_auth("admin", Some(&s.admin_password)))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn a_burst_of_concurrent_guesses_gets_no_more_tries_than_one_after_another() {
    let s = Server::start().await;
    let guesses = (0..20)
        .map(|i| {
            s.req(Method::GET, "/v1/me")
                .basic_auth("admin", Some(format!("guess-{i}")))
        })
        .collect();
    let statuses = statuses_at_once(guesses).await;
    assert_eq!(count(&statuses, 401), 5, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 15, "{statuses:?}");
}

#[tokio::test]
async fn failed_logins_are_rate_limited_per_source() {
    let s = Server::start_with(Options::default().env("KEYGATE_LOGIN_MAX_FAILURES_PER_SOURCE", "3")).await;
    for i in 0..3 {
        let user = format!("someone{i}");
        assert_eq!(
            me_status(&s, |r| r.basic_auth(&user, Some("bad-password"))).await.0,
            401
        );
    }
    let r = s
        .req(Method::GET, "/v1/me")
        .basic_auth("admin", Some(&s.admin_password))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn tickets_work_in_both_spellings_and_expire() {
    let s = Server::start().await;
    let r = s.admin(Method::POST, "/v1/tickets").send().await.unwrap();
    assert_eq!(r.status(), 201);
    let t = json(r).await;
    let ticket = t["ticket"].as_str().unwrap().to_string();
    assert!(ticket.starts_with("7T:"), "{ticket}");
    for scheme in ["SOTicket", "SoTicket", "soticket"] {
        let (st, me) = me_status(&s, |r| r.header("Authorization", format!("{scheme} {ticket}"))).await;
        assert_eq!(st, 200, "{scheme}");
        assert_eq!(me["auth"], "ticket");
    }
    assert_eq!(
        me_status(&s, |r| r.header("Authorization", "SOTicket 7T:1234abcxyzExample=="))
            .await
            .0,
        401
    );
    // Default lifetime 8 h.
    s.advance(8 * 3600 - 60).await;
    assert_eq!(
        me_status(&s, |r| r.header("Authorization", format!("SOTicket {ticket}")))
            .await
            .0,
        200
    );
    s.advance(61).await;
    assert_eq!(
        me_status(&s, |r| r.header("Authorization", format!("SOTicket {ticket}")))
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn api_keys_cannot_get_tickets() {
    let s = Server::start().await;
    let (_, key) = s.create_org("acme").await;
    let r = s
        .req(Method::POST, "/v1/tickets")
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn bearer_hs256_good_bad_expired_and_unknown_user() {
    let s = Server::start().await;
    let me = json(s.admin(Method::GET, "/v1/me").send().await.unwrap()).await;
    let uid = me["user_id"].as_str().unwrap();
    let good = hs256(json!({"sub": uid, "exp": now_ts() + 600}));
    let (st, v) = me_status(&s, |r| r.bearer_auth(&good)).await;
    assert_eq!(st, 200);
    assert_eq!(v["auth"], "bearer");
    assert_eq!(v["user_id"], uid);
    // Wrong signature.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": uid, "exp": now_ts() + 600}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-another"),
    )
    .unwrap();
    assert_eq!(me_status(&s, |r| r.bearer_auth(&forged)).await.0, 401);
    // No exp.
    assert_eq!(
        me_status(&s, |r| r.bearer_auth(hs256(json!({"sub": uid})))).await.0,
        401
    );
    // Expired.
    assert_eq!(
        me_status(&s, |r| r.bearer_auth(hs256(json!({"sub": uid, "exp": now_ts() - 1}))))
            .await
            .0,
        401
    );
    // Unknown user, non-UUID sub, garbage.
    let ghost = hs256(json!({"sub": "00000000-0000-0000-0000-000000000001", "exp": now_ts() + 600}));
    assert_eq!(me_status(&s, |r| r.bearer_auth(&ghost)).await.0, 401);
    assert_eq!(
        me_status(&s, |r| r.bearer_auth(hs256(json!({"sub": "x", "exp": now_ts() + 600}))))
            .await
            .0,
        401
    );
    assert_eq!(me_status(&s, |r| r.bearer_auth("not.a.jwt")).await.0, 401);
    // alg "none" is refused.
    let none = format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#),
        base64_url(format!(r#"{{"sub":"{uid}","exp":{}}}"#, now_ts() + 600).as_bytes())
    );
    assert_eq!(me_status(&s, |r| r.bearer_auth(&none)).await.0, 401);
    // Expiry follows the server's clock.
    s.advance(601).await;
    assert_eq!(me_status(&s, |r| r.bearer_auth(&good)).await.0, 401);
}

fn base64_url(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[tokio::test]
async fn bearer_checks_issuer_and_audience_when_configured() {
    let s = Server::start_with(
        Options::default()
            .env("KEYGATE_JWT_ISSUER", "https://idp.example")
            .env("KEYGATE_JWT_AUDIENCE", "keygate"),
    )
    .await;
    let uid = json(s.admin(Method::GET, "/v1/me").send().await.unwrap()).await["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let exp = now_ts() + 600;
    let ok = hs256(json!({"sub": uid, "exp": exp, "iss": "https://idp.example", "aud": "keygate"}));
    assert_eq!(me_status(&s, |r| r.bearer_auth(&ok)).await.0, 200);
    let bad_iss = hs256(json!({"sub": uid, "exp": exp, "iss": "https://evil.example", "aud": "keygate"}));
    assert_eq!(me_status(&s, |r| r.bearer_auth(&bad_iss)).await.0, 401);
    let bad_aud = hs256(json!({"sub": uid, "exp": exp, "iss": "https://idp.example", "aud": "other"}));
    assert_eq!(me_status(&s, |r| r.bearer_auth(&bad_aud)).await.0, 401);
    let no_iss = hs256(json!({"sub": uid, "exp": exp, "aud": "keygate"}));
    assert_eq!(me_status(&s, |r| r.bearer_auth(&no_iss)).await.0, 401);
}

#[tokio::test]
async fn bearer_with_public_keys_rs256_es256_eddsa() {
    for (public, private, alg) in [
        ("rsa_public.pem", "rsa_private.pem", jsonwebtoken::Algorithm::RS256),
        ("ec_public.pem", "ec_private.pem", jsonwebtoken::Algorithm::ES256),
        (
            "ed25519_public.pem",
            "ed25519_private.pem",
            jsonwebtoken::Algorithm::EdDSA,
        ),
    ] {
        let s = Server::start_with(
            Options::default().env("KEYGATE_JWT_PUBLIC_KEY_FILE", fixture(public).to_str().unwrap()),
        )
        .await;
        let uid = json(s.admin(Method::GET, "/v1/me").send().await.unwrap()).await["user_id"]
            .as_str()
            .unwrap()
            .to_string();
        let pem = std::fs::read(fixture(private)).unwrap();
        let key = match alg {
            jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(&pem),
            jsonwebtoken::Algorithm::ES256 => jsonwebtoken::EncodingKey::from_ec_pem(&pem),
            _ => jsonwebtoken::EncodingKey::from_ed_pem(&pem),
        }
        .unwrap();
        let claims = json!({"sub": uid, "exp": now_ts() + 600});
        let token = jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, &key).unwrap();
        assert_eq!(me_status(&s, |r| r.bearer_auth(&token)).await.0, 200, "{alg:?}");
        let expired = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg),
            &json!({"sub": uid, "exp": now_ts() - 5}),
            &key,
        )
        .unwrap();
        assert_eq!(
            me_status(&s, |r| r.bearer_auth(&expired)).await.0,
            401,
            "{alg:?} expired"
        );
        // The HS256 secret still works beside the public key; a token signed with the
        // public key as an HMAC secret (algorithm confusion) does not.
        assert_eq!(me_status(&s, |r| r.bearer_auth(hs256(claims.clone()))).await.0, 200);
        let public_pem = std::fs::read(fixture(public)).unwrap();
        let confused = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&public_pem),
        )
        .unwrap();
        assert_eq!(me_status(&s, |r| r.bearer_auth(&confused)).await.0, 401);
    }
}

#[tokio::test]
async fn org_api_keys_good_bad_revoked_and_confined_to_their_org() {
    let s = Server::start().await;
    let (org_a, key_a) = s.create_org("org-a").await;
    let (_, key_b) = s.create_org("org-b").await;
    let (st, me) = me_status(&s, |r| r.header("X-API-Key", &key_a)).await;
    assert_eq!(st, 200);
    assert_eq!(me["org_id"], org_a.as_str());
    assert_eq!(me["auth"], "api_key");
    assert_eq!(me_status(&s, |r| r.header("X-API-Key", "kgo_bogus.bogus")).await.0, 401);

    // A key of org A is invisible to org B.
    let r = s
        .req(Method::POST, "/v1/keys")
        .header("X-API-Key", &key_a)
        .json(&json!({"name": "a-key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created = json(r).await;
    let id = created["id"].as_str().unwrap();
    let secret = created["key"].as_str().unwrap();
    let r = s
        .req(Method::GET, &format!("/v1/keys/{id}"))
        .header("X-API-Key", &key_b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .req(Method::DELETE, &format!("/v1/keys/{id}"))
        .header("X-API-Key", &key_b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .req(Method::POST, &format!("/v1/keys/{id}/use"))
        .header("X-API-Key", &key_b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v = json(
        s.req(Method::POST, "/v1/keys/verify")
            .header("X-API-Key", &key_b)
            .json(&json!({"key": secret}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v["code"], "NOT_FOUND");
    assert_eq!(v["key"], Value::Null);
    let list = json(
        s.req(Method::GET, "/v1/keys")
            .header("X-API-Key", &key_b)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    // Org B's admin cannot create users in org A, nor see it.
    let r = s
        .req(Method::POST, "/v1/users")
        .header("X-API-Key", &key_b)
        .json(&json!({"username": "intruder", "password": "password123", "org_id": org_a}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .req(Method::GET, &format!("/v1/orgs/{org_a}"))
        .header("X-API-Key", &key_b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Only system admins create organizations.
    let r = s
        .req(Method::POST, "/v1/orgs")
        .header("X-API-Key", &key_b)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Revoke A's key with a second admin key; it stops at once.
    let r = s
        .req(Method::POST, "/v1/api-keys")
        .header("X-API-Key", &key_a)
        .json(&json!({"name": "second"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let second = json(r).await;
    let list = json(
        s.req(Method::GET, "/v1/api-keys")
            .header("X-API-Key", &key_a)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let first_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "default")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        list.to_string().find(&key_a).is_none(),
        "API key secret must not be listed"
    );
    let r = s
        .req(Method::DELETE, &format!("/v1/api-keys/{first_id}"))
        .header("X-API-Key", second["apiKey"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(me_status(&s, |r| r.header("X-API-Key", &key_a)).await.0, 401);
}

#[tokio::test]
async fn non_admin_users_see_only_their_own_keys() {
    let s = Server::start().await;
    let (_, key) = s.create_org("team").await;
    s.create_user(&key, "alice", "alice-password", false).await;
    s.create_user(&key, "bob", "bob-password-1", false).await;
    let mk = |u: &str, p: &str| {
        s.req(Method::POST, "/v1/keys")
            .basic_auth(u, Some(p))
            .json(&json!({"name": format!("{u}'s key")}))
            .send()
    };
    let a = json(mk("alice", "alice-password").await.unwrap()).await;
    let _b = json(mk("bob", "bob-password-1").await.unwrap()).await;
    let list = json(
        s.req(Method::GET, "/v1/keys")
            .basic_auth("bob", Some("bob-password-1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "bob's key");
    let r = s
        .req(Method::GET, &format!("/v1/keys/{}", a["id"].as_str().unwrap()))
        .basic_auth("bob", Some("bob-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // The organization admin (API key) sees both.
    let list = json(
        s.req(Method::GET, "/v1/keys")
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    // Users are not administrators.
    let r = s
        .req(Method::GET, "/v1/events")
        .basic_auth("bob", Some("bob-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = s
        .req(Method::GET, "/v1/users")
        .basic_auth("bob", Some("bob-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn cookie_sessions_require_the_xsrf_token_on_writes() {
    let s = Server::start().await;
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let c = reqwest::Client::builder().cookie_provider(jar.clone()).build().unwrap();
    let r = c
        .post(s.url("/v1/sessions"))
        .json(&json!({"username": "admin", "password": "wrong-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(s.url("/v1/sessions"))
        .json(&json!({"username": "admin", "password": s.admin_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session_cookie = cookies.iter().find(|c| c.starts_with("keygate_session=")).unwrap();
    assert!(session_cookie.contains("HttpOnly"));
    assert!(session_cookie.contains("SameSite=Lax"));
    let xsrf = json(r).await["xsrf_token"].as_str().unwrap().to_string();

    let me = json(c.get(s.url("/v1/me")).send().await.unwrap()).await;
    assert_eq!(me["auth"], "session");
    // Writes without, or with a wrong, X-XSRF-TOKEN are refused and create nothing.
    let before = s.snapshot().await;
    let r = c
        .post(s.url("/v1/keys"))
        .json(&json!({"name": "k"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(s.url("/v1/keys"))
        .header("X-XSRF-TOKEN", "guess")
        .json(&json!({"name": "k"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(before, s.snapshot().await);
    let r = c
        .post(s.url("/v1/keys"))
        .header("X-XSRF-TOKEN", &xsrf)
        .json(&json!({"name": "k"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // A cookie XSRF token that does not belong to the session does not help.
    let other = reqwest::Client::new();
    let session_value = session_cookie.split(';').next().unwrap();
    let r = other
        .post(s.url("/v1/keys"))
        .header("Cookie", format!("{session_value}; XSRF-TOKEN=forged"))
        .header("X-XSRF-TOKEN", "forged")
        .json(&json!({"name": "k"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Log out: the session stops working.
    let r = c
        .delete(s.url("/v1/sessions"))
        .header("X-XSRF-TOKEN", &xsrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = other
        .get(s.url("/v1/me"))
        .header("Cookie", session_value)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn sessions_expire() {
    let s = Server::start_with(Options::default().env("KEYGATE_SESSION_TTL_SECS", "60")).await;
    let r = s
        .req(Method::POST, "/v1/sessions")
        .json(&json!({"username": "admin", "password": s.admin_password}))
        .send()
        .await
        .unwrap();
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("keygate_session="))
        .unwrap();
    let pair = cookie.split(';').next().unwrap().to_string();
    assert_eq!(
        s.req(Method::GET, "/v1/me")
            .header("Cookie", &pair)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    s.advance(61).await;
    assert_eq!(
        s.req(Method::GET, "/v1/me")
            .header("Cookie", &pair)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

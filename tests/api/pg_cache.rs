//! The opt-in credential cache on PostgreSQL (`postgres_credential_cache`, store/pg_notify.rs):
//! a change made at one node, or by the CLI, is refused by another node that had the credential
//! cached, once the notification arrived (polled here with a generous bound; the delay itself
//! is measured by bench/propagation.py); while its listener is disconnected a node reads the
//! database; and with the setting off (the default) nothing is cached at all. Skipped without
//! `KEYGATE_TEST_POSTGRES_URL`, failing instead under `CI=true` (see tests/support/pg.rs).

use crate::common::{Options, Server, cache_lookups, command, json};
use crate::pg;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use sqlx::Connection;
use std::time::{Duration, Instant};

const SECRET: &str = "a-shared-server-secret-of-at-least-32-bytes";
/// Lookups made at the reading node before each change, so that what it reads is cached.
const WARM: usize = 30;
/// How long a change may take to reach the other node before the test fails (no speed claim).
const PATIENCE: Duration = Duration::from_secs(10);

fn node_options(url: &str, cache: bool) -> Options {
    Options::default()
        .env("KEYGATE_DATABASE_URL", url)
        .env("KEYGATE_SECRET", SECRET)
        .env("KEYGATE_LOG_LEVEL", "info")
        .env(
            "KEYGATE_POSTGRES_CREDENTIAL_CACHE",
            if cache { "true" } else { "false" },
        )
        // Two connections at most, so that a node never opens a new one once both are open
        // (the listener test forbids new connections for a while).
        .env("KEYGATE_DATABASE_MAX_CONNECTIONS", "2")
}

/// Node A (which bootstraps the empty database), then node B; both know the admin password.
async fn two_nodes(url: &str, cache: bool) -> (Server, Server) {
    let a = Server::start_with(node_options(url, cache)).await;
    let mut b = Server::start_with(node_options(url, cache)).await;
    assert!(!a.admin_password.is_empty() && b.admin_password.is_empty());
    b.admin_password = a.admin_password.clone();
    (a, b)
}

/// Wait until the node's `/metrics` shows `keygate_cache_listener_connected <v>`.
async fn listener_connected(s: &Server, v: u8) {
    let line = format!("keygate_cache_listener_connected {v}");
    let start = Instant::now();
    loop {
        if s.metrics().await.lines().any(|l| l == line) {
            return;
        }
        assert!(start.elapsed() < PATIENCE, "never saw {line}:\n{}", s.metrics().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the notifying triggers are in place (created by a node with the cache on; migration
/// 0006 only defines their functions): on all five tables, or on none.
async fn notifications_on(url: &str) -> bool {
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_trigger WHERE tgname = 'keygate_cache_notify'")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert!(n == 0 || n == 5, "{n} of the 5 triggers");
    n == 5
}

struct Org<'a> {
    a: &'a Server,
    b: &'a Server,
    key: String,
}

impl Org<'_> {
    fn at(&self, s: &Server, m: Method, path: &str) -> RequestBuilder {
        s.req(m, path).header("X-API-Key", &self.key)
    }

    async fn key(&self, body: Value) -> (String, String) {
        let r = self
            .at(self.a, Method::POST, "/v1/keys")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v = json(r).await;
        (v["id"].as_str().unwrap().into(), v["key"].as_str().unwrap().into())
    }

    async fn code_at(&self, s: &Server, secret: &str) -> String {
        let r = self
            .at(s, Method::POST, "/v1/keys/verify")
            .json(&json!({"key": secret}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        json(r).await["code"].as_str().unwrap().to_string()
    }

    /// B answers `expected` for the key WARM times in a row.
    async fn warm_code(&self, secret: &str, expected: &str) {
        for _ in 0..WARM {
            assert_eq!(self.code_at(self.b, secret).await, expected);
        }
    }

    /// B answers `make()` with `expected` WARM times in a row.
    async fn warm_status(&self, make: impl Fn() -> RequestBuilder, expected: u16) {
        for _ in 0..WARM {
            assert_eq!(make().send().await.unwrap().status(), expected);
        }
    }

    /// Poll B until the key's code is `expected` (within PATIENCE).
    async fn until_code(&self, secret: &str, expected: &str) {
        let start = Instant::now();
        loop {
            let got = self.code_at(self.b, secret).await;
            if got == expected {
                return;
            }
            assert!(start.elapsed() < PATIENCE, "node B still answers {got}, not {expected}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn me_at_b(&self, authorization: String) -> RequestBuilder {
        self.b.req(Method::GET, "/v1/me").header("Authorization", authorization)
    }
}

/// Poll `make()` until it answers `expected` (within PATIENCE).
async fn until_status(make: impl Fn() -> RequestBuilder, expected: u16) {
    let start = Instant::now();
    loop {
        let got = make().send().await.unwrap().status().as_u16();
        if got == expected {
            return;
        }
        assert!(start.elapsed() < PATIENCE, "still {got}, not {expected}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_cache_changes_at_one_node_or_by_the_cli_reach_the_other() {
    let Some(admin) = pg::admin_url("pg_cache_changes_at_one_node_or_by_the_cli_reach_the_other") else {
        return;
    };
    let url = pg::fresh_database(&admin).await;
    let (a, b) = two_nodes(&url, true).await;
    listener_connected(&a, 1).await;
    listener_connected(&b, 1).await;
    // The nodes created the notifying triggers.
    assert!(notifications_on(&url).await);
    let (_, key) = a.create_org("acme").await;
    let alice = a.create_user(&key, "alice", "alice-password", false).await;
    a.create_user(&key, "boss", "boss-password", true).await;
    let o = Org { a: &a, b: &b, key };

    // A key revoked at A.
    let (id, secret) = o.key(json!({"name": "revoked at A"})).await;
    let (_, other) = o.key(json!({"name": "stays valid"})).await;
    o.warm_code(&secret, "VALID").await;
    o.warm_code(&other, "VALID").await;
    let r = o
        .at(&a, Method::DELETE, &format!("/v1/keys/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    o.until_code(&secret, "REVOKED").await;
    assert_eq!(o.code_at(&b, &other).await, "VALID");

    // A key used up at A.
    let (id, secret) = o.key(json!({"name": "once", "max_uses": 1})).await;
    o.warm_code(&secret, "VALID").await;
    let r = o
        .at(&a, Method::POST, &format!("/v1/keys/{id}/use"))
        .send()
        .await
        .unwrap();
    assert_eq!(json(r).await["code"], "VALID");
    o.until_code(&secret, "USAGE_EXCEEDED").await;

    // An organization API key revoked at A.
    let r = o
        .at(&a, Method::POST, "/v1/api-keys")
        .json(&json!({"name": "second"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let second = json(r).await["apiKey"].as_str().unwrap().to_string();
    let list = json(o.at(&a, Method::GET, "/v1/api-keys").send().await.unwrap()).await;
    let second_id = list.as_array().unwrap().iter().find(|k| k["name"] == "second").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let with_second = || b.req(Method::GET, "/v1/me").header("X-API-Key", &second);
    o.warm_status(with_second, 200).await;
    let r = o
        .at(&a, Method::DELETE, &format!("/v1/api-keys/{second_id}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    until_status(with_second, 401).await;

    // A user disabled at A: its ticket and personal key, cached at B, are refused by B.
    let r = a
        .req(Method::POST, "/v1/tickets")
        .basic_auth("alice", Some("alice-password"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let ticket = json(r).await["ticket"].as_str().unwrap().to_string();
    let r = a
        .req(Method::POST, "/api/v37/my/personalaccesskey")
        .basic_auth("alice", Some("alice-password"))
        .json(&json!({
            "name": "laptop",
            "validTo": (chrono::Utc::now() + chrono::Duration::days(9)).to_rfc3339(),
            "scopes": ["Account.Read"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let pk = json(r).await["result"]["key"].as_str().unwrap().to_string();
    o.warm_status(|| o.me_at_b(format!("SOTicket {ticket}")), 200).await;
    o.warm_status(|| o.me_at_b(format!("PersonalKey {pk}")), 200).await;
    let r = a
        .req(Method::PATCH, &format!("/v1/users/{alice}"))
        .basic_auth("boss", Some("boss-password"))
        .json(&json!({"disabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    until_status(|| o.me_at_b(format!("SOTicket {ticket}")), 401).await;
    until_status(|| o.me_at_b(format!("PersonalKey {pk}")), 401).await;

    // A key revoked by the CLI, another process on the same database.
    let (id, secret) = o.key(json!({"name": "revoked by the operator"})).await;
    o.warm_code(&secret, "VALID").await;
    let out = command(a.dir.path())
        .args(["key", "revoke", &id, "--org", "acme", "--json"])
        .env("KEYGATE_DATABASE_URL", &url)
        .env("KEYGATE_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    o.until_code(&secret, "REVOKED").await;
    assert_eq!(o.code_at(&b, &other).await, "VALID");

    // B answered from its cache (else this test would prove nothing).
    let m = b.metrics().await;
    for cache in ["credential", "api_key", "token", "user", "org"] {
        assert!(
            cache_lookups(&m, cache, "hit") > 0,
            "no cache hits for {cache} at B:\n{m}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_cache_is_bypassed_while_the_listener_is_disconnected() {
    let Some(admin) = pg::admin_url("pg_cache_is_bypassed_while_the_listener_is_disconnected") else {
        return;
    };
    let url = pg::fresh_database(&admin).await;
    let db = url.rsplit('/').next().unwrap().split('?').next().unwrap().to_string();
    let (a, b) = two_nodes(&url, true).await;
    listener_connected(&b, 1).await;
    let (_, key) = a.create_org("acme").await;
    let o = Org { a: &a, b: &b, key };
    let (id, secret) = o.key(json!({"name": "revoked while B is deaf"})).await;
    let (_, other) = o.key(json!({"name": "stays valid"})).await;
    // Both of B's pool connections open (it opens no new one from here on), and both keys cached.
    let both: Vec<_> = (0..8).map(|_| o.code_at(&b, &secret)).collect();
    for c in futures::future::join_all(both).await {
        assert_eq!(c, "VALID");
    }
    o.warm_code(&secret, "VALID").await;
    o.warm_code(&other, "VALID").await;
    let hits_before = cache_lookups(&b.metrics().await, "credential", "hit");
    assert!(hits_before > 0);

    // Cut the listeners off: no new connection to the database, then end the listeners'.
    let mut adm = sqlx::PgConnection::connect(&admin).await.unwrap();
    let mut sql = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(&format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS false"))
        .execute(&mut adm)
        .await
        .unwrap();
    let ended = pg::terminate_backends(&mut sql, "keygate-cache-listener").await;
    assert_eq!(ended, vec![true, true], "one listener per node");
    listener_connected(&b, 0).await;

    // Revoked (in SQL, so no node's own write path sees it) while B cannot hear of it: B reads
    // the database and refuses the key on the very next request.
    sqlx::query("UPDATE credentials SET revoked_at = 1, revoked_by = 'test' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&mut sql)
        .await
        .unwrap();
    let bypassed = cache_lookups(&b.metrics().await, "", "bypass");
    assert_eq!(o.code_at(&b, &secret).await, "REVOKED");
    assert_eq!(o.code_at(&b, &other).await, "VALID");
    assert!(cache_lookups(&b.metrics().await, "", "bypass") > bypassed);
    assert!(
        b.logged(|log| log.contains("listener is disconnected")).await,
        "{}",
        b.logs()
    );

    // Connections allowed again: the listener reconnects, nothing from before survives (the
    // revoked key stays refused), and B answers from its cache again.
    sqlx::query(&format!("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS true"))
        .execute(&mut adm)
        .await
        .unwrap();
    listener_connected(&b, 1).await;
    for _ in 0..WARM {
        assert_eq!(o.code_at(&b, &secret).await, "REVOKED");
        assert_eq!(o.code_at(&b, &other).await, "VALID");
    }
    assert!(cache_lookups(&b.metrics().await, "credential", "hit") > hits_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_without_the_setting_caches_nothing() {
    let Some(admin) = pg::admin_url("pg_without_the_setting_caches_nothing") else {
        return;
    };
    let url = pg::fresh_database(&admin).await;
    let (a, b) = two_nodes(&url, false).await;
    let (_, key) = a.create_org("acme").await;
    let o = Org { a: &a, b: &b, key };
    let (id, secret) = o.key(json!({"name": "k"})).await;
    o.warm_code(&secret, "VALID").await;
    let r = o
        .at(&a, Method::DELETE, &format!("/v1/keys/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Refused by B on the very next request: B reads the database every time.
    assert_eq!(o.code_at(&b, &secret).await, "REVOKED");
    let m = b.metrics().await;
    assert!(!m.contains("keygate_cache_lookups_total"), "{m}");
    assert!(!m.contains("keygate_cache_listener_connected"), "{m}");
    // And no node created the triggers: writes do not pay for NOTIFY.
    assert!(!notifications_on(&url).await);
}

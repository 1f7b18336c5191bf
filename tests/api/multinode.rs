//! Several keygate processes on one PostgreSQL database (skipped without
//! `KEYGATE_TEST_POSTGRES_URL`, failing instead under `CI=true`; see tests/support/pg.rs).

use crate::pg;

use crate::common::{Options, Server, all_events, command, json};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SECRET: &str = "a-shared-server-secret-of-at-least-32-bytes";

fn node_options(url: &str) -> Options {
    Options::default()
        .env("KEYGATE_DATABASE_URL", url)
        .env("KEYGATE_SECRET", SECRET)
        .env("KEYGATE_LOG_LEVEL", "info")
}

/// Start two nodes at the same time on one (empty) database. Exactly one of them bootstraps;
/// both get the admin password it printed.
async fn two_nodes(url: &str) -> (Server, Server) {
    let (a, b) = (url.to_string(), url.to_string());
    let ta = tokio::spawn(async move { Server::start_with(node_options(&a)).await });
    let tb = tokio::spawn(async move { Server::start_with(node_options(&b)).await });
    let (mut a, mut b) = (ta.await.unwrap(), tb.await.unwrap());
    let printed = [&a.admin_password, &b.admin_password]
        .iter()
        .filter(|p| !p.is_empty())
        .count();
    assert_eq!(printed, 1, "exactly one node bootstraps an empty database");
    let pw = format!("{}{}", a.admin_password, b.admin_password);
    a.admin_password = pw.clone();
    b.admin_password = pw;
    (a, b)
}

/// The org's events for one aggregate, read through a node's feed (paging with the cursor).
async fn feed_versions(s: &Server, org_key: &str, aggregate: &str) -> Vec<i64> {
    all_events(s, org_key)
        .await
        .iter()
        .filter(|e| e["aggregate_id"] == aggregate)
        .map(|e| e["version"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_exact_limits_revocations_and_versions() {
    let Some(admin) = pg::admin_url("two_nodes_share_exact_limits_revocations_and_versions") else {
        return;
    };
    let url = pg::fresh_database(&admin).await;
    let (a, b) = two_nodes(&url).await;

    // Both nodes see the one system organization and its admin.
    for n in [&a, &b] {
        let orgs = json(n.admin(Method::GET, "/v1/orgs").send().await.unwrap()).await;
        let names: Vec<&str> = orgs
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["default"]);
    }
    let (_, org) = a.create_org("acme").await;

    // One key, max_uses 100: 2 nodes x 32 clients, 4 attempts each, give exactly 100 successes.
    const N: i64 = 100;
    let k = json(
        a.req(Method::POST, "/v1/keys")
            .header("X-API-Key", &org)
            .json(&json!({"name": "hot", "max_uses": N}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = k["id"].as_str().unwrap().to_string();
    let secret = k["key"].as_str().unwrap().to_string();
    let mut tasks = vec![];
    for (n, node) in [&a, &b].into_iter().enumerate() {
        for i in 0..32 {
            let use_url = node.url(&format!("/v1/keys/{id}/use"));
            let verify_url = node.url("/v1/keys/verify");
            let (org, secret) = (org.clone(), secret.clone());
            tasks.push(tokio::spawn(async move {
                let c = reqwest::Client::new();
                let mut codes = vec![];
                for attempt in 0..4 {
                    // Use by id and verify-and-consume by secret share one limit.
                    let r = if (n + i + attempt) % 2 == 0 {
                        c.post(&use_url).header("X-API-Key", &org).send().await.unwrap()
                    } else {
                        c.post(&verify_url)
                            .header("X-API-Key", &org)
                            .json(&json!({"key": secret, "consume": true}))
                            .send()
                            .await
                            .unwrap()
                    };
                    assert_eq!(r.status(), 200);
                    let v: Value = r.json().await.unwrap();
                    codes.push(v["code"].as_str().unwrap().to_string());
                }
                codes
            }));
        }
    }
    let mut valid = 0;
    for t in tasks {
        for code in t.await.unwrap() {
            match code.as_str() {
                "VALID" => valid += 1,
                "USAGE_EXCEEDED" => {}
                other => panic!("unexpected code {other}"),
            }
        }
    }
    assert_eq!(valid, N, "exactly max_uses successes across both nodes");
    for n in [&a, &b] {
        let got = json(
            n.req(Method::GET, &format!("/v1/keys/{id}"))
                .header("X-API-Key", &org)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got["used_count"], N);
    }
    // Both nodes' feeds hold the key's events with gap-free, unique versions: issued + N uses.
    let expected: Vec<i64> = (1..=N + 1).collect();
    assert_eq!(feed_versions(&a, &org, &id).await, expected);
    assert_eq!(feed_versions(&b, &org, &id).await, expected);

    // Revoked through A, refused by B on the very next request.
    let r = json(
        a.req(Method::POST, "/v1/keys")
            .header("X-API-Key", &org)
            .json(&json!({"name": "door"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let (rid, rkey) = (r["id"].as_str().unwrap(), r["key"].as_str().unwrap());
    let verify_on_b = || {
        b.req(Method::POST, "/v1/keys/verify")
            .header("X-API-Key", &org)
            .json(&json!({"key": rkey}))
            .send()
    };
    assert_eq!(json(verify_on_b().await.unwrap()).await["code"], "VALID");
    let del = a
        .req(Method::DELETE, &format!("/v1/keys/{rid}"))
        .header("X-API-Key", &org)
        .send()
        .await
        .unwrap();
    assert!(del.status().is_success(), "{}", del.status());
    assert_eq!(json(verify_on_b().await.unwrap()).await["code"], "REVOKED");
    let used_on_b = b
        .req(Method::POST, &format!("/v1/keys/{rid}/use"))
        .header("X-API-Key", &org)
        .send()
        .await
        .unwrap();
    assert_eq!(json(used_on_b).await["code"], "REVOKED");
    // Revoking again through B is harmless and appends nothing.
    b.req(Method::DELETE, &format!("/v1/keys/{rid}"))
        .header("X-API-Key", &org)
        .send()
        .await
        .unwrap();
    assert_eq!(feed_versions(&b, &org, rid).await, vec![1, 2]);

    // A ticket issued by one node is accepted by the other.
    let t = a.admin(Method::POST, "/v1/tickets").send().await.unwrap();
    assert_eq!(t.status(), 201);
    let ticket = json(t).await["ticket"].as_str().unwrap().to_string();
    let me = b
        .req(Method::GET, "/v1/me")
        .header("Authorization", format!("SOTicket {ticket}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // In the database itself: versions per aggregate are unique and gap-free everywhere.
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    let bad: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT aggregate_id FROM events GROUP BY aggregate_id \
         HAVING MIN(version) <> 1 OR MAX(version) <> COUNT(*) OR COUNT(DISTINCT version) <> COUNT(*)) x",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(bad, 0);
    // No secret in plaintext in the shared database.
    let dump: String =
        sqlx::query_scalar("SELECT string_agg(name || prefix || scopes || subject || metadata, ' ') FROM credentials")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert!(!dump.contains(&secret) && !dump.contains(rkey));
}

#[tokio::test]
async fn postgres_requires_a_shared_secret() {
    let Some(admin) = pg::admin_url("postgres_requires_a_shared_secret") else {
        return;
    };
    let url = pg::fresh_database(&admin).await;
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("KEYGATE_SECRET"), "{err}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "no secret file generated"
    );
    // `keygate migrate` upgrades the schema without the secret.
    let out = command(dir.path())
        .args(["migrate", "--json", "--database", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!({"migrated": true})
    );
    // Again, in place: nothing to do, still fine.
    let out = command(dir.path())
        .args(["migrate", "--json", "--database", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A database nobody listens for: a clear error at start, quickly, not a hang.
    let start = Instant::now();
    let out = command(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("KEYGATE_DATABASE_URL", "postgres://kg@127.0.0.1:1/kg")
        .env("KEYGATE_SECRET", SECRET)
        .env("KEYGATE_DATABASE_ACQUIRE_TIMEOUT_SECS", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(start.elapsed() < Duration::from_secs(10));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("database unavailable"), "{err}");
}

/// A throwaway PostgreSQL of this test's own (scripts/pg.sh in a temporary directory).
struct OwnPg {
    dir: tempfile::TempDir,
}

impl OwnPg {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg.sh")
    }

    fn run(&self, cmd: &str) -> String {
        let out = std::process::Command::new("bash")
            .arg(Self::script())
            .arg(cmd)
            .arg(self.dir.path().join("pg"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg.sh {cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl Drop for OwnPg {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(Self::script())
            .arg("destroy")
            .arg(self.dir.path().join("pg"))
            .output();
    }
}

/// A new organization on `s` and one key of it: (the organization's API key, the key).
async fn org_with_a_key(s: &Server) -> (String, String) {
    let (_, org) = s.create_org("acme").await;
    let r = post_as(s, &org, "/v1/keys", json!({"name": "k"})).await;
    assert_eq!(r.status(), 201);
    let key = json(r).await["key"].as_str().unwrap().to_string();
    (org, key)
}

/// `POST path` with `body` as the organization whose API key is `org`, whatever the answer
/// (common.rs's `create_key` and `verify` go as the admin and insist on success).
async fn post_as(s: &Server, org: &str, path: &str, body: Value) -> reqwest::Response {
    s.req(Method::POST, path)
        .header("X-API-Key", org)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_answers_503_while_the_database_is_down_and_recovers_by_itself() {
    if pg::admin_url("a_node_answers_503_while_the_database_is_down_and_recovers_by_itself").is_none() {
        return;
    }
    let own = OwnPg {
        dir: tempfile::tempdir().unwrap(),
    };
    // The server runs as the unprivileged `postgres` user when we are root: let it in.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(own.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let admin = own.run("start");
    let url = pg::fresh_database(&admin).await;
    let s = Server::start_with(node_options(&url).env("KEYGATE_DATABASE_ACQUIRE_TIMEOUT_SECS", "1")).await;
    let (org, key) = org_with_a_key(&s).await;
    let verify = || post_as(&s, &org, "/v1/keys/verify", json!({"key": key}));
    assert_eq!(json(verify().await).await["code"], "VALID");

    own.run("stop");
    for path in ["/v1/keys/verify", "/healthz", "/v1/keys"] {
        let start = Instant::now();
        let r = match path {
            "/v1/keys/verify" => verify().await,
            p => s.req(Method::GET, p).header("X-API-Key", &org).send().await.unwrap(),
        };
        let took = start.elapsed();
        assert_eq!(r.status(), 503, "{path}");
        eprintln!("database down: {path} answered 503 in {took:?}");
        assert!(took < Duration::from_secs(6), "{path} took {took:?}");
        assert_eq!(r.headers()["retry-after"], "5");
        let body = json(r).await;
        assert_eq!(body["error"], "unavailable", "{path}: {body}");
        assert!(body["message"].as_str().unwrap().contains("database is unavailable"));
    }
    // The SuperOffice surface answers in its own shape, also 503.
    let r = s
        .req(Method::POST, "/api/v1/Agents/Person/CheckTemporaryKey")
        .header("X-API-Key", &org)
        .json(&json!({"TemporaryKey": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // Every surface says so without the driver's details (which go to the log only).
    for (path, auth) in [
        ("/api/v37/my/personalaccesskey", true),
        (&format!("/temp-keys/{}", uuid::Uuid::new_v4()) as &str, false),
        ("/locks/1/temp-keys", true),
    ] {
        let mut req = s.req(Method::GET, path);
        if auth {
            req = req.header("X-API-Key", &org);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
        let body = r.text().await.unwrap();
        assert!(body.contains("database is unavailable"), "{path}: {body}");
        for detail in ["os error", "communicating", "pool timed out", "Connection refused"] {
            assert!(!body.contains(detail), "{path} leaks {detail:?}: {body}");
        }
    }

    own.run("start");
    let restarted = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = verify().await;
        if r.status() == 200 {
            eprintln!(
                "database back: first success {:?} after the restart",
                restarted.elapsed()
            );
            assert_eq!(json(r).await["code"], "VALID");
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(Instant::now() < deadline, "the node did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Writes work again too, without restarting keygate.
    assert_eq!(
        post_as(&s, &org, "/v1/keys", json!({"name": "after"})).await.status(),
        201
    );
    assert!(!s.logs().contains(&key), "the key never reaches the logs");
}

/// sqlx pings a connection when it goes back to the pool; keygate pings it again on checkout only
/// after it sat idle (store/postgres.rs `PING_IDLE_AFTER`), which saves a round trip per query
/// under load. What the idle ping is for: connections the database ended while they sat in the
/// pool are closed on checkout, so the next request after a pause is answered, not refused with
/// 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_database_ended_while_idle_are_not_handed_out() {
    use sqlx::Connection;
    let Some(admin) = pg::admin_url("connections_the_database_ended_while_idle_are_not_handed_out") else {
        return;
    };
    let url = pg::fresh_database(&admin).await;
    let s = Server::start_with(node_options(&url)).await;
    let (org, key) = org_with_a_key(&s).await;
    let verify = || post_as(&s, &org, "/v1/keys/verify", json!({"key": key}));
    // Several at once, so that the pool holds several connections.
    for r in futures::future::join_all((0..8).map(|_| verify())).await {
        assert_eq!(json(r).await["code"], "VALID");
    }

    let mut sql = sqlx::PgConnection::connect(&url).await.unwrap();
    let ended = pg::terminate_backends(&mut sql, "keygate").await;
    assert!(!ended.is_empty() && ended.iter().all(|e| *e), "{ended:?}");
    tokio::time::sleep(keygate::store::postgres::PING_IDLE_AFTER + Duration::from_millis(500)).await;

    for i in 0..10 {
        let r = verify().await;
        assert_eq!(r.status(), 200, "request {i} after the connections ended");
        assert_eq!(json(r).await["code"], "VALID");
    }
    assert_eq!(
        post_as(&s, &org, "/v1/keys", json!({"name": "after"})).await.status(),
        201
    );
}

//! The credential cache (store/cache.rs) never answers from a stale entry: after many cached
//! lookups, a revoked key, a deleted personal key, a revoked organization API key, a used-up
//! key and a disabled user are refused on the very next request, also when the change came
//! from the CLI writing to the same database file while the server runs. A user's list of
//! personal keys (cached by owner) shows a created, renamed, deleted or CLI-revoked key at once.
//! All of it holds with the database file read through a memory map (`sqlite_mmap_size`) too.

use crate::common::*;
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

/// Lookups made before each change, so that every credential involved is cached.
const WARM: usize = 30;

struct Org {
    s: Server,
    key: String,
}

impl Org {
    async fn new() -> Org {
        Org::with(Options::default()).await
    }

    async fn with(options: Options) -> Org {
        let s = Server::start_with(options).await;
        let (_, key) = s.create_org("acme").await;
        s.create_user(&key, "alice", "alice-password", false).await;
        s.create_user(&key, "boss", "boss-password", true).await;
        Org { s, key }
    }

    fn as_org(&self, m: Method, path: &str) -> RequestBuilder {
        self.s.req(m, path).header("X-API-Key", &self.key)
    }

    async fn key(&self, body: Value) -> (String, String) {
        let r = self.as_org(Method::POST, "/v1/keys").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let v = json(r).await;
        (v["id"].as_str().unwrap().into(), v["key"].as_str().unwrap().into())
    }

    async fn code(&self, secret: &str) -> String {
        let r = self
            .as_org(Method::POST, "/v1/keys/verify")
            .json(&json!({"key": secret}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        json(r).await["code"].as_str().unwrap().to_string()
    }

    /// The code of a verify that consumes a use.
    async fn consume(&self, secret: &str) -> String {
        let r = self
            .as_org(Method::POST, "/v1/keys/verify")
            .json(&json!({"key": secret, "consume": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        json(r).await["code"].as_str().unwrap().to_string()
    }

    /// `code` answers `expected` WARM times in a row.
    async fn warm_code(&self, secret: &str, expected: &str) {
        for _ in 0..WARM {
            assert_eq!(self.code(secret).await, expected);
        }
    }

    /// `make()` answers `expected` WARM times in a row.
    async fn warm_status(&self, make: impl Fn() -> RequestBuilder, expected: u16) {
        for _ in 0..WARM {
            assert_eq!(make().send().await.unwrap().status(), expected);
        }
    }

    async fn ticket(&self) -> String {
        let r = self
            .s
            .req(Method::POST, "/v1/tickets")
            .basic_auth("alice", Some("alice-password"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        json(r).await["ticket"].as_str().unwrap().to_string()
    }

    async fn personal_key(&self) -> (String, String) {
        self.personal_key_named("laptop").await
    }

    async fn personal_key_named(&self, name: &str) -> (String, String) {
        self.personal_key_of("alice", "alice-password", name).await
    }

    /// A personal key named `name` of `user`'s, made with their password: (id, secret).
    async fn personal_key_of(&self, user: &str, password: &str, name: &str) -> (String, String) {
        let r = self
            .s
            .req(Method::POST, "/api/v37/my/personalaccesskey")
            .basic_auth(user, Some(password))
            .json(&json!({
                "name": name,
                "validTo": (chrono::Utc::now() + chrono::Duration::days(9)).to_rfc3339(),
                "scopes": ["Account.Read"],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let v = json(r).await;
        (
            v["result"]["id"].as_str().unwrap().into(),
            v["result"]["key"].as_str().unwrap().into(),
        )
    }

    /// The names in alice's Tedee list of personal keys, read with her personal key `pk` (the
    /// cached path), in order.
    async fn personal_names(&self, pk: &str) -> Vec<String> {
        let r = self
            .s
            .req(Method::GET, "/api/v37/my/personalaccesskey")
            .header("Authorization", format!("PersonalKey {pk}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        json(r).await["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// `personal_names` answers `expected` WARM times in a row.
    async fn warm_names(&self, pk: &str, expected: &[&str]) {
        for _ in 0..WARM {
            assert_eq!(self.personal_names(pk).await, expected);
        }
    }

    /// A personal key of alice's request, made with her password (`Account.ReadWrite`).
    fn as_alice(&self, m: Method, path: &str) -> RequestBuilder {
        self.s.req(m, path).basic_auth("alice", Some("alice-password"))
    }

    fn me_with(&self, authorization: String) -> RequestBuilder {
        self.s.req(Method::GET, "/v1/me").header("Authorization", authorization)
    }

    /// The keygate CLI on the running server's database file, which must succeed: its JSON.
    fn cli(&self, args: &[&str]) -> Value {
        let args: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
        let (ok, v, stderr) = cli(&self.s, &args, None);
        assert!(ok, "{stderr}");
        v
    }
}

#[tokio::test]
async fn every_change_over_http_is_refused_on_the_next_request() {
    let o = Org::new().await;

    // A revoked key.
    let (id, secret) = o.key(json!({"name": "revoked"})).await;
    o.warm_code(&secret, "VALID").await;
    let r = o
        .as_org(Method::DELETE, &format!("/v1/keys/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(o.code(&secret).await, "REVOKED");

    // A used-up key: verified (cached) between its uses.
    let (id, secret) = o.key(json!({"name": "twice", "max_uses": 2})).await;
    for _ in 0..2 {
        o.warm_code(&secret, "VALID").await;
        let r = o
            .as_org(Method::POST, &format!("/v1/keys/{id}/use"))
            .send()
            .await
            .unwrap();
        assert_eq!(json(r).await["code"], "VALID");
    }
    assert_eq!(o.code(&secret).await, "USAGE_EXCEEDED");
    // Consumed through verify as well.
    let (_, secret) = o.key(json!({"name": "once", "max_uses": 1})).await;
    o.warm_code(&secret, "VALID").await;
    assert_eq!(o.consume(&secret).await, "VALID");
    assert_eq!(o.code(&secret).await, "USAGE_EXCEEDED");

    // A deleted personal key.
    let (pk_id, pk) = o.personal_key().await;
    o.warm_status(|| o.me_with(format!("PersonalKey {pk}")), 200).await;
    let r =
        o.s.req(Method::DELETE, &format!("/api/v37/my/personalaccesskey/{pk_id}"))
            .basic_auth("alice", Some("alice-password"))
            .send()
            .await
            .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        o.me_with(format!("PersonalKey {pk}")).send().await.unwrap().status(),
        401
    );

    // A revoked organization API key.
    let r = o
        .as_org(Method::POST, "/v1/api-keys")
        .json(&json!({"name": "second"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v = json(r).await;
    let second = v["apiKey"].as_str().unwrap().to_string();
    let list = json(o.as_org(Method::GET, "/v1/api-keys").send().await.unwrap()).await;
    let second_id = list.as_array().unwrap().iter().find(|k| k["name"] == "second").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    o.warm_status(|| o.s.req(Method::GET, "/v1/me").header("X-API-Key", &second), 200)
        .await;
    let r = o
        .as_org(Method::DELETE, &format!("/v1/api-keys/{second_id}"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r =
        o.s.req(Method::GET, "/v1/me")
            .header("X-API-Key", &second)
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 401);

    // A disabled user: its ticket and personal key, cached, are refused at once.
    let ticket = o.ticket().await;
    let (_, pk) = o.personal_key().await;
    o.warm_status(|| o.me_with(format!("SOTicket {ticket}")), 200).await;
    o.warm_status(|| o.me_with(format!("PersonalKey {pk}")), 200).await;
    let users = json(o.as_org(Method::GET, "/v1/users").send().await.unwrap()).await;
    let alice = users
        .as_array()
        .or_else(|| users["items"].as_array())
        .unwrap()
        .iter()
        .find(|u| u["username"] == "alice")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r =
        o.s.req(Method::PATCH, &format!("/v1/users/{alice}"))
            .basic_auth("boss", Some("boss-password"))
            .json(&json!({"disabled": true}))
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        o.me_with(format!("SOTicket {ticket}")).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        o.me_with(format!("PersonalKey {pk}")).send().await.unwrap().status(),
        401
    );

    // The lookups above were answered from the cache (else this test would prove nothing).
    let metrics = o.s.metrics().await;
    for cache in ["credential", "api_key", "token", "user", "org"] {
        assert!(
            cache_lookups(&metrics, cache, "hit") > 0,
            "no cache hits for {cache}:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_personal_key_list_shows_every_change_over_http_at_once() {
    let o = Org::new().await;
    let (_, pk) = o.personal_key().await;
    o.warm_names(&pk, &["laptop"]).await;

    // Created.
    let (id, _) = o.personal_key_named("phone").await;
    assert_eq!(o.personal_names(&pk).await, ["laptop", "phone"]);
    o.warm_names(&pk, &["laptop", "phone"]).await;

    // Renamed.
    let r = o
        .as_alice(Method::PUT, &format!("/api/v37/my/personalaccesskey/{id}"))
        .json(&json!({
            "name": "tablet",
            "validTo": (chrono::Utc::now() + chrono::Duration::days(9)).to_rfc3339(),
            "scopes": ["Account.Read"],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    assert_eq!(o.personal_names(&pk).await, ["laptop", "tablet"]);
    o.warm_names(&pk, &["laptop", "tablet"]).await;

    // Deleted.
    let r = o
        .as_alice(Method::DELETE, &format!("/api/v37/my/personalaccesskey/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(o.personal_names(&pk).await, ["laptop"]);

    // Another user's keys do not show, and their list is their own.
    let (_, boss_pk) = o.personal_key_of("boss", "boss-password", "boss's").await;
    assert_eq!(o.personal_names(&boss_pk).await, ["boss's"]);
    assert_eq!(o.personal_names(&pk).await, ["laptop"]);

    // The lists above were answered from the cache (else this test would prove nothing).
    let metrics = o.s.metrics().await;
    assert!(
        cache_lookups(&metrics, "list", "hit") > 0,
        "no cache hits for lists:\n{metrics}"
    );
}

#[tokio::test]
async fn a_personal_key_revoked_by_the_cli_is_gone_from_the_list_at_once() {
    let o = Org::new().await;
    let (_, pk) = o.personal_key().await;
    let (id, _) = o.personal_key_named("phone").await;
    o.warm_names(&pk, &["laptop", "phone"]).await;

    let v = o.cli(&["key", "revoke", &id, "--org", "acme"]);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(o.personal_names(&pk).await, ["laptop"]);
}

#[tokio::test]
async fn changes_made_by_the_cli_are_refused_on_the_next_request() {
    let o = Org::new().await;
    let (id, secret) = o.key(json!({"name": "to be revoked by the operator"})).await;
    let (_, other) = o.key(json!({"name": "stays valid"})).await;
    let ticket = o.ticket().await;
    let (_, pk) = o.personal_key().await;
    o.warm_code(&secret, "VALID").await;
    o.warm_code(&other, "VALID").await;
    o.warm_status(|| o.me_with(format!("SOTicket {ticket}")), 200).await;
    o.warm_status(|| o.me_with(format!("PersonalKey {pk}")), 200).await;

    // Another process revokes a key: the very next verify says so.
    let v = o.cli(&["key", "revoke", &id, "--org", "acme"]);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(o.code(&secret).await, "REVOKED");
    assert_eq!(o.code(&other).await, "VALID");

    // Another process disables the user: its ticket and personal key are refused at once.
    let v = o.cli(&["user", "disable", "alice"]);
    assert_eq!(v["disabled"], true);
    assert_eq!(
        o.me_with(format!("PersonalKey {pk}")).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        o.me_with(format!("SOTicket {ticket}")).send().await.unwrap().status(),
        401
    );

    // And enables it again: the personal key works at once (the ticket ended with the disable).
    o.cli(&["user", "enable", "alice"]);
    assert_eq!(
        o.me_with(format!("PersonalKey {pk}")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        o.me_with(format!("SOTicket {ticket}")).send().await.unwrap().status(),
        401
    );

    // Both were recorded as the operator's.
    let feed = json(o.as_org(Method::GET, "/v1/events?limit=500").send().await.unwrap()).await;
    let revoked = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "KeyRevoked" && e["aggregate_id"] == id.as_str())
        .expect("a KeyRevoked event");
    assert_eq!(revoked["actor"], "cli");
}

/// `sqlite_mmap_size`: with the database file read through a memory map, by the hot reads and
/// sqlx's pools alike, a change is still seen by the next request, the CLI's too, with the
/// credential cache on and off (off: every verify reads the mapped file).
#[tokio::test]
async fn with_the_database_memory_mapped_changes_are_refused_on_the_next_request() {
    for cache in ["20000", "0"] {
        let o = Org::with(
            Options::default()
                .env("KEYGATE_SQLITE_MMAP_SIZE", "67108864")
                .env("KEYGATE_CREDENTIAL_CACHE_ENTRIES", cache),
        )
        .await;
        let (id, secret) = o.key(json!({"name": "revoked by the operator"})).await;
        let (other_id, other) = o.key(json!({"name": "revoked over HTTP"})).await;
        let (_, used_up) = o.key(json!({"name": "one use", "max_uses": 1})).await;
        // Every page into the database file, so that reads come from the map (SQLite reads a
        // page still in the WAL from the WAL), and the changes below mix both.
        checkpoint(&o.s.db_path());
        o.warm_code(&secret, "VALID").await;
        o.warm_code(&other, "VALID").await;
        o.warm_code(&used_up, "VALID").await;
        assert!(
            maps_file(o.s.pid(), &o.s.db_path()),
            "cache {cache}: keygate.db is not mapped"
        );

        o.cli(&["key", "revoke", &id, "--org", "acme"]);
        assert_eq!(o.code(&secret).await, "REVOKED", "cache {cache}");
        let r = o
            .as_org(Method::DELETE, &format!("/v1/keys/{other_id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "cache {cache}");
        assert_eq!(o.code(&other).await, "REVOKED", "cache {cache}");
        assert_eq!(o.consume(&used_up).await, "VALID", "cache {cache}");
        assert_eq!(o.code(&used_up).await, "USAGE_EXCEEDED", "cache {cache}");

        // A key made after all those reads verifies at once.
        let (_, fresh) = o.key(json!({"name": "new"})).await;
        assert_eq!(o.code(&fresh).await, "VALID", "cache {cache}");
    }
    // Without the setting, nothing maps it.
    let o = Org::new().await;
    let (_, secret) = o.key(json!({"name": "plain"})).await;
    checkpoint(&o.s.db_path());
    o.warm_code(&secret, "VALID").await;
    assert!(!maps_file(o.s.pid(), &o.s.db_path()), "keygate.db is mapped by default");
}

/// Copies every page of the WAL into the database file and empties the WAL, retrying for a
/// while (the server's idle readers end their read transactions within 100 ms).
fn checkpoint(db: &std::path::Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let start = std::time::Instant::now();
    loop {
        let busy: i64 = c
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        if busy == 0 {
            return;
        }
        assert!(start.elapsed().as_secs() < 30, "the WAL could not be emptied");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Does process `pid` have `file` memory-mapped (Linux: /proc/PID/maps)?
fn maps_file(pid: u32, file: &std::path::Path) -> bool {
    let file = file.canonicalize().unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    maps.lines().any(|l| {
        l.split_whitespace()
            .nth(5)
            .is_some_and(|p| std::path::Path::new(p) == file)
    })
}

#[tokio::test]
async fn the_cli_revokes_only_a_key_of_the_organization_it_names() {
    let o = Org::new().await;
    let (id, secret) = o.key(json!({"name": "acme's"})).await;
    o.s.create_org("other").await;
    let mut c = command(o.s.dir.path());
    let out = c
        .args(["key", "revoke", &id, "--org", "other"])
        .env("KEYGATE_DATABASE_URL", format!("sqlite://{}", o.s.db_path().display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not found"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(o.code(&secret).await, "VALID");
}

/// Unknown keys are answered by the digest filter without a database read (counted
/// `outcome="absent"`), and a key created by another process on the same database file (here
/// a second server) verifies on its very first request and every one after: the other
/// process's commit drops the filter until it was built again.
#[tokio::test]
async fn unknown_keys_skip_the_database_and_another_process_keys_verify_at_once() {
    const SECRET: &str = "a-shared-server-secret-of-at-least-32-bytes";
    let a = Server::start_with(Options::default().env("KEYGATE_SECRET", SECRET)).await;
    let db = format!("sqlite://{}/keygate.db", a.dir.path().display());
    let b = Server::start_with(
        Options::default()
            .env("KEYGATE_SECRET", SECRET)
            .env("KEYGATE_DATABASE_URL", &db),
    )
    .await;
    let (_, api_key) = a.create_org("acme").await;
    let verify = |s: &Server, secret: &str| {
        s.req(Method::POST, "/v1/keys/verify")
            .header("X-API-Key", &api_key)
            .json(&json!({"key": secret}))
    };
    let code = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        json(r).await["code"].as_str().unwrap().to_string()
    };

    // Unknown keys: NOT_FOUND, and (once the filter is built, in the background at start)
    // without a read.
    let mut absent = 0;
    for i in 0..200 {
        let r = verify(&a, &format!("kg_unknown{i}.AAAA")).send().await.unwrap();
        assert_eq!(code(r).await, "NOT_FOUND");
        if i % 20 == 19 {
            absent = cache_lookups(&a.metrics().await, "credential", "absent");
            if absent > 0 {
                break;
            }
        }
    }
    assert!(absent > 0, "no unknown key was answered by the digest filter");

    // Keys created through the other server: each verifies here on its first request.
    for i in 0..5 {
        let r = b
            .req(Method::POST, "/v1/keys")
            .header("X-API-Key", &api_key)
            .json(&json!({"name": format!("made elsewhere {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let secret = json(r).await["key"].as_str().unwrap().to_string();
        // The first request sees the other process's commit and reads the database; the later
        // ones run after the cache caught up with it (and dropped its filter until rebuilt).
        for _ in 0..WARM {
            assert_eq!(code(verify(&a, &secret).send().await.unwrap()).await, "VALID");
        }
        // And unknown keys are still NOT_FOUND in between.
        let r = verify(&a, &format!("kg_unknown{i}.BBBB")).send().await.unwrap();
        assert_eq!(code(r).await, "NOT_FOUND");
    }
}

//! Test kit: starts the real `keygate` binary on a random port in a temporary directory,
//! with the movable test clock, and talks HTTP to it.

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;
use tempfile::TempDir;

pub const JWT_SECRET: &str = "test-jwt-secret-that-is-at-least-32-bytes-long";

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub dir: TempDir,
    pub admin_password: String,
    logs: Arc<Mutex<String>>,
    pub http: Client,
}

#[derive(Default)]
pub struct Options {
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
}

impl Options {
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_keygate")
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A command for the binary with a clean KEYGATE_* environment, in `dir`.
pub fn command(dir: &std::path::Path) -> Command {
    let mut c = Command::new(bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("KEYGATE_") {
            c.env_remove(k);
        }
    }
    c.current_dir(dir);
    c
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> Server {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, opts).await
    }

    pub async fn start_in(dir: TempDir, opts: Options) -> Server {
        let mut cmd = command(dir.path());
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(&opts.args)
            .env(
                "KEYGATE_DATABASE_URL",
                format!("sqlite://{}/keygate.db", dir.path().display()),
            )
            .env("KEYGATE_UNSAFE_TEST_CLOCK", "true")
            .env("KEYGATE_JWT_SECRET", JWT_SECRET)
            .env("KEYGATE_LOG_LEVEL", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn keygate");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<(Option<String>, Option<String>)>();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(pw) = line.strip_prefix("keygate: admin password: ") {
                    let _ = tx.send((Some(pw.to_string()), None));
                }
                if let Some(addr) = line.strip_prefix("keygate: listening on ") {
                    let _ = tx.send((None, Some(addr.to_string())));
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut password = String::new();
        let base = loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok((Some(pw), _)) => password = pw,
                Ok((_, Some(addr))) => break addr,
                Ok(_) => {}
                Err(_) => panic!("keygate did not start; stderr:\n{}", logs.lock().unwrap()),
            }
        };
        let http = Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Server {
            child: Some(child),
            base,
            dir,
            admin_password: password,
            logs,
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The address the server listens on, for tests that speak raw TCP to it.
    pub fn addr(&self) -> std::net::SocketAddr {
        let addr = self.base.trim_start_matches("http://");
        addr.parse()
            .unwrap_or_else(|e| panic!("the server's address {addr}: {e}"))
    }

    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// A request authenticated as the bootstrap admin (Basic).
    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.req(method, path).basic_auth("admin", Some(&self.admin_password))
    }

    /// The `/metrics` text (from loopback, as the tests run).
    pub async fn metrics(&self) -> String {
        self.req(Method::GET, "/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Whether the log comes to satisfy `test`, waiting up to 20 s: the server writes its log
    /// before it answers, but the test reads the log through a pipe, on another thread, so a
    /// line can arrive after the answer does.
    pub async fn logged(&self, test: impl Fn(&str) -> bool) -> bool {
        for _ in 0..400 {
            if test(&self.logs()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("keygate.db")
    }

    /// Move the server's clock.
    pub async fn advance(&self, secs: i64) {
        let r = self
            .req(Method::POST, "/_test/clock")
            .json(&json!({"advance_secs": secs}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    /// Take the data directory (for a restart); this server keeps an empty one.
    pub fn take_dir(&mut self) -> TempDir {
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Wait for the process to end by itself and return its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let start = std::time::Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Create an organization as the system admin: (id, api key).
    pub async fn create_org(&self, name: &str) -> (String, String) {
        let r = self
            .admin(Method::POST, "/v1/orgs")
            .json(&json!({"name": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        (
            v["id"].as_str().unwrap().to_string(),
            v["apiKey"].as_str().unwrap().to_string(),
        )
    }

    /// Create a user with an organization API key: returns the user id.
    pub async fn create_user(&self, api_key: &str, username: &str, password: &str, admin: bool) -> String {
        let r = self
            .req(Method::POST, "/v1/users")
            .header("X-API-Key", api_key)
            .json(&json!({"username": username, "password": password, "admin": admin}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
    }

    /// Counts of every table plus the last event number: what "the database is unchanged" means.
    pub async fn snapshot(&self) -> Vec<(String, i64)> {
        use sqlx::Connection;
        let url = format!("sqlite://{}?mode=ro", self.db_path().display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let mut out = vec![];
        for t in [
            "organizations",
            "users",
            "api_keys",
            "login_tokens",
            "credentials",
            "events",
        ] {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {t}"))
                .fetch_one(&mut c)
                .await
                .unwrap();
            out.push((t.to_string(), n));
        }
        let seq: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&mut c)
            .await
            .unwrap();
        out.push(("events.max_seq".into(), seq));
        let uses: i64 = sqlx::query_scalar("SELECT COALESCE(SUM(used_count), 0) FROM credentials")
            .fetch_one(&mut c)
            .await
            .unwrap();
        out.push(("credentials.used".into(), uses));
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub async fn json(r: Response) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("status {status}, not JSON ({e}): {text}"))
}

/// Create a key as the admin; returns the whole answer (with `key`, the secret).
pub async fn create_key(s: &Server, body: Value) -> Value {
    let r = s.admin(Method::POST, "/v1/keys").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    json(r).await
}

pub async fn verify(s: &Server, body: Value) -> Value {
    let r = s
        .admin(Method::POST, "/v1/keys/verify")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    json(r).await
}

pub fn hs256(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

pub fn now_ts() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Send all the requests at once, each on its own task, and return their statuses in order.
pub async fn statuses_at_once(requests: Vec<RequestBuilder>) -> Vec<u16> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|r| tokio::spawn(async move { r.send().await.unwrap().status().as_u16() }))
        .collect();
    let mut statuses = vec![];
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

/// How many of `statuses` are `code`.
pub fn count(statuses: &[u16], code: u16) -> usize {
    statuses.iter().filter(|s| **s == code).count()
}

/// The keygate CLI on a running server's database file: (succeeded, stdout as JSON or Null,
/// stderr). `stdin` is written and closed (closed at once when `None`).
pub fn cli(s: &Server, args: &[&str], stdin: Option<&str>) -> (bool, Value, String) {
    let mut c = command(s.dir.path());
    c.args(args)
        .env("KEYGATE_DATABASE_URL", format!("sqlite://{}", s.db_path().display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let v = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.success(), v, stderr)
}

/// Every event of the organization, oldest first, following the feed's cursor.
pub async fn all_events(s: &Server, org_key: &str) -> Vec<Value> {
    let mut out = vec![];
    let mut after = 0;
    loop {
        let page = json(
            s.req(Method::GET, &format!("/v1/events?after={after}&limit=500"))
                .header("X-API-Key", org_key)
                .send()
                .await
                .unwrap(),
        )
        .await;
        let items = page["items"].as_array().unwrap().clone();
        if items.is_empty() {
            return out;
        }
        after = page["next_cursor"].as_i64().unwrap();
        out.extend(items);
    }
}

/// 64 concurrent uses (half by id, half verify-and-consume: both paths share one limit) of a
/// new key with max_uses 10 in a new organization: exactly 10 succeed, the rest are
/// USAGE_EXCEEDED, used_count is 10, and the key's events are KeyCreated then 10 KeyUsed with
/// gap-free versions and counts 1..=10 in order.
pub async fn exactly_ten_of_64_concurrent_uses(s: &Server) {
    const N: i64 = 10;
    let (_, org) = s.create_org("busy").await;
    let r = s
        .req(Method::POST, "/v1/keys")
        .header("X-API-Key", &org)
        .json(&json!({"name": "hot", "max_uses": N}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let k = json(r).await;
    let id = k["id"].as_str().unwrap().to_string();
    let secret = k["key"].as_str().unwrap().to_string();
    let mut tasks = vec![];
    for i in 0..64 {
        let by_id = s.url(&format!("/v1/keys/{id}/use"));
        let verify = s.url("/v1/keys/verify");
        let (org, secret) = (org.clone(), secret.clone());
        tasks.push(tokio::spawn(async move {
            let c = Client::new();
            let r = if i % 2 == 0 {
                c.post(by_id).header("X-API-Key", &org).send().await.unwrap()
            } else {
                c.post(verify)
                    .header("X-API-Key", &org)
                    .json(&json!({"key": secret, "consume": true}))
                    .send()
                    .await
                    .unwrap()
            };
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()["code"].as_str().unwrap().to_string()
        }));
    }
    let mut codes = std::collections::BTreeMap::new();
    for t in tasks {
        *codes.entry(t.await.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(codes.get("VALID"), Some(&N), "{codes:?}");
    assert_eq!(codes.get("USAGE_EXCEEDED"), Some(&(64 - N)), "{codes:?}");
    let got = json(
        s.req(Method::GET, &format!("/v1/keys/{id}"))
            .header("X-API-Key", &org)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got["used_count"], N);
    let mine: Vec<Value> = all_events(s, &org)
        .await
        .into_iter()
        .filter(|e| e["aggregate_id"] == id.as_str())
        .collect();
    let versions: Vec<i64> = mine.iter().map(|e| e["version"].as_i64().unwrap()).collect();
    assert_eq!(versions, (1..=N + 1).collect::<Vec<_>>(), "gap-free versions");
    assert_eq!(mine[0]["type"], "KeyCreated");
    assert!(mine[1..].iter().all(|e| e["type"] == "KeyUsed"));
    let counts: Vec<i64> = mine[1..]
        .iter()
        .map(|e| e["data"]["used_count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, (1..=N).collect::<Vec<_>>());
}

/// The sum of `keygate_cache_lookups_total{cache=<cache>,outcome=<outcome>}` in a `/metrics`
/// text (of every cache when `cache` is empty).
pub fn cache_lookups(metrics: &str, cache: &str, outcome: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("keygate_cache_lookups_total{")
                && (cache.is_empty() || l.contains(&format!("cache=\"{cache}\"")))
                && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

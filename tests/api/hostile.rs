//! Hostile input and connections (the second half of the security review), over the real wire:
//! parsers refuse what would cost them more than linear work, connections are capped and timed
//! out, anonymous requests are refused before their body is read, every credential sent is
//! checked, and files and metrics are not open to everyone.

use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const NS: &str = "http://www.superoffice.net/ws/crm/NetServer/Services86";

/// ` a0="" a1="" ...`: `n` distinct attributes with short (base-36) names.
fn attributes(n: usize) -> String {
    let mut out = String::with_capacity(n * 9);
    for i in 0..n {
        let (mut v, mut name) = (i, vec![]);
        loop {
            name.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[v % 36]);
            v /= 36;
            if v == 0 {
                break;
            }
        }
        out.push_str(" a");
        out.push_str(std::str::from_utf8(&name).unwrap());
        out.push_str("=\"\"");
    }
    out
}

/// Finding 1: an element with 100,000 attributes costs the XML reader quadratic time. Every XML
/// body (SOAP envelopes and the REST agent's XML) gets the cap's error in its own protocol.
#[tokio::test]
async fn elements_with_100000_attributes_get_the_caps_error() {
    let s = Server::start().await;
    let attrs = attributes(100_000);
    let envelope = format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><CheckTemporaryKey xmlns="{NS}"{attrs}><TemporaryKey>x</TemporaryKey></CheckTemporaryKey></s:Body></s:Envelope>"#
    );
    assert!(envelope.len() < 1024 * 1024, "stays under the body limit");
    let r = s
        .req(Method::POST, "/Remote/Services86/Person.svc")
        .header("Content-Type", "text/xml; charset=utf-8")
        .header("SOAPAction", format!("\"{NS}/Person/CheckTemporaryKey\""))
        .body(envelope)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500, "SOAP 1.1 answers a Client fault with 500");
    let text = r.text().await.unwrap();
    assert!(text.contains("<faultcode>s:Client</faultcode>"), "{text}");
    assert!(text.contains("too many attributes"), "{text}");

    let r = s
        .admin(Method::POST, "/api/v1/Agents/Person/CheckTemporaryKey")
        .header("Content-Type", "application/xml")
        .body(format!(
            "<CheckTemporaryKey{attrs}><TemporaryKey>x</TemporaryKey></CheckTemporaryKey>"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v = json(r).await;
    assert_eq!(v["Message"], "The request is invalid.", "{v}");
    assert!(
        v["MessageDetail"].as_str().unwrap().contains("too many attributes"),
        "{v}"
    );

    // A duplicate attribute is still refused, and a name past the cap too.
    for body in [
        r#"<CheckTemporaryKey a="1" a="2"><TemporaryKey>x</TemporaryKey></CheckTemporaryKey>"#.to_string(),
        format!(
            "<CheckTemporaryKey {}=\"1\"><TemporaryKey>x</TemporaryKey></CheckTemporaryKey>",
            "n".repeat(300)
        ),
    ] {
        let r = s
            .admin(Method::POST, "/api/v1/Agents/Person/CheckTemporaryKey")
            .header("Content-Type", "application/xml")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
    }
}

/// JSON nested past serde_json's depth cap answers 400 in each surface's own shape; so do form
/// bodies with more fields than any operation takes.
#[tokio::test]
async fn bodies_nested_past_the_caps_get_each_protocols_error() {
    let s = Server::start().await;
    let (_, org) = s.create_org("acme").await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_obj = format!(r#"{{"name": {}}}"#, deep);
    // Native API.
    let r = s
        .admin(Method::POST, "/v1/keys")
        .header("Content-Type", "application/json")
        .body(deep_obj.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json(r).await["error"], "invalid_request");
    // Tedee.
    let r = s
        .admin(Method::POST, "/api/v37/my/personalaccesskey")
        .header("Content-Type", "application/json")
        .body(deep_obj.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v = json(r).await;
    assert_eq!(v["success"], false);
    assert_eq!(v["statusCode"], 400);
    // SmartphoneKey.
    let lock = json(
        s.req(Method::POST, "/v1/locks")
            .header("X-API-Key", &org)
            .json(&json!({"name": "door"}))
            .send()
            .await
            .unwrap(),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let r = s
        .req(Method::POST, &format!("/locks/{lock}/create-temp-key"))
        .header("X-API-Key", &org)
        .header("Content-Type", "application/json")
        .body(deep_obj.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json(r).await["code"], 400);
    // SuperOffice REST, as JSON and as a form with 100,000 fields.
    let r = s
        .admin(Method::POST, "/api/v1/Agents/Person/CheckTemporaryKey")
        .header("Content-Type", "application/json")
        .body(format!(r#"{{"TemporaryKey": {deep}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(json(r).await["Message"], "The request is invalid.");
    let form = "TemporaryKey=x&".repeat(60_000);
    let r = s
        .admin(Method::POST, "/api/v1/Agents/Person/CheckTemporaryKey")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v = json(r).await;
    assert!(v["MessageDetail"].as_str().unwrap().contains("too many fields"), "{v}");
}

/// Open a socket from `source` to the server and send the start of a request head, never its end.
async fn half_header(server: SocketAddr, source: &str) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut s = sock.connect(server).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: keygate\r\nX-Slow: ")
        .await
        .unwrap();
    s
}

/// Has the server closed this socket? Waits at most `within` for it to say so.
async fn closed(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout(within, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408 or similar before the close is fine: keep reading to the end.
            Ok(Ok(_)) => continue,
        }
    }
}

/// Finding 2: sockets that never finish their headers are capped (in all and per client address)
/// and closed once the header-read timeout passes; the server then serves a normal client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_header_sockets_are_capped_and_timed_out() {
    let s = Server::start_with(
        Options::default()
            .env("KEYGATE_HEADER_READ_TIMEOUT_SECS", "8")
            .env("KEYGATE_MAX_CONNECTIONS", "5")
            .env("KEYGATE_MAX_CONNECTIONS_PER_ADDRESS", "3"),
    )
    .await;
    let addr = s.addr();
    let mut one = vec![];
    for _ in 0..5 {
        one.push(half_header(addr, "127.0.0.1").await);
    }
    let mut two = vec![];
    for _ in 0..5 {
        two.push(half_header(addr, "127.0.0.2").await);
    }
    // Per address: the 4th and 5th from 127.0.0.1 are closed at once. In all: 127.0.0.2 gets
    // the 2 places left of 5.
    let mut open = 0;
    for (i, sock) in one.iter_mut().enumerate() {
        let c = closed(sock, Duration::from_millis(400)).await;
        assert_eq!(c, i >= 3, "127.0.0.1 socket {i}");
        open += usize::from(!c);
    }
    for (i, sock) in two.iter_mut().enumerate() {
        let c = closed(sock, Duration::from_millis(400)).await;
        assert_eq!(c, i >= 2, "127.0.0.2 socket {i}");
        open += usize::from(!c);
    }
    assert_eq!(open, 5);
    // Once the header-read timeout passes, every one of them is closed.
    for sock in one.iter_mut().take(3).chain(two.iter_mut().take(2)) {
        assert!(
            closed(sock, Duration::from_secs(30)).await,
            "a half-header socket outlived the timeout"
        );
    }
    // The places are free again: a normal client is served.
    let r = s.req(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Finding 3: an anonymous request is refused before its body is looked at.
#[tokio::test]
async fn anonymous_requests_get_401_before_validation() {
    let s = Server::start().await;
    for path in ["/locks/1/create-temp-key", "/temp-keys", "/locks/1/update-temp-key"] {
        let r = s
            .req(Method::POST, path)
            .header("Content-Type", "application/json")
            .body(r#"{"tempKeyUuid": 5, "validFrom": "nope"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        let v = json(r).await;
        assert!(
            v.get("details")
                .is_none_or(|d| d.as_array().is_none_or(|a| a.is_empty())),
            "{path}: {v}"
        );
    }
}

/// Finding 4: every credential sent must be valid, and all of one organization.
#[tokio::test]
async fn every_credential_sent_is_checked() {
    let s = Server::start().await;
    let (_, acme) = s.create_org("acme").await;
    let me = json(s.admin(Method::GET, "/v1/me").send().await.unwrap()).await;
    let jwt = hs256(json!({"sub": me["user_id"], "exp": now_ts() + 600}));
    let sys_key = json(
        s.admin(Method::POST, "/v1/api-keys")
            .json(&json!({"name": "ops"}))
            .send()
            .await
            .unwrap(),
    )
    .await["apiKey"]
        .as_str()
        .unwrap()
        .to_string();
    let me_with = |r: reqwest::RequestBuilder| async move { r.send().await.unwrap() };
    // A wrong X-API-Key beside a valid Basic or Bearer login.
    let r = me_with(s.admin(Method::GET, "/v1/me").header("X-API-Key", "kgo_wrong.wrong")).await;
    assert_eq!(r.status(), 401);
    let r = me_with(
        s.req(Method::GET, "/v1/me")
            .bearer_auth(&jwt)
            .header("X-API-Key", "kgo_wrong.wrong"),
    )
    .await;
    assert_eq!(r.status(), 401);
    // Two valid credentials of different organizations.
    let r = me_with(s.admin(Method::GET, "/v1/me").header("X-API-Key", &acme)).await;
    assert_eq!(r.status(), 401);
    // Two valid credentials of one organization: the README's order picks Basic.
    let r = me_with(s.admin(Method::GET, "/v1/me").header("X-API-Key", &sys_key)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await["auth"], "basic");
    // The seed 003 shape: Bearer and X-API-Key together, both valid and of one organization.
    let r = me_with(
        s.req(Method::GET, "/v1/me")
            .bearer_auth(&jwt)
            .header("X-API-Key", &sys_key),
    )
    .await;
    assert_eq!(r.status(), 200);
    // A session cookie counts only without an Authorization header; with one, it is not looked at.
    let r = me_with(
        s.admin(Method::GET, "/v1/me")
            .header("Cookie", "keygate_session=not-a-session"),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = me_with(
        s.req(Method::GET, "/v1/me")
            .header("X-API-Key", &sys_key)
            .header("Cookie", "keygate_session=not-a-session"),
    )
    .await;
    assert_eq!(r.status(), 401);
    // On the SuperOffice agent too.
    let r = me_with(
        s.admin(Method::POST, "/api/v1/Agents/Person/CheckTemporaryKey")
            .header("X-API-Key", "kgo_wrong.wrong")
            .json(&json!({"TemporaryKey": "x"})),
    )
    .await;
    assert_eq!(r.status(), 401);
}

/// Finding 5: the database files are not world-readable, and `/metrics` answers only whom the
/// settings allow.
#[cfg(unix)]
#[tokio::test]
async fn database_files_are_private_and_metrics_are_guarded() {
    use std::os::unix::fs::PermissionsExt;
    let mut s = Server::start().await;
    s.create_org("acme").await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let db = s.db_path();
    let wal = db.with_extension("db-wal");
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&wal), 0o600);
    // A database left world-readable by an older version is mended at start.
    let dir = s.take_dir();
    drop(s);
    let db = dir.path().join("keygate.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let s = Server::start_in(dir, Options::default()).await;
    assert_eq!(mode(&db), 0o600);
    assert!(s.logs().contains("permissions"), "the repair is logged once");
    // /metrics: loopback by default.
    assert_eq!(s.req(Method::GET, "/metrics").send().await.unwrap().status(), 200);
    drop(s);

    let s = Server::start_with(Options::default().env("KEYGATE_METRICS_ALLOW", "10.0.0.0/8")).await;
    assert_eq!(s.req(Method::GET, "/metrics").send().await.unwrap().status(), 403);
    drop(s);
    let s = Server::start_with(Options::default().env("KEYGATE_METRICS_TOKEN", "scrape-token-0123456789")).await;
    assert_eq!(s.req(Method::GET, "/metrics").send().await.unwrap().status(), 401);
    let r = s
        .req(Method::GET, "/metrics")
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .req(Method::GET, "/metrics")
        .bearer_auth("scrape-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _: Option<Value> = None;
}

/// The header-read timeout is also the keep-alive idle timeout: a connection that answered a
/// request and then sends nothing is closed once the timeout passes.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_timeout() {
    let s = Server::start_with(Options::default().env("KEYGATE_HEADER_READ_TIMEOUT_SECS", "2")).await;
    let addr = s.addr();
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: keygate\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "kept alive: {head}"
    );
    // Idle now: closed once the timeout passes (well within 30 s), not kept forever.
    assert!(closed(&mut sock, Duration::from_secs(30)).await);
}

/// One client address for every per-address limit: behind a trusted proxy, the last untrusted
/// forwarded hop; from anyone else, forwarding headers count for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_follows_only_trusted_proxies() {
    let s = Server::start_with(Options::default().env("KEYGATE_TRUSTED_PROXIES", "127.0.0.1/32")).await;
    let from = |src: &str| {
        reqwest::Client::builder()
            .local_address(src.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let proxy = from("127.0.0.1");
    let me = |c: &reqwest::Client, xff: &str, pw: &str| {
        c.get(s.url("/v1/me"))
            .header("X-Forwarded-For", xff.to_string())
            .basic_auth("admin", Some(pw.to_string()))
            .send()
    };
    // Through the proxy, 5 failures lock out (admin, 203.0.113.9) only.
    for i in 0..5 {
        let r = me(&proxy, "198.51.100.1, 203.0.113.9", &format!("wrong-{i}"))
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = me(&proxy, "203.0.113.9", &s.admin_password).await.unwrap();
    assert_eq!(r.status(), 429);
    let r = me(&proxy, "203.0.113.10", &s.admin_password).await.unwrap();
    assert_eq!(r.status(), 200);
    // The client's own left-hand entries do not move it: the last untrusted hop decides.
    let r = me(&proxy, "203.0.113.10, 203.0.113.9", &s.admin_password)
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // From a peer that is not a trusted proxy, the header is ignored: 127.0.0.2 is its own client.
    let r = me(&from("127.0.0.2"), "203.0.113.9", &s.admin_password).await.unwrap();
    assert_eq!(r.status(), 200);
    // /metrics answers loopback clients only: not a remote client behind the proxy.
    let r = proxy
        .get(s.url("/metrics"))
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(proxy.get(s.url("/metrics")).send().await.unwrap().status(), 200);
}

/// Read one response head from `s` (bounded, so that a broken server fails instead of hanging).
async fn response_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let read = async {
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read).await.unwrap();
    String::from_utf8_lossy(&head).into_owned()
}

/// A request whose body stops coming answers 408 once `request_timeout_secs` passes, also after
/// an earlier request on the same connection was answered; the 408 is counted in `/metrics`,
/// and the server goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_answers_408_and_is_counted() {
    let s = Server::start_with(Options::default().env("KEYGATE_REQUEST_TIMEOUT_SECS", "1")).await;
    let (_, api_key) = s.create_org("acme").await;
    let addr = s.addr();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let body = r#"{"key":"kg_nothing.secret"}"#;
    let request = |len: usize| {
        format!(
            "POST /v1/keys/verify HTTP/1.1\r\nHost: keygate\r\nX-API-Key: {api_key}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    // A whole request first, answered.
    c.write_all(format!("{}{body}", request(body.len())).as_bytes())
        .await
        .unwrap();
    let head = response_head(&mut c).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut answer = vec![0u8; len];
    c.read_exact(&mut answer).await.unwrap();
    // Then one whose body never finishes.
    c.write_all(format!("{}{}", request(body.len()), &body[..10]).as_bytes())
        .await
        .unwrap();
    let head = response_head(&mut c).await;
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    let metrics = s.metrics().await;
    assert!(
        metrics.lines().any(|l| l.starts_with("keygate_http_requests_total")
            && l.contains(r#"route="/v1/keys/verify""#)
            && l.contains(r#"status="408""#)),
        "{metrics}"
    );
    assert!(s.logged(|log| log.contains("request timed out")).await, "{}", s.logs());
    assert_eq!(s.req(Method::GET, "/healthz").send().await.unwrap().status(), 200);
}

/// A client that writes all of an oversized body before it reads (as most do) gets the 413 the
/// server sent from the headers alone, not a reset: the server reads and drops the rest of the
/// body before it closes (a lingering close), and the answer is there once the body is sent.
#[tokio::test]
async fn an_oversized_body_sent_to_its_end_still_gets_its_answer() {
    use base64::Engine;
    let s = Server::start().await;
    let addr = s.addr();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("admin:{}", s.admin_password));
    let (chunk, chunks) = (64 * 1024, 256);
    let len = chunk * chunks;
    for round in 0..3 {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /v1/keys HTTP/1.1\r\nHost: keygate\r\nAuthorization: Basic {auth}\r\n\
             Content-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        // Let the server answer from the length and stop reading before the body comes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        // In pieces, as a client streams it: a reset would have arrived after the first ones.
        for _ in 0..chunks {
            sock.write_all(&vec![b' '; chunk])
                .await
                .unwrap_or_else(|e| panic!("round {round}: the body could not be sent: {e}"));
            tokio::task::yield_now().await;
        }
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), sock.read_to_end(&mut answer))
            .await
            .expect("the server closes")
            .unwrap_or_else(|e| panic!("round {round}: no answer, {e}"));
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "round {round}: {answer}");
        assert!(answer.contains("payload_too_large"), "round {round}: {answer}");
    }
}

/// The lingering close is bounded: a client that got its answer and the end of the stream but
/// neither sends more nor closes its side keeps its connection's place only for a short pause
/// (2 s), then the server closes and the place serves someone else.
#[tokio::test]
async fn a_silent_client_does_not_keep_a_lingering_connection() {
    let s = Server::start_with(Options::default().env("KEYGATE_MAX_CONNECTIONS", "1")).await;
    let addr = s.addr();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    silent
        .write_all(
            b"POST /v1/keys HTTP/1.1\r\nHost: keygate\r\nContent-Type: application/json\r\n\
              Content-Length: 4194304\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), silent.read_to_end(&mut answer))
        .await
        .expect("answered and the write side shut")
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // `silent` stays open and says nothing. The one place is free again within seconds.
    let started = std::time::Instant::now();
    loop {
        if let Ok(r) = s.req(Method::GET, "/healthz").send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the lingering connection kept the only place"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(silent);
}

/// A method is any token to HTTP, and each metrics label value is a series the server keeps for
/// good: requests with methods of the client's own making (here 40 names) are counted together
/// under `method="OTHER"`, so that clients cannot grow `/metrics` and memory without bound; the
/// standard methods keep their names.
#[tokio::test]
async fn methods_of_the_clients_making_are_counted_as_other() {
    let s = Server::start().await;
    for i in 0..40 {
        let method = Method::from_bytes(format!("KGX{i}").as_bytes()).unwrap();
        let r = s.req(method, "/healthz").send().await.unwrap();
        assert_eq!(r.status(), 405);
    }
    assert_eq!(s.req(Method::GET, "/healthz").send().await.unwrap().status(), 200);
    let metrics = s.metrics().await;
    assert!(!metrics.contains("KGX"), "{metrics}");
    let count = |method: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with("keygate_http_requests_total{"))
            .filter(|l| l.contains(&format!(r#"method="{method}""#)) && l.contains(r#"route="/healthz""#))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum::<u64>()
    };
    assert_eq!(count("OTHER"), 40, "{metrics}");
    assert!(count("GET") >= 1, "{metrics}");
}

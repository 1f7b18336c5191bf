//! Health, metrics, configuration layering, restarts and graceful shutdown.

use crate::common::*;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn healthz_and_metrics() {
    let s = Server::start().await;
    let h = json(s.req(Method::GET, "/healthz").send().await.unwrap()).await;
    assert_eq!(h["status"], "ok");
    create_key(&s, json!({"name": "m"})).await;
    let m = s
        .req(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("keygate_http_requests_total"), "{m}");
    assert!(m.contains("route=\"/v1/keys\""), "{m}");
}

#[tokio::test]
async fn config_file_env_and_flags_layer_in_that_order() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("keygate.toml");
    // The file asks for a body limit of 100 bytes and a port the flag overrides.
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:1\"\nbody_limit_bytes = 100\nticket_ttl_secs = 60\n",
    )
    .unwrap();
    let s = Server::start_in(
        dir,
        Options {
            env: vec![
                ("KEYGATE_CONFIG".into(), cfg.display().to_string()),
                ("KEYGATE_TICKET_TTL_SECS".into(), "120".into()),
            ],
            args: vec![],
        },
    )
    .await;
    let r = s
        .admin(Method::POST, "/v1/keys")
        .json(&json!({"name": "x".repeat(150)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "the file's body limit applies");
    // The env var beats the file: a ticket lives 120 s, not 60.
    let t = json(s.admin(Method::POST, "/v1/tickets").send().await.unwrap()).await;
    let ticket = t["ticket"].as_str().unwrap();
    s.advance(90).await;
    let r = s
        .req(Method::GET, "/v1/me")
        .header("Authorization", format!("SOTicket {ticket}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn bad_configuration_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .args(["serve", "--config", "missing.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    let out = command(dir.path())
        .args(["serve"])
        .env("KEYGATE_DATABASE_URL", "mysql://nope")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
    let out = command(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("KEYGATE_DATABASE_URL", "sqlite://x.db")
        .env("KEYGATE_SECRET", "too-short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEYGATE_SECRET"));
}

#[tokio::test]
async fn restart_keeps_keys_and_does_not_bootstrap_twice() {
    let s = Server::start().await;
    let k = create_key(&s, json!({"name": "durable"})).await;
    let password = s.admin_password.clone();
    let mut s = s;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status();
    assert!(s.wait_exit(Duration::from_secs(20)).is_some());
    let dir = s.take_dir();
    let s2 = Server::start_in(dir, Options::default()).await;
    assert!(s2.admin_password.is_empty(), "no second bootstrap");
    let v = s2
        .req(Method::POST, "/v1/keys/verify")
        .basic_auth("admin", Some(&password))
        .json(&json!({"key": k["key"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(json(v).await["code"], "VALID");
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let mut s = Server::start().await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status();
    let status = s.wait_exit(Duration::from_secs(20)).expect("exited");
    assert!(status.success(), "{status:?}");
    assert!(s.logged(|log| log.contains("shutting down")).await, "{}", s.logs());
}

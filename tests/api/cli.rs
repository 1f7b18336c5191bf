//! The CLI works against a running server's database file.

use crate::common::*;
use reqwest::Method;
use serde_json::Value;
use std::io::Write;
use std::process::Stdio;

fn run(s: &Server, args: &[&str], stdin: Option<&str>) -> (bool, Value, String) {
    let mut c = command(s.dir.path());
    c.args(args)
        .env("KEYGATE_DATABASE_URL", format!("sqlite://{}", s.db_path().display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let v = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (out.status.success(), v, stderr)
}

#[tokio::test]
async fn org_and_user_create_against_a_running_server() {
    let s = Server::start().await;
    let (ok, v, err) = run(&s, &["org", "create", "acme", "--json"], None);
    assert!(ok, "{err}");
    let key = v["apiKey"].as_str().unwrap();
    assert!(v["id"].as_str().is_some());
    // The running server accepts the new organization's key at once.
    let me = json(
        s.req(Method::GET, "/v1/me")
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me["org_id"], v["id"]);

    let (ok, u, err) = run(
        &s,
        &[
            "user",
            "create",
            "tje0",
            "--password-stdin",
            "--org",
            "acme",
            "--admin",
            "--person-id",
            "798",
            "--json",
        ],
        Some("a-long-password\n"),
    );
    assert!(ok, "{err}");
    let uid = u["id"].as_str().unwrap();
    let me = json(
        s.req(Method::GET, "/v1/me")
            .basic_auth("tje0", Some("a-long-password"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me["user_id"], uid);
    assert_eq!(me["is_admin"], true);
    assert_eq!(me["org_id"], v["id"]);
    let user = json(
        s.req(Method::GET, &format!("/v1/users/{uid}"))
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(user["person_id"], 798);

    // Without --org: the system organization.
    let (ok, _, err) = run(
        &s,
        &["user", "create", "ops", "--password-stdin", "--json"],
        Some("another-password"),
    );
    assert!(ok, "{err}");
    let me = json(
        s.req(Method::GET, "/v1/me")
            .basic_auth("ops", Some("another-password"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let sys = json(s.admin(Method::GET, "/v1/me").send().await.unwrap()).await;
    assert_eq!(me["org_id"], sys["org_id"]);
    assert_eq!(me["is_admin"], false);

    // Refusals: duplicate org, unknown org, weak password, no --password-stdin.
    assert!(!run(&s, &["org", "create", "acme", "--json"], None).0);
    assert!(
        !run(
            &s,
            &["user", "create", "x", "--password-stdin", "--org", "nope"],
            Some("long-password")
        )
        .0
    );
    let (ok, _, err) = run(&s, &["user", "create", "weak", "--password-stdin"], Some("short"));
    assert!(!ok);
    assert!(err.contains("password"), "{err}");
    assert!(!run(&s, &["user", "create", "nopw"], None).0);

    let (ok, v, err) = run(&s, &["migrate", "--json"], None);
    assert!(ok, "{err}");
    assert_eq!(v["migrated"], true);
}

#[test]
fn migrate_creates_a_fresh_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .args(["migrate", "--json", "--database", "sqlite://fresh.db"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("fresh.db").exists());
    assert!(dir.path().join("fresh.db.secret").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("fresh.db.secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret file must be private");
    }
}

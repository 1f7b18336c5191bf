//! The "my personal access keys" page, in a real headless browser (Debian's chromium driven
//! by playwright-core; scripts/test.sh installs both).

use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;

fn browser_ready() -> bool {
    let root = env!("CARGO_MANIFEST_DIR");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ok = Path::new(&chromium).exists()
        && Path::new(root)
            .join("tests/browser/node_modules/playwright-core")
            .exists();
    if !ok {
        // CI must never skip: scripts/test.sh installs the browser.
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium or playwright-core missing; run scripts/test.sh"
        );
        eprintln!("skipped: chromium or tests/browser/node_modules missing (scripts/test.sh installs them)");
    }
    ok
}

#[tokio::test]
async fn pages_need_a_login_and_send_security_headers() {
    let s = Server::start().await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = c.get(s.url("/account/keys")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/account/login");
    let r = c
        .get(s.url("/account/keys"))
        .header("Cookie", "keygate_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = c.get(s.url("/account/login")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(!r.text().await.unwrap().contains("<script>"), "no inline scripts");
}

#[tokio::test]
async fn a_browser_creates_a_key_reads_it_once_and_it_works_on_the_api() {
    if !browser_ready() {
        return;
    }
    let s = Server::start().await;
    let (_, org) = s.create_org("home").await;
    s.create_user(&org, "erin", "erin-password", false).await;
    let shot = std::env::var("KG_SCREENSHOT").ok();
    let mut cmd = std::process::Command::new("node");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/personal_keys.mjs"))
        .env("KG_URL", &s.base)
        .env("KG_USER", "erin")
        .env("KG_PASS", "erin-password");
    if let Some(p) = shot {
        cmd.env("KG_SCREENSHOT", p);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let key = result["key"].as_str().unwrap();
    // The key read off the page authenticates on the API, as its owner.
    let r = s
        .req(Method::GET, "/api/v37/my/personalaccesskey")
        .header("Authorization", format!("PersonalKey {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list = json(r).await;
    let names: Vec<&str> = list["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [result["name"].as_str().unwrap()], "the deleted key is gone");
    let me = json(
        s.req(Method::GET, "/v1/me")
            .header("Authorization", format!("PersonalKey {key}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me["auth"], "personal_key");
    // The page's writes went through the session with XSRF: the events name the user.
    let feed = json(
        s.req(Method::GET, "/v1/events?limit=500")
            .header("X-API-Key", &org)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let kinds: Vec<&str> = feed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"SessionStarted") && kinds.contains(&"KeyRevoked"),
        "{kinds:?}"
    );
    assert!(!feed.to_string().contains(key));
    let _ = json!({});
}

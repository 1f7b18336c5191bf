//! No plaintext secret in the database file, the logs or the events.

use crate::common::*;
use reqwest::Method;
use serde_json::json;

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn secrets_never_reach_the_database_logs_or_events() {
    let s = Server::start().await;
    let mut secrets: Vec<String> = vec![];
    let (_, org_key) = s.create_org("secretive").await;
    secrets.push(org_key.clone());
    let user_pw = "correct-horse-battery";
    s.create_user(&org_key, "dana", user_pw, true).await;
    secrets.push(user_pw.to_string());
    for i in 0..3 {
        let k = create_key(&s, json!({"name": format!("k{i}"), "max_uses": 5})).await;
        let secret = k["key"].as_str().unwrap().to_string();
        // Use and verify them so they travel through every path.
        verify(&s, json!({"key": secret, "consume": true})).await;
        secrets.push(secret);
    }
    let r = s
        .req(Method::POST, "/v1/api-keys")
        .header("X-API-Key", &org_key)
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap();
    secrets.push(json(r).await["apiKey"].as_str().unwrap().to_string());
    let t = json(
        s.req(Method::POST, "/v1/tickets")
            .basic_auth("dana", Some(user_pw))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let ticket = t["ticket"].as_str().unwrap().to_string();
    s.req(Method::GET, "/v1/me")
        .header("Authorization", format!("SOTicket {ticket}"))
        .send()
        .await
        .unwrap();
    secrets.push(ticket);
    let r = s
        .req(Method::POST, "/v1/sessions")
        .json(&json!({"username": "dana", "password": user_pw}))
        .send()
        .await
        .unwrap();
    for c in r.headers().get_all("set-cookie") {
        let pair = c.to_str().unwrap().split(';').next().unwrap();
        secrets.push(pair.split_once('=').unwrap().1.to_string());
    }
    // A failed login with a password-looking string must not be logged either.
    let wrong = "wrong-password-should-not-be-logged";
    s.req(Method::GET, "/v1/me")
        .basic_auth("dana", Some(wrong))
        .send()
        .await
        .unwrap();
    secrets.push(wrong.to_string());
    assert!(secrets.len() >= 10);

    // Let the WAL settle into files we can read, then grep every file the server wrote.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut files = vec![];
    for e in std::fs::read_dir(s.dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("keygate.db")
            && !p.to_string_lossy().ends_with(".secret")
        {
            files.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    assert!(files.iter().any(|(n, _)| n.ends_with("keygate.db")));
    let events = s
        .admin(Method::GET, "/v1/events?limit=500")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let org_events = s
        .req(Method::GET, "/v1/events?limit=500")
        .header("X-API-Key", &org_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Every request's line has arrived (the two event lists are the last two).
    let events_lines = |log: &str| log.matches(r#"route="/v1/events""#).count() >= 2;
    assert!(s.logged(events_lines).await, "debug logs were captured:\n{}", s.logs());
    let logs = s.logs();
    for secret in &secrets {
        // The secret part alone (after the public prefix) must not appear either.
        let tail = secret.split_once('.').map(|(_, t)| t).unwrap_or(secret);
        for needle in [secret.as_str(), tail] {
            for (name, bytes) in &files {
                assert!(!contains(bytes, needle), "secret found in {name}");
            }
            assert!(!logs.contains(needle), "secret found in logs");
            assert!(
                !events.contains(needle) && !org_events.contains(needle),
                "secret found in events"
            );
        }
    }
    // The bootstrap password is printed once, in the start-up banner, and nowhere else.
    assert_eq!(logs.matches(&s.admin_password).count(), 1);
    for (name, bytes) in &files {
        assert!(!contains(bytes, &s.admin_password), "admin password in {name}");
    }
}

//! Group commit on SQLite (`sqlite_group_commit`): use limits stay exact with it on and off, and
//! a `kill -9` in the middle of batched writes loses nothing that was answered.

use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Is the `keygate_sqlite_batch_size` metric there (only the batching writer records it)?
async fn batches_recorded(s: &Server) -> bool {
    s.metrics().await.contains("keygate_sqlite_batch_size")
}

#[tokio::test]
async fn use_limits_are_exact_with_group_commit() {
    let s = Server::start().await;
    exactly_ten_of_64_concurrent_uses(&s).await;
    assert!(batches_recorded(&s).await, "group commit is on by default");
}

#[tokio::test]
async fn use_limits_are_exact_without_group_commit() {
    let s = Server::start_with(Options::default().env("KEYGATE_SQLITE_GROUP_COMMIT", "false")).await;
    exactly_ten_of_64_concurrent_uses(&s).await;
    assert!(!batches_recorded(&s).await, "the setting turns group commit off");
}

/// What the writers were answered before the kill.
#[derive(Default)]
struct Answered {
    created: Mutex<Vec<String>>,
    uses: AtomicUsize,
}

#[tokio::test]
async fn kill_9_during_batched_writes_loses_nothing_answered() {
    let mut s = Server::start().await;
    let (_, org) = s.create_org("crash").await;
    let r = s
        .req(Method::POST, "/v1/keys")
        .header("X-API-Key", &org)
        .json(&json!({"name": "used"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let use_id = json(r).await["id"].as_str().unwrap().to_string();
    let answered = Arc::new(Answered::default());
    // 16 writers, each alternating creates and uses, until the server is gone.
    let mut tasks = vec![];
    for w in 0..16 {
        let (answered, org) = (answered.clone(), org.clone());
        let (create, use_url) = (s.url("/v1/keys"), s.url(&format!("/v1/keys/{use_id}/use")));
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            for i in 0.. {
                if i % 2 == 0 {
                    let r = c
                        .post(&create)
                        .header("X-API-Key", &org)
                        .json(&json!({"name": format!("w{w} #{i}")}))
                        .send()
                        .await;
                    let Ok(r) = r else { return };
                    if r.status() != 201 {
                        return;
                    }
                    let Ok(v) = r.json::<Value>().await else { return };
                    answered
                        .created
                        .lock()
                        .unwrap()
                        .push(v["id"].as_str().unwrap().to_string());
                } else {
                    let Ok(r) = c.post(&use_url).header("X-API-Key", &org).send().await else {
                        return;
                    };
                    if r.status() != 200 {
                        return;
                    }
                    let Ok(v) = r.json::<Value>().await else { return };
                    assert_eq!(v["code"], "VALID");
                    answered.uses.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    // Let the writers get going, then kill -9 while their requests are in flight.
    // (A writer stops at its first failure; if all stopped early, the assertion below says so.)
    while answered.created.lock().unwrap().len() < 300 && !tasks.iter().all(|t| t.is_finished()) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let st = std::process::Command::new("kill")
        .args(["-9", &s.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    for t in tasks {
        t.await.unwrap();
    }
    let created = answered.created.lock().unwrap().clone();
    let uses = answered.uses.load(Ordering::SeqCst);
    assert!(
        created.len() >= 300 && uses > 0,
        "the writers stopped early: {} creates, {uses} uses answered\n{}",
        created.len(),
        s.logs()
    );

    // A new server on the same database.
    let dir = s.take_dir();
    drop(s);
    let s = Server::start_in(dir, Options::default()).await;
    let keys = json(
        s.req(Method::GET, &format!("/v1/keys/{use_id}"))
            .header("X-API-Key", &org)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let used = keys["used_count"].as_i64().unwrap();
    assert!(used >= uses as i64, "{used} uses stored, {uses} answered");
    let events = all_events(&s, &org).await;
    let created_events: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["type"] == "KeyCreated")
        .map(|e| e["aggregate_id"].as_str().unwrap())
        .collect();
    let used_events = events
        .iter()
        .filter(|e| e["type"] == "KeyUsed" && e["aggregate_id"] == use_id.as_str())
        .count() as i64;
    assert_eq!(used_events, used, "one KeyUsed event per stored use");
    for id in &created {
        assert!(created_events.contains(id.as_str()), "no KeyCreated event for {id}");
        let r = s
            .req(Method::GET, &format!("/v1/keys/{id}"))
            .header("X-API-Key", &org)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "answered key {id} is gone");
    }
}
